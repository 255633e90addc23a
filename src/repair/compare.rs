//! One anti-entropy round's comparisons and repairs: each scanned key's copies against
//! their merge, then the repairs of the replicas behind, several at a time (a migration
//! copies whole nodes' worth of keys; one repair at a time would take hours).
//!
//! A key is *short* when fewer than W of its current owners are in sync at the end of the
//! round, or when an owner the health checks see up is not (it did not answer, or could
//! not be repaired): a migration retires only after a pass with no short key. So a new
//! owner that died mid-migration does not hold the migration forever: once W owners of
//! each of its keys hold them, any R current owners include one of them (R + W > RF), and
//! the dead node is filled like any node back from a failure (or replaced). A key whose
//! every owner is in sync and that has stray copies (on nodes that no longer own it) has
//! them released, once no migration runs.

use futures::StreamExt;
use node::proto::ObjectRecord;

use super::{Pass, Worker};
use crate::layout::plan;
use crate::quorum::{ScannedKey, is_behind};

/// Repairs run at once within a round.
const CONCURRENT_REPAIRS: usize = 8;

/// What a comparison found for one key.
pub(super) struct KeyCheck {
    key: String,
    bytes: u64,
    /// Current owners in sync with the merge, and those not (yet).
    synced: usize,
    lacking: Vec<usize>,
    strays: Vec<usize>,
    repairs: Vec<Repair>,
}

/// One replica to bring up to the merge.
struct Repair {
    node: usize,
    missing: Vec<String>,
    /// A current owner (its failure makes the key short).
    owner: bool,
    /// It had no copy at all: a copy a migration makes.
    new_copy: bool,
}

impl Worker {
    /// Compares one scanned key's copies on the replicas that `answered`; the repairs it
    /// needs. An expired upload is aborted instead (`None`).
    pub(super) async fn compare_key(
        &mut self,
        namespace: &str,
        scanned: &ScannedKey,
        answered: &[usize],
        pass: &mut Pass,
    ) -> Option<KeyCheck> {
        pass.compared += 1;
        let key = &scanned.key;
        // A list page holds only the start of a long history: the rest is compared page by
        // page.
        let partial = scanned.copies.iter().any(|(_, c)| c.partial);
        if self
            .expire_upload(namespace, key, &scanned.merged, partial)
            .await
        {
            return None;
        }
        let placed = self.cluster.placed(namespace, key);
        let owners = &placed.sets[0];
        let holders: Vec<usize> = placed
            .targets
            .iter()
            .copied()
            .filter(|r| answered.contains(r))
            .collect();
        let behind = if partial {
            match self.cluster.behind_replicas(namespace, key, &holders).await {
                Ok(behind) => Some(behind),
                Err(e) => {
                    tracing::warn!(bucket = namespace, key = %key, "history not compared: {e}");
                    pass.complete = false;
                    pass.lagging.insert((namespace.to_owned(), key.clone()));
                    return None;
                }
            }
        } else {
            None
        };
        let mut check = KeyCheck {
            key: key.clone(),
            bytes: plan::record_bytes(&scanned.merged),
            synced: 0,
            lacking: owners
                .iter()
                .copied()
                .filter(|r| !answered.contains(r))
                .collect(),
            strays: scanned.strays.clone(),
            repairs: Vec::new(),
        };
        for r in holders {
            let copy = scanned.copies.iter().find(|(i, _)| *i == r).map(|(_, e)| e);
            let missing = copy.map(|c| c.missing_blobs.clone()).unwrap_or_default();
            let empty = ObjectRecord::default();
            let have = copy.map_or(&empty, |c| &c.record);
            let stale = match &behind {
                Some(behind) => behind.contains(&r),
                None => is_behind(have, &scanned.merged),
            } || !missing.is_empty();
            if !stale {
                check.synced += usize::from(owners.contains(&r));
                continue;
            }
            // Bitrot is bad bytes a node found; a blob merely missing may be one still
            // being written.
            if copy.is_some_and(|c| !c.corrupt_blobs.is_empty()) {
                self.cluster.metrics().bitrot_detections.inc();
            }
            check.repairs.push(Repair {
                node: r,
                missing,
                owner: owners.contains(&r),
                new_copy: copy.is_none(),
            });
        }
        Some(check)
    }

    /// Runs the repairs `checks` need, then settles each key: short, or its strays
    /// released.
    pub(super) async fn repair_round(
        &mut self,
        namespace: &str,
        mut checks: Vec<KeyCheck>,
        pass: &mut Pass,
    ) {
        let mut jobs = Vec::new();
        for (c, check) in checks.iter_mut().enumerate() {
            for (j, repair) in check.repairs.iter().enumerate() {
                if self.usable(repair.node) {
                    jobs.push((c, j));
                } else {
                    if repair.owner {
                        check.lacking.push(repair.node);
                    }
                    pass.lagging
                        .insert((namespace.to_owned(), check.key.clone()));
                }
            }
        }
        let cluster = self.cluster.clone();
        let checks_ref = &checks;
        let mut results = futures::stream::iter(jobs)
            .map(|(c, j)| {
                let cluster = cluster.clone();
                async move {
                    let (check, repair) = (&checks_ref[c], &checks_ref[c].repairs[j]);
                    let url = cluster.node_url(repair.node);
                    tracing::info!(node = %url, bucket = namespace, key = %check.key, "anti-entropy: replica behind, repair scheduled");
                    let result = cluster
                        .repair_key(namespace, &check.key, repair.node, &repair.missing)
                        .await;
                    (c, j, url, result)
                }
            })
            .buffer_unordered(CONCURRENT_REPAIRS);
        let mut outcomes = Vec::new();
        while let Some(outcome) = results.next().await {
            outcomes.push(outcome);
        }
        drop(results);
        let migrating = self.cluster.layout().previous.is_some();
        for (c, j, url, result) in outcomes {
            let check = &mut checks[c];
            let repair = &check.repairs[j];
            match result {
                Ok(sent) => {
                    pass.repaired += 1;
                    self.count(true);
                    tracing::info!(node = %url, bucket = namespace, key = %check.key, sent, "repair done");
                    check.synced += usize::from(repair.owner);
                    if migrating && repair.owner && repair.new_copy {
                        self.copied(check.bytes).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(node = %url, bucket = namespace, key = %check.key, "repair failed, will retry: {e}");
                    self.count(false);
                    self.failed(repair.node);
                    if repair.owner {
                        check.lacking.push(repair.node);
                    }
                    pass.lagging
                        .insert((namespace.to_owned(), check.key.clone()));
                }
            }
        }
        let w = self.cluster.write_quorum();
        for check in checks {
            let up_lacking = check.lacking.iter().any(|&i| self.up[i] == Some(true));
            if check.synced < w || up_lacking {
                pass.short_keys += 1;
                pass.short_bytes += check.bytes;
            }
            if check.lacking.is_empty() && !check.strays.is_empty() {
                tracing::debug!(bucket = namespace, key = %check.key, strays = ?check.strays, migrating, "stray copies");
                if !migrating {
                    self.release(namespace, &check.key, &check.strays).await;
                }
            }
        }
    }
}
