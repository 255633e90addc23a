#!/usr/bin/env bash
# bench/run.sh: the s3quorum benchmark in one command.
#
# Builds release binaries, starts a 3-node s3quorum cluster of separate processes (3 nodes +
# 1 gateway on 127.0.0.1, free ports), runs the s3bench matrix against it with fsync on, then
# again on a fresh cluster with fsync off (--no-fsync on the nodes), and prints a table and
# JSON lines per run. Results are kept in target/bench/<timestamp>/.
#
# Usage:
#   bench/run.sh [--quick] [--with-garage] [--fsync on|off|both] [--duration-secs N]
#                [-- EXTRA s3bench run ARGS]
#
#   --quick          smoke run: ~2 s per workload, 256 MiB multipart object
#   --with-garage    also run the matrix against a local 3-node Garage cluster (RF 3), with
#                    the same fsync setting, and print both side by side with ratios and the
#                    targets as PASS/FAIL. Needs a garage binary (GARAGE_BIN or PATH) and the
#                    garage-cluster tool (GARAGE_CLUSTER, PATH, or ../shared/tools).
#   --fsync S        on, off or both (default both)
#
# With S3_ENDPOINT set (plus AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, and BENCH_BUCKET or
# S3_BUCKET, AWS_REGION), no cluster is started: the matrix runs once against that endpoint
# (label BENCH_SYSTEM, default "external"; BENCH_SERVER_PIDS=name=pid,... to measure server
# CPU and memory when the servers run on this machine). An https:// endpoint builds s3bench
# with its `tls` feature (rustls; platform roots, or SSL_CERT_FILE).
#
# Exit status: 0 when every run finished without errors.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

QUICK=()
WITH_GARAGE=0
FSYNC=both
EXTRA=()
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) QUICK=(--quick) ;;
	--with-garage) WITH_GARAGE=1 ;;
	--fsync)
		FSYNC="$2"
		shift
		;;
	--duration-secs)
		EXTRA+=(--duration-secs "$2")
		shift
		;;
	--)
		shift
		EXTRA+=("$@")
		break
		;;
	-h | --help)
		sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "run.sh: unknown argument $1 (see --help)" >&2
		exit 2
		;;
	esac
	shift
done
case "$FSYNC" in
on) SETTINGS=(on) ;;
off) SETTINGS=(off) ;;
both) SETTINGS=(on off) ;;
*)
	echo "run.sh: --fsync must be on, off or both" >&2
	exit 2
	;;
esac

log() { printf 'run.sh: %s\n' "$*" >&2; }

OUT="${BENCH_OUT:-$ROOT/target/bench/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
log "results in $OUT"

FEATURES=()
case "${S3_ENDPOINT:-}" in
https://*) FEATURES=(--features s3quorum-bench/tls) ;;
esac
cargo build --release --ignore-rust-version -p s3quorum -p s3quorum-bench "${FEATURES[@]}"
S3Q="$ROOT/target/release/s3quorum"
S3BENCH="$ROOT/target/release/s3bench"

COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git diff --quiet HEAD -- src node Cargo.toml Cargo.lock 2>/dev/null; then
	COMMIT="$COMMIT-dirty"
fi
STATUS=0

# ---------------------------------------------------------------- external endpoint
if [ -n "${S3_ENDPOINT:-}" ]; then
	SYSTEM="${BENCH_SYSTEM:-external}"
	log "S3_ENDPOINT=$S3_ENDPOINT: benchmarking $SYSTEM only"
	"$S3BENCH" run --system "$SYSTEM" "${QUICK[@]}" --json-out "$OUT/$SYSTEM.jsonl" \
		"${EXTRA[@]}" | tee "$OUT/$SYSTEM.txt" || STATUS=1
	exit "$STATUS"
fi

# The commit describes s3quorum, so it is recorded only for the clusters started here.
export BENCH_COMMIT="${BENCH_COMMIT:-$COMMIT}"

# ---------------------------------------------------------------- process helpers
PIDS=()
stop_all() {
	local pid
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for _ in $(seq 100); do
		local alive=0
		for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		[ "$alive" = 0 ] && break
		sleep 0.1
	done
	for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
	PIDS=()
}
GARAGE_DIRS=()
cleanup() {
	stop_all
	local d
	for d in "${GARAGE_DIRS[@]}"; do "$GARAGE_CLUSTER" down "$d" --purge >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_line FILE ROLE: prints the URL of the first `listening ROLE http://ADDR` line.
wait_line() {
	local file="$1" role="$2" line
	for _ in $(seq 300); do
		line="$(grep -m1 "^listening $role http://" "$file" 2>/dev/null || true)"
		if [ -n "$line" ]; then
			echo "${line#listening "$role" }"
			return 0
		fi
		sleep 0.1
	done
	log "no 'listening $role' line in $file after 30 s; its log:"
	tail -20 "${file%.out}.log" >&2 || true
	return 1
}

rand_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# start_s3quorum DIR FSYNC: 3 node processes + 1 gateway; sets S3Q_ENV and SERVER_PIDS.
start_s3quorum() {
	local dir="$1" fsync="$2" secret urls=() pids=() i nofsync=()
	rm -rf "$dir"
	mkdir -p "$dir"
	secret="$(rand_hex 16)"
	[ "$fsync" = off ] && nofsync=(--no-fsync)
	for i in 1 2 3; do
		"$S3Q" node --data-dir "$dir/node$i" --listen 127.0.0.1:0 --cluster-secret "$secret" \
			"${nofsync[@]}" >"$dir/node$i.out" 2>"$dir/node$i.log" </dev/null &
		PIDS+=($!)
		pids+=("node$i=$!")
	done
	for i in 1 2 3; do urls+=("$(wait_line "$dir/node$i.out" node)"); done
	AK="bench$(rand_hex 6)"
	SK="$(rand_hex 20)"
	"$S3Q" gateway --nodes "$(
		IFS=,
		echo "${urls[*]}"
	)" \
		--s3-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 --access-key "$AK" --secret-key "$SK" \
		--cluster-secret "$secret" >"$dir/gateway.out" 2>"$dir/gateway.log" </dev/null &
	PIDS+=($!)
	pids+=("gateway=$!")
	ENDPOINT="$(wait_line "$dir/gateway.out" s3)"
	SERVER_PIDS="$(
		IFS=,
		echo "${pids[*]}"
	)"
	log "s3quorum (fsync $fsync): $ENDPOINT, processes $SERVER_PIDS"
}

# bench_s3quorum FSYNC
bench_s3quorum() {
	local fsync="$1" name="s3quorum-fsync-$1"
	start_s3quorum "$OUT/data-$name" "$fsync"
	env -u S3_BUCKET -u BENCH_BUCKET \
		S3_ENDPOINT="$ENDPOINT" AWS_ACCESS_KEY_ID="$AK" AWS_SECRET_ACCESS_KEY="$SK" \
		AWS_REGION=us-east-1 BENCH_SERVER_PIDS="$SERVER_PIDS" \
		"$S3BENCH" run --system s3quorum --fsync "$fsync" --bucket bench "${QUICK[@]}" \
		--json-out "$OUT/$name.jsonl" "${EXTRA[@]}" | tee "$OUT/$name.txt" || STATUS=1
	stop_all
	rm -rf "$OUT/data-$name"
}

# ---------------------------------------------------------------- Garage
find_garage() {
	GARAGE_CLUSTER="${GARAGE_CLUSTER:-$(command -v garage-cluster || true)}"
	if [ -z "$GARAGE_CLUSTER" ] && [ -x "$ROOT/../shared/tools/garage-cluster" ]; then
		GARAGE_CLUSTER="$ROOT/../shared/tools/garage-cluster"
	fi
	[ -n "$GARAGE_CLUSTER" ] || {
		log "--with-garage: no garage-cluster tool (set GARAGE_CLUSTER)"
		return 1
	}
	GARAGE_BIN="${GARAGE_BIN:-$(command -v garage || true)}"
	[ -n "$GARAGE_BIN" ] && [ -x "$GARAGE_BIN" ] || {
		log "--with-garage: no garage binary (set GARAGE_BIN or put garage on PATH)"
		return 1
	}
	export GARAGE_BIN
	log "garage: $("$GARAGE_BIN" --version 2>/dev/null | head -1) via $GARAGE_CLUSTER"
}

# bench_garage FSYNC
bench_garage() {
	local fsync="$1" name="garage-fsync-$1" dir pids=() i=0 pid env
	dir="$OUT/data-$name"
	GARAGE_DIRS+=("$dir")
	env="$(GARAGE_FSYNC="$([ "$fsync" = on ] && echo 1 || echo 0)" "$GARAGE_CLUSTER" up "$dir")"
	while read -r pid; do
		i=$((i + 1))
		pids+=("garage$i=$pid")
	done <"$dir/pids"
	log "garage (fsync $fsync): processes ${pids[*]}"
	(
		eval "$env"
		BENCH_SERVER_PIDS="$(
			IFS=,
			echo "${pids[*]}"
		)" "$S3BENCH" run --system garage --fsync "$fsync" "${QUICK[@]}" \
			--json-out "$OUT/$name.jsonl" "${EXTRA[@]}"
	) | tee "$OUT/$name.txt" || STATUS=1
	"$GARAGE_CLUSTER" down "$dir" --purge >/dev/null || true
}

if [ "$WITH_GARAGE" = 1 ]; then
	find_garage || exit 2
fi

for fsync in "${SETTINGS[@]}"; do
	bench_s3quorum "$fsync"
	if [ "$WITH_GARAGE" = 1 ]; then
		bench_garage "$fsync"
	fi
done

echo
for fsync in "${SETTINGS[@]}"; do
	echo "===== s3quorum, fsync $fsync ====="
	sed -n '1,/^$/p' "$OUT/s3quorum-fsync-$fsync.txt"
	if [ "$WITH_GARAGE" = 1 ]; then
		echo "===== s3quorum vs Garage, fsync $fsync ====="
		"$S3BENCH" compare "$OUT/s3quorum-fsync-$fsync.jsonl" "$OUT/garage-fsync-$fsync.jsonl" |
			tee "$OUT/compare-fsync-$fsync.txt"
		echo
	fi
done
log "results in $OUT"
exit "$STATUS"
