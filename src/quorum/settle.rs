//! Blocking read repair: before a read answers, the state it returns is on a write quorum.
//!
//! Why: a read that returned a version only one replica holds (a write still in flight, or
//! one that reached a single replica and failed) could be followed by a read of two other
//! replicas that lack it: the value would appear and then vanish. So when the replicas a
//! read consulted disagree, the merged state is written to replicas until W hold it, and
//! only then is it answered (Cassandra's blocking read repair at QUORUM). Answers that
//! agree cost nothing more.
//!
//! A replica that promised a conditional write's ballot refuses versions stamped below it
//! (`NodeError::Stale`); the read then finishes through the key's agreement instead: a
//! compare-and-set round that commits the merged state joined with whatever the round
//! finds, and the read answers what was committed.

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use node::proto::{Bodies, Data, ObjectRecord, Select, VersionState};

use super::repair::{blobs_of, lacks};
use super::{Cluster, Decision, quorum_failed};
use crate::error::Error;
use crate::node_client::NodeError;

/// The least a replica the read did not hear from gets to say whether it holds the state.
const CHECK_MIN: std::time::Duration = std::time::Duration::from_millis(50);

/// How bringing one replica up to the merged state ended.
enum Brought {
    Holds,
    Refused,
    Failed(String),
}

impl Cluster {
    /// Makes `merged` (the merge of `answers`) durable on W of `replicas` before a read
    /// returns it. `Ok(None)`: it is; `Ok(Some(record))`: the agreement path committed
    /// `record` (a superset of `merged`), which the read answers instead.
    pub(super) async fn settle(
        &self,
        bucket: &str,
        key: &str,
        replicas: &[usize],
        answers: &[(usize, Option<ObjectRecord>)],
        merged: &ObjectRecord,
        select: &Select,
    ) -> Result<Option<ObjectRecord>, Error> {
        let empty = ObjectRecord::default();
        let holds = |r: &Option<ObjectRecord>| !lacks(r.as_ref().unwrap_or(&empty), merged);
        let holders: Vec<usize> = answers
            .iter()
            .filter(|(_, r)| holds(r))
            .map(|(i, _)| *i)
            .collect();
        let need = self.write_need(bucket, key);
        let w = need.needed();
        if need.met_by(&holders) || merged.versions.is_empty() {
            return Ok(None);
        }
        // Replicas the read did not hear from usually hold it already (a write finishing its
        // last replica): asking costs a record read, bringing one up may cost a blob copy.
        let unasked: Vec<usize> = replicas
            .iter()
            .copied()
            .filter(|i| !answers.iter().any(|(a, _)| a == i))
            .collect();
        // A window read names the merged versions: the window of a replica that has newer
        // ones would not show them.
        let probe = select.probing(merged);
        let select = &probe;
        // A frozen replica must not stall the read: it is only asked for a moment.
        let patience = self.hedge_delay().max(CHECK_MIN);
        let checks = unasked.iter().map(|&i| {
            let node = self.node(i).clone();
            let read = tokio::time::timeout(patience, async move {
                node.get_record(bucket, key, &Bodies::None, select).await
            });
            async move { (i, read.await) }
        });
        let mut holders = holders;
        for (i, answer) in futures::future::join_all(checks).await {
            if let Ok(Ok(record)) = answer
                && holds(&record)
            {
                holders.push(i);
            }
        }
        if need.met_by(&holders) {
            return Ok(None);
        }
        self.metrics().read_repairs.inc();
        // The merged state with every body: the read may have left some out.
        let answered: Vec<usize> = answers.iter().map(|(i, _)| *i).collect();
        let full = self.read_full(bucket, key, &answered, select, merged).await;
        if lacks(&full, merged) {
            return Err(quorum_failed(
                "settle read",
                w,
                holders.len(),
                vec!["the replicas that answered the read no longer answer with it".into()],
            ));
        }
        let mut pending: FuturesUnordered<_> = replicas
            .iter()
            .copied()
            .filter(|i| !holders.contains(i))
            .map(|target| {
                let (cluster, b, k, full) = (
                    self.clone(),
                    bucket.to_owned(),
                    key.to_owned(),
                    full.clone(),
                );
                let (sources, select) = (answered.clone(), select.clone());
                let task = tokio::spawn(async move {
                    cluster
                        .bring_up(&b, &k, target, &full, &sources, &select)
                        .await
                });
                async move {
                    let brought = task.await;
                    (
                        target,
                        brought.unwrap_or_else(|e| Brought::Failed(format!("task: {e}"))),
                    )
                }
            })
            .collect();
        let (mut holding, mut refused, mut reasons) = (holders.clone(), false, Vec::new());
        while let Some((target, brought)) = pending.next().await {
            match brought {
                Brought::Holds => holding.push(target),
                Brought::Refused => refused = true,
                Brought::Failed(why) => reasons.push(why),
            }
            if need.met_by(&holding) {
                return Ok(None);
            }
        }
        if refused {
            let committed = self
                .compare_and_set::<Error>(bucket, key, None, Select::CURRENT, |_, _, _| {
                    Decision::Apply(full.clone())
                })
                .await?;
            return Ok(Some(committed));
        }
        Err(quorum_failed("settle read", w, holding.len(), reasons))
    }

    /// The versions of `want` as `nodes` hold them (those that answer), merged, with every
    /// inline body. `select` must name every version of `want` ([`Select::probing`]).
    pub(super) async fn read_full(
        &self,
        bucket: &str,
        key: &str,
        nodes: &[usize],
        select: &Select,
        want: &ObjectRecord,
    ) -> ObjectRecord {
        let reads = nodes.iter().map(|&i| {
            let node = self.node(i).clone();
            async move { (i, node.get_record(bucket, key, &Bodies::All, select).await) }
        });
        let mut full = ObjectRecord::default();
        for (i, answer) in futures::future::join_all(reads).await {
            if let Ok(Some(mut record)) = answer {
                super::read::drop_corrupt_inline(&mut record, self.node(i).url(), bucket, key);
                full.merge(&record);
            }
        }
        full.versions.retain(|v| {
            want.versions
                .binary_search_by(|w| w.stamp.cmp(&v.stamp))
                .is_ok()
        });
        full
    }

    /// Brings replica `target` up to `want`, the versions a read returned (not the key's
    /// whole history, which anti-entropy compares): read from the other replicas with every
    /// body, then written like settling does. Returns whether anything had to be sent.
    pub(super) async fn bring_up_to(
        &self,
        bucket: &str,
        key: &str,
        target: usize,
        want: &ObjectRecord,
        select: &Select,
    ) -> Result<bool, Error> {
        let probe = select.probing(want);
        let sources: Vec<usize> = self
            .replicas(bucket, key)
            .into_iter()
            .filter(|&i| i != target)
            .collect();
        let full = self.read_full(bucket, key, &sources, &probe, want).await;
        match self
            .bring_up(bucket, key, target, &full, &sources, &probe)
            .await
        {
            Brought::Holds => Ok(!full.versions.is_empty()),
            // A conditional write holds a ballot above these versions: the key's agreement
            // carries them to this replica.
            Brought::Refused => {
                self.compare_and_set::<Error>(bucket, key, None, Select::CURRENT, |_, _, _| {
                    Decision::Apply(full.clone())
                })
                .await?;
                Ok(true)
            }
            Brought::Failed(why) => Err(quorum_failed("read repair", 1, 0, vec![why])),
        }
    }

    /// Brings replica `target` up to `full`: copies the blobs of the versions it lacks
    /// from `sources` (blob before record, as on a write), then merges those versions.
    async fn bring_up(
        &self,
        bucket: &str,
        key: &str,
        target: usize,
        full: &ObjectRecord,
        sources: &[usize],
        select: &Select,
    ) -> Brought {
        let node = self.node(target);
        let have = match node.get_record(bucket, key, &Bodies::None, select).await {
            Ok(r) => r.unwrap_or_default(),
            Err(e) => return Brought::Failed(format!("{}: {e}", node.url())),
        };
        let missing = ObjectRecord {
            versions: full
                .versions
                .iter()
                .filter(|v| {
                    let one = ObjectRecord::single((*v).clone());
                    lacks(&have, &one)
                })
                .cloned()
                .collect(),
        };
        if missing.versions.is_empty() {
            return Brought::Holds;
        }
        for v in &missing.versions {
            let VersionState::Object(meta) = &v.state else {
                continue;
            };
            if matches!(meta.data, Data::Inline { .. }) {
                continue;
            }
            for (id, md5) in blobs_of(meta) {
                let from: Vec<usize> = sources.iter().copied().filter(|&s| s != target).collect();
                if let Err(e) = self.copy_blob_to(&id, &from, target, md5.as_deref()).await {
                    return Brought::Failed(format!("{}: {e}", node.url()));
                }
            }
        }
        match node.put_record(bucket, key, &missing).await {
            Ok(()) => Brought::Holds,
            Err(NodeError::Stale(_)) => Brought::Refused,
            Err(e) => Brought::Failed(format!("{}: {e}", node.url())),
        }
    }
}
