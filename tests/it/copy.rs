//! CopyObject through the gateway: another key with metadata copied, onto itself with
//! `MetadataDirective=REPLACE`, and the refusal of a self-copy that changes nothing.

use std::collections::HashMap;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::MetadataDirective;

use super::objects::{cluster_with_bucket, copy_source};
use crate::harness::*;

#[tokio::test]
async fn copy_object_copies_body_and_metadata_to_another_key() {
    let cluster = cluster_with_bucket("src").await;
    let s3 = cluster.client();
    create_bucket(&s3, "dst").await;
    for (name, data) in [("small", b"copy me".to_vec()), ("big", pattern(300_000, 9))] {
        let src_key = format!("docs/my {name} file.txt");
        s3.put_object()
            .bucket("src")
            .key(&src_key)
            .body(ByteStream::from(data.clone()))
            .content_type("text/plain")
            .metadata("origin", "source")
            .send()
            .await
            .unwrap();
        for (bucket, key) in [("src", format!("copy-of-{name}")), ("dst", src_key.clone())] {
            let out = s3
                .copy_object()
                .copy_source(copy_source("src", &src_key))
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("copy to {bucket}/{key}: {e:?}"));
            let etag = out.copy_object_result().and_then(|r| r.e_tag());
            assert_eq!(etag, Some(etag_of(&data).as_str()), "{bucket}/{key}");

            let got = s3
                .get_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .unwrap();
            assert_eq!(got.content_type(), Some("text/plain"), "{bucket}/{key}");
            assert_eq!(
                got.metadata()
                    .and_then(|m| m.get("origin"))
                    .map(String::as_str),
                Some("source"),
                "{bucket}/{key}"
            );
            let body = got.body.collect().await.unwrap().into_bytes();
            assert_same_bytes(&body, &data, &key);
        }
        // The source is untouched.
        assert_eq!(get_bytes(&s3, "src", &src_key).await, data);
    }
    assert_s3_error(
        s3.copy_object()
            .copy_source(copy_source("src", "no-such-source"))
            .bucket("dst")
            .key("x")
            .send()
            .await,
        404,
        "NoSuchKey",
    );
}

#[tokio::test]
async fn copy_object_onto_itself_with_replace_changes_only_metadata() {
    let cluster = cluster_with_bucket("self").await;
    let s3 = cluster.client();
    let data = pattern(100_000, 4);
    s3.put_object()
        .bucket("self")
        .key("obj")
        .body(ByteStream::from(data.clone()))
        .content_type("application/octet-stream")
        .metadata("mtime", "1")
        .metadata("stale", "yes")
        .send()
        .await
        .unwrap();
    // What rclone does to update a modification time.
    s3.copy_object()
        .copy_source(copy_source("self", "obj"))
        .bucket("self")
        .key("obj")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/plain")
        .metadata("mtime", "2")
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket("self")
        .key("obj")
        .send()
        .await
        .unwrap();
    assert_eq!(got.content_type(), Some("text/plain"));
    let want: HashMap<String, String> = [("mtime".to_string(), "2".to_string())].into();
    assert_eq!(got.metadata(), Some(&want));
    assert_eq!(got.e_tag(), Some(etag_of(&data).as_str()));
    let body = got.body.collect().await.unwrap().into_bytes();
    assert_same_bytes(&body, &data, "self-copied object");
}

#[tokio::test]
async fn copy_object_onto_itself_without_changes_is_invalid_request() {
    let cluster = cluster_with_bucket("self").await;
    let s3 = cluster.client();
    put_bytes(&s3, "self", "obj", b"same").await;
    assert_s3_error(
        s3.copy_object()
            .copy_source(copy_source("self", "obj"))
            .bucket("self")
            .key("obj")
            .send()
            .await,
        400,
        "InvalidRequest",
    );
    assert_eq!(get_bytes(&s3, "self", "obj").await, b"same");
}
