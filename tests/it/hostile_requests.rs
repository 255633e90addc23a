//! Hostile request heads and framing, found by probing the gateway from outside: each once
//! answered 5xx or let a damaged request take effect. Version ids that cannot name a
//! version, copy sources without a key, signatures for another service, a signed payload hash
//! that does not match, documents cut short, trailing checksums announced and not sent,
//! ranges of an empty object. Each gets S3's client error and changes nothing.

use aws_sdk_s3::types::{Delete, ObjectIdentifier, Tag, Tagging};
use bytes::Bytes;
use hyper::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;

const BUCKET: &str = "requests";

async fn cluster() -> Cluster {
    let cluster = Cluster::start(3).await;
    create_bucket(&cluster.client(), BUCKET).await;
    put_bytes(&cluster.client(), BUCKET, "kept", b"kept bytes").await;
    cluster
}

fn assert_refused(resp: &RawResponse, status: u16, code: &str, what: &str) {
    assert_eq!(resp.status, status, "{what}: {}", resp.text());
    assert!(
        resp.text().contains(&format!("<Code>{code}</Code>")),
        "{what}: {}",
        resp.text()
    );
}

const TAGS: &str = "<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>";

async fn tag_count(cluster: &Cluster) -> usize {
    let out = cluster
        .client()
        .get_object_tagging()
        .bucket(BUCKET)
        .key("kept")
        .send()
        .await
        .unwrap();
    out.tag_set().len()
}

#[tokio::test]
async fn version_ids_that_cannot_name_a_version_are_invalid_argument() {
    let cluster = cluster().await;
    let s3 = cluster.client();
    // Unprintable or overlong ids cannot name a version (a well-formed id of no version is
    // NoSuchVersion, see tagging and versioning).
    for id in ["%01", "a%0Ab", "a%20b", &"a".repeat(5000)] {
        for method in [Method::GET, Method::HEAD, Method::DELETE] {
            let path = format!("/{BUCKET}/kept?versionId={id}");
            let resp = cluster
                .signed_request(method.clone(), &path, &[], Bytes::new())
                .await;
            assert_eq!(resp.status, 400, "{method} versionId={:.20}", id);
        }
    }
    let resp = cluster
        .signed_request(
            Method::GET,
            &format!("/{BUCKET}?versions&key-marker=a&version-id-marker=x%01y"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_refused(&resp, 400, "InvalidArgument", "version-id-marker");
    // DeleteObjects reports it per key, and deletes nothing.
    let out = s3
        .delete_objects()
        .bucket(BUCKET)
        .delete(
            Delete::builder()
                .objects(
                    ObjectIdentifier::builder()
                        .key("kept")
                        .version_id("not\u{7f}a-version")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.errors().len(), 1, "{out:?}");
    assert_eq!(out.errors()[0].code(), Some("InvalidArgument"));
    assert_eq!(get_bytes(&s3, BUCKET, "kept").await, b"kept bytes");
    // An upload-id marker with a control character is echoed escaped, not a 500.
    let resp = cluster
        .signed_request(
            Method::GET,
            &format!("/{BUCKET}?uploads&upload-id-marker=x%01y"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.text().contains("x&#x01;y"), "{}", resp.text());
}

#[tokio::test]
async fn a_copy_source_without_a_key_is_invalid_argument() {
    let cluster = cluster().await;
    let s3 = cluster.client();
    for source in [
        format!("{BUCKET}/"),
        format!("/{BUCKET}/"),
        "nobucket/".to_owned(),
    ] {
        let resp = cluster
            .signed_request(
                Method::PUT,
                &format!("/{BUCKET}/copy"),
                &[("x-amz-copy-source", &source)],
                Bytes::new(),
            )
            .await;
        assert_refused(
            &resp,
            400,
            "InvalidArgument",
            &format!("copy from {source:?}"),
        );
    }
    let upload = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("upc")
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let resp = cluster
        .signed_request(
            Method::PUT,
            &format!("/{BUCKET}/upc?partNumber=1&uploadId={id}"),
            &[("x-amz-copy-source", &format!("{BUCKET}/"))],
            Bytes::new(),
        )
        .await;
    assert_refused(
        &resp,
        400,
        "InvalidArgument",
        "UploadPartCopy from a bucket only",
    );
    assert_s3_status(
        s3.head_object().bucket(BUCKET).key("copy").send().await,
        404,
    );
}

#[tokio::test]
async fn signatures_for_another_service_or_algorithm_are_refused() {
    let cluster = cluster().await;
    let body = Bytes::from_static(TAGS.as_bytes());
    let wrong_md5 = md5_base64(b"not this document");
    // Signed for STS, s3s would read the body before the operation is known.
    let signed = cluster.sign_for(
        "sts",
        &Method::PUT,
        &format!("/{BUCKET}/kept?tagging"),
        &[("content-md5", &wrong_md5)],
        &sha256_hex(&body),
    );
    let headers: Vec<(&str, &str)> = signed
        .iter()
        .filter(|(k, _)| k != "host")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let url = format!(
        "{}/{BUCKET}/kept?tagging",
        cluster.s3_url().trim_end_matches('/')
    );
    let resp = raw_request(Method::PUT, &url, &headers, body.clone()).await;
    assert_refused(
        &resp,
        400,
        "AuthorizationHeaderMalformed",
        "an sts-scoped signature",
    );
    assert_eq!(tag_count(&cluster).await, 0);
    let resp = raw_request(
        Method::GET,
        &url,
        &[("authorization", "AWS4-HMAC-SHA512 Credential=x/20261201/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00")],
        Bytes::new(),
    )
    .await;
    assert_refused(&resp, 400, "AuthorizationHeaderMalformed", "HMAC-SHA512");
    let presigned = format!(
        "{}/{BUCKET}/kept?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=x%2F20261201%2Fus-east-1%2Fsts%2Faws4_request",
        cluster.s3_url().trim_end_matches('/')
    );
    let resp = raw_request(Method::GET, &presigned, &[], Bytes::new()).await;
    assert_refused(
        &resp,
        400,
        "AuthorizationQueryParametersError",
        "an sts presigned URL",
    );
}

#[tokio::test]
async fn a_document_whose_signed_hash_or_length_is_wrong_changes_nothing() {
    let cluster = cluster().await;
    let body = Bytes::from_static(TAGS.as_bytes());
    let resp = cluster
        .signed_request_with_hash(
            Method::PUT,
            &format!("/{BUCKET}/kept?tagging"),
            &[],
            &"0".repeat(64),
            body.clone(),
        )
        .await;
    assert_refused(
        &resp,
        400,
        "XAmzContentSHA256Mismatch",
        "a wrong payload hash",
    );
    assert_eq!(tag_count(&cluster).await, 0);

    // Shorter than its Content-Length, then the client half-closes.
    let length = (body.len() + 100).to_string();
    let path = format!("/{BUCKET}/kept?tagging");
    let head = cluster.signed_head(
        &Method::PUT,
        &path,
        &[("content-length", &length)],
        "UNSIGNED-PAYLOAD",
    );
    let addr = cluster
        .s3_url()
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&head).await.unwrap();
    tcp.write_all(&body).await.unwrap();
    tcp.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tcp.read_to_end(&mut answer),
    )
    .await
    .expect("an answer")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("<Code>IncompleteBody</Code>"), "{answer}");
    assert_eq!(tag_count(&cluster).await, 0);

    // A wrong Content-MD5 is refused every time, however the body arrives (once it was
    // missed when the last bytes came in the same read as the rest).
    let wrong = md5_base64(b"not this document");
    for n in 0..200 {
        let resp = cluster
            .signed_request(
                Method::PUT,
                &format!("/{BUCKET}/kept?tagging"),
                &[("content-md5", &wrong)],
                body.clone(),
            )
            .await;
        assert_refused(&resp, 400, "BadDigest", &format!("attempt {n}"));
    }
    assert_eq!(tag_count(&cluster).await, 0);
    // The same document with its digest still works.
    cluster
        .client()
        .put_object_tagging()
        .bucket(BUCKET)
        .key("kept")
        .tagging(
            Tagging::builder()
                .tag_set(Tag::builder().key("a").value("b").build().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(tag_count(&cluster).await, 1);
}

#[tokio::test]
async fn a_trailing_checksum_announced_but_not_sent_is_refused() {
    let cluster = cluster().await;
    let s3 = cluster.client();
    let cases = [
        (
            "no trailer",
            "x-amz-checksum-crc32",
            "a\r\n0123456789\r\n0\r\n\r\n",
        ),
        (
            "another trailer than announced",
            "x-amz-checksum-crc32",
            "a\r\n0123456789\r\n0\r\nx-amz-checksum-crc32c:AAAAAA==\r\n\r\n",
        ),
        (
            "an unknown trailer",
            "x-amz-unknown",
            "a\r\n0123456789\r\n0\r\n\r\n",
        ),
    ];
    for (what, trailer, body) in cases {
        let resp = cluster
            .signed_request_with_hash(
                Method::PUT,
                &format!("/{BUCKET}/trailed"),
                &[
                    ("content-encoding", "aws-chunked"),
                    ("x-amz-decoded-content-length", "10"),
                    ("x-amz-trailer", trailer),
                ],
                "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                Bytes::from(body),
            )
            .await;
        assert_eq!(resp.status, 400, "{what}: {}", resp.text());
        assert_s3_status(
            s3.head_object().bucket(BUCKET).key("trailed").send().await,
            404,
        );
    }
}

#[tokio::test]
async fn a_range_of_an_empty_object_is_invalid_range() {
    let cluster = cluster().await;
    let s3 = cluster.client();
    put_bytes(&s3, BUCKET, "empty", b"").await;
    for range in ["bytes=-11", "bytes=0-", "bytes=0-0"] {
        assert_s3_error(
            s3.get_object()
                .bucket(BUCKET)
                .key("empty")
                .range(range)
                .send()
                .await,
            416,
            "InvalidRange",
        );
    }
    assert_eq!(get_bytes(&s3, BUCKET, "empty").await, b"");
}
