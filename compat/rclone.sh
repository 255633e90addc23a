#!/usr/bin/env bash
# rclone against an S3 endpoint, configured only through environment variables, once as
# `provider = Other` and once as `provider = Minio`: copy, sync, check --download, lsjson,
# delete, purge, cleanup, a ~23 MiB multipart round trip, modification times kept in
# X-Amz-Meta-Mtime, and --s3-versions on a versioned bucket. aws-cli cross-checks what
# rclone cannot show (multipart ETags, pending uploads). Environment: see compat/lib.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

aws() { command aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }

# The remote, as a config file would say it (see the README).
configure_remote() {
    local name="$1" provider="$2"
    export "RCLONE_CONFIG_${name}_TYPE=s3"
    export "RCLONE_CONFIG_${name}_PROVIDER=$provider"
    export "RCLONE_CONFIG_${name}_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID"
    export "RCLONE_CONFIG_${name}_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY"
    export "RCLONE_CONFIG_${name}_ENDPOINT=$AWS_ENDPOINT_URL"
    export "RCLONE_CONFIG_${name}_REGION=$AWS_DEFAULT_REGION"
    export "RCLONE_CONFIG_${name}_FORCE_PATH_STYLE=true"
}
# No config file of the user's leaks into the run.
export RCLONE_CONFIG="$WORK/rclone.conf"
touch "$RCLONE_CONFIG"

# rclone's AWS SDK refuses AWS_CA_BUNDLE with its own HTTP transport ("LoadCustomCABundleError");
# a plain-http endpoint needs no CA anyway.
[[ $AWS_ENDPOINT_URL != http://* ]] || unset AWS_CA_BUNDLE
# Failures must show, not be retried away.
rc() { rclone --retries 1 --low-level-retries 1 "$@"; }

# modtimes DIR_OR_REMOTE: "path<TAB>ModTime" of every file, sorted.
modtimes() { rc lsjson -R --files-only "$1" | jq -r '.[] | "\(.Path)\t\(.ModTime)"' | LC_ALL=C sort; }

# same_modtimes LOCAL REMOTE: every file of LOCAL is in REMOTE with the same ModTime.
same_modtimes() {
    modtimes "$1" >"$WORK/mt-local"
    modtimes "$2" >"$WORK/mt-remote"
    [[ -s $WORK/mt-local ]] || fail "no files under $1"
    cmp "$WORK/mt-local" "$WORK/mt-remote" ||
        fail "modtimes of $2 differ from $1: $(diff "$WORK/mt-local" "$WORK/mt-remote")"
}

make_tree() {
    local t="$1"
    rand_file "$t/top.bin" 1000
    rand_file "$t/with space/a+b=c;d&e%20.bin" 70000
    rand_file "$t/ünïcödé/日本語 🎉.txt" 5
    rand_file "$t/empty" 0
    rand_file "$t/deep/er/still/file..name" 3000000
    # Old, sub-second mtimes: a kept modtime cannot be mistaken for the upload time.
    local i=0
    while IFS= read -r -d '' f; do
        touch -d "2001-02-0$((i % 9 + 1)) 04:05:06.$((123456789 + i))" "$f"
        i=$((i + 1))
    done < <(find "$t" -type f -print0)
}

suite() {
    local R="$1:" provider="$2"
    local B
    B="$(bucket_name "rclone-$(tr '[:upper:]' '[:lower:]' <<<"$provider")")"
    local src="$WORK/$provider/src"

    step "$provider: mkdir, copy, check --download, copy back"
    rc mkdir "$R$B"
    rc lsjson "$R" | jq -e --arg b "$B" 'any(.[]; .Path == $b and .IsDir)' >/dev/null
    make_tree "$src"
    rc copy "$src" "$R$B/tree"
    rc check --download "$src" "$R$B/tree"
    rc copy "$R$B/tree" "$WORK/$provider/back"
    diff -r "$src" "$WORK/$provider/back" || fail "rclone copy round trip differs"

    step "$provider: modification times kept (X-Amz-Meta-Mtime), lsjson"
    same_modtimes "$src" "$R$B/tree"
    grep -q $'^top.bin\t2001-02-0' "$WORK/mt-remote" || fail "top.bin has the upload time"
    aws s3api head-object --bucket "$B" --key tree/top.bin --output json |
        jq -e '.Metadata.mtime | test("^[0-9]+\\.[0-9]+$")' >/dev/null
    rc lsjson -R --files-only --hash "$R$B/tree" |
        jq -e --arg md5 "$(md5sum <"$src/top.bin" | cut -d' ' -f1)" \
            'any(.[]; .Path == "top.bin" and .Size == 1000 and .Hashes.md5 == $md5)' >/dev/null

    step "$provider: multipart (5 MiB cutoff and chunks), ~23 MiB round trip"
    local multi="$WORK/$provider/multi"
    rand_file "$multi/big file+.bin" $((23 * MIB + 12345))
    touch -d "2002-03-04 05:06:07.5" "$multi/big file+.bin"
    rc copy --s3-upload-cutoff 5Mi --s3-chunk-size 5Mi "$multi" "$R$B/multi"
    etag=$(aws s3api head-object --bucket "$B" --key "multi/big file+.bin" --query ETag --output text)
    [[ $etag == *-5\" ]] || fail "23 MiB upload with 5 MiB chunks has ETag $etag, not 5 parts"
    rc check --download "$multi" "$R$B/multi"
    rc copyto "$R$B/multi/big file+.bin" "$WORK/$provider/big-back.bin"
    same "$multi/big file+.bin" "$WORK/$provider/big-back.bin"
    same_modtimes "$multi" "$R$B/multi"
    rm -f "$WORK/$provider/big-back.bin"

    step "$provider: sync (changed, added, removed files)"
    rand_file "$src/top.bin" 2000
    rand_file "$src/new dir/new & shiny.bin" 6000000
    rm "$src/ünïcödé/日本語 🎉.txt"
    rc sync "$src" "$R$B/tree"
    rc check --download "$src" "$R$B/tree"
    same_modtimes "$src" "$R$B/tree"

    step "$provider: delete, cleanup of pending multipart uploads"
    rc delete "$R$B/tree" --include "*.bin"
    [[ "$(rc lsjson -R --files-only "$R$B/tree" | jq -r '.[].Path' | LC_ALL=C sort | tr '\n' ' ')" == \
        "deep/er/still/file..name empty " ]] || fail "rclone delete --include left the wrong files"
    aws s3api create-multipart-upload --bucket "$B" --key "pending upload" >/dev/null
    aws s3api list-multipart-uploads --bucket "$B" --output json |
        jq -e '(.Uploads | length) == 1' >/dev/null
    # `rclone cleanup` only removes uploads older than 24 h; the backend command takes a max age.
    rc cleanup "$R$B"
    sleep 1
    rc backend cleanup "$R$B" -o max-age=1ms
    aws s3api list-multipart-uploads --bucket "$B" --output json |
        jq -e '(.Uploads // []) | length == 0' >/dev/null ||
        fail "rclone backend cleanup left the pending upload"

    step "$provider: purge"
    rc purge "$R$B"
    if rc lsjson "$R" | jq -e --arg b "$B" 'any(.[]; .Path == $b)' >/dev/null; then
        fail "bucket $B still exists after purge"
    fi

    step "$provider: --s3-versions on a versioned bucket"
    local VB
    VB="$(bucket_name "rclone-ver")"
    rc mkdir "$R$VB"
    [[ "$(rc backend versioning "$R$VB" Enabled)" == *Enabled* ]] || fail "versioning not enabled"
    rand_file "$WORK/$provider/v/doc.bin" 4000
    cp "$WORK/$provider/v/doc.bin" "$WORK/$provider/doc-v1.bin"
    rc copy "$WORK/$provider/v" "$R$VB"
    rand_file "$WORK/$provider/v/doc.bin" 5000
    rc copy "$WORK/$provider/v" "$R$VB"
    rc lsjson --s3-versions "$R$VB" >"$WORK/versions.json"
    jq -e 'length == 2 and any(.[]; .Path == "doc.bin" and .Size == 5000)' "$WORK/versions.json" \
        >/dev/null || fail "--s3-versions listing: $(cat "$WORK/versions.json")"
    old=$(jq -r '.[] | select(.Path != "doc.bin") | .Path' "$WORK/versions.json")
    [[ $old == doc-v20*.bin ]] || fail "old version listed as $old"
    rc copyto --s3-versions "$R$VB/$old" "$WORK/$provider/doc-v1-back.bin"
    same "$WORK/$provider/doc-v1.bin" "$WORK/$provider/doc-v1-back.bin"
    rc cat "$R$VB/doc.bin" >"$WORK/$provider/doc-back.bin"
    same "$WORK/$provider/v/doc.bin" "$WORK/$provider/doc-back.bin"
    # Without --s3-versions only the current version shows.
    rc lsjson "$R$VB" | jq -e 'length == 1' >/dev/null
    rc backend cleanup-hidden "$R$VB"
    rc lsjson --s3-versions "$R$VB" | jq -e 'length == 1 and .[0].Path == "doc.bin"' >/dev/null
    rc delete --s3-versions "$R$VB"
    aws s3api list-object-versions --bucket "$VB" --output json |
        jq -e '(.Versions // []) | length == 0' >/dev/null
    rc rmdir "$R$VB" || {
        # `delete` of a current version leaves a delete marker, which S3 counts as content.
        aws s3api list-object-versions --bucket "$VB" --output json
        fail "rmdir of the emptied versioned bucket failed"
    }
}

configure_remote S3Q Other
suite S3Q Other
configure_remote S3QMINIO Minio
suite S3QMINIO Minio

echo "PASS [$SUITE]"
