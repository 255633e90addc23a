//! Garbage collection of blobs: the pass the repair-lease holder runs after each
//! anti-entropy pass, returning the space of every blob file no record refers to.
//!
//! Deleting a blob something refers to loses data, so a blob file goes only when all of
//! this holds (the decision is [`unreferenced_everywhere`], property-tested):
//! - its node's records and accepted Paxos values do not refer to it, and its file is older
//!   than the grace (`--gc-grace-secs`), so a write still on its way (blob stored, record
//!   not yet) keeps it;
//! - every other node answered, and none refers to it (a replica whose record refers to the
//!   blob may need it as a repair source, and a node that does not answer might);
//! - its node, checking again inside its record writer just before the delete, still finds
//!   nothing referring to it and the file still older than the grace.
//!
//! This covers the blobs of uploads that reached fewer than W replicas, of versions replaced
//! or purged, of aborted, completed and expired multipart uploads, and quarantined copies.
//! The pass keeps nothing in memory between runs: a gateway that crashes leaks nothing, the
//! next pass (in whichever gateway then holds the lease) finds the same garbage.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;

use crate::quorum::Cluster;

/// Pause between two shards of a pass: it is background work.
const SHARD_PAUSE: Duration = Duration::from_millis(2);

/// What `/status` shows of the last pass.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcStatus {
    /// Unix seconds when the pass ended.
    pub finished_at: u64,
    pub duration_ms: u64,
    /// Blob files looked at (every node, every shard).
    pub blobs_scanned: u64,
    pub blobs_deleted: u64,
    pub bytes_freed: u64,
    /// Unreferenced blob files still younger than the grace.
    pub candidates: u64,
    /// Quarantined copies removed because their blob was written again.
    pub quarantine_cleared: u64,
    /// Every node and shard was looked at, with every node answering.
    pub complete: bool,
}

/// Of `candidates` (blobs one node's records do not refer to), those no other node refers
/// to either, given each other node's answer (`None`: it did not answer). With a missing
/// answer nothing is unreferenced everywhere.
pub fn unreferenced_everywhere(
    candidates: &[String],
    answers: &[Option<Vec<String>>],
) -> Vec<String> {
    if answers.iter().any(Option::is_none) {
        return Vec::new();
    }
    let referenced: BTreeSet<&str> = answers
        .iter()
        .flatten()
        .flatten()
        .map(String::as_str)
        .collect();
    candidates
        .iter()
        .filter(|id| !referenced.contains(id.as_str()))
        .cloned()
        .collect()
}

/// One pass over every shard of every node.
pub async fn pass(cluster: &Cluster, grace: Duration, stop: &watch::Receiver<bool>) -> GcStatus {
    let started = Instant::now();
    let n = cluster.node_urls().len();
    let mut status = GcStatus {
        complete: true,
        ..GcStatus::default()
    };
    'nodes: for i in 0..n {
        for shard in 0..=255u8 {
            if *stop.borrow() {
                status.complete = false;
                break 'nodes;
            }
            if !shard_pass(cluster, i, shard, grace, &mut status).await {
                status.complete = false;
            }
            tokio::time::sleep(SHARD_PAUSE).await;
        }
    }
    let metrics = cluster.metrics();
    metrics.gc_candidates.set(status.candidates as i64);
    status.duration_ms = started.elapsed().as_millis() as u64;
    status.finished_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    tracing::info!(
        deleted = status.blobs_deleted,
        bytes = status.bytes_freed,
        waiting = status.candidates,
        ms = status.duration_ms,
        complete = status.complete,
        "garbage collection pass finished"
    );
    status
}

/// Collects shard `shard` of node `i`; false when some node did not answer.
async fn shard_pass(
    cluster: &Cluster,
    i: usize,
    shard: u8,
    grace: Duration,
    status: &mut GcStatus,
) -> bool {
    let scan = match cluster.gc_scan(i, shard, grace).await {
        Ok(scan) => scan,
        Err(e) => {
            tracing::debug!(shard, "garbage collection skips a shard: {e}");
            return false;
        }
    };
    status.candidates += scan.waiting;
    status.quarantine_cleared += scan.quarantine_cleared;
    status.blobs_scanned += scan.waiting + scan.unreferenced.len() as u64;
    if scan.unreferenced.is_empty() {
        return true;
    }
    let ids: Vec<String> = scan.unreferenced.into_iter().map(|b| b.id).collect();
    let mut answers = Vec::new();
    for j in (0..cluster.node_urls().len()).filter(|&j| j != i) {
        answers.push(cluster.gc_referenced(j, &ids).await.ok());
    }
    let complete = answers.iter().all(Option::is_some);
    let garbage = unreferenced_everywhere(&ids, &answers);
    if garbage.is_empty() {
        return complete;
    }
    match cluster.gc_collect(i, &garbage, grace).await {
        Ok(collected) => {
            let metrics = cluster.metrics();
            metrics
                .gc_blobs_deleted
                .inc_by(collected.deleted.len() as u64);
            metrics.gc_bytes_freed.inc_by(collected.bytes);
            status.blobs_deleted += collected.deleted.len() as u64;
            status.bytes_freed += collected.bytes;
            complete
        }
        Err(e) => {
            tracing::warn!(shard, "garbage collection could not delete: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Nothing any answer names, and nothing at all when an answer is missing, is ever
        /// chosen; everything else is.
        #[test]
        fn only_blobs_no_node_refers_to_are_chosen(
            candidates in proptest::collection::btree_set(0u8..32, 0..16),
            answers in proptest::collection::vec(
                proptest::option::weighted(0.9, proptest::collection::vec(0u8..32, 0..16)),
                0..4,
            ),
        ) {
            let name = |n: &u8| format!("{n:032x}");
            let candidates: Vec<String> = candidates.iter().map(name).collect();
            let answers: Vec<Option<Vec<String>>> = answers
                .iter()
                .map(|a| a.as_ref().map(|ids| ids.iter().map(name).collect()))
                .collect();
            let chosen = unreferenced_everywhere(&candidates, &answers);
            let missing = answers.iter().any(Option::is_none);
            for id in &candidates {
                let named = answers.iter().flatten().flatten().any(|r| r == id);
                prop_assert_eq!(chosen.contains(id), !missing && !named, "{}", id);
            }
            prop_assert!(chosen.iter().all(|id| candidates.contains(id)));
        }
    }
}
