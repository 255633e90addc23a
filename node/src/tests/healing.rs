//! Self-healing end to end: repair hints, blob presence in listings, quarantine of corrupt
//! blobs and their repair, the scrubber, leases, and the open metrics route.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::*;
use crate::proto::{Data, Hint, LeaseReply, ObjectMeta, PartRef, Stamp, Version, VersionState};

const OTHER: &str = "ffeeddccbbaa99887766554433221100";
/// How long a test waits for background work before it gives up.
const DEADLINE: Duration = Duration::from_secs(20);

impl Node {
    fn quarantine_path(&self, id: &str) -> std::path::PathBuf {
        self.dir.path().join("data/quarantine").join(id)
    }

    /// The value of an unlabelled metric, read over the open `/metrics` route.
    async fn metric(&self, name: &str) -> f64 {
        let reply = self.call_as("GET", "/metrics", &[], &[]).await;
        assert_eq!(reply.status, 200);
        let text = String::from_utf8(reply.body).expect("UTF-8 metrics");
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} not in:\n{text}"))
    }

    /// Polls `metric` until it reaches `at_least`, failing after [`DEADLINE`].
    async fn wait_for_metric(&self, name: &str, at_least: f64) {
        let started = Instant::now();
        while self.metric(name).await < at_least {
            assert!(
                started.elapsed() < DEADLINE,
                "{name} never reached {at_least}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn hints_json(hints: &[(&str, &str, &str, u64)]) -> Vec<u8> {
    let hints: Vec<Hint> = hints
        .iter()
        .map(|&(target, bucket, key, since)| Hint {
            target: target.into(),
            bucket: bucket.into(),
            key: key.into(),
            since,
        })
        .collect();
    serde_json::to_vec(&hints).expect("encode hints")
}

pub(super) fn object_record(versions: Vec<(u64, VersionState)>) -> Vec<u8> {
    let versions = versions
        .into_iter()
        .map(|(ts, state)| Version {
            stamp: Stamp {
                ts,
                id: format!("v{ts}"),
            },
            null: false,
            state,
            tags: None,
            acl: None,
            follows: None,
        })
        .collect();
    serde_json::to_vec(&ObjectRecord { versions }).expect("encode record")
}

pub(super) fn object(data: Data) -> VersionState {
    VersionState::Object(ObjectMeta {
        size: 1,
        md5: "m".into(),
        etag: "m".into(),
        data,
        headers: BTreeMap::new(),
        user_metadata: BTreeMap::new(),
        part_number: None,
        checksums: BTreeMap::new(),
        checksum_type: None,
        checksum_algorithm: None,
    })
}

#[tokio::test]
async fn hints_are_stored_listed_and_deleted_only_when_not_raised_again() {
    let node = Node::start().await;
    let raised = hints_json(&[("http://n2", "b", "k", 5), ("http://n1", "b", "k/é", 3)]);
    assert_eq!(node.call("POST", "/hints", &[], &raised).await.status, 204);
    let listed: Vec<Hint> = node.call("GET", "/hints", &[], &[]).await.json();
    let keys: Vec<_> = listed
        .iter()
        .map(|h| (h.target.as_str(), h.since))
        .collect();
    assert_eq!(keys, [("http://n1", 3), ("http://n2", 5)]);
    let one: Vec<Hint> = node.call("GET", "/hints?limit=1", &[], &[]).await.json();
    assert_eq!(one.len(), 1);

    // Raised again (later `since`) after the repairer read it: its delete must not win.
    let again = hints_json(&[("http://n1", "b", "k/é", 8)]);
    assert_eq!(node.call("POST", "/hints", &[], &again).await.status, 204);
    let processed = serde_json::to_vec(&listed).expect("encode");
    let deleted = node.call("POST", "/hints/delete", &[], &processed).await;
    assert_eq!(deleted.status, 204);
    let left: Vec<Hint> = node.call("GET", "/hints", &[], &[]).await.json();
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].key.as_str(), left[0].since), ("k/é", 8));

    let bad = hints_json(&[("", "b", "k", 1)]);
    assert_eq!(node.call("POST", "/hints", &[], &bad).await.status, 400);
    assert_eq!(node.call("POST", "/hints", &[], b"{}").await.status, 400);
    assert_eq!(
        node.call("GET", "/hints?limit=x", &[], &[]).await.status,
        400
    );
    assert_eq!(
        node.call("GET", "/hints/delete", &[], &[]).await.status,
        405
    );
    node.stop().await;
}

#[tokio::test]
async fn list_with_check_blobs_names_referenced_blobs_missing_on_disk() {
    let node = Node::start().await;
    for id in [ID, OTHER] {
        let put = node
            .call("PUT", &format!("/blobs/{id}"), &[], b"body")
            .await;
        assert_eq!(put.status, 200);
    }
    let part = |number: u32, blob: &str| PartRef {
        number,
        blob: blob.into(),
        size: 4,
        md5: "m".into(),
        checksums: Default::default(),
    };
    let gone = "0000000000000000000000000000000a";
    let single = object_record(vec![(1, object(Data::Blob { id: ID.into() }))]);
    let multipart = object_record(vec![
        // A purged version's blob is not needed any more, present or not.
        (1, VersionState::Purged),
        (2, object(Data::Blob { id: gone.into() })),
        (
            3,
            object(Data::Parts {
                parts: vec![part(1, ID), part(2, OTHER)],
            }),
        ),
    ]);
    for (key, record) in [("single", &single), ("multi", &multipart)] {
        let path = format!("/records/b/{key}");
        assert_eq!(node.call("POST", &path, &[], record).await.status, 204);
    }
    std::fs::remove_file(node.blob_path(OTHER)).expect("remove blob file");

    let page: ListPage = node
        .call("GET", "/list/b?check_blobs=1", &[], &[])
        .await
        .json();
    let missing: Vec<(&str, Vec<&str>)> = page
        .entries
        .iter()
        .map(|e| {
            let ids = e.missing_blobs.iter().map(String::as_str).collect();
            (e.key.as_str(), ids)
        })
        .collect();
    assert_eq!(missing, [("multi", vec![gone, OTHER]), ("single", vec![])]);

    let plain = node.call("GET", "/list/b", &[], &[]).await;
    assert!(!String::from_utf8_lossy(&plain.body).contains("missing_blobs"));
    let page: ListPage = plain.json();
    assert!(page.entries.iter().all(|e| e.missing_blobs.is_empty()));
    node.stop().await;
}

#[tokio::test]
async fn a_corrupt_blob_is_quarantined_on_read_and_restored_by_a_rewrite() {
    let node = Node::start().await;
    let bytes = data(2 * BLOCK + 1);
    let path = format!("/blobs/{ID}");
    assert_eq!(node.call("PUT", &path, &[], &bytes).await.status, 200);
    let mut raw = std::fs::read(node.blob_path(ID)).expect("read blob file");
    raw[BLOCK + 7] ^= 1;
    std::fs::write(node.blob_path(ID), &raw).expect("write blob file");
    // Reads that do not touch the damaged block see nothing wrong.
    let clean = node
        .call("GET", &path, &[("range", "bytes=0-99")], &[])
        .await;
    assert!(clean.status == 206 && clean.body == bytes[..100]);

    // Damage in the first block read: a clean 500, and the file leaves the blob path.
    let in_first = node
        .call("GET", &path, &[("range", &format!("bytes={BLOCK}-"))], &[])
        .await;
    assert_eq!(
        (in_first.status, in_first.code().as_str()),
        (500, "Corrupt")
    );
    assert!(!node.blob_path(ID).exists());
    assert_eq!(
        std::fs::read(node.quarantine_path(ID)).expect("quarantined"),
        raw
    );
    let gone = node.call("GET", &path, &[], &[]).await;
    assert_eq!((gone.status, gone.code().as_str()), (404, "Quarantined"));
    assert_eq!(node.metric("node_blob_corruptions_total").await, 1.0);
    assert_eq!(node.metric("node_blobs").await, 0.0);

    // A repair writes the id again: readable again.
    assert_eq!(node.call("PUT", &path, &[], &bytes).await.status, 200);
    let repaired = node.call("GET", &path, &[], &[]).await;
    assert!(repaired.status == 200 && repaired.body == bytes);
    assert_eq!(node.metric("node_blobs").await, 1.0);

    // Damage met after the head was sent: the body is cut short, and the blob quarantined
    // again (over the older quarantined copy).
    std::fs::write(node.blob_path(ID), &raw).expect("write blob file");
    let later = node.call("GET", &path, &[], &[]).await;
    assert_eq!(later.status, 200);
    assert!(later.cut_short, "a corrupt block must not be served");
    assert!(later.body.len() <= BLOCK);
    assert_eq!(node.call("GET", &path, &[], &[]).await.status, 404);
    assert_eq!(node.metric("node_blob_corruptions_total").await, 2.0);
    node.stop().await;
}

#[tokio::test]
async fn scrubber_quarantines_corrupt_blobs_and_keeps_healthy_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start_with(dir, |c| {
        c.scrub_interval = Some(Duration::from_millis(200));
    })
    .await;
    let healthy = data(3 * BLOCK);
    let damaged = data(BLOCK + 10);
    for (id, bytes) in [(ID, &healthy), (OTHER, &damaged)] {
        let put = node.call("PUT", &format!("/blobs/{id}"), &[], bytes).await;
        assert_eq!(put.status, 200);
    }
    let mut raw = std::fs::read(node.blob_path(OTHER)).expect("read blob file");
    raw[BLOCK + 3] ^= 0x80;
    std::fs::write(node.blob_path(OTHER), &raw).expect("write blob file");

    node.wait_for_metric("node_blob_corruptions_total", 1.0)
        .await;
    assert!(node.quarantine_path(OTHER).exists());
    assert_eq!(
        node.call("GET", &format!("/blobs/{OTHER}"), &[], &[])
            .await
            .status,
        404
    );
    // A full pass after the quarantine leaves the healthy blob alone.
    let passes = node.metric("node_scrub_passes_total").await;
    node.wait_for_metric("node_scrub_passes_total", passes + 1.0)
        .await;
    assert_eq!(node.metric("node_blob_corruptions_total").await, 1.0);
    assert!(node.metric("node_scrub_blobs_checked_total").await >= 2.0);
    let kept = node.call("GET", &format!("/blobs/{ID}"), &[], &[]).await;
    assert!(kept.status == 200 && kept.body == healthy);
    assert!(!node.quarantine_path(ID).exists());
    node.stop().await;
}

#[tokio::test]
async fn scrubber_waits_one_interval_and_passes_over_an_empty_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start_with(dir, |c| {
        c.scrub_interval = Some(Duration::from_secs(1));
    })
    .await;
    assert_eq!(node.metric("node_scrub_passes_total").await, 0.0);
    node.wait_for_metric("node_scrub_passes_total", 1.0).await;
    assert_eq!(node.metric("node_scrub_blobs_checked_total").await, 0.0);
    node.stop().await;
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_scrub_in_progress() {
    let node = Node::start().await;
    let put = node
        .call("PUT", &format!("/blobs/{ID}"), &[], &data(4 << 20))
        .await;
    assert_eq!(put.status, 200);
    let dir = node.stop().await;
    // 4 MiB at 64 KiB/s: the first pass, 50 ms in, would take about a minute.
    let node = Node::start_with(dir, |c| {
        c.scrub_interval = Some(Duration::from_millis(50));
        c.scrub_rate_bytes_per_sec = 64 * 1024;
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(node.metric("node_scrub_passes_total").await, 0.0);
    let started = Instant::now();
    node.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn leases_are_granted_refused_renewed_and_expire() {
    let node = Node::start().await;
    let ask = |holder: &str, ttl_ms: u64| {
        serde_json::to_vec(&proto::LeaseRequest {
            holder: holder.into(),
            ttl_ms,
        })
        .expect("encode")
    };
    let lease = |body: Vec<u8>| {
        let node = &node;
        async move {
            let reply = node.call("POST", "/lease/repair", &[], &body).await;
            assert_eq!(reply.status, 200);
            reply.json::<LeaseReply>()
        }
    };
    let granted = lease(ask("gw-a", 60_000)).await;
    assert!(granted.granted && granted.holder == "gw-a");
    let refused = lease(ask("gw-b", 60_000)).await;
    assert!(!refused.granted && refused.holder == "gw-a");
    assert!(refused.remaining_ms > 50_000 && refused.remaining_ms <= 60_000);
    let started = Instant::now();
    let renewed = lease(ask("gw-a", 100)).await;
    assert!(renewed.granted && renewed.remaining_ms == 100);

    // Once the short renewal runs out, another holder gets it.
    loop {
        let reply = lease(ask("gw-b", 60_000)).await;
        if reply.granted {
            assert_eq!(reply.holder, "gw-b");
            break;
        }
        assert!(started.elapsed() < DEADLINE, "lease never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(100));
    let empty = node.call("POST", "/lease/repair", &[], &ask("", 10)).await;
    assert_eq!(empty.status, 400);
    node.stop().await;
}

#[tokio::test]
async fn metrics_are_open_and_count_requests_blobs_and_commits() {
    let node = Node::start().await;
    assert_eq!(
        node.call("PUT", &format!("/blobs/{ID}"), &[], &data(1000))
            .await
            .status,
        200
    );
    assert_eq!(
        node.call("POST", "/records/b/k", &[], &record_json())
            .await
            .status,
        204
    );
    let _ = node.call_as("GET", "/buckets", &[], &[]).await;
    let reply = node.call_as("GET", "/metrics", &[], &[]).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|v| v.starts_with("text/plain"))
    );
    let text = String::from_utf8(reply.body).expect("UTF-8");
    for name in [
        "node_requests_total{route=\"put_blob\",status=\"200\"} 1",
        "node_requests_total{route=\"merge_record\",status=\"204\"} 1",
        "node_requests_total{route=\"list_buckets\",status=\"401\"} 1",
        "node_request_duration_seconds_bucket{route=\"put_blob\"",
        "node_blobs 1",
        "node_blob_bytes 1000",
        "node_blob_corruptions_total 0",
        "node_scrub_blobs_checked_total 0",
        "node_scrub_passes_total 0",
        "node_record_commits_total 1",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    // The gauges are rebuilt from the disk on restart.
    let dir = node.stop().await;
    let node = Node::start_in(dir).await;
    assert_eq!(node.metric("node_blobs").await, 1.0);
    assert_eq!(node.metric("node_blob_bytes").await, 1000.0);
    node.stop().await;
}
