//! Object operations through the gateway: round trips, ETags, stored headers and user
//! metadata, large bodies, ranges, awkward keys and deletes (copies are in `copy`,
//! integrity checks in `integrity`).
//! Behaviour that depends on how the SDK sends bodies runs with both checksum settings.

use std::collections::HashMap;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::harness::*;

const EMPTY_ETAG: &str = "\"d41d8cd98f00b204e9800998ecf8427e\"";

/// Bytes left unescaped in a `x-amz-copy-source` value (S3 wants the key URL-encoded,
/// with `/` kept).
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub(crate) fn copy_source(bucket: &str, key: &str) -> String {
    format!("{bucket}/{}", utf8_percent_encode(key, COPY_SOURCE))
}

pub(crate) async fn cluster_with_bucket(bucket: &str) -> Cluster {
    let cluster = Cluster::start(3).await;
    create_bucket(&cluster.client(), bucket).await;
    cluster
}

#[tokio::test]
async fn put_get_head_delete_round_trip_with_md5_etag() {
    let cluster = cluster_with_bucket("objects").await;
    for (label, s3) in cluster.clients() {
        let key = format!("{label}/greeting.txt");
        let data = b"hello, quorum".to_vec();
        let put = s3
            .put_object()
            .bucket("objects")
            .key(&key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(put.e_tag(), Some(etag_of(&data).as_str()), "{label}");

        let got = s3
            .get_object()
            .bucket("objects")
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(got.e_tag(), Some(etag_of(&data).as_str()), "{label}");
        assert_eq!(got.content_length(), Some(data.len() as i64), "{label}");
        assert!(got.last_modified().is_some(), "{label}: no Last-Modified");
        let body = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(body.as_ref(), data.as_slice(), "{label}");

        let head = s3
            .head_object()
            .bucket("objects")
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.e_tag(), Some(etag_of(&data).as_str()), "{label}");
        assert_eq!(head.content_length(), Some(data.len() as i64), "{label}");

        let recorder = ResponseRecorder::default();
        s3.delete_object()
            .bucket("objects")
            .key(&key)
            .customize()
            .interceptor(recorder.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{label}: delete: {e:?}"));
        assert_eq!(recorder.status(), 204, "{label}: DELETE answers 204");
        assert_s3_error(
            s3.get_object().bucket("objects").key(&key).send().await,
            404,
            "NoSuchKey",
        );
        assert_s3_status(
            s3.head_object().bucket("objects").key(&key).send().await,
            404,
        );
    }
}

#[tokio::test]
async fn empty_object_has_the_md5_of_nothing_as_etag() {
    let cluster = cluster_with_bucket("empty").await;
    for (label, s3) in cluster.clients() {
        let key = format!("{label}-empty");
        let put = s3
            .put_object()
            .bucket("empty")
            .key(&key)
            .body(ByteStream::from_static(b""))
            .send()
            .await
            .unwrap();
        assert_eq!(put.e_tag(), Some(EMPTY_ETAG), "{label}");
        let got = s3
            .get_object()
            .bucket("empty")
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(got.e_tag(), Some(EMPTY_ETAG), "{label}");
        assert_eq!(got.content_length(), Some(0), "{label}");
        assert!(got.body.collect().await.unwrap().into_bytes().is_empty());
        let head = s3
            .head_object()
            .bucket("empty")
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), Some(0), "{label}");
        assert_eq!(head.e_tag(), Some(EMPTY_ETAG), "{label}");
    }
}

#[tokio::test]
async fn standard_headers_and_user_metadata_round_trip() {
    let cluster = cluster_with_bucket("meta").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.bin");
    let data = pattern(3000, 7);
    std::fs::write(&file, &data).unwrap();

    for (label, s3) in cluster.clients() {
        // A file body goes out aws-chunked with the default client: the stored
        // Content-Encoding must not keep the `aws-chunked` token.
        for source in ["memory", "file"] {
            let key = format!("{label}/{source}");
            let body = match source {
                "memory" => ByteStream::from(data.clone()),
                _ => ByteStream::from_path(&file).await.unwrap(),
            };
            s3.put_object()
                .bucket("meta")
                .key(&key)
                .body(body)
                .content_type("text/x-s3q; charset=utf-8")
                .cache_control("max-age=60, private")
                .content_disposition("attachment; filename=\"report.txt\"")
                .content_encoding("gzip")
                .metadata("color", "blue")
                .metadata("Mixed-Case", "Value With  Spaces")
                .metadata("mtime", "1700000000.123456789")
                .send()
                .await
                .unwrap_or_else(|e| panic!("{label}/{source}: {e:?}"));

            let want_meta: HashMap<String, String> = [
                ("color", "blue"),
                ("mixed-case", "Value With  Spaces"),
                ("mtime", "1700000000.123456789"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();

            let head = s3
                .head_object()
                .bucket("meta")
                .key(&key)
                .send()
                .await
                .unwrap();
            let got = s3
                .get_object()
                .bucket("meta")
                .key(&key)
                .send()
                .await
                .unwrap();
            for (what, content_type, cache, disposition, encoding, meta, etag) in [
                (
                    "head",
                    head.content_type(),
                    head.cache_control(),
                    head.content_disposition(),
                    head.content_encoding(),
                    head.metadata(),
                    head.e_tag(),
                ),
                (
                    "get",
                    got.content_type(),
                    got.cache_control(),
                    got.content_disposition(),
                    got.content_encoding(),
                    got.metadata(),
                    got.e_tag(),
                ),
            ] {
                let ctx = format!("{label}/{source} {what}");
                assert_eq!(content_type, Some("text/x-s3q; charset=utf-8"), "{ctx}");
                assert_eq!(cache, Some("max-age=60, private"), "{ctx}");
                assert_eq!(
                    disposition,
                    Some("attachment; filename=\"report.txt\""),
                    "{ctx}"
                );
                assert_eq!(encoding, Some("gzip"), "{ctx}");
                assert_eq!(meta, Some(&want_meta), "{ctx}");
                assert_eq!(etag, Some(etag_of(&data).as_str()), "{ctx}");
            }
            let body = got.body.collect().await.unwrap().into_bytes();
            assert_same_bytes(&body, &data, &key);
        }
    }
}

#[tokio::test]
async fn twenty_mib_objects_from_file_and_memory_are_byte_identical() {
    const SIZE: usize = 20 * 1024 * 1024;
    let cluster = cluster_with_bucket("large").await;
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(SIZE, 20);
    let file = dir.path().join("large.bin");
    std::fs::write(&file, &data).unwrap();

    for (label, s3) in cluster.clients() {
        for source in ["file", "memory"] {
            let key = format!("{label}/{source}/large.bin");
            let body = match source {
                "file" => ByteStream::from_path(&file).await.unwrap(),
                _ => ByteStream::from(data.clone()),
            };
            let put = s3
                .put_object()
                .bucket("large")
                .key(&key)
                .body(body)
                .send()
                .await
                .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
            assert_eq!(put.e_tag(), Some(etag_of(&data).as_str()), "{key}");
            let head = s3
                .head_object()
                .bucket("large")
                .key(&key)
                .send()
                .await
                .unwrap();
            assert_eq!(head.content_length(), Some(SIZE as i64), "{key}");
            let got = get_bytes(&s3, "large", &key).await;
            assert_same_bytes(&got, &data, &key);
        }
    }
}

/// One ranged GET: the body and `Content-Range` of a 206 answer.
async fn get_range(s3: &Client, bucket: &str, key: &str, range: &str) -> (Vec<u8>, String) {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .range(range)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {key} Range {range}: {e:?}"));
    let content_range = out
        .content_range()
        .unwrap_or_else(|| panic!("{range}: no Content-Range"))
        .to_string();
    let length = out.content_length();
    let body = out.body.collect().await.unwrap().into_bytes().to_vec();
    assert_eq!(length, Some(body.len() as i64), "{range}: Content-Length");
    (body, content_range)
}

#[tokio::test]
async fn range_reads_return_the_requested_bytes() {
    let cluster = cluster_with_bucket("ranges").await;
    // A small object (may be stored inline) and one spanning several 64 KiB blocks.
    let small = pattern(50, 1);
    let big = pattern(200_000, 2);
    for (label, s3) in cluster.clients() {
        for (name, data) in [("small", &small), ("big", &big)] {
            let key = format!("{label}/{name}");
            put_bytes(&s3, "ranges", &key, data).await;
            let len = data.len();
            let mid = len / 2;
            let mut cases: Vec<(String, usize, usize)> = vec![
                ("bytes=0-0".into(), 0, 0),
                (format!("bytes=1-{mid}"), 1, mid),
                ("bytes=-10".into(), len - 10, len - 1),
                (format!("bytes=-{}", len + 100), 0, len - 1),
                (format!("bytes={}-", len - 5), len - 5, len - 1),
                (
                    format!("bytes={}-{}", len - 3, len + 1000),
                    len - 3,
                    len - 1,
                ),
                (format!("bytes={}-{}", len - 1, len - 1), len - 1, len - 1),
            ];
            if len > 2 * 65536 {
                // Across the first and second 64 KiB verification blocks of a blob.
                cases.push(("bytes=65530-65545".into(), 65530, 65545));
                cases.push(("bytes=65536-131071".into(), 65536, 131071));
            }
            for (range, first, last) in cases {
                let (body, content_range) = get_range(&s3, "ranges", &key, &range).await;
                let ctx = format!("{key} {range}");
                assert_same_bytes(&body, &data[first..=last], &ctx);
                assert_eq!(
                    content_range,
                    format!("bytes {first}-{last}/{len}"),
                    "{ctx}"
                );
            }
            for range in [
                format!("bytes={len}-"),
                format!("bytes={}-{}", len + 10, len + 20),
            ] {
                let res = s3
                    .get_object()
                    .bucket("ranges")
                    .key(&key)
                    .range(&range)
                    .send()
                    .await;
                let f = failure(res);
                assert_eq!(
                    (f.status, f.code.as_deref()),
                    (Some(416), Some("InvalidRange")),
                    "{key} {range}: {}",
                    f.debug
                );
            }
        }
    }
}

#[tokio::test]
async fn a_ranged_get_on_an_empty_object_is_invalid_range() {
    let cluster = cluster_with_bucket("ranges").await;
    let s3 = cluster.client();
    put_bytes(&s3, "ranges", "empty", b"").await;
    assert_s3_error(
        s3.get_object()
            .bucket("ranges")
            .key("empty")
            .range("bytes=0-0")
            .send()
            .await,
        416,
        "InvalidRange",
    );
    // Without a range the empty object is still served.
    assert!(get_bytes(&s3, "ranges", "empty").await.is_empty());
}

#[tokio::test]
async fn awkward_keys_round_trip_exactly() {
    let cluster = cluster_with_bucket("keys").await;
    let keys = [
        "with space",
        "  leading and trailing  ",
        "caf\u{e9}",
        "\u{65e5}\u{672c}/\u{8a9e}.txt",
        "a+b",
        "100%",
        "%2F-looks-encoded",
        "a&b=c;d",
        "../x",
        "a/../b",
        "./dot",
        "dir//double",
        "trailing/",
        "q?x#y",
        "quote\"s and 'apos' <xml>&amp;",
        "~tilde*star(paren)!",
        "emoji-\u{1f600}",
    ];
    let s3 = cluster.client();
    for (i, key) in keys.iter().enumerate() {
        let data = format!("{i}:{key}").into_bytes();
        put_bytes(&s3, "keys", key, &data).await;
    }
    let reader = cluster.client_when_required();
    for (i, key) in keys.iter().enumerate() {
        let data = format!("{i}:{key}").into_bytes();
        assert_eq!(get_bytes(&reader, "keys", key).await, data, "key {key:?}");
        let head = reader
            .head_object()
            .bucket("keys")
            .key(*key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("head {key:?}: {e:?}"));
        assert_eq!(head.content_length(), Some(data.len() as i64), "{key:?}");
    }
    // Dot segments are part of the key, not path structure.
    for other in ["x", "b", "dot", "dir/double"] {
        assert_s3_error(
            s3.get_object().bucket("keys").key(other).send().await,
            404,
            "NoSuchKey",
        );
    }
    let listed = s3.list_objects_v2().bucket("keys").send().await.unwrap();
    let got: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    let mut want: Vec<&str> = keys.to_vec();
    want.sort();
    assert_eq!(got, want);

    for key in keys {
        s3.delete_object()
            .bucket("keys")
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("delete {key:?}: {e:?}"));
    }
    let listed = s3.list_objects_v2().bucket("keys").send().await.unwrap();
    assert!(listed.contents().is_empty(), "{:?}", listed.contents());
}

#[tokio::test]
async fn keys_up_to_1024_bytes_are_accepted_and_longer_ones_are_key_too_long() {
    let cluster = cluster_with_bucket("long").await;
    let s3 = cluster.client();
    let ascii_1024 = format!("k/{}", "x".repeat(1022));
    let utf8_1024 = "\u{e9}".repeat(512); // 2 bytes each: the limit counts bytes
    for key in [&ascii_1024, &utf8_1024] {
        assert_eq!(key.len(), 1024);
        put_bytes(&s3, "long", key, b"fits").await;
        assert_eq!(get_bytes(&s3, "long", key).await, b"fits");
    }
    let ascii_1025 = format!("{ascii_1024}y");
    let utf8_1026 = format!("{utf8_1024}\u{e9}");
    for key in [&ascii_1025, &utf8_1026] {
        assert_s3_error(
            s3.put_object()
                .bucket("long")
                .key(key)
                .body(ByteStream::from_static(b"too long"))
                .send()
                .await,
            400,
            "KeyTooLongError",
        );
    }
    let listed = s3.list_objects_v2().bucket("long").send().await.unwrap();
    assert_eq!(listed.key_count(), Some(2), "{:?}", listed.contents());
}

#[tokio::test]
async fn overwrite_replaces_body_and_metadata() {
    let cluster = cluster_with_bucket("over").await;
    for (label, s3) in cluster.clients() {
        let key = format!("{label}/k");
        // Blob-sized, then small, then blob-sized again: each version replaces the last
        // whatever way its body is stored.
        let versions = [pattern(300_000, 1), b"tiny".to_vec(), pattern(200_000, 3)];
        for (n, data) in versions.iter().enumerate() {
            s3.put_object()
                .bucket("over")
                .key(&key)
                .body(ByteStream::from(data.clone()))
                .content_type(format!("application/x-v{n}"))
                .metadata(format!("only-v{n}"), "yes")
                .send()
                .await
                .unwrap();
            let got = s3
                .get_object()
                .bucket("over")
                .key(&key)
                .send()
                .await
                .unwrap();
            let ctx = format!("{label} version {n}");
            assert_eq!(got.e_tag(), Some(etag_of(data).as_str()), "{ctx}");
            assert_eq!(
                got.content_type(),
                Some(format!("application/x-v{n}").as_str())
            );
            let meta = got.metadata().cloned().unwrap_or_default();
            assert_eq!(
                meta.keys().collect::<Vec<_>>(),
                [&format!("only-v{n}")],
                "{ctx}: metadata is replaced, not merged"
            );
            let body = got.body.collect().await.unwrap().into_bytes();
            assert_same_bytes(&body, data, &ctx);
        }
    }
}

#[tokio::test]
async fn deleting_a_missing_key_succeeds() {
    let cluster = cluster_with_bucket("del").await;
    let s3 = cluster.client();
    let recorder = ResponseRecorder::default();
    s3.delete_object()
        .bucket("del")
        .key("never-existed")
        .customize()
        .interceptor(recorder.clone())
        .send()
        .await
        .expect("DELETE of a missing key is a success in S3");
    assert_eq!(recorder.status(), 204);
    put_bytes(&s3, "del", "once", b"1").await;
    for _ in 0..2 {
        s3.delete_object()
            .bucket("del")
            .key("once")
            .send()
            .await
            .unwrap();
    }
    assert_s3_error(
        s3.get_object().bucket("del").key("once").send().await,
        404,
        "NoSuchKey",
    );
}

fn delete_request(keys: &[&str], quiet: bool) -> Delete {
    let objects = keys
        .iter()
        .map(|k| ObjectIdentifier::builder().key(*k).build().unwrap())
        .collect();
    Delete::builder()
        .set_objects(Some(objects))
        .quiet(quiet)
        .build()
        .unwrap()
}

#[tokio::test]
async fn delete_objects_removes_keys_and_reports_them_unless_quiet() {
    let cluster = cluster_with_bucket("multi").await;
    for (label, s3) in cluster.clients() {
        let keys: Vec<String> = (0..6).map(|i| format!("{label}/k{i}")).collect();
        for key in &keys {
            put_bytes(&s3, "multi", key, key.as_bytes()).await;
        }
        let missing = format!("{label}/missing");
        let first: Vec<&str> = vec![&keys[0], &keys[1], &keys[2], &missing];
        let out = s3
            .delete_objects()
            .bucket("multi")
            .delete(delete_request(&first, false))
            .send()
            .await
            .unwrap();
        let mut deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
        deleted.sort();
        let mut want = first.clone();
        want.sort();
        assert_eq!(deleted, want, "{label}: a missing key counts as deleted");
        assert!(out.errors().is_empty(), "{label}: {:?}", out.errors());

        let rest: Vec<&str> = vec![&keys[3], &keys[4]];
        let out = s3
            .delete_objects()
            .bucket("multi")
            .delete(delete_request(&rest, true))
            .send()
            .await
            .unwrap();
        assert!(out.deleted().is_empty(), "{label}: quiet lists nothing");
        assert!(out.errors().is_empty(), "{label}: {:?}", out.errors());

        let listed = s3
            .list_objects_v2()
            .bucket("multi")
            .prefix(format!("{label}/"))
            .send()
            .await
            .unwrap();
        let left: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(left, [keys[5].as_str()], "{label}");
        assert_eq!(get_bytes(&s3, "multi", &keys[5]).await, keys[5].as_bytes());
    }
}
