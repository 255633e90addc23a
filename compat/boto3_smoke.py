#!/usr/bin/env python3
"""boto3 against an S3 endpoint: object and bucket calls, managed multipart transfers with
threads, paginators, presigned GET and PUT (SigV4), both request-checksum settings, and the
error codes S3 clients branch on.

Environment: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION
(default us-east-1). Stops at the first failure with a non-zero exit status.
"""

import hashlib
import io
import os
import sys
import tempfile
import urllib.error
import urllib.request

import boto3
import botocore
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["AWS_ENDPOINT_URL"]
ACCESS_KEY = os.environ["AWS_ACCESS_KEY_ID"]
SECRET_KEY = os.environ["AWS_SECRET_ACCESS_KEY"]
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
MIB = 1024 * 1024


def client(access_key=ACCESS_KEY, **config):
    """The client the README shows, with extra botocore Config settings."""
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=access_key,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, **config),
    )


def step(msg):
    print(f"-- [boto3_smoke] {msg}", flush=True)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def expect_error(code, fn, *args, **kwargs):
    """fn must raise ClientError with Error.Code == code; returns the error response."""
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        check(got == code, f"{fn.__name__}: expected {code}, got {got}: {e.response}")
        return e.response
    raise AssertionError(f"{fn.__name__}: expected {code}, call succeeded")


def bucket_name(kind):
    return f"compat-boto3-{kind}-{os.urandom(6).hex()}"


def objects_and_errors(s3, work):
    b = bucket_name("obj")
    step("create_bucket, list_buckets, put/get/head/copy/delete")
    s3.create_bucket(Bucket=b)
    check(b in [x["Name"] for x in s3.list_buckets()["Buckets"]], "bucket not listed")
    body = os.urandom(100_000)
    key = "dir/ünï cödé +&=;%20 ../key.bin"
    put = s3.put_object(Bucket=b, Key=key, Body=body, ContentType="application/x-test",
                        Metadata={"colour": "green"})
    check(put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"', f"ETag {put['ETag']}")
    got = s3.get_object(Bucket=b, Key=key)
    check(got["Body"].read() == body, "GET body differs")
    check(got["ContentType"] == "application/x-test", got["ContentType"])
    check(got["Metadata"] == {"colour": "green"}, got["Metadata"])
    head = s3.head_object(Bucket=b, Key=key)
    check(head["ContentLength"] == len(body) and head["ETag"] == put["ETag"], head)
    part = s3.get_object(Bucket=b, Key=key, Range="bytes=10-19")["Body"].read()
    check(part == body[10:20], "range GET differs")
    s3.copy_object(Bucket=b, Key="copy.bin", CopySource={"Bucket": b, "Key": key})
    check(s3.get_object(Bucket=b, Key="copy.bin")["Body"].read() == body, "copy differs")
    s3.copy_object(Bucket=b, Key="copy.bin", CopySource={"Bucket": b, "Key": key},
                   MetadataDirective="REPLACE", Metadata={"colour": "blue"},
                   ContentType="text/plain")
    head = s3.head_object(Bucket=b, Key="copy.bin")
    check(head["Metadata"] == {"colour": "blue"} and head["ContentType"] == "text/plain", head)
    # File-like bodies carry `Expect: 100-continue`, empty ones too; the next upload on the
    # same pooled connection must still see its own response (boto/botocore#3755).
    for i in range(3):
        s3.put_object(Bucket=b, Key=f"empty-{i}", Body=io.BytesIO(b""))
        put = s3.put_object(Bucket=b, Key=f"after-empty-{i}", Body=io.BytesIO(body))
        check(put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"', f"after empty: {put}")
    check(s3.head_object(Bucket=b, Key="empty-0")["ContentLength"] == 0, "empty object")
    # boto3's managed copy (HEAD, then CopyObject) too.
    s3.copy({"Bucket": b, "Key": key}, b, "managed copy.bin")
    check(s3.get_object(Bucket=b, Key="managed copy.bin")["Body"].read() == body,
          "managed copy differs")

    step("error codes: NoSuchKey, NoSuchBucket, BucketNotEmpty, PreconditionFailed, "
         "InvalidAccessKeyId")
    expect_error("NoSuchKey", s3.get_object, Bucket=b, Key="missing")
    expect_error("404", s3.head_object, Bucket=b, Key="missing")
    expect_error("NoSuchBucket", s3.get_object, Bucket=bucket_name("none"), Key="k")
    expect_error("NoSuchBucket", s3.list_objects_v2, Bucket=bucket_name("none"))
    expect_error("BucketNotEmpty", s3.delete_bucket, Bucket=b)
    expect_error("PreconditionFailed", s3.get_object, Bucket=b, Key=key,
                 IfMatch='"0123456789abcdef0123456789abcdef"')
    expect_error("412", s3.head_object, Bucket=b, Key=key,
                 IfMatch='"0123456789abcdef0123456789abcdef"')
    expect_error("304", s3.get_object, Bucket=b, Key=key, IfNoneMatch=put["ETag"])
    check(s3.get_object(Bucket=b, Key=key, IfMatch=put["ETag"])["Body"].read() == body,
          "If-Match GET differs")
    expect_error("InvalidAccessKeyId", client(access_key="AKIANOTAREALKEY00000").list_buckets)
    expect_error("InvalidAccessKeyId",
                 client(access_key="AKIANOTAREALKEY00000").get_object, Bucket=b, Key=key)
    bad_secret = boto3.client("s3", endpoint_url=ENDPOINT, aws_access_key_id=ACCESS_KEY,
                              aws_secret_access_key=SECRET_KEY + "x", region_name=REGION,
                              config=Config(signature_version="s3v4"))
    expect_error("SignatureDoesNotMatch", bad_secret.list_buckets)

    step("delete_object, delete_objects, delete_bucket")
    s3.delete_object(Bucket=b, Key=key)
    expect_error("NoSuchKey", s3.get_object, Bucket=b, Key=key)
    rest = ["copy.bin", "managed copy.bin"] + [f"{p}-{i}" for p in ("empty", "after-empty")
                                               for i in range(3)]
    deleted = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k} for k in rest]})
    check(sorted(d["Key"] for d in deleted["Deleted"]) == sorted(rest), deleted)
    s3.delete_bucket(Bucket=b)
    expect_error("NoSuchBucket", s3.list_objects_v2, Bucket=b)


def transfers_and_paging(s3, work):
    b = bucket_name("xfer")
    s3.create_bucket(Bucket=b)

    step("upload_file / download_file, 20 MiB, multipart with 4 threads")
    src = os.path.join(work, "big.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(20 * MIB + 17))
    cfg = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB,
                         max_concurrency=4, use_threads=True)
    s3.upload_file(src, b, "big/twenty mib.bin", Config=cfg)
    etag = s3.head_object(Bucket=b, Key="big/twenty mib.bin")["ETag"]
    check(etag.endswith('-5"'), f"20 MiB in 5 MiB parts has ETag {etag}")
    dst = os.path.join(work, "big.down")
    s3.download_file(b, "big/twenty mib.bin", dst, Config=cfg)
    with open(src, "rb") as f1, open(dst, "rb") as f2:
        check(f1.read() == f2.read(), "download_file differs from upload_file")

    step("paginators: list_objects_v2 and list_objects over several pages")
    keys = sorted(f"page/{i:03d} é+&.txt" for i in range(25))
    for k in keys:
        s3.put_object(Bucket=b, Key=k, Body=k.encode())
    for op, extra in (("list_objects_v2", {}), ("list_objects", {})):
        pages = list(s3.get_paginator(op).paginate(Bucket=b, Prefix="page/",
                                                   PaginationConfig={"PageSize": 7}, **extra))
        check(len(pages) == 4, f"{op}: {len(pages)} pages, expected 4")
        listed = [o["Key"] for p in pages for o in p.get("Contents", [])]
        check(listed == keys, f"{op} listed {listed}")
    pages = list(s3.get_paginator("list_objects_v2").paginate(
        Bucket=b, Delimiter="/", PaginationConfig={"PageSize": 1}))
    prefixes = [c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])]
    check(prefixes == ["big/", "page/"], f"common prefixes {prefixes}")

    step("presigned GET and PUT (SigV4) through urllib")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": keys[3]},
                                    ExpiresIn=300)
    check("X-Amz-Signature=" in url, f"not a SigV4 URL: {url}")
    with urllib.request.urlopen(url) as r:
        check(r.read() == keys[3].encode(), "presigned GET body differs")
    body = os.urandom(300_000)
    pkey = "presigned/put ünï+&=.bin"
    url = s3.generate_presigned_url("put_object", Params={"Bucket": b, "Key": pkey},
                                    ExpiresIn=300)
    req = urllib.request.Request(url, data=body, method="PUT")
    with urllib.request.urlopen(req) as r:
        check(r.status == 200, f"presigned PUT status {r.status}")
        check(r.headers["ETag"] == f'"{hashlib.md5(body).hexdigest()}"', r.headers["ETag"])
    check(s3.get_object(Bucket=b, Key=pkey)["Body"].read() == body, "presigned PUT differs")
    # A presigned URL is bound to its method and its signature.
    try:
        urllib.request.urlopen(urllib.request.Request(url, data=b"x", method="POST"))
        raise AssertionError("presigned PUT URL accepted a POST")
    except urllib.error.HTTPError as e:
        check(e.code in (403, 405), f"presigned PUT URL as POST answered {e.code}")
    try:
        check(url.rsplit("&", 1)[1].startswith("X-Amz-Signature="), url)
        urllib.request.urlopen(url[:-1] + ("1" if url[-1] == "0" else "0"))
        raise AssertionError("tampered presigned URL accepted")
    except urllib.error.HTTPError as e:
        check(e.code == 403, f"tampered presigned URL answered {e.code}")

    step("empty the bucket with a paginator + delete_objects")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b):
        objs = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if objs:
            s3.delete_objects(Bucket=b, Delete={"Objects": objs})
    s3.delete_bucket(Bucket=b)


def checksums(work):
    b = bucket_name("sum")
    for setting in ("when_supported", "when_required"):
        step(f"request_checksum_calculation={setting}: put_object, upload_file, get with "
             "ChecksumMode")
        s3 = client(request_checksum_calculation=setting,
                    response_checksum_validation=setting)
        s3.create_bucket(Bucket=b)
        body = os.urandom(1 * MIB + 3)
        s3.put_object(Bucket=b, Key="k", Body=body)
        got = s3.get_object(Bucket=b, Key="k", ChecksumMode="ENABLED")
        check(got["Body"].read() == body, "checksummed PUT differs")
        if setting == "when_supported":
            # botocore sends a CRC32 trailer by default; the gateway verified and kept it.
            check("ChecksumCRC32" in got, f"no CRC32 returned: {sorted(got)}")
        s3.put_object(Bucket=b, Key="sha", Body=body, ChecksumAlgorithm="SHA256")
        got = s3.get_object(Bucket=b, Key="sha", ChecksumMode="ENABLED")
        check(got["Body"].read() == body and "ChecksumSHA256" in got, "SHA256 PUT")
        src = os.path.join(work, "sum.bin")
        with open(src, "wb") as f:
            f.write(os.urandom(12 * MIB))
        s3.upload_file(src, b, "multi", Config=TransferConfig(
            multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB))
        dst = os.path.join(work, "sum.down")
        s3.download_file(b, "multi", dst)
        with open(src, "rb") as f1, open(dst, "rb") as f2:
            check(f1.read() == f2.read(), "checksummed multipart upload differs")
        s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": k} for k in ("k", "sha", "multi")]})
        s3.delete_bucket(Bucket=b)


def main():
    print(f"boto3 {boto3.__version__}, botocore {botocore.__version__}, endpoint {ENDPOINT}")
    s3 = client()
    with tempfile.TemporaryDirectory(prefix="s3q-boto3.") as work:
        objects_and_errors(s3, work)
        transfers_and_paging(s3, work)
        checksums(work)
    print("PASS [boto3_smoke]")


if __name__ == "__main__":
    try:
        main()
    except (AssertionError, ClientError) as e:
        print(f"FAIL [boto3_smoke]: {e!r}", file=sys.stderr)
        raise
