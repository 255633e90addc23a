//! Versioning as the S3 documentation describes it: version ids, GET/HEAD/DELETE by
//! `versionId`, delete markers, ListObjectVersions with its markers, suspended buckets and
//! the `null` version, DeleteObjects with version ids, and versions surviving a node outage.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, Delete, ObjectIdentifier, VersioningConfiguration,
};

use crate::harness::*;

pub(crate) use crate::harness::set_versioning;

pub(crate) async fn put_version(
    s3: &Client,
    bucket: &str,
    key: &str,
    body: &[u8],
) -> Option<String> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap()
        .version_id()
        .map(str::to_owned)
}

pub(crate) async fn get_version(s3: &Client, bucket: &str, key: &str, version: &str) -> Vec<u8> {
    s3.get_object()
        .bucket(bucket)
        .key(key)
        .version_id(version)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}?versionId={version}: {e:?}"))
        .body
        .collect()
        .await
        .unwrap()
        .to_vec()
}

/// (key, version id, is latest, is delete marker), in listing order, over every page.
async fn all_versions(s3: &Client, bucket: &str, page: i32) -> Vec<(String, String, bool, bool)> {
    let mut out = Vec::new();
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let resp = s3
            .list_object_versions()
            .bucket(bucket)
            .max_keys(page)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .unwrap();
        let mut entries: Vec<(String, String, bool, bool, i64)> = Vec::new();
        for v in resp.versions() {
            let t = v.last_modified().map(|t| t.as_nanos() as i64).unwrap_or(0);
            entries.push((
                v.key().unwrap().to_owned(),
                v.version_id().unwrap().to_owned(),
                v.is_latest().unwrap(),
                false,
                t,
            ));
        }
        for m in resp.delete_markers() {
            let t = m.last_modified().map(|t| t.as_nanos() as i64).unwrap_or(0);
            entries.push((
                m.key().unwrap().to_owned(),
                m.version_id().unwrap().to_owned(),
                m.is_latest().unwrap(),
                true,
                t,
            ));
        }
        assert!(entries.len() <= page as usize, "page larger than max-keys");
        // s3s writes markers and versions in two groups; S3's order is by key, then newest.
        entries.sort_by(|a, b| a.0.cmp(&b.0).then(b.4.cmp(&a.4)));
        out.extend(entries.into_iter().map(|(k, v, l, m, _)| (k, v, l, m)));
        if !resp.is_truncated().unwrap_or(false) {
            return out;
        }
        key_marker = resp.next_key_marker().map(str::to_owned);
        version_marker = resp.next_version_id_marker().map(str::to_owned);
        assert!(key_marker.is_some(), "truncated without a next key marker");
    }
}

#[tokio::test]
async fn the_s3_documentation_walkthrough_of_versions_and_delete_markers() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "docs").await;
    let status = s3
        .get_bucket_versioning()
        .bucket("docs")
        .send()
        .await
        .unwrap();
    assert_eq!(
        status.status(),
        None,
        "a new bucket has never been versioned"
    );
    set_versioning(&s3, "docs", BucketVersioningStatus::Enabled).await;
    let status = s3
        .get_bucket_versioning()
        .bucket("docs")
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), Some(&BucketVersioningStatus::Enabled));

    let v1 = put_version(&s3, "docs", "photo.gif", b"first")
        .await
        .expect("v1 id");
    let v2 = put_version(&s3, "docs", "photo.gif", b"second")
        .await
        .expect("v2 id");
    assert_ne!(v1, v2);
    assert_ne!(v1, "null");
    assert_eq!(get_bytes(&s3, "docs", "photo.gif").await, b"second");
    assert_eq!(get_version(&s3, "docs", "photo.gif", &v1).await, b"first");
    let head = s3
        .head_object()
        .bucket("docs")
        .key("photo.gif")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    assert_eq!(head.version_id(), Some(v1.as_str()));
    assert_eq!(head.content_length(), Some(5));

    // DELETE without a version id: a delete marker becomes the current version.
    let deleted = s3
        .delete_object()
        .bucket("docs")
        .key("photo.gif")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.delete_marker(), Some(true));
    let marker = deleted.version_id().expect("marker id").to_owned();
    let gone = s3.get_object().bucket("docs").key("photo.gif").send().await;
    assert_s3_error(gone, 404, "NoSuchKey");
    let on_marker = s3
        .get_object()
        .bucket("docs")
        .key("photo.gif")
        .version_id(&marker)
        .send()
        .await;
    assert_s3_error(on_marker, 405, "MethodNotAllowed");
    let listed = s3.list_objects_v2().bucket("docs").send().await.unwrap();
    assert!(listed.contents().is_empty(), "a deleted key is not listed");

    let versions = all_versions(&s3, "docs", 1000).await;
    assert_eq!(
        versions,
        vec![
            ("photo.gif".into(), marker.clone(), true, true),
            ("photo.gif".into(), v2.clone(), false, false),
            ("photo.gif".into(), v1.clone(), false, false),
        ]
    );

    // Removing the marker by id brings the object back.
    s3.delete_object()
        .bucket("docs")
        .key("photo.gif")
        .version_id(&marker)
        .send()
        .await
        .unwrap();
    assert_eq!(get_bytes(&s3, "docs", "photo.gif").await, b"second");
    // Removing v2 permanently makes v1 current.
    s3.delete_object()
        .bucket("docs")
        .key("photo.gif")
        .version_id(&v2)
        .send()
        .await
        .unwrap();
    assert_eq!(get_bytes(&s3, "docs", "photo.gif").await, b"first");
    let missing = s3
        .get_object()
        .bucket("docs")
        .key("photo.gif")
        .version_id(&v2)
        .send()
        .await;
    assert_s3_error(missing, 404, "NoSuchVersion");
    assert_eq!(
        all_versions(&s3, "docs", 1000).await,
        vec![("photo.gif".into(), v1.clone(), true, false)]
    );
    // A versioned bucket with versions left is not empty.
    let refused = s3.delete_bucket().bucket("docs").send().await;
    assert_s3_error(refused, 409, "BucketNotEmpty");
}

#[tokio::test]
async fn unversioned_and_suspended_buckets_use_the_null_version() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "nulls").await;
    assert_eq!(put_version(&s3, "nulls", "k", b"plain").await, None);
    assert_eq!(
        all_versions(&s3, "nulls", 1000).await,
        vec![("k".into(), "null".into(), true, false)]
    );
    set_versioning(&s3, "nulls", BucketVersioningStatus::Enabled).await;
    let v1 = put_version(&s3, "nulls", "k", b"versioned").await.unwrap();
    set_versioning(&s3, "nulls", BucketVersioningStatus::Suspended).await;
    let status = s3
        .get_bucket_versioning()
        .bucket("nulls")
        .send()
        .await
        .unwrap();
    assert_eq!(status.status(), Some(&BucketVersioningStatus::Suspended));
    // Suspended: a PUT replaces the null version and keeps the real ones.
    put_version(&s3, "nulls", "k", b"suspended write").await;
    assert_eq!(get_bytes(&s3, "nulls", "k").await, b"suspended write");
    assert_eq!(
        get_version(&s3, "nulls", "k", "null").await,
        b"suspended write"
    );
    assert_eq!(get_version(&s3, "nulls", "k", &v1).await, b"versioned");
    assert_eq!(
        all_versions(&s3, "nulls", 1000).await,
        vec![
            ("k".into(), "null".into(), true, false),
            ("k".into(), v1.clone(), false, false),
        ]
    );
    // Suspended: DELETE puts a null delete marker in place of the null version.
    let deleted = s3
        .delete_object()
        .bucket("nulls")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.delete_marker(), Some(true));
    assert_eq!(deleted.version_id(), Some("null"));
    assert_eq!(
        all_versions(&s3, "nulls", 1000).await,
        vec![
            ("k".into(), "null".into(), true, true),
            ("k".into(), v1.clone(), false, false),
        ]
    );

    // An unversioned bucket: DELETE removes the object and lists nothing.
    create_bucket(&s3, "plain").await;
    put_version(&s3, "plain", "x", b"1").await;
    put_version(&s3, "plain", "x", b"2").await;
    s3.delete_object()
        .bucket("plain")
        .key("x")
        .send()
        .await
        .unwrap();
    assert!(all_versions(&s3, "plain", 1000).await.is_empty());
    s3.delete_bucket().bucket("plain").send().await.unwrap();
}

#[tokio::test]
async fn list_object_versions_paginates_with_key_and_version_markers() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "pages").await;
    set_versioning(&s3, "pages", BucketVersioningStatus::Enabled).await;
    let mut written: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for k in 0..7 {
        let key = format!("dir{}/key-{k}", k % 2);
        for v in 0..(1 + k % 3) {
            let id = put_version(&s3, "pages", &key, format!("{key} v{v}").as_bytes())
                .await
                .unwrap();
            written.entry(key.clone()).or_default().push(id);
        }
    }
    s3.delete_object()
        .bucket("pages")
        .key("dir0/key-0")
        .send()
        .await
        .unwrap();
    let full = all_versions(&s3, "pages", 1000).await;
    for page in [1, 2, 3, 5] {
        assert_eq!(
            all_versions(&s3, "pages", page).await,
            full,
            "max-keys {page}"
        );
    }
    let total: usize = written.values().map(Vec::len).sum();
    assert_eq!(full.len(), total + 1);
    for (key, ids) in &written {
        let listed: Vec<&str> = full
            .iter()
            .filter(|(k, _, _, m)| k == key && !m)
            .map(|(_, v, _, _)| v.as_str())
            .collect();
        let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
        assert_eq!(listed, newest_first, "versions of {key}");
    }

    let grouped = s3
        .list_object_versions()
        .bucket("pages")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let prefixes: Vec<&str> = grouped
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["dir0/", "dir1/"]);
    let only_dir1 = s3
        .list_object_versions()
        .bucket("pages")
        .prefix("dir1/")
        .send()
        .await
        .unwrap();
    assert!(
        only_dir1
            .versions()
            .iter()
            .all(|v| v.key().unwrap().starts_with("dir1/"))
    );
    assert_eq!(
        only_dir1.versions().len(),
        written
            .iter()
            .filter(|(k, _)| k.starts_with("dir1/"))
            .map(|(_, v)| v.len())
            .sum::<usize>()
    );
}

#[tokio::test]
async fn delete_objects_removes_named_versions() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "batch").await;
    set_versioning(&s3, "batch", BucketVersioningStatus::Enabled).await;
    let a1 = put_version(&s3, "batch", "a", b"a1").await.unwrap();
    let a2 = put_version(&s3, "batch", "a", b"a2").await.unwrap();
    let b1 = put_version(&s3, "batch", "b", b"b1").await.unwrap();
    let ids = |pairs: &[(&str, Option<&str>)]| {
        Delete::builder()
            .set_objects(Some(
                pairs
                    .iter()
                    .map(|(k, v)| {
                        ObjectIdentifier::builder()
                            .key(*k)
                            .set_version_id(v.map(str::to_owned))
                            .build()
                            .unwrap()
                    })
                    .collect(),
            ))
            .build()
            .unwrap()
    };
    let out = s3
        .delete_objects()
        .bucket("batch")
        .delete(ids(&[("a", Some(&a2)), ("b", None)]))
        .send()
        .await
        .unwrap();
    assert_eq!(out.deleted().len(), 2);
    let b_marker = out.deleted().iter().find(|d| d.key() == Some("b")).unwrap();
    assert_eq!(b_marker.delete_marker(), Some(true));
    assert!(b_marker.delete_marker_version_id().is_some());
    assert_eq!(get_bytes(&s3, "batch", "a").await, b"a1");
    assert_s3_error(
        s3.get_object().bucket("batch").key("b").send().await,
        404,
        "NoSuchKey",
    );
    assert_eq!(get_version(&s3, "batch", "b", &b1).await, b"b1");
    let left: Vec<String> = all_versions(&s3, "batch", 1000)
        .await
        .into_iter()
        .filter(|(_, _, _, marker)| !marker)
        .map(|(_, v, _, _)| v)
        .collect();
    assert_eq!(left, vec![a1, b1]);
}

#[tokio::test]
async fn versions_written_while_a_node_is_down_reach_it_and_every_replica_lists_the_same() {
    let mut cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "heal").await;
    set_versioning(&s3, "heal", BucketVersioningStatus::Enabled).await;
    put_version(&s3, "heal", "doc", b"before").await;
    cluster.kill_node(1);
    for i in 0..4 {
        put_version(&s3, "heal", "doc", format!("while down {i}").as_bytes()).await;
    }
    s3.delete_object()
        .bucket("heal")
        .key("doc")
        .send()
        .await
        .unwrap();
    put_version(&s3, "heal", "other", &pattern(100_000, 3)).await;
    cluster.restart_node(1).await;

    let expected = all_versions(&s3, "heal", 1000).await;
    assert_eq!(expected.len(), 7);
    let cluster = &cluster;
    eventually(
        "every replica holds the same version history",
        Duration::from_secs(60),
        || async move {
            for key in ["doc", "other"] {
                let mut records = Vec::new();
                for node in 0..3 {
                    records.push(cluster.node_record(node, "heal", key).await);
                }
                if records[0].is_none() || records.iter().any(|r| *r != records[0]) {
                    return Err(format!("replicas of {key} differ: {records:?}"));
                }
            }
            Ok(())
        },
    )
    .await;
    assert_eq!(all_versions(&s3, "heal", 2).await, expected);
}

#[tokio::test]
async fn a_re_created_bucket_starts_unversioned() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "reborn").await;
    s3.put_bucket_versioning()
        .bucket("reborn")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    s3.delete_bucket().bucket("reborn").send().await.unwrap();
    create_bucket(&s3, "reborn").await;
    let got = s3
        .get_bucket_versioning()
        .bucket("reborn")
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), None);
    let put = s3
        .put_object()
        .bucket("reborn")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.version_id(), None, "a write in an unversioned bucket");
}
