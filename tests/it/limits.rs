//! S3's limits on what a request may carry, refused with S3's error before anything is
//! stored: user metadata over 2 KB, a Content-MD5 header that is no MD5.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::MetadataDirective;

use crate::harness::*;

#[tokio::test]
async fn user_metadata_over_2_kb_is_metadata_too_large_on_every_write() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "limits").await;
    // Names (without `x-amz-meta-`) and values count: 1 + 2047 bytes is the most allowed.
    let fits = "v".repeat(2047);
    s3.put_object()
        .bucket("limits")
        .key("fits")
        .metadata("k", &fits)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("2 KB of metadata is allowed");
    let head = s3
        .head_object()
        .bucket("limits")
        .key("fits")
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.metadata().and_then(|m| m.get("k")).map(String::len),
        Some(2047)
    );
    let big = "v".repeat(2048);
    assert_s3_error(
        s3.put_object()
            .bucket("limits")
            .key("big")
            .metadata("k", &big)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        400,
        "MetadataTooLarge",
    );
    assert_s3_status(
        s3.head_object().bucket("limits").key("big").send().await,
        404,
    );
    assert_s3_error(
        s3.create_multipart_upload()
            .bucket("limits")
            .key("big")
            .metadata("k", &big)
            .send()
            .await,
        400,
        "MetadataTooLarge",
    );
    assert_s3_error(
        s3.copy_object()
            .bucket("limits")
            .key("copy")
            .copy_source("limits/fits")
            .metadata_directive(MetadataDirective::Replace)
            .metadata("k", &big)
            .send()
            .await,
        400,
        "MetadataTooLarge",
    );
    assert_s3_status(
        s3.head_object().bucket("limits").key("copy").send().await,
        404,
    );
}

#[tokio::test]
async fn an_empty_content_md5_is_invalid_digest_and_stores_nothing() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client_when_required();
    create_bucket(&s3, "digest").await;
    assert_s3_error(
        s3.put_object()
            .bucket("digest")
            .key("k")
            .content_md5("")
            .body(ByteStream::from_static(b"data"))
            .send()
            .await,
        400,
        "InvalidDigest",
    );
    assert_s3_status(s3.head_object().bucket("digest").key("k").send().await, 404);
}
