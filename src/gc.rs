//! Garbage collection of blobs: the pass the repair-lease holder runs after each
//! anti-entropy pass, returning the space of every blob file no record refers to.
//!
//! Deleting a blob something refers to loses data, so a blob file goes only when all of
//! this holds (the decision is [`unreferenced_everywhere`], property-tested):
//! - its node's records and accepted Paxos values do not refer to it, its file is older
//!   than the grace (`--gc-grace-secs`), so a write still on its way (blob stored, record
//!   not yet) keeps it, and so is the moment its last reference went, so a read that began
//!   before an overwrite or a purge can finish streaming it;
//! - every other node answered, and none refers to it (a replica whose record refers to the
//!   blob may need it as a repair source, and a node that does not answer might);
//! - its node, checking again inside its record writer just before the delete, still finds
//!   nothing referring to it and the file still older than the grace.
//!
//! This covers the blobs of uploads that reached fewer than W replicas, of versions replaced
//! or purged, of aborted, completed and expired multipart uploads, and quarantined copies.
//! The pass keeps nothing in memory between runs: a gateway that crashes leaks nothing, the
//! next pass (in whichever gateway then holds the lease) finds the same garbage.
//!
//! Purge tombstones (and with them finished upload records, which are tombstones only) are
//! dropped once a node has held them for `--tombstone-grace-secs` and every replica of the
//! key holds them: the pass first pushes a tombstone to each replica that lacks it (a
//! replica that does not answer keeps every tombstone of the key), and drops in a later
//! pass. A replica away for the whole grace therefore blocks the drop, and never brings a
//! purged version back.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;

use node::proto::gc::TombstoneRef;
use node::proto::{MAX_SELECT_STAMPS, Stamp};

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
    /// Purge tombstones dropped (counted once per key version, not per replica).
    pub tombstones_dropped: u64,
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

/// The graces of a pass.
#[derive(Debug, Clone, Copy)]
pub struct Graces {
    /// Age an unreferenced blob file must reach.
    pub blobs: Duration,
    /// Time a node must have held a purge tombstone.
    pub tombstones: Duration,
}

/// One pass over every shard of every node, then over every node's old tombstones.
pub async fn pass(cluster: &Cluster, graces: Graces, stop: &watch::Receiver<bool>) -> GcStatus {
    let grace = graces.blobs;
    let started = Instant::now();
    // One layout for the pass: a node that moves on refuses the rest, and the pass is
    // incomplete (nothing is collected on an answer missing).
    let cluster = &cluster.current();
    let members = cluster.all_nodes();
    let mut status = GcStatus {
        complete: true,
        ..GcStatus::default()
    };
    'nodes: for &i in &members {
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
    for &i in &members {
        if *stop.borrow() || !tombstone_pass(cluster, i, graces.tombstones, &mut status).await {
            status.complete = false;
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
        tombstones = status.tombstones_dropped,
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
    status.blobs_scanned += scan.files;
    if scan.unreferenced.is_empty() {
        return true;
    }
    let ids: Vec<String> = scan.unreferenced.into_iter().map(|b| b.id).collect();
    let mut answers = Vec::new();
    for j in cluster.all_nodes().into_iter().filter(|&j| j != i) {
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

/// Drops the tombstones node `i` has held for `grace` whose every replica holds them too;
/// false when some node did not answer.
async fn tombstone_pass(
    cluster: &Cluster,
    i: usize,
    grace: Duration,
    status: &mut GcStatus,
) -> bool {
    let mut after: Option<String> = None;
    let mut complete = true;
    loop {
        let page = match cluster.gc_tombstones(i, grace, after.as_deref()).await {
            Ok(page) => page,
            Err(e) => {
                tracing::debug!("tombstones not listed: {e}");
                return false;
            }
        };
        let mut by_key: BTreeMap<(String, String), Vec<Stamp>> = BTreeMap::new();
        for t in page.tombstones {
            by_key.entry((t.bucket, t.key)).or_default().push(t.stamp);
        }
        for ((bucket, key), stamps) in by_key {
            for chunk in stamps.chunks(MAX_SELECT_STAMPS) {
                match drop_everywhere(cluster, i, &bucket, &key, chunk).await {
                    Ok(n) => status.tombstones_dropped += n,
                    Err(e) => {
                        tracing::debug!(bucket, key, "tombstones kept: {e}");
                        complete = false;
                    }
                }
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return complete,
        }
        tokio::time::sleep(SHARD_PAUSE).await;
    }
}

/// Drops version `stamps` of `(bucket, key)` (tombstones on node `from`) on every replica
/// if every replica holds them as tombstones; pushes them to those that do not. How many
/// were dropped.
async fn drop_everywhere(
    cluster: &Cluster,
    from: usize,
    bucket: &str,
    key: &str,
    stamps: &[Stamp],
) -> Result<u64, crate::error::Error> {
    let source = cluster.tombstones_on(from, bucket, key, stamps).await?;
    if source.versions.is_empty() {
        return Ok(0);
    }
    let held: Vec<Stamp> = source.versions.iter().map(|v| v.stamp.clone()).collect();
    let replicas = cluster.replicas_of(bucket, key);
    let mut everywhere = true;
    for &r in replicas.iter().filter(|&&r| r != from) {
        let there = cluster.tombstones_on(r, bucket, key, &held).await?;
        if there.versions.len() < held.len() {
            cluster.push_tombstones(r, bucket, key, &source).await?;
            everywhere = false;
        }
    }
    if !everywhere {
        return Ok(0);
    }
    let refs: Vec<TombstoneRef> = held
        .iter()
        .map(|stamp| TombstoneRef {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            stamp: stamp.clone(),
        })
        .collect();
    let mut dropped = 0;
    for &r in &replicas {
        let d = cluster.gc_drop(r, &refs).await?;
        if r == from {
            dropped = d.dropped;
        }
    }
    cluster.metrics().tombstones_dropped.inc_by(dropped);
    Ok(dropped)
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
