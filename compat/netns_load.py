"""The client side of compat/netns.sh: a boto3 write load through one gateway and checks
through another, run inside the client's network namespace.

    python3 compat/netns_load.py write GW_URL BUCKET COUNT ACKED_JSON
        writes COUNT objects (4 KiB to 256 KiB of random bytes), one after another, and
        records in ACKED_JSON each acknowledged key with its MD5; a failed write (a 503
        while a node is cut off, say) is retried once with new bytes, and if that fails too
        the key is left out (its outcome is unknown, nothing is claimed about it).
    python3 compat/netns_load.py check GW_URL BUCKET ACKED_JSON
        reads every acknowledged key back and compares its MD5; lists the bucket and checks
        every acknowledged key is listed. Exits 1 on any difference.
"""

import hashlib
import json
import os
import sys
import time

import boto3
from botocore.config import Config


def client(url):
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            connect_timeout=5,
            read_timeout=30,
        ),
    )


def write(url, bucket, count, acked_path):
    s3 = client(url)
    acked = {}
    failures = 0
    for i in range(count):
        key = f"load/{i:04d}"
        for attempt in range(2):
            body = os.urandom(4096 + int.from_bytes(os.urandom(3), "big") % (252 * 1024))
            try:
                s3.put_object(Bucket=bucket, Key=key, Body=body)
            except Exception as e:  # noqa: BLE001 - any failure leaves the outcome unknown
                failures += 1
                print(f"-- [netns] write {key} attempt {attempt}: {e}", flush=True)
                acked.pop(key, None)
                continue
            acked[key] = hashlib.md5(body).hexdigest()
            break
        # Written after every object: the shell side reads progress from it.
        with open(acked_path + ".tmp", "w") as f:
            json.dump(acked, f)
        os.replace(acked_path + ".tmp", acked_path)
    print(f"-- [netns] {len(acked)} of {count} writes acknowledged, {failures} failed attempts")
    return 0


def check(url, bucket, acked_path):
    s3 = client(url)
    with open(acked_path) as f:
        acked = json.load(f)
    bad = []
    for key, md5 in sorted(acked.items()):
        try:
            got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as e:  # noqa: BLE001
            bad.append(f"{key}: {e}")
            continue
        if hashlib.md5(got).hexdigest() != md5:
            bad.append(f"{key}: md5 {hashlib.md5(got).hexdigest()} != {md5}")
    listed = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="load/"):
        listed.update(o["Key"] for o in page.get("Contents", []))
    bad.extend(f"{key}: not listed" for key in sorted(set(acked) - listed))
    if bad:
        print(f"-- [netns] {len(bad)} of {len(acked)} acknowledged objects wrong:", file=sys.stderr)
        for line in bad[:20]:
            print(f"   {line}", file=sys.stderr)
        return 1
    print(f"-- [netns] all {len(acked)} acknowledged objects read back and listed via {url}")
    return 0


if __name__ == "__main__":
    started = time.time()
    mode = sys.argv[1]
    if mode == "write":
        rc = write(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif mode == "check":
        rc = check(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"unknown mode {mode}")
    print(f"-- [netns] {mode} took {time.time() - started:.1f} s")
    sys.exit(rc)
