//! A flipped byte in a stored blob file: never served, detected (by a read or by the
//! node's scrubber), and the replica rewritten from a good one.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use node::proto::Data;

use crate::harness::*;
use crate::{BUCKET, HEAL, INLINE_MAX, options, put_all, start, start_opts};

/// Where the flipped byte goes: inside the second 64 KiB block of the data.
const FLIP_AT: u64 = 70_000;

/// One corrupted replica: which node, which blob, its file and a good copy of that file.
struct Rotten {
    node: usize,
    key: String,
    data: Vec<u8>,
    id: String,
    path: PathBuf,
    good_file: Vec<u8>,
}

/// Flips a byte of the blob of `key` on `node`, keeping a good copy of the file (from
/// another replica) to compare the repaired one with.
async fn rot(cluster: &Cluster, node: usize, key: &str, data: &[u8]) -> Rotten {
    let record = cluster
        .node_record(node, BUCKET, key)
        .await
        .unwrap_or_else(|| panic!("node{node} has no record of {key}"));
    let (_, meta) = record.current_object().expect("a current object");
    let Data::Blob { id } = &meta.data else {
        panic!(
            "{key} ({} bytes) is not stored as a blob: {:?}",
            data.len(),
            meta.data
        );
    };
    let path = cluster.blob_path(node, id);
    let other = cluster.blob_path((node + 1) % cluster.node_count(), id);
    let good_file = fs::read(&other).unwrap_or_else(|e| panic!("read {}: {e}", other.display()));
    assert_eq!(
        fs::read(&path).ok().as_ref(),
        Some(&good_file),
        "the replicas' files of {key} differ before any corruption"
    );
    flip_byte(&path, FLIP_AT);
    Rotten {
        node,
        key: key.to_string(),
        data: data.to_vec(),
        id: id.clone(),
        path,
        good_file,
    }
}

/// Polls until the rotten replica is whole again: its file equals the good replica's
/// file and the node itself serves the blob whole. A node-direct read of a still-corrupt
/// copy is itself a detection (the node quarantines it; repair follows).
async fn wait_rewritten(cluster: &Cluster, r: &Rotten) {
    eventually(
        &format!("node{} rewrites its copy of {}", r.node, r.key),
        HEAL,
        || async move {
            // Read first: a copy no read has met yet is found corrupt by this read.
            let served = cluster.try_node_blob(r.node, &r.id).await;
            match fs::read(&r.path) {
                Ok(file) if file == r.good_file => {}
                Ok(_) => return Err(format!("{} still differs", r.path.display())),
                Err(e) => return Err(format!("{}: {e}", r.path.display())),
            }
            let served = served?;
            if served.as_ref() != r.data.as_slice() {
                return Err(format!(
                    "node{} serves {} bytes (md5 {}) for blob {}",
                    r.node,
                    served.len(),
                    md5_hex(&served),
                    r.id
                ));
            }
            Ok(())
        },
    )
    .await;
}

/// Test 5. Each of three objects is corrupted on a different node, so whichever replica
/// the gateway reads bodies from, some read meets a corrupt copy.
#[tokio::test]
async fn a_flipped_byte_is_never_served_and_the_bad_replica_is_rewritten() {
    let cluster = start(true).await;
    let s3 = cluster.client();
    let written: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| {
            (
                format!("rot/{i}"),
                pattern(3 * INLINE_MAX + 123, 50 + i as u64),
            )
        })
        .collect();
    put_all(&s3, &written).await;
    cluster.assert_converged(BUCKET, &written).await;

    let mut rotten = Vec::new();
    for (i, (key, data)) in written.iter().enumerate() {
        rotten.push(rot(&cluster, i, key, data).await);
    }
    // Every read returns the right bytes; reads go on until one met a corrupt copy.
    // Reads start at a rotating replica and try the first to answer first: a fixed number
    // of reads per round would give each object the same starting replica every round, so
    // each round shifts the rotation by one more HEAD than the last.
    let (cluster, s3, written_ref) = (&cluster, &s3, &written);
    let round = std::sync::atomic::AtomicUsize::new(0);
    let round = &round;
    eventually(
        "a GET meets a corrupt replica (bitrot_detections_total >= 1)",
        Duration::from_secs(20),
        || async move {
            let shift = round.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 3;
            for _ in 0..shift {
                let head = s3.head_object().bucket(BUCKET).key(&written_ref[0].0);
                head.send().await.expect("HEAD");
            }
            for (key, data) in written_ref {
                let got = get_bytes(s3, BUCKET, key).await;
                assert_same_bytes(&got, data, &format!("GET {key} with a corrupt replica"));
            }
            match cluster.gateway_metric("bitrot_detections_total").await {
                n if n >= 1.0 => Ok(()),
                n => Err(format!("bitrot_detections_total = {n}")),
            }
        },
    )
    .await;
    for r in &rotten {
        wait_rewritten(cluster, r).await;
        let corruptions = metric_sum(
            &cluster.node_metrics(r.node).await,
            "node_blob_corruptions_total",
        );
        assert!(
            corruptions.is_some_and(|n| n >= 1.0),
            "node{}: node_blob_corruptions_total = {corruptions:?} after serving a corrupt blob",
            r.node
        );
    }
    eprintln!(
        "bitrot: gateway bitrot_detections_total = {}",
        cluster.gateway_metric("bitrot_detections_total").await
    );
    cluster.assert_converged(BUCKET, &written).await;
}

/// Test 5, scrubber variant: nobody reads the object; the node's scrubber finds the
/// corruption and quarantines the blob, the next anti-entropy pass rewrites it.
#[tokio::test]
async fn the_scrubber_finds_a_flipped_byte_nobody_reads_and_anti_entropy_rewrites_it() {
    let cluster = start_opts(options(true).node_arg("--scrub-interval-ms", 300)).await;
    let s3 = cluster.client();
    let written = vec![("scrubbed".to_string(), pattern(5 * INLINE_MAX, 60))];
    put_all(&s3, &written).await;
    cluster.assert_converged(BUCKET, &written).await;

    let (key, data) = &written[0];
    let r = rot(&cluster, 1, key, data).await;
    eventually("node1's scrubber finds the corrupt blob", HEAL, || async {
        let metrics = cluster.node_metrics(1).await;
        match metric_sum(&metrics, "node_blob_corruptions_total") {
            Some(n) if n >= 1.0 => Ok(()),
            n => Err(format!(
                "node_blob_corruptions_total = {n:?}, node_scrub_passes_total = {:?}",
                metric_sum(&metrics, "node_scrub_passes_total")
            )),
        }
    })
    .await;
    wait_rewritten(&cluster, &r).await;
    let detections = cluster.gateway_metric("bitrot_detections_total").await;
    assert!(
        detections >= 1.0,
        "bitrot_detections_total = {detections} after anti-entropy rewrote a quarantined blob"
    );
    cluster.assert_converged(BUCKET, &written).await;
}

/// A replica without a blob it should hold (it never got it, or is still writing it: a
/// write is visible once W replicas have the bytes) is repaired, by reads and by
/// anti-entropy, and is no bitrot: only bad bytes a node found count.
#[tokio::test]
async fn a_missing_blob_replica_is_repaired_and_not_counted_as_bitrot() {
    for anti_entropy in [false, true] {
        let cluster = start(anti_entropy).await;
        let s3 = cluster.client();
        let key = format!("gone/{anti_entropy}");
        let data = pattern(3 * INLINE_MAX + 7, 70);
        let written = vec![(key.clone(), data.clone())];
        put_all(&s3, &written).await;
        cluster.assert_converged(BUCKET, &written).await;
        let record = cluster.node_record(0, BUCKET, &key).await.expect("record");
        let Some((_, meta)) = record.current_object() else {
            panic!("no current object")
        };
        let Data::Blob { id } = &meta.data else {
            panic!("{key} is not a blob: {:?}", meta.data)
        };
        let gone = [0, 1].map(|i| cluster.blob_path(i, id));
        for path in &gone {
            fs::remove_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        let (cluster_ref, s3_ref, key_ref, data_ref) = (&cluster, &s3, &key, &data);
        let gone_ref = &gone;
        eventually("both replicas hold the blob again", HEAL, || async move {
            if !anti_entropy {
                // Reads meet the replicas without the blob and repair them.
                let got = get_bytes(s3_ref, BUCKET, key_ref).await;
                assert_same_bytes(&got, data_ref, "GET with two replicas lacking the blob");
            }
            match gone_ref.iter().filter(|p| !p.exists()).count() {
                0 => Ok(()),
                n => Err(format!("{n} replicas still lack blob {id}")),
            }
        })
        .await;
        assert_eq!(
            cluster_ref.gateway_metric("bitrot_detections_total").await,
            0.0,
            "a missing blob counted as bitrot (anti-entropy {anti_entropy})"
        );
        cluster.assert_converged(BUCKET, &written).await;
    }
}
