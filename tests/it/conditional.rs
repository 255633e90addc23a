//! Conditional writes: `If-None-Match: *` and `If-Match` on PutObject, CopyObject and
//! CompleteMultipartUpload, `If-Match` on DeleteObject and DeleteObjects, and the race the
//! feature exists for: many writers, two gateways, one key, exactly one winner (with all
//! nodes up and with one killed).

use std::collections::BTreeMap;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier,
    VersioningConfiguration,
};

use crate::harness::*;

async fn put_if_none_match(
    s3: &Client,
    bucket: &str,
    key: &str,
    body: &[u8],
) -> Result<String, S3Failure> {
    let res = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .if_none_match("*")
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await;
    match res {
        Ok(out) => Ok(out.e_tag().unwrap_or_default().to_owned()),
        Err(e) => Err(failure::<(), _>(Err(e))),
    }
}

#[tokio::test]
async fn if_none_match_creates_only_once_inline_and_blob_sized() {
    let cluster = Cluster::start(3).await;
    for (name, s3) in cluster.clients() {
        let bucket = format!("cond-create-{name}");
        create_bucket(&s3, &bucket).await;
        for (key, len) in [("small", 1000), ("large", 300 * 1024)] {
            let first = pattern(len, 1);
            let etag = put_if_none_match(&s3, &bucket, key, &first)
                .await
                .expect("the first create wins");
            assert_eq!(etag, etag_of(&first));
            let second = put_if_none_match(&s3, &bucket, key, &pattern(len, 2))
                .await
                .expect_err("the second create must fail");
            assert_eq!(
                (second.status, second.code.as_deref()),
                (Some(412), Some("PreconditionFailed")),
                "{}",
                second.debug
            );
            assert_same_bytes(&get_bytes(&s3, &bucket, key).await, &first, key);
        }
    }
}

#[tokio::test]
async fn if_match_replaces_only_an_unchanged_object() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "cond-match").await;
    // If-Match on a key that does not exist: 404, as S3 answers.
    let missing = s3
        .put_object()
        .bucket("cond-match")
        .key("k")
        .if_match(etag_of(b"x"))
        .body(ByteStream::from_static(b"y"))
        .send()
        .await;
    assert_s3_error(missing, 404, "NoSuchKey");

    put_bytes(&s3, "cond-match", "k", b"one").await;
    let stale = s3
        .put_object()
        .bucket("cond-match")
        .key("k")
        .if_match(etag_of(b"not one"))
        .body(ByteStream::from_static(b"two"))
        .send()
        .await;
    assert_s3_error(stale, 412, "PreconditionFailed");
    assert_eq!(get_bytes(&s3, "cond-match", "k").await, b"one");

    let fresh = s3
        .put_object()
        .bucket("cond-match")
        .key("k")
        .if_match(etag_of(b"one"))
        .body(ByteStream::from_static(b"two"))
        .send()
        .await
        .expect("If-Match with the current ETag");
    assert_eq!(fresh.e_tag(), Some(etag_of(b"two").as_str()));
    assert_eq!(get_bytes(&s3, "cond-match", "k").await, b"two");

    // `If-None-Match` with an ETag: refused while the current object has it, a write
    // like any other when it has another (or there is none).
    let same = s3
        .put_object()
        .bucket("cond-match")
        .key("k")
        .if_none_match(etag_of(b"two"))
        .body(ByteStream::from_static(b"three"))
        .send()
        .await;
    assert_s3_error(same, 412, "PreconditionFailed");
    assert_eq!(get_bytes(&s3, "cond-match", "k").await, b"two");
    for (key, body) in [("k", b"three".as_slice()), ("fresh", b"new")] {
        s3.put_object()
            .bucket("cond-match")
            .key(key)
            .if_none_match(etag_of(b"one"))
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .expect("If-None-Match with an ETag the current object does not have");
        assert_eq!(get_bytes(&s3, "cond-match", key).await, body);
    }
}

#[tokio::test]
async fn a_delete_marker_counts_as_absent_and_versions_stay_listed() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "cond-ver").await;
    s3.put_bucket_versioning()
        .bucket("cond-ver")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    put_if_none_match(&s3, "cond-ver", "k", b"v1")
        .await
        .expect("create");
    s3.delete_object()
        .bucket("cond-ver")
        .key("k")
        .send()
        .await
        .unwrap();
    put_if_none_match(&s3, "cond-ver", "k", b"v2")
        .await
        .expect("a delete marker is no object");
    assert_eq!(get_bytes(&s3, "cond-ver", "k").await, b"v2");
    let versions = s3
        .list_object_versions()
        .bucket("cond-ver")
        .send()
        .await
        .unwrap();
    assert_eq!(
        versions.versions().len(),
        2,
        "both object versions are kept"
    );
    assert_eq!(versions.delete_markers().len(), 1);
}

#[tokio::test]
async fn conditional_deletes() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "cond-del").await;
    let missing = s3
        .delete_object()
        .bucket("cond-del")
        .key("gone")
        .if_match("*")
        .send()
        .await;
    assert_s3_error(missing, 404, "NoSuchKey");

    put_bytes(&s3, "cond-del", "k", b"data").await;
    let wrong = s3
        .delete_object()
        .bucket("cond-del")
        .key("k")
        .if_match(etag_of(b"other"))
        .send()
        .await;
    assert_s3_error(wrong, 412, "PreconditionFailed");
    assert_eq!(get_bytes(&s3, "cond-del", "k").await, b"data");
    s3.delete_object()
        .bucket("cond-del")
        .key("k")
        .if_match(etag_of(b"data"))
        .send()
        .await
        .expect("If-Match with the current ETag deletes");
    let gone = s3.get_object().bucket("cond-del").key("k").send().await;
    assert_s3_error(gone, 404, "NoSuchKey");

    // DeleteObjects carries the ETag per key; a mismatch is that key's error only.
    put_bytes(&s3, "cond-del", "a", b"a").await;
    put_bytes(&s3, "cond-del", "b", b"b").await;
    let ident = |key: &str, etag: String| {
        ObjectIdentifier::builder()
            .key(key)
            .e_tag(etag)
            .build()
            .unwrap()
    };
    let out = s3
        .delete_objects()
        .bucket("cond-del")
        .delete(
            Delete::builder()
                .objects(ident("a", etag_of(b"a")))
                .objects(ident("b", etag_of(b"not b")))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(deleted, ["a"]);
    let errors: Vec<(&str, &str)> = out
        .errors()
        .iter()
        .map(|e| (e.key().unwrap_or(""), e.code().unwrap_or("")))
        .collect();
    assert_eq!(errors, [("b", "PreconditionFailed")]);
    assert_eq!(get_bytes(&s3, "cond-del", "b").await, b"b");
}

#[tokio::test]
async fn conditional_copy_and_complete() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "cond-mp").await;
    put_bytes(&s3, "cond-mp", "src", b"source").await;
    put_bytes(&s3, "cond-mp", "taken", b"taken").await;
    let copy = s3
        .copy_object()
        .bucket("cond-mp")
        .key("taken")
        .copy_source("cond-mp/src")
        .if_none_match("*")
        .send()
        .await;
    assert_s3_error(copy, 412, "PreconditionFailed");
    s3.copy_object()
        .bucket("cond-mp")
        .key("free")
        .copy_source("cond-mp/src")
        .if_none_match("*")
        .send()
        .await
        .expect("a conditional copy to a new key");
    assert_eq!(get_bytes(&s3, "cond-mp", "free").await, b"source");

    let part = pattern(1024, 7);
    let upload = s3
        .create_multipart_upload()
        .bucket("cond-mp")
        .key("taken")
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let etag = s3
        .upload_part()
        .bucket("cond-mp")
        .key("taken")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from(part.clone()))
        .send()
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .to_owned();
    let parts = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(etag).build())
        .build();
    let refused = s3
        .complete_multipart_upload()
        .bucket("cond-mp")
        .key("taken")
        .upload_id(id)
        .if_none_match("*")
        .multipart_upload(parts.clone())
        .send()
        .await;
    assert_s3_error(refused, 412, "PreconditionFailed");
    assert_eq!(get_bytes(&s3, "cond-mp", "taken").await, b"taken");
    // The refused upload is still there and completes under the right condition.
    s3.complete_multipart_upload()
        .bucket("cond-mp")
        .key("taken")
        .upload_id(id)
        .if_match(etag_of(b"taken"))
        .multipart_upload(parts)
        .send()
        .await
        .expect("complete with If-Match of the current object");
    assert_same_bytes(
        &get_bytes(&s3, "cond-mp", "taken").await,
        &part,
        "completed",
    );
}

/// Writers per round, split evenly over the gateways.
const RACERS: usize = 16;

/// `rounds` rounds of `RACERS` concurrent `If-None-Match: *` creates of one fresh key,
/// spread over `gateways`; each round must have exactly one winner, whose bytes are the
/// object's, and every loser must get 412 (or 409, S3's answer to a conflicting write in
/// flight).
async fn race(gateways: &[Client], bucket: &str, rounds: usize) {
    let started = std::time::Instant::now();
    let mut answers: BTreeMap<(Option<u16>, Option<String>), usize> = BTreeMap::new();
    for round in 0..rounds {
        let key = format!("race/{round}");
        let tasks: Vec<_> = (0..RACERS)
            .map(|w| {
                let s3 = gateways[w % gateways.len()].clone();
                let (bucket, key) = (bucket.to_owned(), key.clone());
                tokio::spawn(async move {
                    let body = format!("round {round} writer {w}").into_bytes();
                    (w, put_if_none_match(&s3, &bucket, &key, &body).await)
                })
            })
            .collect();
        let mut winners = Vec::new();
        let mut losers = BTreeMap::new();
        for task in tasks {
            let (w, result) = task.await.expect("racer task");
            match result {
                Ok(_) => winners.push(w),
                Err(f) => {
                    let answer = (f.status, f.code.clone());
                    assert!(
                        matches!(
                            (f.status, f.code.as_deref()),
                            (Some(412), Some("PreconditionFailed"))
                                | (Some(409), Some("ConditionalRequestConflict"))
                        ),
                        "round {round}: writer {w} failed unexpectedly: {}",
                        f.debug
                    );
                    *losers.entry(answer.clone()).or_insert(0) += 1;
                    *answers.entry(answer).or_insert(0) += 1;
                }
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: winners {winners:?}, losers {losers:?}"
        );
        let stored = get_bytes(&gateways[0], bucket, &key).await;
        let expected = format!("round {round} writer {}", winners[0]).into_bytes();
        assert_eq!(
            stored, expected,
            "round {round}: the winner's bytes are stored"
        );
    }
    eprintln!(
        "{rounds} rounds of {RACERS} racers in {:?}; losers answered {answers:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn concurrent_creates_across_two_gateways_have_exactly_one_winner() {
    let mut cluster = Cluster::start(3).await;
    let second = cluster.start_extra_gateway().await;
    let first = cluster.client();
    create_bucket(&first, "race").await;
    race(&[first, second], "race", 50).await;
    let rounds = cluster.gateway_metrics().await;
    eprintln!(
        "{}",
        rounds
            .lines()
            .filter(|l| l.starts_with("paxos_rounds_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn concurrent_creates_have_exactly_one_winner_with_a_node_killed() {
    let mut cluster = Cluster::start(3).await;
    let second = cluster.start_extra_gateway().await;
    let first = cluster.client();
    create_bucket(&first, "race-down").await;
    cluster.kill_node(2);
    race(&[first, second], "race-down", 50).await;
}
