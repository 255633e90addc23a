//! Integrity at the S3 edge: Content-MD5 and checksums verified (a mismatch stores
//! nothing), request ids on every answer, and connections left usable (or closed with
//! `Connection: close`) after a refused upload.

use aws_sdk_s3::operation::RequestId;
use aws_sdk_s3::primitives::ByteStream;

use super::objects::cluster_with_bucket;
use crate::harness::*;

#[tokio::test]
async fn content_md5_is_checked_and_a_mismatch_changes_nothing() {
    let cluster = cluster_with_bucket("md5").await;
    for (label, s3) in cluster.clients() {
        for (size, seed) in [(1000, 1), (300_000, 2)] {
            let key = format!("{label}/{size}");
            let old = pattern(size, seed);
            s3.put_object()
                .bucket("md5")
                .key(&key)
                .body(ByteStream::from(old.clone()))
                .content_md5(md5_base64(&old))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{key}: a correct Content-MD5 is accepted: {e:?}"));

            let new = pattern(size, seed + 100);
            assert_s3_error(
                s3.put_object()
                    .bucket("md5")
                    .key(&key)
                    .body(ByteStream::from(new.clone()))
                    .content_md5(md5_base64(&old))
                    .send()
                    .await,
                400,
                "BadDigest",
            );
            let got = s3
                .get_object()
                .bucket("md5")
                .key(&key)
                .send()
                .await
                .unwrap();
            assert_eq!(got.e_tag(), Some(etag_of(&old).as_str()), "{key}");
            let body = got.body.collect().await.unwrap().into_bytes();
            assert_same_bytes(&body, &old, &format!("{key} after rejected puts"));

            // A rejected first write leaves no object behind.
            let fresh = format!("{key}-fresh");
            assert_s3_error(
                s3.put_object()
                    .bucket("md5")
                    .key(&fresh)
                    .body(ByteStream::from(new.clone()))
                    .content_md5(md5_base64(b"something else"))
                    .send()
                    .await,
                400,
                "BadDigest",
            );
            assert_s3_error(
                s3.get_object().bucket("md5").key(&fresh).send().await,
                404,
                "NoSuchKey",
            );
        }
    }
}

#[tokio::test]
async fn a_wrong_crc32_checksum_is_bad_digest_and_changes_nothing() {
    let cluster = cluster_with_bucket("crc").await;
    for (label, s3) in cluster.clients() {
        for (size, seed) in [(1000, 1), (300_000, 2)] {
            let key = format!("{label}/{size}");
            let old = pattern(size, seed);
            put_bytes(&s3, "crc", &key, &old).await;
            let new = pattern(size, seed + 100);
            for target in [key.clone(), format!("{key}-fresh")] {
                assert_s3_error(
                    s3.put_object()
                        .bucket("crc")
                        .key(&target)
                        .body(ByteStream::from(new.clone()))
                        .checksum_crc32("AAAAAA==")
                        .send()
                        .await,
                    400,
                    "BadDigest",
                );
            }
            assert_eq!(get_bytes(&s3, "crc", &key).await, old, "{key}");
            assert_s3_error(
                s3.get_object()
                    .bucket("crc")
                    .key(format!("{key}-fresh"))
                    .send()
                    .await,
                404,
                "NoSuchKey",
            );
        }
    }
}

#[tokio::test]
async fn responses_carry_a_request_id() {
    let cluster = cluster_with_bucket("ids").await;
    let s3 = cluster.client();
    put_bytes(&s3, "ids", "k", b"v").await;
    let recorder = ResponseRecorder::default();
    let first = s3
        .get_object()
        .bucket("ids")
        .key("k")
        .customize()
        .interceptor(recorder.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        recorder.header("x-amz-request-id").as_deref(),
        first.request_id(),
        "the SDK reads the request id from the x-amz-request-id header"
    );
    let second = s3.get_object().bucket("ids").key("k").send().await.unwrap();
    let (a, b) = (first.request_id(), second.request_id());
    assert!(a.is_some_and(|id| !id.is_empty()), "no x-amz-request-id");
    assert_ne!(a, b, "request ids must differ per request");

    let err = s3
        .get_object()
        .bucket("ids")
        .key("missing")
        .send()
        .await
        .expect_err("missing key");
    assert!(
        err.request_id().is_some_and(|id| !id.is_empty()),
        "error without x-amz-request-id: {err:?}"
    );
}

#[tokio::test]
async fn a_malformed_content_md5_is_invalid_digest_and_changes_nothing() {
    let cluster = cluster_with_bucket("md5").await;
    let s3 = cluster.client();
    let old = pattern(1000, 1);
    put_bytes(&s3, "md5", "k", &old).await;
    // Not base64, and base64 of 3 bytes instead of 16.
    for bad in ["not base64!", "AAAA"] {
        // A fresh client per rejected upload: see the test below for connection reuse.
        assert_s3_error(
            cluster
                .client()
                .put_object()
                .bucket("md5")
                .key("k")
                .body(ByteStream::from(pattern(300_000, 2)))
                .content_md5(bad)
                .send()
                .await,
            400,
            "InvalidDigest",
        );
    }
    assert_eq!(get_bytes(&s3, "md5", "k").await, old);
}

#[tokio::test]
async fn a_refused_upload_either_keeps_the_connection_usable_or_says_connection_close() {
    let cluster = cluster_with_bucket("conn").await;
    let addr = cluster.s3_url().trim_start_matches("http://").to_string();
    // Refused before the body is read (anonymous), with bodies of growing size. A client
    // reuses a keep-alive connection unless told `Connection: close`; if the server then
    // drops it, the client's next request dies with IncompleteMessage.
    for size in [10, 100_000, 1_000_000] {
        let mut first =
            format!("PUT /conn/k HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {size}\r\n\r\n")
                .into_bytes();
        first.extend(pattern(size, 1));
        let second = format!("GET /conn/k HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        let probe = keep_alive_probe(&addr, &first, second.as_bytes()).await;
        assert!(
            probe.first.starts_with("HTTP/1.1 403"),
            "{size}: {}",
            probe.first
        );
        if !probe.first_said_close() {
            let second = probe.second.unwrap_or_else(|e| {
                panic!(
                    "{size}-byte refused PUT: the connection was dropped ({e}) although the \
                     answer did not say `Connection: close`:\n{}",
                    probe.first
                )
            });
            assert!(second.starts_with("HTTP/1.1 "), "{size}: {second}");
        }
    }
}

#[tokio::test]
async fn an_empty_body_that_expected_100_continue_closes_the_connection() {
    let cluster = cluster_with_bucket("cont").await;
    let addr = cluster.s3_url().trim_start_matches("http://").to_string();
    // botocore sends `Expect: 100-continue` with empty bodies too; no 100 Continue is due, and
    // botocore then misreads the next response on the same connection unless it closes.
    let second = format!("GET /cont/k HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    for target in ["PUT /cont/k", "POST /cont/k?uploads"] {
        let first = format!(
            "{target} HTTP/1.1\r\nHost: {addr}\r\nExpect: 100-continue\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let probe = keep_alive_probe(&addr, first.as_bytes(), second.as_bytes()).await;
        assert!(
            probe.first.starts_with("HTTP/1.1 403"),
            "{target}: {}",
            probe.first
        );
        assert!(probe.first_said_close(), "{target}: {}", probe.first);
    }
    // Without the expectation the connection stays open for the next request.
    let first = format!("PUT /cont/k HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n");
    let probe = keep_alive_probe(&addr, first.as_bytes(), second.as_bytes()).await;
    assert!(!probe.first_said_close(), "{}", probe.first);
    let second = probe.second.expect("the connection stays usable");
    assert!(second.starts_with("HTTP/1.1 403"), "{second}");
}
