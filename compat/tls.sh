#!/usr/bin/env bash
# TLS tier: makes a CA and a server certificate for 127.0.0.1 with openssl, starts
# `s3quorum dev --tls-cert --tls-key` on free loopback ports, round-trips objects with
# aws-cli and boto3 trusting only that CA, checks that plain HTTP is refused, replaces the
# certificate and sends SIGHUP, and checks the new certificate is served.
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
stop() {
    local rc=$?
    if [[ -n $SERVER ]] && kill -0 "$SERVER" 2>/dev/null; then
        kill -INT "$SERVER" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
    fi
    if [[ $rc != 0 && -f $DIR/server.log ]]; then
        echo "== tls: last lines of the server log" >&2
        tail -n 30 "$DIR/server.log" >&2
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
echo "== tls: certificate reloaded on SIGHUP; all TLS checks passed"
