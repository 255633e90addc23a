//! Keys with many versions: every operation on such a key works, whatever its history
//! weighs. With the whole history one record, about 280 versions with large metadata or 250
//! inline bodies of 60 KiB put a key past the nodes' record limit, and every later operation
//! on it answered 503.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, Delete, ObjectIdentifier, Tag, Tagging};
use futures::StreamExt;

use crate::harness::*;
use crate::versioning::set_versioning;

const BUCKET: &str = "many-versions";

/// Writes `count` versions of `key`, `parallel` at a time; version `n` holds
/// `body(n)`. Returns the version ids by `n`.
async fn put_versions(
    s3: &Client,
    key: &str,
    count: usize,
    parallel: usize,
    body: impl Fn(usize) -> Vec<u8>,
) -> Vec<String> {
    let body = &body;
    let mut ids: Vec<(usize, String)> = futures::stream::iter(0..count)
        .map(|n| async move {
            let out = s3
                .put_object()
                .bucket(BUCKET)
                .key(key)
                .body(ByteStream::from(body(n)))
                .send()
                .await
                .unwrap_or_else(|e| panic!("PUT version {n}: {e:?}"));
            (n, out.version_id().expect("version id").to_owned())
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    ids.sort();
    ids.into_iter().map(|(_, id)| id).collect()
}

async fn get_version(s3: &Client, key: &str, id: Option<&str>) -> Vec<u8> {
    let out = s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .set_version_id(id.map(str::to_owned))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {key} {id:?}: {e:?}"));
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

/// Every operation on a key works after its history outgrew a record: reads of the current
/// version and of versions by id, writes, deletes by id, DeleteObjects, copies, tagging,
/// and the version listing.
async fn every_operation_works(
    s3: &Client,
    key: &str,
    ids: &[String],
    body: &dyn Fn(usize) -> Vec<u8>,
) {
    let newest = ids.len() - 1;
    // The current version is the newest one written (ids are ordered by their PUT's answer
    // only when written one at a time, so compare by content against HEAD's version id).
    let head = s3
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("HEAD {key}: {e:?}"));
    let current = head.version_id().expect("version id").to_owned();
    let n = ids
        .iter()
        .position(|id| *id == current)
        .expect("a written version");
    assert_same_bytes(
        &get_version(s3, key, None).await,
        &body(n),
        "current version",
    );
    for at in [0, ids.len() / 2, newest] {
        assert_same_bytes(
            &get_version(s3, key, Some(&ids[at])).await,
            &body(at),
            &format!("version {at} by id"),
        );
    }
    // Tagging a version deep in the history, and reading the tag back.
    let tagging = Tagging::builder()
        .tag_set(Tag::builder().key("old").value("yes").build().unwrap())
        .build()
        .unwrap();
    s3.put_object_tagging()
        .bucket(BUCKET)
        .key(key)
        .version_id(&ids[1])
        .tagging(tagging)
        .send()
        .await
        .unwrap_or_else(|e| panic!("tag version 1: {e:?}"));
    let tags = s3
        .get_object_tagging()
        .bucket(BUCKET)
        .key(key)
        .version_id(&ids[1])
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tag_set().len(), 1);
    // A copy of an old version.
    s3.copy_object()
        .bucket(BUCKET)
        .key(format!("{key}-copy"))
        .copy_source(format!("{BUCKET}/{key}?versionId={}", ids[2]))
        .send()
        .await
        .unwrap_or_else(|e| panic!("copy version 2: {e:?}"));
    assert_same_bytes(
        &get_version(s3, &format!("{key}-copy"), None).await,
        &body(2),
        "copy of version 2",
    );
    // Deletes by id, one plain, one through DeleteObjects.
    s3.delete_object()
        .bucket(BUCKET)
        .key(key)
        .version_id(&ids[0])
        .send()
        .await
        .unwrap_or_else(|e| panic!("delete version 0: {e:?}"));
    let gone = s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .version_id(&ids[0])
        .send()
        .await;
    assert_s3_error(gone, 404, "NoSuchVersion");
    let delete = Delete::builder()
        .objects(
            ObjectIdentifier::builder()
                .key(key)
                .version_id(&ids[3])
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let out = s3
        .delete_objects()
        .bucket(BUCKET)
        .delete(delete)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DeleteObjects: {e:?}"));
    assert!(out.errors().is_empty(), "{:?}", out.errors());
    // A new version on top, through a conditional write (If-Match on the current ETag),
    // then a create that must fail (If-None-Match), then a delete marker.
    let etag = s3
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap()
        .e_tag()
        .expect("etag")
        .to_owned();
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .if_match(&etag)
        .body(ByteStream::from_static(b"on top"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("conditional PUT: {e:?}"));
    assert_eq!(get_version(s3, key, None).await, b"on top");
    assert_s3_error(
        s3.put_object()
            .bucket(BUCKET)
            .key(key)
            .if_none_match("*")
            .body(ByteStream::from_static(b"not created"))
            .send()
            .await,
        412,
        "PreconditionFailed",
    );
    s3.delete_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    assert_s3_error(
        s3.get_object().bucket(BUCKET).key(key).send().await,
        404,
        "NoSuchKey",
    );
    // The listing pages through every version: those written, the one on top and the
    // marker, less the two deleted.
    let (mut listed, mut markers) = (0, 0);
    let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = s3
            .list_object_versions()
            .bucket(BUCKET)
            .prefix(key)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(id_marker.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("ListObjectVersions: {e:?}"));
        listed += page
            .versions()
            .iter()
            .filter(|v| v.key() == Some(key))
            .count();
        markers += page.delete_markers().len();
        if !page.is_truncated().unwrap_or(false) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        id_marker = page.next_version_id_marker().map(str::to_owned);
    }
    assert_eq!(listed, ids.len() - 2 + 1);
    assert_eq!(markers, 1);
    // ListObjects sees the marker as the current state: the key is not listed, its copy is.
    let objects = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(key)
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = objects.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, [format!("{key}-copy").as_str()]);
}

/// Over 100 MiB of inline bodies on one key (1700 versions of 62 KiB): an inline body
/// travels inside its version's record, so the key's history alone is that large.
#[tokio::test]
async fn a_key_with_over_100_mib_of_inline_versions_keeps_working() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, BUCKET).await;
    set_versioning(&s3, BUCKET, BucketVersioningStatus::Enabled).await;
    const VERSIONS: usize = 1700;
    const SIZE: usize = 62 * 1024;
    const _: () = assert!(VERSIONS * SIZE > 100 * 1024 * 1024);
    let body = |n: usize| pattern(SIZE, n as u64);
    let ids = put_versions(&s3, "heavy", VERSIONS, 8, body).await;
    every_operation_works(&s3, "heavy", &ids, &body).await;
}

/// The latency of a PUT of `key` and of the GET that follows, the median of 20 of each.
async fn timed_put_get(s3: &Client, key: &str) -> (std::time::Duration, std::time::Duration) {
    let (mut puts, mut gets) = (Vec::new(), Vec::new());
    for n in 0..20 {
        let started = std::time::Instant::now();
        put_bytes(s3, BUCKET, key, format!("timed {n}").as_bytes()).await;
        puts.push(started.elapsed());
        let started = std::time::Instant::now();
        assert_eq!(
            get_version(s3, key, None).await,
            format!("timed {n}").into_bytes()
        );
        gets.push(started.elapsed());
    }
    puts.sort();
    gets.sort();
    (puts[10], gets[10])
}

/// Ten thousand versions of one key.
#[tokio::test]
async fn a_key_with_ten_thousand_versions_keeps_working() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, BUCKET).await;
    set_versioning(&s3, BUCKET, BucketVersioningStatus::Enabled).await;
    let body = |n: usize| format!("version {n}").into_bytes();
    let first = timed_put_get(&s3, "fresh").await;
    let ids = put_versions(&s3, "busy", 10_000, 16, body).await;
    every_operation_works(&s3, "busy", &ids, &body).await;
    let later = timed_put_get(&s3, "busy").await;
    // Figures for the record (timings are the benchmark's business, not this test's).
    eprintln!("PUT, GET of a key's first versions: {first:?}; past 10,000 versions: {later:?}");
}
