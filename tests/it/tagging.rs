//! Object tags (header, copy, multipart, versions, limits) replicated and repaired like any
//! record write, and bucket tags.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, Tag, Tagging,
    TaggingDirective, VersioningConfiguration,
};

use crate::harness::*;

fn tagging(pairs: &[(&str, &str)]) -> Tagging {
    let tags = pairs
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap())
        .collect();
    Tagging::builder().set_tag_set(Some(tags)).build().unwrap()
}

fn pairs(tags: &[Tag]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = tags
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    out.sort();
    out
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn object_tags(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<(String, String)> {
    let out = s3
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    pairs(out.tag_set())
}

#[tokio::test]
async fn object_tags_round_trip_and_count_on_get_and_head() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "tags").await;
    s3.put_object()
        .bucket("tags")
        .key("k")
        .tagging("project=blue&owner=a%20b&empty=")
        .body(ByteStream::from_static(b"body"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        object_tags(&s3, "tags", "k").await,
        owned(&[("empty", ""), ("owner", "a b"), ("project", "blue")])
    );
    let got = s3
        .get_object()
        .bucket("tags")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(got.tag_count(), Some(3));
    let head = s3
        .head_object()
        .bucket("tags")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(head.tag_count(), Some(3));

    s3.put_object_tagging()
        .bucket("tags")
        .key("k")
        .tagging(tagging(&[("only", "one")]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        object_tags(&s3, "tags", "k").await,
        owned(&[("only", "one")])
    );
    // The body and metadata are unchanged by a tag change.
    assert_eq!(get_bytes(&s3, "tags", "k").await, b"body");

    s3.delete_object_tagging()
        .bucket("tags")
        .key("k")
        .send()
        .await
        .unwrap();
    assert!(object_tags(&s3, "tags", "k").await.is_empty());
    let got = s3
        .get_object()
        .bucket("tags")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(got.tag_count(), None);

    // A new write starts with its own tags (none here).
    s3.put_object_tagging()
        .bucket("tags")
        .key("k")
        .tagging(tagging(&[("a", "1")]))
        .send()
        .await
        .unwrap();
    put_bytes(&s3, "tags", "k", b"new").await;
    assert!(object_tags(&s3, "tags", "k").await.is_empty());

    assert_s3_error(
        s3.get_object_tagging()
            .bucket("tags")
            .key("nope")
            .send()
            .await,
        404,
        "NoSuchKey",
    );
    assert_s3_error(
        s3.put_object_tagging()
            .bucket("nope")
            .key("k")
            .tagging(tagging(&[("a", "1")]))
            .send()
            .await,
        404,
        "NoSuchBucket",
    );
}

#[tokio::test]
async fn invalid_tag_sets_are_invalid_tag_and_change_nothing() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "limits").await;
    put_bytes(&s3, "limits", "k", b"x").await;
    s3.put_object_tagging()
        .bucket("limits")
        .key("k")
        .tagging(tagging(&[("keep", "me")]))
        .send()
        .await
        .unwrap();
    let eleven: Vec<(String, String)> = (0..11).map(|i| (format!("k{i}"), "v".into())).collect();
    let long_key = "k".repeat(129);
    let long_value = "v".repeat(257);
    let bad: Vec<Vec<(&str, &str)>> = vec![
        eleven
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
        vec![("dup", "1"), ("dup", "2")],
        vec![(long_key.as_str(), "v")],
        vec![("k", long_value.as_str())],
    ];
    for set in &bad {
        assert_s3_error(
            s3.put_object_tagging()
                .bucket("limits")
                .key("k")
                .tagging(tagging(set))
                .send()
                .await,
            400,
            "InvalidTag",
        );
    }
    assert_eq!(
        object_tags(&s3, "limits", "k").await,
        owned(&[("keep", "me")])
    );
    // The limits are inclusive.
    let ten: Vec<(String, String)> = (0..10)
        .map(|i| (format!("k{i}"), "v".repeat(256)))
        .collect();
    let ten: Vec<(&str, &str)> = ten.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    s3.put_object_tagging()
        .bucket("limits")
        .key("k")
        .tagging(tagging(&ten))
        .send()
        .await
        .unwrap();
    // The header is checked before anything is stored.
    assert_s3_error(
        s3.put_object()
            .bucket("limits")
            .key("bad-header")
            .tagging("a=1&a=2")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        400,
        "InvalidTag",
    );
    assert_s3_status(
        s3.head_object()
            .bucket("limits")
            .key("bad-header")
            .send()
            .await,
        404,
    );
}

#[tokio::test]
async fn tags_follow_versions_copies_and_multipart_uploads() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "vtags").await;
    s3.put_bucket_versioning()
        .bucket("vtags")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let v1 = s3
        .put_object()
        .bucket("vtags")
        .key("k")
        .tagging("gen=1")
        .body(ByteStream::from_static(b"one"))
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    let v2 = s3
        .put_object()
        .bucket("vtags")
        .key("k")
        .tagging("gen=2")
        .body(ByteStream::from_static(b"two"))
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    let put = s3
        .put_object_tagging()
        .bucket("vtags")
        .key("k")
        .version_id(&v1)
        .tagging(tagging(&[("gen", "1-retagged")]))
        .send()
        .await
        .unwrap();
    assert_eq!(put.version_id(), Some(v1.as_str()));
    let tags_of = |v: String| {
        let s3 = s3.clone();
        async move {
            let out = s3
                .get_object_tagging()
                .bucket("vtags")
                .key("k")
                .version_id(&v)
                .send()
                .await
                .unwrap();
            assert_eq!(out.version_id(), Some(v.as_str()));
            pairs(out.tag_set())
        }
    };
    assert_eq!(tags_of(v1.clone()).await, owned(&[("gen", "1-retagged")]));
    assert_eq!(tags_of(v2.clone()).await, owned(&[("gen", "2")]));
    s3.delete_object_tagging()
        .bucket("vtags")
        .key("k")
        .version_id(&v2)
        .send()
        .await
        .unwrap();
    assert!(tags_of(v2.clone()).await.is_empty());
    assert_eq!(tags_of(v1.clone()).await, owned(&[("gen", "1-retagged")]));
    assert_s3_error(
        s3.get_object_tagging()
            .bucket("vtags")
            .key("k")
            .version_id("no-such-version")
            .send()
            .await,
        404,
        "NoSuchVersion",
    );

    // CopyObject: the source's tags by default (COPY), the request's with REPLACE.
    s3.copy_object()
        .bucket("vtags")
        .key("copied")
        .copy_source(format!("vtags/k?versionId={v1}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        object_tags(&s3, "vtags", "copied").await,
        owned(&[("gen", "1-retagged")])
    );
    s3.copy_object()
        .bucket("vtags")
        .key("replaced")
        .copy_source(format!("vtags/k?versionId={v1}"))
        .tagging_directive(TaggingDirective::Replace)
        .tagging("fresh=yes")
        .send()
        .await
        .unwrap();
    assert_eq!(
        object_tags(&s3, "vtags", "replaced").await,
        owned(&[("fresh", "yes")])
    );

    // CreateMultipartUpload's tags end up on the completed object.
    let upload = s3
        .create_multipart_upload()
        .bucket("vtags")
        .key("mp")
        .tagging("from=create")
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let part = s3
        .upload_part()
        .bucket("vtags")
        .key("mp")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .unwrap();
    s3.complete_multipart_upload()
        .bucket("vtags")
        .key("mp")
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
    assert_eq!(
        object_tags(&s3, "vtags", "mp").await,
        owned(&[("from", "create")])
    );

    // A delete marker has no tags: tagging it names a method it does not allow.
    let marker = s3
        .delete_object()
        .bucket("vtags")
        .key("k")
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    assert_s3_error(
        s3.get_object_tagging()
            .bucket("vtags")
            .key("k")
            .version_id(&marker)
            .send()
            .await,
        405,
        "MethodNotAllowed",
    );
    assert_s3_error(
        s3.get_object_tagging()
            .bucket("vtags")
            .key("k")
            .send()
            .await,
        404,
        "NoSuchKey",
    );
}

#[tokio::test]
async fn a_tag_change_reaches_every_replica_and_heals_one_that_was_down() {
    let mut cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "heal").await;
    put_bytes(&s3, "heal", "k", b"data").await;

    cluster.kill_node(2);
    s3.put_object_tagging()
        .bucket("heal")
        .key("k")
        .tagging(tagging(&[("state", "new")]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        object_tags(&s3, "heal", "k").await,
        owned(&[("state", "new")])
    );
    cluster.restart_node(2).await;

    eventually(
        "every replica has the new tags",
        CONVERGE_TIMEOUT,
        || async {
            for i in 0..3 {
                let record = cluster.node_record(i, "heal", "k").await;
                let tags = record
                    .and_then(|r| r.current().map(|v| v.tag_set()))
                    .unwrap_or_default();
                if tags.get("state").map(String::as_str) != Some("new") {
                    return Err(format!("node{i} has {tags:?}"));
                }
            }
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn bucket_tags_put_get_delete() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "btags").await;
    assert_s3_error(
        s3.get_bucket_tagging().bucket("btags").send().await,
        404,
        "NoSuchTagSet",
    );
    s3.put_bucket_tagging()
        .bucket("btags")
        .tagging(tagging(&[("team", "storage"), ("cost", "42")]))
        .send()
        .await
        .unwrap();
    let got = s3
        .get_bucket_tagging()
        .bucket("btags")
        .send()
        .await
        .unwrap();
    assert_eq!(
        pairs(got.tag_set()),
        owned(&[("cost", "42"), ("team", "storage")])
    );
    assert_s3_error(
        s3.put_bucket_tagging()
            .bucket("btags")
            .tagging(tagging(&[("dup", "1"), ("dup", "2")]))
            .send()
            .await,
        400,
        "InvalidTag",
    );
    s3.delete_bucket_tagging()
        .bucket("btags")
        .send()
        .await
        .unwrap();
    assert_s3_error(
        s3.get_bucket_tagging().bucket("btags").send().await,
        404,
        "NoSuchTagSet",
    );

    // Tags belong to one life of a bucket: a re-created bucket starts without them.
    s3.put_bucket_tagging()
        .bucket("btags")
        .tagging(tagging(&[("old", "life")]))
        .send()
        .await
        .unwrap();
    s3.delete_bucket().bucket("btags").send().await.unwrap();
    create_bucket(&s3, "btags").await;
    assert_s3_error(
        s3.get_bucket_tagging().bucket("btags").send().await,
        404,
        "NoSuchTagSet",
    );
    assert_s3_error(
        s3.get_bucket_tagging().bucket("nope").send().await,
        404,
        "NoSuchBucket",
    );
}
