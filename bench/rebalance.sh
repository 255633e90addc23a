#!/usr/bin/env bash
# bench/rebalance.sh: grow a loaded cluster from 3 nodes to 5 and measure what it costs.
#
# Builds release binaries and starts 5 node processes and 1 gateway on 127.0.0.1 (free
# ports); the gateway is seeded with 3 of the nodes. s3bench writes the objects (default
# 10,000 of 64 KiB) and runs its mixed workload (45% GET / 30% HEAD / 15% PUT / 10% DELETE)
# for --before-secs: the latency before. It then goes on with the same keys while this
# script adds node 4 (admin layout add, apply, wait until the migration retired), then
# node 5; then it stops the load: the latency during. It prints the time each change took,
# the key copies and bytes the migrations moved (from the gateway's "migration done" lines),
# each node's data directory size before and after, and the two latency rows.
#
# With --kill-joining, node 5 is killed (SIGKILL) once its migration has half of its keys
# left; the script reports how long the migration takes to retire with it dead and what
# the clients saw, then restarts node 5 on its address and reports how long until the
# gateway counts no object below its replication factor (replication_lag 0).
#
# Usage:
#   bench/rebalance.sh [--objects N] [--object-kib K] [--before-secs S] [--rate-mib M]
#                      [--concurrency C] [--kill-joining] [--no-fsync]
#
# Needs jq and curl. Results are kept in target/bench/rebalance-<timestamp>/.
# Exit status: 0 when every change completed and the clients saw no error.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

OBJECTS=10000
OBJECT_KIB=64
BEFORE_SECS=20
RATE_MIB=64
CONCURRENCY=16
KILL=0
NOFSYNC=()
while [ $# -gt 0 ]; do
	case "$1" in
	--objects) OBJECTS="$2" && shift ;;
	--object-kib) OBJECT_KIB="$2" && shift ;;
	--before-secs) BEFORE_SECS="$2" && shift ;;
	--rate-mib) RATE_MIB="$2" && shift ;;
	--concurrency) CONCURRENCY="$2" && shift ;;
	--kill-joining) KILL=1 ;;
	--no-fsync) NOFSYNC=(--no-fsync) ;;
	-h | --help)
		sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "rebalance.sh: unknown argument $1 (see --help)" >&2
		exit 2
		;;
	esac
	shift
done
for tool in jq curl; do
	command -v "$tool" >/dev/null || {
		echo "rebalance.sh: needs $tool" >&2
		exit 2
	}
done

log() { printf 'rebalance.sh: %s\n' "$*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

OUT="${BENCH_OUT:-$ROOT/target/bench/rebalance-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT/signal"
log "results in $OUT"

cargo build --release --ignore-rust-version -p s3quorum -p s3quorum-bench
S3Q="$ROOT/target/release/s3quorum"
S3BENCH="$ROOT/target/release/s3bench"

PIDS=()
BENCH_PID=
cleanup() {
	local pid
	[ -n "$BENCH_PID" ] && kill -TERM "$BENCH_PID" 2>/dev/null || true
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	sleep 0.5
	for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
	rm -rf "$OUT/data"
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
	log "no 'listening $role' line in $file after 30 s"
	return 1
}

rand_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

SECRET="$(rand_hex 16)"
URLS=()
NODE_PIDS=()
# start_node I [ADDR]
start_node() {
	local i="$1" addr="${2:-127.0.0.1:0}"
	"$S3Q" node --data-dir "$OUT/data/node$i" --listen "$addr" --cluster-secret "$SECRET" \
		"${NOFSYNC[@]}" >"$OUT/node$i.out" 2>>"$OUT/node$i.log" </dev/null &
	PIDS+=($!)
	NODE_PIDS[i]=$!
	URLS[i]="$(wait_line "$OUT/node$i.out" node)"
}
for i in 1 2 3 4 5; do start_node "$i"; done

AK="bench$(rand_hex 6)"
SK="$(rand_hex 20)"
export S3QUORUM_ADMIN_TOKEN
S3QUORUM_ADMIN_TOKEN="$(rand_hex 16)"
"$S3Q" gateway --nodes "${URLS[1]},${URLS[2]},${URLS[3]}" \
	--s3-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 --access-key "$AK" --secret-key "$SK" \
	--cluster-secret "$SECRET" --rebalance-rate-mib "$RATE_MIB" \
	>"$OUT/gateway.out" 2>"$OUT/gateway.log" </dev/null &
PIDS+=($!)
GATEWAY_PID=$!
ENDPOINT="$(wait_line "$OUT/gateway.out" s3)"
export S3QUORUM_ADMIN_URL
S3QUORUM_ADMIN_URL="$(wait_line "$OUT/gateway.out" admin)"
admin() { "$S3Q" admin "$@"; }
status() { curl -fsS "$S3QUORUM_ADMIN_URL/status"; }
log "gateway $ENDPOINT, admin $S3QUORUM_ADMIN_URL; nodes ${URLS[*]}"

sizes() {
	local i
	for i in 1 2 3 4 5; do
		printf 'node%s %s MiB\n' "$i" "$(du -sm "$OUT/data/node$i" | cut -f1)"
	done
}

env -u S3_BUCKET -u BENCH_BUCKET S3_ENDPOINT="$ENDPOINT" AWS_ACCESS_KEY_ID="$AK" \
	AWS_SECRET_ACCESS_KEY="$SK" AWS_REGION=us-east-1 \
	"$S3BENCH" run --system s3quorum --bucket bench --only mixed \
	--mixed-keys "$OBJECTS" --mixed-kib "$OBJECT_KIB" --mixed-concurrency "$CONCURRENCY" \
	--duration-secs "$BEFORE_SECS" --keep-objects --signal-dir "$OUT/signal" \
	--json-out "$OUT/mixed.jsonl" >"$OUT/s3bench.txt" 2>"$OUT/s3bench.log" &
BENCH_PID=$!

log "writing $OBJECTS objects of $OBJECT_KIB KiB, then $BEFORE_SECS s of mixed load"
until [ -e "$OUT/signal/timed" ]; do
	kill -0 "$BENCH_PID" 2>/dev/null || {
		log "s3bench ended early:"
		tail -20 "$OUT/s3bench.log" >&2
		exit 1
	}
	sleep 0.2
done
sizes >"$OUT/sizes-before.txt"

# wait_retired VERSION [HOOK]: polls the status until layout VERSION is current and no
# migration runs; HOOK runs on every poll with the status JSON on stdin.
wait_retired() {
	local want="$1" hook="${2:-}" s deadline=$((SECONDS + 3600))
	while [ "$SECONDS" -lt "$deadline" ]; do
		s="$(status || echo '{}')"
		[ -n "$hook" ] && "$hook" <<<"$s"
		if [ "$(jq -r '.layout_version // 0' <<<"$s")" -ge "$want" ] &&
			[ "$(jq -r '.rebalance.migrating_to' <<<"$s")" = null ]; then
			return 0
		fi
		sleep 0.2
	done
	log "layout $want did not retire within an hour"
	return 1
}

KILLED=0
KILLED_AT=
FIRST_KEYS=
# kill_half: kills node 5 once its migration has half as many keys left as when first seen
# (bytes_copied alone is no measure: read repair and anti-entropy fill the new node too).
kill_half() {
	local s keys
	[ "$KILL" = 1 ] && [ "$KILLED" = 0 ] || return 0
	s="$(cat)"
	[ "$(jq -r '.rebalance.migrating_to' <<<"$s")" = null ] && return 0
	keys="$(jq -r '.rebalance.keys_remaining // 0' <<<"$s")"
	[ "$keys" -gt 0 ] || return 0
	[ -n "$FIRST_KEYS" ] || FIRST_KEYS="$keys"
	if [ $((keys * 2)) -le "$FIRST_KEYS" ]; then
		kill -KILL "${NODE_PIDS[5]}"
		KILLED=1
		KILLED_AT="$(now)"
		log "node5 killed with $keys of $FIRST_KEYS keys left to migrate"
	fi
}

T0="$(now)"
TIMES=()
for i in 4 5; do
	v="$(status | jq -r .layout_version)"
	t="$(now)"
	admin layout add "${URLS[i]}" >/dev/null
	admin layout apply >"$OUT/apply-node$i.txt"
	hook=
	[ "$i" = 5 ] && hook=kill_half
	wait_retired $((v + 2)) "$hook"
	TIMES[i]="$(since "$t")"
	log "node$i joined: layout $((v + 2)) retired after ${TIMES[i]} s"
done
TOTAL="$(since "$T0")"
RETIRED_DEAD=
[ "$KILLED" = 1 ] && RETIRED_DEAD="$(since "$KILLED_AT")"
touch "$OUT/signal/stop"
BENCH_STATUS=0
wait "$BENCH_PID" || BENCH_STATUS=$?
BENCH_PID=
sizes >"$OUT/sizes-after.txt"

REFILL=
if [ "$KILLED" = 1 ]; then
	t="$(now)"
	start_node 5 "${URLS[5]#http://}"
	deadline=$((SECONDS + 1800))
	until [ "$SECONDS" -ge "$deadline" ]; do
		lag="$(curl -fsS "$S3QUORUM_ADMIN_URL/metrics" | awk '$1 == "replication_lag" { print $2 }')"
		if [ "${lag:-1}" = 0 ] && [ "$(status | jq '[.nodes[] | select(.up | not)] | length')" = 0 ]; then
			REFILL="$(since "$t")"
			break
		fi
		sleep 0.5
	done
	sizes >"$OUT/sizes-refilled.txt"
fi

echo
echo "===== 3 -> 5 nodes: $OBJECTS objects of $OBJECT_KIB KiB, rebalance rate $RATE_MIB MiB/s ====="
echo "node4 joined in ${TIMES[4]} s, node5 in ${TIMES[5]} s; total $TOTAL s"
grep 'migration done' "$OUT/gateway.log" | sed 's/\x1b\[[0-9;]*m//g' |
	sed -n 's/.*version=\([0-9]*\).*copies=\([0-9]*\).*bytes=\([0-9]*\).*/\1 \2 \3/p' |
	awk '{ printf "layout %s retired: %s key copies, %.1f MiB\n", $1, $2, $3 / 1048576;
	       c += $2; b += $3 } END { printf "moved in all: %d key copies, %.1f MiB\n", c, b / 1048576 }'
echo "data directories before -> after:"
paste "$OUT/sizes-before.txt" "$OUT/sizes-after.txt" | awk '{ printf "  %s %6s -> %6s MiB\n", $1, $2, $5 }'
if [ "$KILLED" = 1 ]; then
	echo "node5 killed mid-migration: the migration retired ${RETIRED_DEAD} s after the kill"
	if [ -n "$REFILL" ]; then
		echo "node5 restarted: replication_lag 0 after $REFILL s; $(grep node5 "$OUT/sizes-refilled.txt")"
	else
		echo "node5 restarted: replication_lag still not 0 after 30 minutes"
		BENCH_STATUS=1
	fi
fi
echo
sed -n '1,/^$/p' "$OUT/s3bench.txt"
jq -r 'select(.workload | startswith("mixed")) |
	"\(.workload): \(.ops) ops, \(.ops_per_s | floor) ops/s, p50 \(.lat_ms.p50) ms, p99 \(.lat_ms.p99) ms, errors \(.errors)"' \
	"$OUT/mixed.jsonl"
kill -0 "$GATEWAY_PID" 2>/dev/null || {
	log "the gateway died"
	BENCH_STATUS=1
}
exit "$BENCH_STATUS"
