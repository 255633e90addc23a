#!/usr/bin/env bash
# aws-cli against an S3 endpoint: high-level `aws s3` commands on both sides of the 8 MiB
# multipart threshold with awkward keys, a 100 MiB multipart round trip, and `aws s3api`
# calls for versioning, out-of-order multipart parts, copy with REPLACE metadata, ranges,
# conditional reads and presigned URLs. Every upload is downloaded again and compared with
# cmp. Environment: see compat/lib.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

aws() { command aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }
# A config of our own, so the user's ~/.aws/config does not change what runs. aws-cli v1
# presigns with SigV2 unless told otherwise (v2 always uses SigV4); SigV4 is what we test.
export AWS_CONFIG_FILE="$WORK/aws-config"
printf '[default]\ns3 =\n    signature_version = s3v4\n' >"$AWS_CONFIG_FILE"

B="$(bucket_name aws)"
VB="$(bucket_name awsver)"

# Keys every S3 client trips over sooner or later, and LONG: a 1024-byte key (the S3 maximum).
LONG=LONG
KEYS=(
    "with space/file name.bin"
    "unicode/héllo wörld 日本語 🎉.bin"
    "plus+sign+key.bin"
    "percent%20not%2Fdecoded%.bin"
    "amp&eq=semi;colon.bin"
    "dots/../parent..name/..bin"
    "$LONG"
)
# key PREFIX NAME: the object key PREFIX/NAME; for LONG, PREFIX/long/kkk... of exactly 1024 bytes.
key() {
    if [[ $2 == "$LONG" ]]; then
        local k="$1/long/"
        printf '%s%s' "$k" "$(head -c $((1024 - ${#k})) /dev/zero | tr '\0' k)"
    else
        printf '%s/%s' "$1" "$2"
    fi
}
# Sizes around aws-cli's 8 MiB multipart threshold (single PUT below, multipart from it).
SIZES=(0 1 4096 $((8 * MIB - 1)) $((8 * MIB)) $((8 * MIB + 1)) $((17 * MIB + 3)))
# Uploads as "size|name": every key once below and once above the threshold, every other
# size under one of the keys (the ones each aws process costs about a second).
UPLOADS=()
for name in "${KEYS[@]}"; do UPLOADS+=("4096|$name" "$((8 * MIB + 1))|$name"); done
j=0
for size in 0 1 $((8 * MIB - 1)) $((8 * MIB)) $((17 * MIB + 3)); do
    UPLOADS+=("$size|${KEYS[$j]}")
    j=$((j + 1))
done

step "mb / ls"
aws s3 mb "s3://$B"
aws s3 ls >"$WORK/buckets"
grep -q " $B\$" "$WORK/buckets" || fail "aws s3 ls does not list $B"

step "cp up and down: ${#UPLOADS[@]} objects, sizes ${SIZES[*]}"
for size in "${SIZES[@]}"; do rand_file "$WORK/src/$size" "$size"; done
i=0
for upload in "${UPLOADS[@]}"; do
    size="${upload%%|*}" name="${upload#*|}"
    key="$(key "$size" "$name")"
    # Uploads alternate between a file and stdin, so both code paths of cp run; the
    # 1024-byte key cannot be a local file name and always goes through stdin/stdout.
    if [[ $name == "$LONG" || $((i % 2)) == 1 ]]; then
        aws s3 cp - "s3://$B/$key" --only-show-errors <"$WORK/src/$size"
        aws s3 cp "s3://$B/$key" - --only-show-errors >"$WORK/down"
    else
        aws s3 cp "$WORK/src/$size" "s3://$B/$key" --only-show-errors
        aws s3 cp "s3://$B/$key" "$WORK/down" --only-show-errors
    fi
    same "$WORK/src/$size" "$WORK/down"
    i=$((i + 1))
done

step "ls --recursive lists exactly the keys written"
expected="$WORK/expected-keys"
for upload in "${UPLOADS[@]}"; do key "${upload%%|*}" "${upload#*|}" && echo; done |
    LC_ALL=C sort >"$expected"
aws s3api list-objects-v2 --bucket "$B" --output json |
    jq -r '.Contents[].Key' | LC_ALL=C sort >"$WORK/listed-keys"
cmp "$expected" "$WORK/listed-keys" || fail "list-objects-v2 keys differ: $(diff "$expected" "$WORK/listed-keys")"
listed=$(aws s3 ls --recursive "s3://$B/" | wc -l)
[[ $listed == "$(wc -l <"$expected")" ]] || fail "aws s3 ls --recursive shows $listed objects"
# Sizes as listed must be the sizes uploaded.
aws s3api list-objects-v2 --bucket "$B" --prefix "$((8 * MIB + 1))/" --output json |
    jq -e --argjson n $((8 * MIB + 1)) '(.Contents | length) == 7 and all(.Contents[]; .Size == $n)' >/dev/null

step "mv s3 -> s3 and local -> s3"
for name in "unicode/héllo wörld 日本語 🎉.bin" "$LONG"; do
    from="$(key $((8 * MIB + 1)) "$name")" to="$(key moved "$name")"
    aws s3 mv "s3://$B/$from" "s3://$B/$to" --only-show-errors
    expect_error '404|Not Found' aws s3api head-object --bucket "$B" --key "$from"
    aws s3 cp "s3://$B/$to" - --only-show-errors >"$WORK/down"
    same "$WORK/src/$((8 * MIB + 1))" "$WORK/down"
done
cp "$WORK/src/$((8 * MIB))" "$WORK/to-move"
aws s3 mv "$WORK/to-move" "s3://$B/moved/from local & back.bin" --only-show-errors
[[ ! -e $WORK/to-move ]] || fail "aws s3 mv left the local source"
aws s3 mv "s3://$B/moved/from local & back.bin" "$WORK/moved-back" --only-show-errors
same "$WORK/src/$((8 * MIB))" "$WORK/moved-back"
expect_error '404|Not Found' aws s3api head-object --bucket "$B" --key "moved/from local & back.bin"

step "sync up, sync down, diff -r; then sync --delete"
tree="$WORK/tree"
rand_file "$tree/top.bin" 100
rand_file "$tree/sub dir/a+b=c;d&e.bin" $((8 * MIB + 5))
rand_file "$tree/sub dir/deeper/ünï cödé.bin" 12345
rand_file "$tree/empty.bin" 0
rand_file "$tree/big/nine.bin" $((9 * MIB))
aws s3 sync "$tree" "s3://$B/synced" --only-show-errors
aws s3 sync "s3://$B/synced" "$WORK/tree-back" --only-show-errors
diff -r "$tree" "$WORK/tree-back" || fail "sync round trip differs"
# A second sync has nothing to do.
[[ -z "$(aws s3 sync "$tree" "s3://$B/synced")" ]] || fail "second sync was not a no-op"
rm "$tree/top.bin"
rand_file "$tree/sub dir/deeper/ünï cödé.bin" 54321
aws s3 sync "$tree" "s3://$B/synced" --delete --only-show-errors
aws s3 sync "s3://$B/synced" "$WORK/tree-back2" --only-show-errors
diff -r "$tree" "$WORK/tree-back2" || fail "sync --delete round trip differs"
expect_error '404|Not Found' aws s3api head-object --bucket "$B" --key synced/top.bin

step "100 MiB cp round trip (multipart)"
rand_file "$WORK/big" $((100 * MIB))
aws s3 cp "$WORK/big" "s3://$B/big/100MiB.bin" --only-show-errors
etag=$(aws s3api head-object --bucket "$B" --key big/100MiB.bin --query ETag --output text)
[[ $etag == *-* ]] || fail "100 MiB upload was not multipart (ETag $etag)"
aws s3 cp "s3://$B/big/100MiB.bin" "$WORK/big-down" --only-show-errors
same "$WORK/big" "$WORK/big-down"
rm -f "$WORK/big-down"

step "rb of a non-empty bucket fails with BucketNotEmpty"
expect_error 'BucketNotEmpty' aws s3api delete-bucket --bucket "$B"

step "s3api multipart with parts uploaded in order 2, 1, 3"
rand_file "$WORK/p1" $((5 * MIB))
rand_file "$WORK/p2" $((5 * MIB + 7))
rand_file "$WORK/p3" 1234
cat "$WORK/p1" "$WORK/p2" "$WORK/p3" >"$WORK/p-all"
mkey="multipart/out of order ☃.bin"
upload=$(aws s3api create-multipart-upload --bucket "$B" --key "$mkey" --query UploadId --output text)
declare -A petag
for n in 2 1 3; do
    petag[$n]=$(aws s3api upload-part --bucket "$B" --key "$mkey" --upload-id "$upload" \
        --part-number $n --body "$WORK/p$n" --query ETag --output text)
    [[ ${petag[$n]} == "\"$(md5sum <"$WORK/p$n" | cut -d' ' -f1)\"" ]] ||
        fail "part $n ETag ${petag[$n]} is not its MD5"
done
aws s3api list-parts --bucket "$B" --key "$mkey" --upload-id "$upload" --output json |
    jq -e '[.Parts[].PartNumber] == [1,2,3]' >/dev/null
jq -n --arg e1 "${petag[1]}" --arg e2 "${petag[2]}" --arg e3 "${petag[3]}" \
    '{Parts: [{PartNumber: 1, ETag: $e1}, {PartNumber: 2, ETag: $e2}, {PartNumber: 3, ETag: $e3}]}' \
    >"$WORK/parts.json"
aws s3api complete-multipart-upload --bucket "$B" --key "$mkey" --upload-id "$upload" \
    --multipart-upload "file://$WORK/parts.json" >/dev/null
aws s3api get-object --bucket "$B" --key "$mkey" "$WORK/down" >/dev/null
same "$WORK/p-all" "$WORK/down"
etag=$(aws s3api head-object --bucket "$B" --key "$mkey" --query ETag --output text)
[[ $etag == *-3\" ]] || fail "multipart ETag $etag does not end in -3"

step "copy-object with --metadata-directive REPLACE"
aws s3api put-object --bucket "$B" --key "meta/src.bin" --body "$WORK/src/4096" \
    --content-type application/x-before --metadata colour=red >/dev/null
aws s3api copy-object --bucket "$B" --key "meta/dst.bin" --copy-source "$B/meta/src.bin" \
    --metadata-directive REPLACE --content-type text/x-after --metadata shape=round,size=big >/dev/null
aws s3api head-object --bucket "$B" --key "meta/dst.bin" --output json >"$WORK/head.json"
jq -e '.ContentType == "text/x-after" and .Metadata == {shape: "round", size: "big"}' \
    "$WORK/head.json" >/dev/null || fail "REPLACE copy metadata: $(cat "$WORK/head.json")"
aws s3api get-object --bucket "$B" --key "meta/dst.bin" "$WORK/down" >/dev/null
same "$WORK/src/4096" "$WORK/down"
# COPY (the default) keeps the source's metadata; a copy onto itself with REPLACE rewrites it.
aws s3api copy-object --bucket "$B" --key "meta/kept.bin" --copy-source "$B/meta/src.bin" >/dev/null
aws s3api head-object --bucket "$B" --key "meta/kept.bin" --output json |
    jq -e '.ContentType == "application/x-before" and .Metadata == {colour: "red"}' >/dev/null
aws s3api copy-object --bucket "$B" --key "meta/src.bin" --copy-source "$B/meta/src.bin" \
    --metadata-directive REPLACE --metadata colour=blue >/dev/null
aws s3api head-object --bucket "$B" --key "meta/src.bin" --output json |
    jq -e '.Metadata == {colour: "blue"}' >/dev/null
# Copy of the 1024-byte key and of a key with spaces and unicode as a source.
aws s3api copy-object --bucket "$B" --key "meta/copy of long" \
    --copy-source "$B/$(key moved "$LONG")" >/dev/null
aws s3 cp "s3://$B/meta/copy of long" "$WORK/down" --only-show-errors
same "$WORK/src/$((8 * MIB + 1))" "$WORK/down"

step "ranges and conditional reads"
src="$WORK/src/$((8 * MIB + 1))"
rkey="$((8 * MIB + 1))/plus+sign+key.bin"
aws s3api get-object --bucket "$B" --key "$rkey" --range bytes=100-4195 "$WORK/range" --output json |
    jq -e '.ContentLength == 4096 and (.ContentRange | startswith("bytes 100-4195/"))' >/dev/null
dd if="$src" of="$WORK/range-expected" iflag=skip_bytes,count_bytes skip=100 count=4096 status=none
same "$WORK/range-expected" "$WORK/range"
aws s3api get-object --bucket "$B" --key "$rkey" --range bytes=-10 "$WORK/range" >/dev/null
dd if="$src" of="$WORK/range-expected" iflag=skip_bytes skip=$((8 * MIB + 1 - 10)) status=none
same "$WORK/range-expected" "$WORK/range"
aws s3api head-object --bucket "$B" --key "$rkey" --range bytes=0-0 --output json |
    jq -e '.ContentLength == 1' >/dev/null
etag=$(aws s3api head-object --bucket "$B" --key "$rkey" --query ETag --output text)
aws s3api get-object --bucket "$B" --key "$rkey" --if-match "$etag" "$WORK/down" >/dev/null
same "$src" "$WORK/down"
aws s3api head-object --bucket "$B" --key "$rkey" --if-match "$etag" >/dev/null
aws s3api get-object --bucket "$B" --key "$rkey" --if-none-match '"0123456789abcdef0123456789abcdef"' \
    "$WORK/down" >/dev/null
same "$src" "$WORK/down"
expect_error '\(304\)|Not Modified' aws s3api get-object --bucket "$B" --key "$rkey" \
    --if-none-match "$etag" "$WORK/x"
expect_error '\(304\)|Not Modified' aws s3api head-object --bucket "$B" --key "$rkey" \
    --if-none-match "$etag"
expect_error 'PreconditionFailed|\(412\)' aws s3api get-object --bucket "$B" --key "$rkey" \
    --if-match '"0123456789abcdef0123456789abcdef"' "$WORK/x"
expect_error 'PreconditionFailed|\(412\)' aws s3api head-object --bucket "$B" --key "$rkey" \
    --if-match '"0123456789abcdef0123456789abcdef"'
expect_error 'InvalidRange|\(416\)' aws s3api get-object --bucket "$B" --key "$rkey" \
    --range "bytes=$((9 * MIB))-" "$WORK/x"

step "presign (SigV4), then curl GET"
for key in "unicode/héllo wörld 日本語 🎉.bin" "amp&eq=semi;colon.bin"; do
    url=$(aws s3 presign "s3://$B/4096/$key" --expires-in 300)
    [[ $url == *"X-Amz-Algorithm=AWS4-HMAC-SHA256"* ]] || fail "not a SigV4 URL: $url"
    curl -fsS -o "$WORK/down" "$url"
    same "$WORK/src/4096" "$WORK/down"
done
# A tampered signature is refused.
url=$(aws s3 presign "s3://$B/4096/plus+sign+key.bin" --expires-in 300)
[[ $url == *"&X-Amz-Signature="* ]] || fail "presigned URL without a signature: $url"
[[ ${url: -1} == 0 ]] && tampered="${url%?}1" || tampered="${url%?}0"
code=$(curl -s -o /dev/null -w '%{http_code}' "$tampered")
[[ $code == 403 ]] || fail "tampered presigned URL answered $code, not 403"

step "rm --recursive, rb"
aws s3 rm "s3://$B" --recursive --only-show-errors
[[ -z "$(aws s3 ls --recursive "s3://$B/")" ]] || fail "objects left after rm --recursive"
aws s3 rb "s3://$B"
expect_error 'NoSuchBucket|404' aws s3api head-bucket --bucket "$B"

step "versioning: put-bucket-versioning, list-object-versions, --version-id, delete marker"
aws s3 mb "s3://$VB"
aws s3api put-bucket-versioning --bucket "$VB" --versioning-configuration Status=Enabled
aws s3api get-bucket-versioning --bucket "$VB" --output json | jq -e '.Status == "Enabled"' >/dev/null
vkey="docs/notes & ünïcode.txt"
rand_file "$WORK/v1" 3000
rand_file "$WORK/v2" $((9 * MIB))
v1=$(aws s3api put-object --bucket "$VB" --key "$vkey" --body "$WORK/v1" --query VersionId --output text)
aws s3 cp "$WORK/v2" "s3://$VB/$vkey" --only-show-errors
aws s3api list-object-versions --bucket "$VB" --prefix "$vkey" --output json >"$WORK/versions.json"
jq -e --arg v1 "$v1" '(.Versions | length) == 2 and .Versions[0].IsLatest and
    .Versions[1].VersionId == $v1 and (.Versions[1].IsLatest | not)' "$WORK/versions.json" >/dev/null ||
    fail "versions: $(cat "$WORK/versions.json")"
v2=$(jq -r '.Versions[0].VersionId' "$WORK/versions.json")
aws s3api get-object --bucket "$VB" --key "$vkey" --version-id "$v1" "$WORK/down" >/dev/null
same "$WORK/v1" "$WORK/down"
aws s3api get-object --bucket "$VB" --key "$vkey" --version-id "$v2" "$WORK/down" >/dev/null
same "$WORK/v2" "$WORK/down"
aws s3 cp "s3://$VB/$vkey" "$WORK/down" --only-show-errors
same "$WORK/v2" "$WORK/down"
aws s3 rm "s3://$VB/$vkey" --only-show-errors
expect_error 'NoSuchKey|\(404\)' aws s3api get-object --bucket "$VB" --key "$vkey" "$WORK/x"
aws s3api list-object-versions --bucket "$VB" --prefix "$vkey" --output json >"$WORK/versions.json"
jq -e '(.DeleteMarkers | length) == 1 and .DeleteMarkers[0].IsLatest and (.Versions | length) == 2' \
    "$WORK/versions.json" >/dev/null || fail "after delete: $(cat "$WORK/versions.json")"
marker=$(jq -r '.DeleteMarkers[0].VersionId' "$WORK/versions.json")
[[ -z "$(aws s3 ls "s3://$VB/docs/")" ]] || fail "a deleted key is still listed"
aws s3api delete-object --bucket "$VB" --key "$vkey" --version-id "$marker" >/dev/null
aws s3 cp "s3://$VB/$vkey" "$WORK/down" --only-show-errors
same "$WORK/v2" "$WORK/down"
# Removing every version empties the bucket.
expect_error 'BucketNotEmpty' aws s3 rb "s3://$VB"
for v in "$v1" "$v2"; do
    aws s3api delete-object --bucket "$VB" --key "$vkey" --version-id "$v" >/dev/null
done
aws s3api list-object-versions --bucket "$VB" --output json |
    jq -e '(.Versions // [] | length) == 0 and (.DeleteMarkers // [] | length) == 0' >/dev/null
aws s3 rb "s3://$VB"

echo "PASS [$SUITE]"
