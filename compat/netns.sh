#!/usr/bin/env bash
# Multi-host tier: three nodes, two gateways and a client, each in its own Linux network
# namespace with its own address, joined by veth links to a bridge in a "switch"
# namespace. Traffic stays inside those namespaces (10.77.0.0/24 exists nowhere else).
#
# It writes through gateway 1 with boto3 under load, cuts node 3's link (`ip link set …
# down`: a real partition, packets vanish) in the middle of the writes, reads through
# gateway 2 with aws-cli while the node is cut off, heals the link, and then checks that
# every acknowledged write reads back with its MD5 and is listed through either gateway,
# and that replication_lag returns to 0 on both. Then node 4 (its own host) joins the
# layout and node 1 leaves it, through the admin CLI, and everything still reads with node
# 1 cut off.
#
#   S3Q_BIN=target/release/s3quorum bash compat/netns.sh
#
# Needs root and `ip netns`; skips with a message where they are unavailable. Everything
# it creates (namespaces, links, processes, files) is removed on exit, failed or not.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${S3Q_BIN:-$PWD/target/release/s3quorum}"
unset AWS_CA_BUNDLE

if [[ $(id -u) != 0 ]] || ! ip netns list >/dev/null 2>&1; then
    echo "== netns: needs root and ip netns; skipping the multi-host tier" >&2
    exit 0
fi

TAG="s3q$$"
SW="$TAG-sw"
HOSTS=(n1 n2 n3 n4 g1 g2 cl)
declare -A ADDR=([n1]=10.77.0.11 [n2]=10.77.0.12 [n3]=10.77.0.13 [n4]=10.77.0.14
    [g1]=10.77.0.21 [g2]=10.77.0.22 [cl]=10.77.0.30)
DIR="$(mktemp -d "${TMPDIR:-/tmp}/s3q-netns.XXXXXX")"
PIDS=()

cleanup() {
    local rc=$?
    # TERM, not INT: a non-interactive shell starts background jobs with SIGINT ignored.
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    for h in "${HOSTS[@]}" sw; do
        ns="$TAG-$h"
        # Anything still running in a namespace dies with it.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    if [[ $rc != 0 ]]; then
        for log in "$DIR"/*.log; do
            [[ -f $log ]] || continue
            echo "== netns: last lines of $(basename "$log")" >&2
            tail -n 15 "$log" >&2
        done
    fi
    rm -rf "$DIR"
    exit "$rc"
}
trap cleanup EXIT

in_ns() { local h=$1; shift; ip netns exec "$TAG-$h" "$@"; }

echo "== netns: building the network"
ip netns add "$SW"
ip -n "$SW" link add br0 type bridge
ip -n "$SW" link set br0 up
ip -n "$SW" link set lo up
for h in "${HOSTS[@]}"; do
    ip netns add "$TAG-$h"
    ip link add "$TAG-$h" type veth peer name "p-$h" netns "$SW"
    ip link set "$TAG-$h" netns "$TAG-$h"
    ip -n "$TAG-$h" link set "$TAG-$h" name eth0
    ip -n "$TAG-$h" addr add "${ADDR[$h]}/24" dev eth0
    ip -n "$TAG-$h" link set eth0 up
    ip -n "$TAG-$h" link set lo up
    ip -n "$SW" link set "p-$h" master br0
    ip -n "$SW" link set "p-$h" up
done

S3QUORUM_CLUSTER_SECRET="$(head -c 24 /dev/urandom | xxd -p)"
S3QUORUM_ACCESS_KEY="netns-root"
S3QUORUM_SECRET_KEY="$(head -c 24 /dev/urandom | xxd -p)"
S3QUORUM_ADMIN_TOKEN="$(head -c 24 /dev/urandom | xxd -p)"
export S3QUORUM_CLUSTER_SECRET S3QUORUM_ACCESS_KEY S3QUORUM_SECRET_KEY S3QUORUM_ADMIN_TOKEN

echo "== netns: starting 3 nodes and 2 gateways"
for n in n1 n2 n3; do
    in_ns "$n" "$BIN" node --data-dir "$DIR/$n" --listen "${ADDR[$n]}:7000" \
        >"$DIR/$n.out" 2>"$DIR/$n.log" &
    PIDS+=($!)
done
NODES="http://${ADDR[n1]}:7000,http://${ADDR[n2]}:7000,http://${ADDR[n3]}:7000"
for g in g1 g2; do
    in_ns "$g" "$BIN" gateway --nodes "$NODES" \
        --s3-addr "${ADDR[$g]}:9000" --admin-addr "${ADDR[$g]}:9001" \
        --node-timeout-ms 2000 --repair-interval-ms 200 --scan-interval-ms 2000 \
        >"$DIR/$g.out" 2>"$DIR/$g.log" &
    PIDS+=($!)
done
deadline=$((SECONDS + 60))
for g in g1 g2; do
    until in_ns cl curl -fsS "http://${ADDR[$g]}:9001/ready" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { echo "gateway $g not ready within 60 s" >&2; exit 1; }
        sleep 0.2
    done
done

export AWS_ACCESS_KEY_ID="$S3QUORUM_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$S3QUORUM_SECRET_KEY"
export AWS_DEFAULT_REGION=us-east-1
G1="http://${ADDR[g1]}:9000"
G2="http://${ADDR[g2]}:9000"
aws_at() { local url=$1; shift; in_ns cl aws --endpoint-url "$url" "$@"; }

echo "== netns: aws-cli across hosts"
aws_at "$G1" s3 mb s3://hosts >/dev/null
head -c 300000 /dev/urandom >"$DIR/before.bin"
aws_at "$G1" s3 cp "$DIR/before.bin" s3://hosts/before.bin >/dev/null
aws_at "$G2" s3 cp s3://hosts/before.bin "$DIR/before.back" >/dev/null
cmp "$DIR/before.bin" "$DIR/before.back"

echo "== netns: boto3 load through gateway 1, node 3 cut off in the middle"
COUNT=150
in_ns cl python3 compat/netns_load.py write "$G1" hosts "$COUNT" "$DIR/acked.json" \
    >"$DIR/load.log" 2>&1 &
LOAD=$!
PIDS+=("$LOAD")
acked() { python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$DIR/acked.json" 2>/dev/null || echo 0; }
load_deadline=$((SECONDS + 120))
until (($(acked) >= 30)); do
    kill -0 "$LOAD" 2>/dev/null || { echo "the load stopped early" >&2; cat "$DIR/load.log" >&2; exit 1; }
    ((SECONDS < load_deadline)) || { echo "no progress in the load" >&2; exit 1; }
    sleep 0.2
done
ip -n "$TAG-n3" link set eth0 down
cut_at=$(acked)
echo "== netns: node 3's link down after $cut_at acknowledged writes"
# Reads through the other gateway keep working while the node is unreachable.
aws_at "$G2" s3 cp s3://hosts/before.bin "$DIR/during.back" >/dev/null
cmp "$DIR/before.bin" "$DIR/during.back"
partition_end=$((SECONDS + 8))
while ((SECONDS < partition_end)) && kill -0 "$LOAD" 2>/dev/null; do sleep 0.2; done
during=$(($(acked) - cut_at))
ip -n "$TAG-n3" link set eth0 up
echo "== netns: link back up; $during writes acknowledged while node 3 was cut off"
((during > 0)) || { echo "no write was acknowledged with one node cut off" >&2; exit 1; }
wait "$LOAD"
cat "$DIR/load.log"

echo "== netns: every acknowledged write, through both gateways"
in_ns cl python3 compat/netns_load.py check "$G2" hosts "$DIR/acked.json"
in_ns cl python3 compat/netns_load.py check "$G1" hosts "$DIR/acked.json"
listed=$(aws_at "$G2" s3 ls s3://hosts/load/ | wc -l)
((listed >= $(acked))) || { echo "aws-cli lists $listed objects, $(acked) acknowledged" >&2; exit 1; }

echo "== netns: waiting for replication_lag 0 on both gateways"
lag_deadline=$((SECONDS + 120))
for g in g1 g2; do
    until [[ "$(in_ns cl curl -fsS "http://${ADDR[$g]}:9001/metrics" |
        sed -n 's/^replication_lag //p')" == 0 ]]; do
        if ((SECONDS >= lag_deadline)); then
            echo "replication_lag of $g not 0 within 120 s; the gateways' /status:" >&2
            for s in g1 g2; do in_ns cl curl -sS "http://${ADDR[$s]}:9001/status" >&2 || true; done
            exit 1
        fi
        sleep 0.5
    done
done
# Healed, the cluster survives the loss of another node: with node 1 cut off, nodes 2
# and 3 answer every read.
ip -n "$TAG-n1" link set eth0 down
in_ns cl python3 compat/netns_load.py check "$G2" hosts "$DIR/acked.json"
ip -n "$TAG-n1" link set eth0 up

# Membership across hosts: node 4 joins, then node 1 leaves, each change applied through
# gateway 1 with the admin CLI while gateway 2 follows; afterwards everything reads with
# node 1 cut off for good.
layout() { in_ns cl env S3QUORUM_ADMIN_URL="http://${ADDR[g1]}:9001" "$BIN" admin layout "$@"; }
wait_migrated() {
    local want=$1 mig_deadline=$((SECONDS + 120)) g st
    for g in g1 g2; do
        until st=$(in_ns cl "$BIN" admin status --json --admin-url "http://${ADDR[$g]}:9001") &&
            [[ $(jq -r '.layout_version' <<<"$st") == "$want" &&
                $(jq -r '.rebalance.migrating_to' <<<"$st") == null ]]; do
            if ((SECONDS >= mig_deadline)); then
                echo "layout $want not reached by $g within 120 s: $st" >&2
                exit 1
            fi
            sleep 0.5
        done
    done
}
echo "== netns: node 4 joins the layout"
in_ns n4 "$BIN" node --data-dir "$DIR/n4" --listen "${ADDR[n4]}:7000" \
    >"$DIR/n4.out" 2>"$DIR/n4.log" &
PIDS+=($!)
until in_ns cl curl -fsS "http://${ADDR[n4]}:7000/health" >/dev/null 2>&1; do sleep 0.2; done
v=$(layout show --json | jq -r .version)
layout add "http://${ADDR[n4]}:7000" --zone rack2 >/dev/null
layout plan
layout apply >/dev/null
wait_migrated $((v + 2))
echo "== netns: node 1 leaves the layout"
n1_id=$(layout show --json | jq -r --arg u "http://${ADDR[n1]}:7000" '.nodes[] | select(.url == $u) | .id')
layout remove "$n1_id" >/dev/null
layout apply >/dev/null
wait_migrated $((v + 4))
layout show
ip -n "$TAG-n1" link set eth0 down
in_ns cl python3 compat/netns_load.py check "$G2" hosts "$DIR/acked.json"
in_ns cl python3 compat/netns_load.py check "$G1" hosts "$DIR/acked.json"
aws_at "$G2" s3 cp s3://hosts/before.bin "$DIR/after.back" >/dev/null
cmp "$DIR/before.bin" "$DIR/after.back"
echo "== netns: passed ($(acked) acknowledged writes, $during during the partition; node 4 joined, node 1 left)"
