//! The small things S3's API reference promises and tools that probe S3 closely check:
//! version ids only where versioning is configured (`null` for null versions there),
//! GetObjectAttributes' ObjectSize, empty listings at `max-keys=0`, empty delimiters,
//! echoed prefixes, complete error bodies, ListBuckets pagination, SigV4 dated by `Date`,
//! re-creating an owned bucket, and `curl --aws-sigv4`.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CompletedMultipartUpload, CompletedPart,
    CreateBucketConfiguration, ObjectAttributes,
};
use bytes::Bytes;
use hyper::Method;

use crate::harness::*;

#[tokio::test]
async fn version_ids_appear_only_where_versioning_is_configured() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "plain").await;

    // Unversioned: no write answers with a version id, and a delete is no delete marker.
    let put = s3
        .put_object()
        .bucket("plain")
        .key("k")
        .body(ByteStream::from_static(b"one"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.version_id(), None);
    let copy = s3
        .copy_object()
        .bucket("plain")
        .key("copy")
        .copy_source("plain/k")
        .send()
        .await
        .unwrap();
    assert_eq!(copy.version_id(), None);
    let upload = s3
        .create_multipart_upload()
        .bucket("plain")
        .key("mpu")
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let part = s3
        .upload_part()
        .bucket("plain")
        .key("mpu")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .unwrap();
    let done = s3
        .complete_multipart_upload()
        .bucket("plain")
        .key("mpu")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(done.version_id(), None);
    let get = s3
        .get_object()
        .bucket("plain")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(get.version_id(), None);
    let head = s3
        .head_object()
        .bucket("plain")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(head.version_id(), None);
    let deleted = s3
        .delete_object()
        .bucket("plain")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (deleted.version_id(), deleted.delete_marker()),
        (None, None)
    );
    // Gone is gone: a plain 404, no delete marker shows through.
    let raw = cluster
        .signed_request(Method::GET, "/plain/k", &[], Bytes::new())
        .await;
    assert_eq!(raw.status, 404);
    assert_eq!(raw.header("x-amz-delete-marker"), None);
    assert_eq!(raw.header("x-amz-version-id"), None);

    // An object written before versioning was enabled is the null version.
    put_bytes(&s3, "plain", "old", b"before").await;
    set_versioning(&s3, "plain", BucketVersioningStatus::Enabled).await;
    let get = s3
        .get_object()
        .bucket("plain")
        .key("old")
        .send()
        .await
        .unwrap();
    assert_eq!(get.version_id(), Some("null"));
    let head = s3
        .head_object()
        .bucket("plain")
        .key("old")
        .send()
        .await
        .unwrap();
    assert_eq!(head.version_id(), Some("null"));
    let named = s3
        .get_object()
        .bucket("plain")
        .key("old")
        .version_id("null")
        .send()
        .await
        .unwrap();
    assert_eq!(named.version_id(), Some("null"));
    // Versioned writes answer with their id; suspended ones with `null`.
    let put = s3
        .put_object()
        .bucket("plain")
        .key("v")
        .body(ByteStream::from_static(b"versioned"))
        .send()
        .await
        .unwrap();
    let id = put
        .version_id()
        .expect("a versioned write has an id")
        .to_owned();
    assert_ne!(id, "null");
    let get = s3
        .get_object()
        .bucket("plain")
        .key("v")
        .send()
        .await
        .unwrap();
    assert_eq!(get.version_id(), Some(id.as_str()));
    set_versioning(&s3, "plain", BucketVersioningStatus::Suspended).await;
    let put = s3
        .put_object()
        .bucket("plain")
        .key("s")
        .body(ByteStream::from_static(b"suspended"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.version_id(), Some("null"));
    let head = s3
        .head_object()
        .bucket("plain")
        .key("s")
        .send()
        .await
        .unwrap();
    assert_eq!(head.version_id(), Some("null"));
}

#[tokio::test]
async fn object_attributes_include_the_size_of_every_kind_of_object() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "attrs").await;
    set_versioning(&s3, "attrs", BucketVersioningStatus::Enabled).await;
    let small = pattern(1000, 1);
    let large = pattern(200_000, 2);
    let first = s3
        .put_object()
        .bucket("attrs")
        .key("k")
        .body(ByteStream::from(small.clone()))
        .send()
        .await
        .unwrap();
    put_bytes(&s3, "attrs", "k", &large).await;
    let upload = s3
        .create_multipart_upload()
        .bucket("attrs")
        .key("mpu")
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let mut parts = Vec::new();
    for (n, len) in [(1, 5 * 1024 * 1024), (2, 1234)] {
        let out = s3
            .upload_part()
            .bucket("attrs")
            .key("mpu")
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(pattern(len, n as u64)))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket("attrs")
        .key("mpu")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();

    let cases = [
        ("k", None, large.len() as i64),
        ("k", first.version_id(), small.len() as i64),
        ("mpu", None, 5 * 1024 * 1024 + 1234),
    ];
    for (key, version, size) in cases {
        let out = s3
            .get_object_attributes()
            .bucket("attrs")
            .key(key)
            .set_version_id(version.map(str::to_owned))
            .object_attributes(ObjectAttributes::Etag)
            .object_attributes(ObjectAttributes::ObjectSize)
            .object_attributes(ObjectAttributes::StorageClass)
            .object_attributes(ObjectAttributes::ObjectParts)
            .send()
            .await
            .unwrap_or_else(|e| panic!("attributes of {key} {version:?}: {e:?}"));
        assert_eq!(out.object_size(), Some(size), "{key} {version:?}");
        assert!(out.e_tag().is_some(), "{key} {version:?}");
        assert!(out.storage_class().is_some(), "{key} {version:?}");
        if key == "mpu" {
            assert_eq!(
                out.object_parts().and_then(|p| p.total_parts_count()),
                Some(2)
            );
        }
    }
}

#[tokio::test]
async fn listings_at_max_keys_zero_are_empty_and_complete() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "zero").await;
    set_versioning(&s3, "zero", BucketVersioningStatus::Enabled).await;
    for key in ["a", "b/c"] {
        put_bytes(&s3, "zero", key, b"x").await;
    }
    s3.create_multipart_upload()
        .bucket("zero")
        .key("u")
        .send()
        .await
        .unwrap();
    let v2 = s3
        .list_objects_v2()
        .bucket("zero")
        .max_keys(0)
        .send()
        .await
        .unwrap();
    assert_eq!((v2.key_count(), v2.is_truncated()), (Some(0), Some(false)));
    assert_eq!(v2.next_continuation_token(), None);
    let v1 = s3
        .list_objects()
        .bucket("zero")
        .max_keys(0)
        .send()
        .await
        .unwrap();
    assert!(v1.contents().is_empty());
    assert_eq!(v1.is_truncated(), Some(false));
    let versions = s3
        .list_object_versions()
        .bucket("zero")
        .max_keys(0)
        .send()
        .await
        .unwrap();
    assert!(versions.versions().is_empty());
    assert_eq!(versions.is_truncated(), Some(false));
    let uploads = s3
        .list_multipart_uploads()
        .bucket("zero")
        .max_uploads(0)
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty());
    assert_eq!(uploads.is_truncated(), Some(false));
    // Still a listing of an existing bucket only.
    assert_s3_error(
        s3.list_objects_v2()
            .bucket("no-such-bucket-here")
            .max_keys(0)
            .send()
            .await,
        404,
        "NoSuchBucket",
    );
}

#[tokio::test]
async fn an_empty_delimiter_is_no_delimiter_and_prefixes_are_echoed_encoded() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "echo").await;
    for key in ["a b&c/1", "a b&c/2/x", "z"] {
        put_bytes(&s3, "echo", key, b"x").await;
    }
    for path in [
        "/echo?list-type=2&delimiter=",
        "/echo?delimiter=",
        "/echo?versions&delimiter=",
        "/echo?uploads&delimiter=",
    ] {
        let raw = cluster
            .signed_request(Method::GET, path, &[], Bytes::new())
            .await;
        assert_eq!(raw.status, 200, "{path}: {}", raw.text());
        let body = raw.text();
        assert!(!body.contains("<Delimiter"), "{path}: {body}");
        assert!(!body.contains("<CommonPrefixes"), "{path}: {body}");
    }
    // The prefix is echoed as the keys are: URL-encoded when asked, XML-escaped otherwise.
    let raw = cluster
        .signed_request(
            Method::GET,
            "/echo?list-type=2&prefix=a%20b%26c%2F&encoding-type=url",
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(raw.status, 200, "{}", raw.text());
    assert!(
        raw.text().contains("<Prefix>a%20b%26c/</Prefix>"),
        "{}",
        raw.text()
    );
    assert!(
        raw.text().contains("<Key>a%20b%26c/1</Key>"),
        "{}",
        raw.text()
    );
    let raw = cluster
        .signed_request(
            Method::GET,
            "/echo?list-type=2&prefix=a%20b%26c%2F",
            &[],
            Bytes::new(),
        )
        .await;
    assert!(
        raw.text().contains("<Prefix>a b&amp;c/</Prefix>"),
        "{}",
        raw.text()
    );
    // And the SDK sees the same: no delimiter means every key, however deep.
    let out = s3
        .list_objects_v2()
        .bucket("echo")
        .delimiter("")
        .send()
        .await
        .unwrap();
    assert_eq!(out.key_count(), Some(3));
    assert_eq!(out.delimiter(), None);
}

#[tokio::test]
async fn error_bodies_name_the_request_and_what_it_addressed() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "errs").await;
    let missing_key = cluster
        .signed_request(Method::GET, "/errs/no%20such", &[], Bytes::new())
        .await;
    assert_eq!(missing_key.status, 404);
    let body = missing_key.text();
    let request_id = missing_key.header("x-amz-request-id").expect("request id");
    assert!(body.contains("<Code>NoSuchKey</Code>"), "{body}");
    assert!(
        body.contains(&format!("<RequestId>{request_id}</RequestId>")),
        "{body}"
    );
    assert!(body.contains("<HostId>"), "{body}");
    assert!(body.contains("<Key>no such</Key>"), "{body}");
    assert!(
        body.contains("<Resource>/errs/no%20such</Resource>"),
        "{body}"
    );
    let missing_bucket = cluster
        .signed_request(Method::GET, "/no-such-bucket/k", &[], Bytes::new())
        .await;
    assert_eq!(missing_bucket.status, 404);
    let body = missing_bucket.text();
    assert!(
        body.contains("<BucketName>no-such-bucket</BucketName>"),
        "{body}"
    );
    let id = missing_bucket.header("x-amz-request-id").unwrap();
    assert!(
        body.contains(&format!("<RequestId>{id}</RequestId>")),
        "{body}"
    );
    // Errors s3s answers itself (here an unsigned request) are completed too.
    let url = format!("{}/errs/k", cluster.s3_url().trim_end_matches('/'));
    let anonymous = raw_request(Method::GET, &url, &[], Bytes::new()).await;
    assert_eq!(anonymous.status, 403);
    let id = anonymous.header("x-amz-request-id").unwrap();
    let body = anonymous.text();
    assert!(
        body.contains(&format!("<RequestId>{id}</RequestId>")),
        "{body}"
    );
    assert!(body.contains("<Resource>/errs/k</Resource>"), "{body}");
    // And the SDK still reads every error as before.
    assert_s3_error(
        s3.get_object().bucket("errs").key("gone").send().await,
        404,
        "NoSuchKey",
    );
}

#[tokio::test]
async fn list_buckets_pages_by_prefix_max_buckets_and_continuation_token() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    let names: Vec<String> = (0..5).map(|i| format!("page-{i}")).collect();
    for name in &names {
        create_bucket(&s3, name).await;
    }
    create_bucket(&s3, "other").await;
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = s3
            .list_buckets()
            .prefix("page-")
            .max_buckets(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(out.buckets().len() <= 2);
        assert_eq!(out.prefix(), Some("page-"));
        seen.extend(
            out.buckets()
                .iter()
                .filter_map(|b| b.name().map(str::to_owned)),
        );
        token = out.continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(seen, names);
    assert_eq!(pages, 3);
    let all = s3.list_buckets().send().await.unwrap();
    assert_eq!(all.buckets().len(), 6);
    assert_eq!(all.continuation_token(), None);
    assert_s3_error(
        s3.list_buckets().max_buckets(0).send().await,
        400,
        "InvalidArgument",
    );
}

#[tokio::test]
async fn sigv4_may_be_dated_by_the_date_header() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "dated").await;
    let body = Bytes::from_static(b"dated by Date");
    let hash = sha256_hex(&body);
    let signed = cluster.sign_by_date_header(&Method::PUT, "/dated/k", &[], &hash);
    assert!(signed.iter().any(|(k, _)| k == "date"));
    assert!(!signed.iter().any(|(k, _)| k == "x-amz-date"));
    let headers: Vec<(&str, &str)> = signed
        .iter()
        .filter(|(k, _)| k != "host")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let url = format!("{}/dated/k", cluster.s3_url().trim_end_matches('/'));
    let put = raw_request(Method::PUT, &url, &headers, body.clone()).await;
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(get_bytes(&s3, "dated", "k").await, body);
    // With both, `x-amz-date` dates the signature (`Date` here is years off).
    let stale_date = [("date", "Mon, 01 Jan 2001 00:00:00 GMT")];
    let get = cluster
        .signed_request(Method::GET, "/dated/k", &stale_date, Bytes::new())
        .await;
    assert_eq!(get.status, 200, "{}", get.text());
    assert_eq!(get.body, body);
}

#[tokio::test]
async fn creating_an_owned_bucket_again_is_ok_in_us_east_1_only() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "mine").await;
    put_bytes(&s3, "mine", "k", b"kept").await;
    s3.create_bucket()
        .bucket("mine")
        .send()
        .await
        .expect("re-creating an owned bucket without a location is 200");
    assert_eq!(get_bytes(&s3, "mine", "k").await, b"kept");
    let elsewhere = s3
        .create_bucket()
        .bucket("mine")
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await;
    assert_s3_error(elsewhere, 409, "BucketAlreadyOwnedByYou");
    assert_eq!(get_bytes(&s3, "mine", "k").await, b"kept");
}

#[tokio::test]
async fn curl_with_aws_sigv4_puts_and_gets() {
    let curl_ok = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !curl_ok {
        eprintln!("curl is not installed: skipping the curl --aws-sigv4 test");
        return;
    }
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "curled").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("up.bin");
    let data = pattern(100_000, 7);
    std::fs::write(&file, &data).unwrap();
    let url = format!("{}/curled/a%20key", cluster.s3_url().trim_end_matches('/'));
    // As the README shows it: the key pair as a curl config on stdin, never in argv.
    let config = format!(
        "user = \"{}:{}\"\n",
        cluster.access_key(),
        cluster.secret_key()
    );
    let curl = |args: &[&str]| {
        let mut child = std::process::Command::new("curl")
            .args([
                "--silent",
                "--show-error",
                "--fail-with-body",
                "--max-time",
                "30",
            ])
            .args(["-K", "-", "--aws-sigv4", "aws:amz:us-east-1:s3"])
            .args(["-H", "x-amz-content-sha256:UNSIGNED-PAYLOAD"])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("curl runs");
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(config.as_bytes()).expect("config to curl");
        drop(stdin);
        let out = child.wait_with_output().expect("curl ends");
        assert!(
            out.status.success(),
            "curl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    curl(&["-T", file.to_str().unwrap(), &url]);
    assert_eq!(get_bytes(&s3, "curled", "a key").await, data);
    assert_eq!(curl(&[&url]), data);
    let listing = curl(&[&format!(
        "{}/curled?list-type=2",
        cluster.s3_url().trim_end_matches('/')
    )]);
    assert!(String::from_utf8_lossy(&listing).contains("<Key>a key</Key>"));
}
