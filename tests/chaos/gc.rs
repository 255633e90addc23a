//! Garbage collection under churn: overwrites, delete markers, purges of versions, completed
//! multipart uploads with parts left out and aborted uploads, while a node and the gateway
//! are killed with SIGKILL and restarted. Afterwards, with the grace down to zero, every
//! node's blob files are exactly those the records refer to, nothing is quarantined, and
//! every object and version reads back as one of the bodies written to it. And purge
//! tombstones are dropped only once every replica holds them: a node down past the
//! tombstone grace brings no purged version back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, CompletedMultipartUpload, CompletedPart};

use crate::harness::{blob_files_under, eventually, pattern, set_versioning};
use crate::{BUCKET, HEAL, INLINE_MAX, options, start_opts};

const VERSIONED: &str = "chaos-versions";
/// How long the writers churn.
const CHURN: Duration = Duration::from_secs(20);
/// The grace while writers run: far above any write's gap between its blob and its record
/// here, short enough for passes to delete during the churn.
const CHURN_GRACE_SECS: u64 = 8;

/// Every body written (or attempted) per (bucket, key).
type Written = Arc<Mutex<BTreeMap<(String, String), Vec<Vec<u8>>>>>;

fn remember(written: &Written, bucket: &str, key: &str, body: &[u8]) {
    let mut w = written.lock().unwrap();
    w.entry((bucket.to_owned(), key.to_owned()))
        .or_default()
        .push(body.to_vec());
}

/// Blob-sized bodies (never inline), of a few sizes.
fn body(n: u64) -> Vec<u8> {
    let size = [INLINE_MAX + 1, 200 * 1024, 1024 * 1024 + 3][n as usize % 3];
    pattern(size, n)
}

async fn put(s3: &Client, bucket: &str, key: &str, data: &[u8]) -> bool {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .is_ok()
}

/// Overwrites and deletes keys of the unversioned bucket: each overwrite replaces the null
/// version, whose blob becomes garbage.
async fn overwriter(s3: Client, written: Written, until: Instant) {
    let mut n = 0u64;
    while Instant::now() < until {
        let key = format!("plain/{}", n % 4);
        if n % 7 == 6 {
            let _ = s3.delete_object().bucket(BUCKET).key(&key).send().await;
        } else {
            let data = body(n);
            remember(&written, BUCKET, &key, &data);
            put(&s3, BUCKET, &key, &data).await;
        }
        n += 1;
    }
}

/// Writes versions and purges some of them by id.
async fn versioner(s3: Client, written: Written, until: Instant) {
    let mut n = 1000u64;
    while Instant::now() < until {
        let key = format!("v/{}", n % 3);
        let data = body(n);
        remember(&written, VERSIONED, &key, &data);
        put(&s3, VERSIONED, &key, &data).await;
        if n % 3 == 2
            && let Ok(listed) = s3
                .list_object_versions()
                .bucket(VERSIONED)
                .prefix(&key)
                .send()
                .await
            && let Some(oldest) = listed.versions().last()
            && let Some(id) = oldest.version_id()
        {
            let _ = s3
                .delete_object()
                .bucket(VERSIONED)
                .key(&key)
                .version_id(id)
                .send()
                .await;
        }
        n += 1;
    }
}

/// Multipart uploads of two parts: every other one completed with its first part only
/// (the second is garbage then), the others aborted.
async fn uploader(s3: Client, written: Written, until: Instant) {
    let mut n = 2000u64;
    while Instant::now() < until {
        let key = format!("mp/{}", n % 2);
        n += 1;
        let Ok(created) = s3
            .create_multipart_upload()
            .bucket(BUCKET)
            .key(&key)
            .send()
            .await
        else {
            continue;
        };
        let id = created.upload_id().unwrap_or_default().to_owned();
        let first = body(n);
        let mut etag = None;
        for (number, data) in [(1, first.clone()), (2, body(n + 1))] {
            if let Ok(part) = s3
                .upload_part()
                .bucket(BUCKET)
                .key(&key)
                .upload_id(&id)
                .part_number(number)
                .body(ByteStream::from(data))
                .send()
                .await
                && number == 1
            {
                etag = part.e_tag().map(str::to_owned);
            }
        }
        match etag {
            Some(etag) if n.is_multiple_of(2) => {
                remember(&written, BUCKET, &key, &first);
                let parts = CompletedMultipartUpload::builder()
                    .parts(CompletedPart::builder().part_number(1).e_tag(etag).build())
                    .build();
                let _ = s3
                    .complete_multipart_upload()
                    .bucket(BUCKET)
                    .key(&key)
                    .upload_id(&id)
                    .multipart_upload(parts)
                    .send()
                    .await;
            }
            _ => {
                let _ = s3
                    .abort_multipart_upload()
                    .bucket(BUCKET)
                    .key(&key)
                    .upload_id(&id)
                    .send()
                    .await;
            }
        }
    }
}

#[tokio::test]
async fn garbage_collection_leaves_exactly_the_blobs_records_refer_to() {
    let options = options(true)
        .gateway_arg("--gc-interval-ms", 0)
        .gateway_arg("--gc-grace-secs", CHURN_GRACE_SECS);
    let mut cluster = start_opts(options).await;
    let s3 = cluster.client();
    crate::harness::create_bucket(&s3, VERSIONED).await;
    set_versioning(&s3, VERSIONED, BucketVersioningStatus::Enabled).await;

    let written: Written = Arc::default();
    let until = Instant::now() + CHURN;
    let workers = [
        tokio::spawn(overwriter(s3.clone(), written.clone(), until)),
        tokio::spawn(versioner(s3.clone(), written.clone(), until)),
        tokio::spawn(uploader(s3.clone(), written.clone(), until)),
    ];
    // Faults while they run: a node killed and restarted, then the gateway.
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster.kill_node(1);
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster.restart_node(1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.restart_gateway().await;
    for worker in workers {
        worker.await.expect("worker");
    }
    let deleted_during_churn = cluster.gateway_metric("gc_blobs_deleted_total").await;

    // Everything healed, then garbage collection with no grace.
    cluster.set_gateway_arg("--gc-grace-secs", 0);
    cluster.restart_gateway().await;
    let namespaces = [
        BUCKET.to_owned(),
        format!("{BUCKET}/uploads"),
        VERSIONED.to_owned(),
        format!("{VERSIONED}/uploads"),
    ];
    let cluster_ref = &cluster;
    let namespaces_ref = &namespaces;
    eventually(
        "every node holds exactly the blobs records refer to",
        HEAL * 2,
        || async move {
            let mut referenced = BTreeSet::new();
            for i in 0..cluster_ref.node_count() {
                for ns in namespaces_ref {
                    referenced.extend(cluster_ref.referenced_blobs(i, ns).await);
                }
            }
            for i in 0..cluster_ref.node_count() {
                let dir = cluster_ref.node_data_dir(i);
                let files = blob_files_under(&dir.join("blobs"));
                if files != referenced {
                    let extra: Vec<_> = files.difference(&referenced).collect();
                    let missing: Vec<_> = referenced.difference(&files).collect();
                    return Err(format!(
                        "node{i}: {} unreferenced files {extra:?}, {} referenced blobs missing {missing:?}",
                        extra.len(),
                        missing.len()
                    ));
                }
                let quarantined = blob_files_under(&dir.join("quarantine"));
                if !quarantined.is_empty() {
                    return Err(format!("node{i} quarantined {quarantined:?}"));
                }
            }
            Ok(())
        },
    )
    .await;
    let deleted = cluster.gateway_metric("gc_blobs_deleted_total").await;
    eprintln!("gc: {deleted_during_churn} blob files deleted during the churn, {deleted} after it");
    assert!(deleted > 0.0, "nothing was collected after the churn");

    // Every object and every version reads back as a body written to it.
    let s3 = cluster.client();
    let written = written.lock().unwrap().clone();
    let mut checked = 0;
    for ((bucket, key), bodies) in &written {
        let mut ids: Vec<Option<String>> = vec![None];
        if bucket == VERSIONED {
            let listed = s3
                .list_object_versions()
                .bucket(bucket)
                .prefix(key)
                .send()
                .await
                .expect("list versions");
            ids.extend(
                listed
                    .versions()
                    .iter()
                    .filter(|v| v.key() == Some(key.as_str()))
                    .map(|v| v.version_id().map(str::to_owned)),
            );
        }
        for id in ids {
            let got = s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .set_version_id(id.clone())
                .send()
                .await;
            let got = match got {
                Ok(got) => got,
                // A deleted key (or one whose latest version is a delete marker).
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => continue,
                Err(e) => panic!("GET {bucket}/{key} {id:?}: {e:?}"),
            };
            let bytes = got.body.collect().await.expect("body").into_bytes();
            assert!(
                bodies.iter().any(|b| b.as_slice() == bytes.as_ref()),
                "{bucket}/{key} {id:?}: {} bytes that were never written",
                bytes.len()
            );
            checked += 1;
        }
    }
    assert!(checked > 5, "only {checked} objects read back");
}

/// The version ids ListObjectVersions shows for `key`.
async fn listed_versions(s3: &Client, key: &str) -> Vec<String> {
    let listed = s3
        .list_object_versions()
        .bucket(VERSIONED)
        .prefix(key)
        .send()
        .await
        .expect("list versions");
    listed
        .versions()
        .iter()
        .filter_map(|v| v.version_id().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_node_down_past_the_tombstone_grace_brings_no_purged_version_back() {
    let options = options(true)
        .gateway_arg("--gc-interval-ms", 0)
        .gateway_arg("--gc-grace-secs", 0)
        .gateway_arg("--tombstone-grace-secs", 1);
    let mut cluster = start_opts(options).await;
    let s3 = cluster.client();
    crate::harness::create_bucket(&s3, VERSIONED).await;
    set_versioning(&s3, VERSIONED, BucketVersioningStatus::Enabled).await;
    let mut ids = Vec::new();
    for n in 0..2 {
        let out = s3
            .put_object()
            .bucket(VERSIONED)
            .key("k")
            .body(ByteStream::from(body(n)))
            .send()
            .await
            .expect("put");
        ids.push(out.version_id().expect("version id").to_owned());
    }
    let cluster_ref = &cluster;
    eventually("every node holds both versions", HEAL, || async move {
        for i in 0..3 {
            let n = cluster_ref
                .node_record(i, VERSIONED, "k")
                .await
                .map_or(0, |r| r.versions.len());
            if n != 2 {
                return Err(format!("node{i} holds {n} versions"));
            }
        }
        Ok(())
    })
    .await;
    let purged = ids[0].clone();
    cluster.kill_node(2);
    s3.delete_object()
        .bucket(VERSIONED)
        .key("k")
        .version_id(&purged)
        .send()
        .await
        .expect("purge");
    // Passes go by, well past the grace: node 2 does not answer, so the tombstone stays.
    let passes = cluster.gateway_metric("anti_entropy_passes_total").await;
    let cluster_ref = &cluster;
    eventually("three more passes", HEAL, || async move {
        let now = cluster_ref
            .gateway_metric("anti_entropy_passes_total")
            .await;
        (now >= passes + 3.0)
            .then_some(())
            .ok_or(format!("{now} passes"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..2 {
        let record = cluster
            .node_record(i, VERSIONED, "k")
            .await
            .expect("record");
        assert!(
            record
                .versions
                .iter()
                .any(|v| v.stamp.id == purged && v.is_purged()),
            "node{i} dropped the tombstone while a replica was away: {record:?}"
        );
    }
    assert_eq!(
        cluster.gateway_metric("tombstones_dropped_total").await,
        0.0
    );

    // Node 2 comes back holding the purged version alive.
    cluster.restart_node(2).await;
    let (s3_ref, purged_ref) = (&s3, &purged);
    let cluster_ref = &cluster;
    eventually(
        "the tombstone is dropped everywhere",
        HEAL * 2,
        || async move {
            let listed = listed_versions(s3_ref, "k").await;
            assert!(
                !listed.contains(purged_ref),
                "the purged version is listed again: {listed:?}"
            );
            for i in 0..3 {
                let record = cluster_ref.node_record(i, VERSIONED, "k").await;
                let stamps: Vec<_> = record
                    .iter()
                    .flat_map(|r| &r.versions)
                    .map(|v| (v.stamp.id.clone(), v.is_purged()))
                    .collect();
                if stamps.iter().any(|(id, _)| id == purged_ref) {
                    return Err(format!("node{i} still holds {stamps:?}"));
                }
            }
            Ok(())
        },
    )
    .await;
    assert!(cluster.gateway_metric("tombstones_dropped_total").await >= 1.0);
    // And it stays gone: more passes, the version never comes back.
    let passes = cluster.gateway_metric("anti_entropy_passes_total").await;
    let cluster_ref = &cluster;
    eventually("two more passes", HEAL, || async move {
        let now = cluster_ref
            .gateway_metric("anti_entropy_passes_total")
            .await;
        (now >= passes + 2.0)
            .then_some(())
            .ok_or(format!("{now} passes"))
    })
    .await;
    assert_eq!(listed_versions(&s3, "k").await, [ids[1].clone()]);
    let gone = s3
        .get_object()
        .bucket(VERSIONED)
        .key("k")
        .version_id(&purged)
        .send()
        .await;
    assert!(gone.is_err(), "GET of the purged version answered");
    assert_eq!(
        crate::harness::get_bytes(&s3, VERSIONED, "k").await,
        body(1),
        "the current version"
    );
}
