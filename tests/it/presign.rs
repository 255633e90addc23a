//! Presigned URLs (SigV4 query authentication) made by aws-sdk-s3 and fetched by a plain
//! HTTP client, as a browser or curl would: GET, PUT and HEAD work until the URL expires,
//! and are refused after; a tampered or over-long URL is refused.

use std::time::Duration;

use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use bytes::Bytes;
use hyper::Method;

use crate::harness::*;

fn presigning(secs: u64) -> PresigningConfig {
    PresigningConfig::expires_in(Duration::from_secs(secs)).unwrap()
}

/// Sends a presigned request as is, with `extra` headers, through the plain client.
pub async fn send_presigned(
    req: &PresignedRequest,
    extra: &[(&str, &str)],
    body: Bytes,
) -> RawResponse {
    let method = Method::from_bytes(req.method().as_bytes()).unwrap();
    let mut headers: Vec<(&str, &str)> = req.headers().collect();
    headers.extend_from_slice(extra);
    raw_request(method, req.uri(), &headers, body).await
}

#[tokio::test]
async fn presigned_get_put_and_head_work_with_a_plain_http_client() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "signed").await;
    let data = pattern(70_000, 7);

    let put = s3
        .put_object()
        .bucket("signed")
        .key("dir/file name.bin")
        .content_type("application/x-test")
        .presigned(presigning(300))
        .await
        .unwrap();
    let resp = send_presigned(&put, &[], Bytes::from(data.clone())).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("etag"), Some(etag_of(&data).as_str()));
    assert!(resp.header("x-amz-request-id").is_some());

    let get = s3
        .get_object()
        .bucket("signed")
        .key("dir/file name.bin")
        .presigned(presigning(300))
        .await
        .unwrap();
    let resp = send_presigned(&get, &[], Bytes::new()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_same_bytes(&resp.body, &data, "presigned GET");
    assert_eq!(resp.header("content-type"), Some("application/x-test"));

    let head = s3
        .head_object()
        .bucket("signed")
        .key("dir/file name.bin")
        .presigned(presigning(300))
        .await
        .unwrap();
    let resp = send_presigned(&head, &[], Bytes::new()).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), Some("70000"));

    // The SDK sees what the presigned PUT stored.
    assert_same_bytes(
        &get_bytes(&s3, "signed", "dir/file name.bin").await,
        &data,
        "SDK GET after presigned PUT",
    );

    // A URL whose signed parts were changed is refused.
    let other_key = get.uri().replace("file%20name.bin", "other.bin");
    let resp = raw_request(Method::GET, &other_key, &[], Bytes::new()).await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert!(
        resp.text().contains("SignatureDoesNotMatch"),
        "{}",
        resp.text()
    );
    let anonymous = format!("{}/signed/dir/file%20name.bin", cluster.s3_url());
    let resp = raw_request(Method::GET, &anonymous, &[], Bytes::new()).await;
    assert_eq!(resp.status, 403, "{}", resp.text());
}

#[tokio::test]
async fn presigned_urls_expire() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "expiry").await;
    put_bytes(&s3, "expiry", "k", b"secret").await;

    let short = s3
        .get_object()
        .bucket("expiry")
        .key("k")
        .presigned(presigning(1))
        .await
        .unwrap();
    let put = s3
        .put_object()
        .bucket("expiry")
        .key("k")
        .presigned(presigning(1))
        .await
        .unwrap();
    eventually(
        "a URL presigned for 1 s is refused",
        Duration::from_secs(10),
        || async {
            let resp = send_presigned(&short, &[], Bytes::new()).await;
            match resp.status {
                403 if resp.text().contains("AccessDenied") => Ok(()),
                200 => Err("still accepted".into()),
                s => Err(format!("unexpected {s}: {}", resp.text())),
            }
        },
    )
    .await;
    let resp = send_presigned(&put, &[], Bytes::from_static(b"overwrite")).await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert!(resp.text().contains("AccessDenied"), "{}", resp.text());
    assert_eq!(get_bytes(&s3, "expiry", "k").await, b"secret");

    // At most a week, as in S3 (the SDK will not even sign more, so edit a URL).
    let week = s3
        .get_object()
        .bucket("expiry")
        .key("k")
        .presigned(presigning(604_800))
        .await
        .unwrap();
    let resp = send_presigned(&week, &[], Bytes::new()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let too_long = week
        .uri()
        .replace("X-Amz-Expires=604800", "X-Amz-Expires=604801");
    assert_ne!(too_long, week.uri());
    let resp = raw_request(Method::GET, &too_long, &[], Bytes::new()).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(
        resp.text().contains("AuthorizationQueryParametersError"),
        "{}",
        resp.text()
    );
}
