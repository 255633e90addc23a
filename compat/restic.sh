#!/usr/bin/env bash
# restic against an S3 endpoint: init a repository, back up a random directory tree, restore
# it and compare with diff -r, check --read-data, then a second snapshot, forget --prune and
# check again. Environment: see compat/lib.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

B="$(bucket_name restic)"
export RESTIC_REPOSITORY="s3:$AWS_ENDPOINT_URL/$B"
export RESTIC_PASSWORD="compat-$(head -c 8 /dev/urandom | xxd -p)"
export RESTIC_CACHE_DIR="$WORK/cache"

rs() { restic --quiet "$@"; }

data="$WORK/data"
rand_file "$data/small.bin" 100
rand_file "$data/empty" 0
rand_file "$data/twenty.bin" $((20 * MIB))
rand_file "$data/nested/dir/ünï cödé & more+.bin" 123456
for i in $(seq 1 50); do rand_file "$data/many/file-$i" $((i * 997)); done
ln -s ../small.bin "$data/nested/link"

step "init"
rs init
step "backup"
(cd "$WORK" && rs backup data)
step "restore, diff -r"
rs restore latest --target "$WORK/restored"
diff -r --no-dereference "$data" "$WORK/restored/data" || fail "restored tree differs"
step "check --read-data"
rs check --read-data

step "second snapshot, forget --keep-last 1 --prune, check"
rand_file "$data/small.bin" 200
rm -r "$data/many"
(cd "$WORK" && rs backup data)
[[ "$(rs snapshots --json | jq length)" == 2 ]] || fail "expected 2 snapshots"
rs forget --keep-last 1 --prune
[[ "$(rs snapshots --json | jq length)" == 1 ]] || fail "expected 1 snapshot after forget"
rs check --read-data
rs restore latest --target "$WORK/restored2"
diff -r --no-dereference "$data" "$WORK/restored2/data" || fail "second restore differs"

# Leave nothing behind on a shared endpoint.
if command -v aws >/dev/null; then
    aws --endpoint-url "$AWS_ENDPOINT_URL" s3 rb "s3://$B" --force >/dev/null
fi

echo "PASS [$SUITE]"
