//! Garbage collection of blobs: the pass the repair-lease holder runs after each
//! anti-entropy pass, returning the space of every blob file no record refers to.
//!
//! Deleting a blob something refers to loses data, so a blob file goes only when all of
//! this holds (the decision is [`unneeded_copies`], property-tested):
//! - its node's records and accepted Paxos values do not refer to it, its file is older
//!   than the grace (`--gc-grace-secs`), so a write still on its way (blob stored, record
//!   not yet) keeps it, and so is the moment its last reference went, so a read that began
//!   before an overwrite or a purge can finish streaming it;
//! - every other node answered, and none refers to it (a replica whose record refers to the
//!   blob may need it as a repair source, and a node that does not answer might), unless
//!   its node owns none of the keys referring to it and, for each of them, an owner refers
//!   to it and holds its file: the copy a layout change left behind on an old owner, once
//!   the new owners confirmed theirs (passes do not run while two layouts are live);
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

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;

use node::proto::gc::{Referenced, TombstoneRef};
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

/// Of `candidates` (blobs node `node`'s records do not refer to), those whose file on
/// `node` nothing needs, given every other node's answer to `referenced` (`None`: it did not
/// answer) and `owners`, the nodes a record address is placed on in the layout of the pass.
///
/// With an answer missing, nothing is chosen. A blob no other node refers to is chosen. A
/// blob others refer to is chosen only when `node` owns none of the referring keys (its
/// copy is then neither a replica nor a repair's source: a layout change moved the keys
/// away), every referring key is named (no `more`), and each of them has an owner that
/// refers to the blob and holds its file: the new owners confirmed it.
pub fn unneeded_copies(
    node: usize,
    candidates: &[String],
    answers: &[(usize, Option<Vec<Referenced>>)],
    owners: impl Fn(&str, &str) -> Vec<usize>,
) -> Vec<String> {
    if answers.iter().any(|(_, a)| a.is_none()) {
        return Vec::new();
    }
    let mut refs: HashMap<&str, Vec<(usize, &Referenced)>> = HashMap::new();
    for (j, answer) in answers {
        for r in answer.iter().flatten() {
            refs.entry(r.id.as_str()).or_default().push((*j, r));
        }
    }
    let moved_away = |found: &[(usize, &Referenced)]| {
        !found.iter().any(|(_, r)| r.more)
            && found.iter().flat_map(|(_, r)| &r.keys).all(|k| {
                let own = owners(&k.bucket, &k.key);
                !own.contains(&node)
                    && found
                        .iter()
                        .any(|(j, r)| r.stored && own.contains(j) && r.keys.contains(k))
            })
    };
    candidates
        .iter()
        .filter(|id| refs.get(id.as_str()).is_none_or(|found| moved_away(found)))
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
        answers.push((j, cluster.gc_referenced(j, &ids).await.ok()));
    }
    let complete = answers.iter().all(|(_, a)| a.is_some());
    let owners = |bucket: &str, key: &str| cluster.placed(bucket, key).targets;
    let garbage = unneeded_copies(i, &ids, &answers, owners);
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

    use node::proto::gc::KeyRef;

    use super::*;

    /// Node 1 to 4's answers about blobs `b0..b7`: per blob, the keys `k0..k5` that refer
    /// to it there, whether the list is cut, and whether the file is there.
    type World = Vec<Option<Vec<(u8, Vec<u8>, bool, bool)>>>;

    fn world() -> impl Strategy<Value = World> {
        let referenced = (
            0u8..8,
            proptest::collection::vec(0u8..6, 1..3),
            proptest::bool::weighted(0.1),
            proptest::bool::weighted(0.8),
        );
        proptest::collection::vec(
            proptest::option::weighted(0.9, proptest::collection::vec(referenced, 0..6)),
            4,
        )
    }

    fn answers(world: &World) -> Vec<(usize, Option<Vec<Referenced>>)> {
        world
            .iter()
            .enumerate()
            .map(|(j, answer)| {
                let answer = answer.as_ref().map(|refs| {
                    let mut by_id: BTreeMap<u8, Referenced> = BTreeMap::new();
                    for (id, keys, more, stored) in refs {
                        let r = by_id.entry(*id).or_insert_with(|| Referenced {
                            id: format!("b{id}"),
                            keys: Vec::new(),
                            more: *more,
                            stored: *stored,
                        });
                        for k in keys {
                            let k = KeyRef {
                                bucket: "b".into(),
                                key: format!("k{k}"),
                            };
                            if !r.keys.contains(&k) {
                                r.keys.push(k);
                            }
                        }
                    }
                    by_id.into_values().collect()
                });
                (j + 1, answer)
            })
            .collect()
    }

    proptest! {
        /// Node 0's copy is chosen exactly when every node answered and each key referring
        /// to the blob elsewhere is owned by others, one of which confirms the file, and
        /// nothing was left unnamed. With every node an owner of every key (as many nodes
        /// as replicas), that is: nothing refers to it anywhere else.
        #[test]
        fn only_copies_no_owner_needs_are_chosen(
            candidates in proptest::collection::btree_set(0u8..8, 0..8),
            world in world(),
            placement in proptest::collection::vec(proptest::collection::btree_set(0usize..5, 3), 6),
            everywhere in proptest::bool::ANY,
        ) {
            let candidates: Vec<String> = candidates.iter().map(|n| format!("b{n}")).collect();
            let answers = answers(&world);
            let owners = |_: &str, key: &str| -> Vec<usize> {
                if everywhere {
                    return (0..5).collect();
                }
                let n: usize = key[1..].parse().expect("key number");
                placement[n].iter().copied().collect()
            };
            let chosen = unneeded_copies(0, &candidates, &answers, owners);
            let missing = answers.iter().any(|(_, a)| a.is_none());
            let refs = |id: &str| -> Vec<(usize, Referenced)> {
                answers
                    .iter()
                    .flat_map(|(j, a)| a.iter().flatten().map(move |r| (*j, r.clone())))
                    .filter(|(_, r)| r.id == id)
                    .collect()
            };
            prop_assert!(chosen.iter().all(|id| candidates.contains(id)));
            for id in &candidates {
                let found = refs(id);
                let needed = found.iter().any(|(_, r)| {
                    r.more
                        || r.keys.iter().any(|k| {
                            let own = owners(&k.bucket, &k.key);
                            own.contains(&0)
                                || !found.iter().any(|(j, o)| {
                                    own.contains(j) && o.stored && o.keys.contains(k)
                                })
                        })
                });
                prop_assert_eq!(chosen.contains(id), !missing && !needed, "{}", id);
                if everywhere {
                    prop_assert_eq!(chosen.contains(id), !missing && found.is_empty(), "{}", id);
                }
            }
        }
    }
}
