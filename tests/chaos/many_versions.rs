//! A node that lost its disk gets every version of long histories back: a key with 10,000
//! versions, and a key whose inline versions weigh more than the largest record answer a
//! node gives (16 MiB), which only a repair that pages through versions can copy.

use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
use bytes::Bytes;
use futures::StreamExt;
use hyper::Method;
use node::proto::{self, ObjectRecord, Stamp, Version, VersionState};

use crate::harness::{Cluster, eventually, pattern};
use crate::{BUCKET, start};

/// Writes `count` versions of `key`, `parallel` at a time, version `n` holding `body(n)`.
async fn put_versions(
    s3: &Client,
    key: &str,
    count: usize,
    parallel: usize,
    body: impl Fn(usize) -> Vec<u8>,
) {
    let body = &body;
    futures::stream::iter(0..count)
        .map(|n| async move {
            s3.put_object()
                .bucket(BUCKET)
                .key(key)
                .body(ByteStream::from(body(n)))
                .send()
                .await
                .unwrap_or_else(|e| panic!("PUT version {n} of {key}: {e:?}"));
        })
        .buffer_unordered(parallel)
        .collect::<Vec<()>>()
        .await;
}

/// Node `i`'s versions of `key`, without inline bodies.
async fn versions_on(cluster: &Cluster, i: usize, key: &str) -> ObjectRecord {
    let path = format!(
        "/records/{}/{}?bodies=none",
        proto::encode_segment(BUCKET),
        proto::encode_segment(key)
    );
    let resp = cluster
        .node_request(i, Method::GET, &path, Bytes::new())
        .await;
    match resp.status {
        200 => resp.json(),
        404 => ObjectRecord::default(),
        s => panic!("GET {path} on node{i}: {s} {}", resp.text()),
    }
}

#[tokio::test]
async fn a_wiped_node_gets_back_every_version_of_long_histories() {
    let mut cluster = start(true).await;
    let s3 = cluster.client();
    s3.put_bucket_versioning()
        .bucket(BUCKET)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    const MANY: usize = 10_000;
    const HEAVY: usize = 300;
    const SIZE: usize = 62 * 1024;
    const _: () = assert!(HEAVY * SIZE > proto::MAX_RECORD_BODY);
    put_versions(&s3, "many", MANY, 16, |n| format!("v{n}").into_bytes()).await;
    put_versions(&s3, "heavy", HEAVY, 8, |n| pattern(SIZE, n as u64)).await;

    cluster.kill_node(2);
    cluster.wipe_node(2);
    cluster.restart_node(2).await;
    let started = Instant::now();
    let cluster_ref = &cluster;
    let mut peak_rss = 0;
    for (key, count) in [("many", MANY), ("heavy", HEAVY)] {
        eventually(
            &format!("node2 holds every version of {key}"),
            Duration::from_secs(180),
            || async move {
                let n = versions_on(cluster_ref, 2, key).await.versions.len();
                if n == count {
                    Ok(())
                } else {
                    Err(format!("node2 holds {n} of {count} versions"))
                }
            },
        )
        .await;
        peak_rss = peak_rss.max(cluster.node_rss(2));
    }
    eprintln!(
        "wiped node: {MANY} + {HEAVY} versions (of {SIZE} B inline) repaired in {:?}, node2 RSS {} MiB after",
        started.elapsed(),
        peak_rss >> 20
    );
    // Exactly what the other replicas hold, version for version.
    for key in ["many", "heavy"] {
        assert_eq!(
            versions_on(&cluster, 2, key).await,
            versions_on(&cluster, 0, key).await,
            "{key}"
        );
    }

    // A version only the anti-entropy pass can find (written straight to two replicas, so
    // no repair hint exists), at the end of a history longer than a list page carries.
    let newest = versions_on(&cluster, 0, "many").await.versions;
    let newest = newest.last().expect("versions").stamp.clone();
    let marker = Version {
        stamp: Stamp {
            ts: newest.ts + 1,
            id: "f".repeat(32),
        },
        null: false,
        state: VersionState::DeleteMarker,
        tags: None,
        acl: None,
        follows: None,
    };
    let body = serde_json::to_vec(&ObjectRecord::single(marker.clone())).unwrap();
    for i in [0, 1] {
        let resp = cluster
            .node_request(
                i,
                Method::POST,
                "/records/chaos/many",
                Bytes::from(body.clone()),
            )
            .await;
        assert_eq!(resp.status, 204, "{}", resp.text());
    }
    let marker = &marker;
    let late = Instant::now();
    eventually(
        "anti-entropy brings the late version to node2",
        Duration::from_secs(60),
        || async move {
            let held = versions_on(cluster_ref, 2, "many").await;
            if held.versions.last() == Some(marker) {
                Ok(())
            } else {
                Err(format!(
                    "node2 holds {} versions, not the late one",
                    held.versions.len()
                ))
            }
        },
    )
    .await;
    eprintln!("late version found by anti-entropy in {:?}", late.elapsed());
}
