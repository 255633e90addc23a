#!/usr/bin/env bash
# TLS tier: makes a CA and a server certificate for 127.0.0.1 with openssl, starts
# `s3quorum dev --tls-cert --tls-key` on free loopback ports, round-trips objects with
# aws-cli and boto3 trusting only that CA, checks that plain HTTP is refused, replaces the
# certificate and sends SIGHUP, and checks the new certificate is served. Then three nodes
# serve TLS (`node --tls-cert --tls-key`) behind a gateway that trusts the CA
# (`--node-ca`): objects round-trip, a node answers no plain HTTP, and a gateway that does
# not trust the CA reaches no node.
#
#   S3Q_BIN=target/release/s3quorum bash compat/tls.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${S3Q_BIN:-$PWD/target/release/s3quorum}"
if ! command -v openssl >/dev/null; then
    echo "== tls: openssl is not installed; skipping the TLS tier" >&2
    exit 0
fi
unset AWS_CA_BUNDLE

DIR="$(mktemp -d "${TMPDIR:-/tmp}/s3q-tls.XXXXXX")"
SERVER=""
PIDS=()
stop() {
    local rc=$?
    local pid
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    if [[ -n $SERVER ]] && kill -0 "$SERVER" 2>/dev/null; then
        kill -INT "$SERVER" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
    fi
    if [[ $rc != 0 ]]; then
        for log in "$DIR"/*.log; do
            [[ -f $log ]] || continue
            echo "== tls: last lines of $log" >&2
            tail -n 30 "$log" >&2
        done
    fi
    rm -rf "$DIR"
    exit "$rc"
}
trap stop EXIT

# A CA, and a certificate for 127.0.0.1 it signed (serial $1).
issue() {
    openssl req -new -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$DIR/server.key.new" -out "$DIR/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$DIR/san.ext"
    openssl x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" \
        -set_serial "$1" -days 2 -extfile "$DIR/san.ext" -out "$DIR/server.pem.new" 2>/dev/null
    mv "$DIR/server.key.new" "$DIR/server.key"
    mv "$DIR/server.pem.new" "$DIR/server.pem"
}
openssl req -x509 -new -newkey rsa:2048 -nodes -subj "/CN=s3quorum test CA" -days 2 \
    -keyout "$DIR/ca.key" -out "$DIR/ca.pem" 2>/dev/null
issue 1001

"$BIN" dev --data-dir "$DIR/data" --s3-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 \
    --tls-cert "$DIR/server.pem" --tls-key "$DIR/server.key" \
    >"$DIR/server.out" 2>"$DIR/server.log" &
SERVER=$!
field() { sed -n "/^$1/{s/^$1//p;q}" "$DIR/server.out"; }
deadline=$((SECONDS + 60))
until [[ -n "$(field '  secret key: *')" ]]; do
    kill -0 "$SERVER" 2>/dev/null || { echo "s3quorum dev exited" >&2; exit 1; }
    ((SECONDS < deadline)) || { echo "no keys printed within 60 s" >&2; exit 1; }
    sleep 0.1
done
S3_URL="$(field 'listening s3 ')"
ADMIN_URL="$(field 'listening admin ')"
[[ $S3_URL == https://* && $ADMIN_URL == https://* ]] || { echo "not served over TLS: $S3_URL" >&2; exit 1; }
export AWS_ACCESS_KEY_ID="$(field '  access key: *')"
export AWS_SECRET_ACCESS_KEY="$(field '  secret key: *')"
export AWS_DEFAULT_REGION=us-east-1
until curl -fsS --cacert "$DIR/ca.pem" "$ADMIN_URL/ready" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { echo "$ADMIN_URL/ready not ready within 60 s" >&2; exit 1; }
    sleep 0.1
done
echo "== tls: s3quorum dev ready at $S3_URL"

# aws-cli, trusting only the test CA.
AWS=(aws --endpoint-url "$S3_URL" --ca-bundle "$DIR/ca.pem")
head -c 3000000 /dev/urandom >"$DIR/blob"
"${AWS[@]}" s3 mb s3://tls-bucket >/dev/null
"${AWS[@]}" s3 cp "$DIR/blob" s3://tls-bucket/blob >/dev/null
"${AWS[@]}" s3 cp s3://tls-bucket/blob "$DIR/blob.back" >/dev/null
cmp "$DIR/blob" "$DIR/blob.back"
echo "== tls: aws-cli round trip ok"

# boto3, the same way.
S3_URL="$S3_URL" CA="$DIR/ca.pem" python3 - <<'PY'
import os, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["S3_URL"], verify=os.environ["CA"],
                  config=Config(s3={"addressing_style": "path"}))
body = os.urandom(200_000)
s3.put_object(Bucket="tls-bucket", Key="boto", Body=body)
assert s3.get_object(Bucket="tls-bucket", Key="boto")["Body"].read() == body
print("== tls: boto3 round trip ok")
PY

# Plain HTTP on the TLS port gets no answer; an untrusted client is refused.
if curl -fsS --max-time 5 "${S3_URL/https:/http:}/" >/dev/null 2>&1; then
    echo "plain HTTP was answered on the TLS port" >&2; exit 1
fi
if curl -fsS --max-time 5 "$ADMIN_URL/health" >/dev/null 2>&1; then
    echo "a client without the CA accepted the certificate" >&2; exit 1
fi

# A new certificate, then SIGHUP: new connections get it.
serial() {
    openssl s_client -connect "${S3_URL#https://}" -CAfile "$DIR/ca.pem" </dev/null 2>/dev/null \
        | openssl x509 -noout -serial 2>/dev/null
}
[[ "$(serial)" == "serial=03E9" ]] || { echo "unexpected first serial: $(serial)" >&2; exit 1; }
issue 1002
kill -HUP "$SERVER"
deadline=$((SECONDS + 10))
until [[ "$(serial)" == "serial=03EA" ]]; do
    ((SECONDS < deadline)) || { echo "the new certificate is not served: $(serial)" >&2; exit 1; }
    sleep 0.2
done
"${AWS[@]}" s3 cp s3://tls-bucket/blob "$DIR/blob.again" >/dev/null
cmp "$DIR/blob" "$DIR/blob.again"
kill -0 "$SERVER"
echo "== tls: certificate reloaded on SIGHUP"

# Nodes over TLS. Every node serves the 127.0.0.1 certificate the test CA signed.
SECRET="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# listening FILE ROLE: the URL of FILE's `listening ROLE` line, waiting up to 30 s.
listening() {
    local url deadline=$((SECONDS + 30))
    until url="$(sed -n "s/^listening $2 //p" "$1" 2>/dev/null)" && [[ -n $url ]]; do
        ((SECONDS < deadline)) || { echo "no 'listening $2' line in $1" >&2; return 1; }
        sleep 0.1
    done
    echo "$url"
}
NODE_URLS=()
for i in 1 2 3; do
    "$BIN" node --data-dir "$DIR/node$i" --listen 127.0.0.1:0 --cluster-secret "$SECRET" \
        --tls-cert "$DIR/server.pem" --tls-key "$DIR/server.key" \
        >"$DIR/node$i.out" 2>"$DIR/node$i.log" &
    PIDS+=($!)
    NODE_URLS+=("$(listening "$DIR/node$i.out" node)")
done
[[ ${NODE_URLS[0]} == https://* ]] || { echo "node not served over TLS: ${NODE_URLS[0]}" >&2; exit 1; }
NODES="$(IFS=,; echo "${NODE_URLS[*]}")"
# gateway NAME [ARGS...]: a gateway in front of the TLS nodes; sets GW_S3 and GW_ADMIN.
gateway() {
    local name="$1"
    shift
    "$BIN" gateway --nodes "$NODES" --s3-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 \
        --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" \
        --cluster-secret "$SECRET" "$@" >"$DIR/$name.out" 2>"$DIR/$name.log" &
    PIDS+=($!)
    GW_S3="$(listening "$DIR/$name.out" s3)"
    GW_ADMIN="$(listening "$DIR/$name.out" admin)"
}
gateway gw-trusting --node-ca "$DIR/ca.pem"
deadline=$((SECONDS + 60))
until curl -fsS --max-time 5 "$GW_ADMIN/ready" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { echo "the gateway over TLS nodes is not ready within 60 s" >&2; exit 1; }
    sleep 0.1
done
AWS=(aws --endpoint-url "$GW_S3")
"${AWS[@]}" s3 mb s3://tls-nodes >/dev/null
"${AWS[@]}" s3 cp "$DIR/blob" s3://tls-nodes/blob >/dev/null
"${AWS[@]}" s3 cp s3://tls-nodes/blob "$DIR/blob.nodes" >/dev/null
cmp "$DIR/blob" "$DIR/blob.nodes"
[[ "$(curl -fsS --max-time 10 "$GW_ADMIN/status" | jq '[.nodes[] | select(.up)] | length')" == 3 ]] ||
    { echo "not every TLS node is up: $(curl -sS "$GW_ADMIN/status")" >&2; exit 1; }
echo "== tls: objects round-trip through a gateway whose nodes serve TLS"

# A node's TLS port answers TLS (any status) and nothing in plain HTTP.
code="$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' --cacert "$DIR/ca.pem" "${NODE_URLS[0]}/health" || true)"
[[ $code != 000 ]] || { echo "no TLS answer from ${NODE_URLS[0]}" >&2; exit 1; }
if curl -sS --max-time 5 -o /dev/null "${NODE_URLS[0]/https:/http:}/health" 2>/dev/null; then
    echo "plain HTTP was answered on a node's TLS port" >&2; exit 1
fi

# A gateway that does not trust the CA reaches no node: it never gets ready, and the
# handshake failure is what its log names.
gateway gw-untrusting
deadline=$((SECONDS + 30))
until grep -qi 'certificate' "$DIR/gw-untrusting.log"; do
    ((SECONDS < deadline)) || { echo "no certificate error from the untrusting gateway" >&2; exit 1; }
    sleep 0.2
done
if curl -fsS --max-time 5 "$GW_ADMIN/ready" >/dev/null 2>&1; then
    echo "a gateway that does not trust the nodes' CA got ready" >&2; exit 1
fi
echo "== tls: all TLS checks passed"
