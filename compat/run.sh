#!/usr/bin/env bash
# Real-client compatibility tier: builds the release binary, starts `s3quorum dev` on free
# loopback ports with a throw-away data directory, runs every suite in compat/ against it
# (aws-cli, rclone, boto3, restic), and stops it; then the TLS tier (compat/tls.sh) starts
# a gateway of its own with a test CA, and the multi-host tier (compat/netns.sh) runs a
# cluster across network namespaces and partitions it. Exits non-zero if any suite fails.
#
#   bash compat/run.sh                 # all suites
#   bash compat/run.sh aws_cli boto3   # some of them
#
# Each suite also runs alone against any S3 endpoint, e.g.
#   AWS_ENDPOINT_URL=http://127.0.0.1:9000 AWS_ACCESS_KEY_ID=.. AWS_SECRET_ACCESS_KEY=.. \
#     bash compat/aws_cli.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SUITES=("$@")
[[ ${#SUITES[@]} -gt 0 ]] || SUITES=(aws_cli rclone boto3_smoke restic)

echo "== compat: building release s3quorum"
cargo build --release --ignore-rust-version --locked -p s3quorum
BIN="$PWD/target/release/s3quorum"

DIR="$(mktemp -d "${TMPDIR:-/tmp}/s3q-compat.XXXXXX")"
SERVER=""
stop() {
    local rc=$?
    if [[ -n $SERVER ]] && kill -0 "$SERVER" 2>/dev/null; then
        kill -INT "$SERVER" 2>/dev/null || true
        # Graceful shutdown within 10 s, else force it.
        for _ in $(seq 1 100); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
    fi
    if [[ $rc != 0 && -f $DIR/server.log ]]; then
        echo "== compat: last lines of the server log" >&2
        tail -n 40 "$DIR/server.log" >&2
        df -h "$DIR" >&2 || true
    fi
    rm -rf "$DIR"
    exit "$rc"
}
trap stop EXIT

echo "== compat: starting s3quorum dev in $DIR"
"$BIN" dev --data-dir "$DIR/data" --s3-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 \
    >"$DIR/server.out" 2>"$DIR/server.log" &
SERVER=$!

# The process prints its bound addresses and keys once it listens.
field() { sed -n "/^$1/{s/^$1//p;q}" "$DIR/server.out"; }
deadline=$((SECONDS + 60))
until [[ -n "$(field '  secret key: *')" ]]; do
    kill -0 "$SERVER" 2>/dev/null || { echo "s3quorum dev exited" >&2; exit 1; }
    ((SECONDS < deadline)) || { echo "s3quorum dev printed no keys within 60 s" >&2; exit 1; }
    sleep 0.1
done
S3_URL="$(field 'listening s3 ')"
ADMIN_URL="$(field 'listening admin ')"
export AWS_ENDPOINT_URL="$S3_URL"
export AWS_ACCESS_KEY_ID="$(field '  access key: *')"
export AWS_SECRET_ACCESS_KEY="$(field '  secret key: *')"
export AWS_DEFAULT_REGION=us-east-1
until curl -fsS "$ADMIN_URL/ready" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { echo "$ADMIN_URL/ready not ready within 60 s" >&2; exit 1; }
    sleep 0.1
done
echo "== compat: s3quorum dev ready, S3 at $S3_URL"

failed=()
for suite in "${SUITES[@]}"; do
    script="compat/$suite.sh"
    [[ -f $script ]] || script="compat/$suite.py"
    start=$SECONDS
    echo "== compat: $suite"
    if [[ $script == *.py ]]; then
        python3 "$script" && status=0 || status=$?
    else
        bash "$script" && status=0 || status=$?
    fi
    echo "== compat: $suite exit $status after $((SECONDS - start)) s"
    [[ $status == 0 ]] || failed+=("$suite")
    kill -0 "$SERVER" 2>/dev/null || { echo "s3quorum dev died during $suite" >&2; exit 1; }
done

# TLS needs a gateway of its own (with a certificate); it runs with the full set only.
if [[ $# -eq 0 ]]; then
    start=$SECONDS
    echo "== compat: tls"
    S3Q_BIN="$BIN" bash compat/tls.sh && status=0 || status=$?
    echo "== compat: tls exit $status after $((SECONDS - start)) s"
    [[ $status == 0 ]] || failed+=(tls)
    SUITES+=(tls)
    # Several hosts: nodes and gateways in network namespaces of their own.
    start=$SECONDS
    echo "== compat: netns"
    S3Q_BIN="$BIN" bash compat/netns.sh && status=0 || status=$?
    echo "== compat: netns exit $status after $((SECONDS - start)) s"
    [[ $status == 0 ]] || failed+=(netns)
    SUITES+=(netns)
fi

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "== compat: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "== compat: all suites passed (${SUITES[*]})"
