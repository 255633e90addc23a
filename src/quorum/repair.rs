//! Repair of one replica of one key: hints raised when a write misses a replica, the repair
//! itself (blobs first, then the merged record, the same order as a write), and read repair.
//!
//! Every step is idempotent: a blob is rewritten under the same id with the same MD5 check,
//! and records merge. So repairs may be retried, run twice, or race a client write without
//! harm. A repair never deletes anything.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use futures::future::join_all;
use node::proto::{Bodies, Data, Hint, ObjectMeta, ObjectRecord, Select, Stamp, VersionState};

use super::{Cluster, quorum_failed};
use crate::error::Error;
use crate::node_client::{BoxError, NodeError};

/// The blobs a version's data lives in, each with the MD5 it must have.
pub fn blobs_of(meta: &ObjectMeta) -> Vec<(String, Option<String>)> {
    match &meta.data {
        Data::Inline { .. } | Data::InlineOmitted => Vec::new(),
        Data::Blob { id } => vec![(id.clone(), Some(meta.md5.clone()).filter(|m| !m.is_empty()))],
        Data::Parts { parts } => parts
            .iter()
            .map(|p| (p.blob.clone(), Some(p.md5.clone())))
            .collect(),
    }
}

/// Versions per page of a key repair (a node ends a page earlier, at
/// [`node::proto::MAX_PAGE_BYTES`], when inline bodies make it heavy).
const REPAIR_PAGE: usize = 128;
/// Versions per page of a history comparison (no bodies).
const COMPARE_PAGE: usize = 1000;

/// How far one round of a paged walk over a key's history reaches: the smallest last
/// stamp of the replicas' non-empty pages (a page may end early, at its byte limit, so
/// only an empty one is known to be the last). Every replica's page is complete up to it;
/// versions above it are compared on the next round. `None`: every page was empty.
fn page_bound<'a>(pages: impl Iterator<Item = &'a ObjectRecord>) -> Option<Stamp> {
    pages
        .filter_map(|r| r.versions.last().map(|v| v.stamp.clone()))
        .min()
}

/// A version younger than this may still be on its way to a replica (a write finishes
/// its last replica in the background): not yet a reason to repair.
const REPAIR_GRACE_MICROS: u64 = 2_000_000;

/// Whether a replica holding `have` lacks (or holds an older state of) a version of
/// `merged` that is old enough to have reached it by now.
pub fn is_behind(have: &ObjectRecord, merged: &ObjectRecord) -> bool {
    let settled = now_micros().saturating_sub(REPAIR_GRACE_MICROS);
    lacks_where(have, merged, |v| v.changed_at() < settled)
}

/// Whether `have` lacks (or holds an older state of) any version of `want`, however young.
pub(super) fn lacks(have: &ObjectRecord, want: &ObjectRecord) -> bool {
    lacks_where(have, want, |_| true)
}

fn lacks_where(
    have: &ObjectRecord,
    want: &ObjectRecord,
    counts: impl Fn(&node::proto::Version) -> bool,
) -> bool {
    // Both lists are sorted by stamp (every stored or merged record is).
    let has = |v: &node::proto::Version| {
        have.versions
            .binary_search_by(|h| h.stamp.cmp(&v.stamp))
            .is_ok_and(|i| have.versions[i].same_as(v))
    };
    // A null version `have` replaced by a newer one is not missing: merging it would drop it.
    let newest_null = have
        .versions
        .iter()
        .rev()
        .find(|v| v.null)
        .map(|v| &v.stamp);
    want.versions
        .iter()
        .filter(|v| !(v.null && newest_null.is_some_and(|n| *n > v.stamp)))
        .any(|v| counts(v) && !has(v))
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// How a blob copy ended.
enum Copy {
    Done,
    /// No replica has a good copy: nothing left to copy from.
    NoSource,
}

impl Cluster {
    /// Records durably, on the key's other replicas, that `target` missed a write of
    /// `(bucket, key)` (of the bucket record when `key` is empty). Runs in the background;
    /// if no replica takes the hint, the anti-entropy pass still finds the difference.
    pub(super) fn raise_hint(&self, bucket: &str, key: &str, target: usize, why: &NodeError) {
        let target_url = self.node(target).url().to_owned();
        tracing::info!(node = %target_url, bucket, key, "replica missed a write ({why}); repair hint raised");
        let hint = Hint {
            target: target_url,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            since: now_micros(),
        };
        // A bucket record (empty key) lives on every node.
        let holders = if key.is_empty() {
            self.all_nodes()
        } else {
            self.replicas(bucket, key)
        };
        let others: Vec<usize> = holders.into_iter().filter(|&i| i != target).collect();
        let cluster = self.clone();
        tokio::spawn(async move {
            let posts = others.iter().map(|&i| {
                let node = cluster.node(i).clone();
                let hint = hint.clone();
                async move { node.post_hints(&[hint]).await }
            });
            let stored = join_all(posts)
                .await
                .into_iter()
                .filter(Result::is_ok)
                .count();
            if stored == 0 {
                tracing::warn!(bucket = %hint.bucket, key = %hint.key, node = %hint.target, "no replica took the repair hint; anti-entropy will find it");
            }
        });
    }

    /// Brings replica `target` of `(bucket, key)` up to date: copies the blobs of every
    /// version it lacks (and of `missing_blobs`) from the other replicas, then merges the
    /// versions it lacks into it. Walks the key's history in pages of [`REPAIR_PAGE`]
    /// versions, so a history of any size is repaired in bounded steps. Returns whether
    /// anything had to be sent.
    pub async fn repair_key(
        &self,
        bucket: &str,
        key: &str,
        target: usize,
        missing_blobs: &[String],
    ) -> Result<bool, Error> {
        let replicas = self.replicas(bucket, key);
        if !replicas.contains(&target) {
            return Ok(false);
        }
        // A newer null version replaces older ones, but may sit on a later page than an
        // older one some replica still has: that one must not be sent.
        let newest_null = self.newest_null(bucket, key, &replicas).await;
        let mut after: Option<Stamp> = None;
        let mut sent = false;
        loop {
            let select = Select::Page {
                after: after.clone(),
                limit: REPAIR_PAGE,
            };
            let reads = replicas.iter().map(|&i| {
                let node = self.node(i).clone();
                let select = select.clone();
                async move { (i, node.get_record(bucket, key, &Bodies::All, &select).await) }
            });
            let mut answers = join_all(reads).await;
            // A page no other replica answered shows nothing to copy: that is not a repair.
            if !answers.iter().any(|(i, a)| *i != target && a.is_ok())
                && let Some(at) = answers.iter().position(|(i, _)| *i != target)
                && let (i, Err(source)) = answers.swap_remove(at)
            {
                return Err(Error::Node {
                    op: "repair: read the other replicas' versions",
                    node: self.node(i).url().to_owned(),
                    source,
                });
            }
            let bound = page_bound(
                answers
                    .iter()
                    .filter_map(|(_, a)| a.as_ref().ok()?.as_ref()),
            );
            for (_, answer) in &mut answers {
                if let Ok(Some(r)) = answer {
                    r.versions.retain(|v| {
                        bound.as_ref().is_none_or(|b| v.stamp <= *b)
                            && !(v.null && newest_null.as_ref().is_some_and(|n| *n > v.stamp))
                    });
                }
            }
            sent |= self
                .repair_page(bucket, key, target, &replicas, answers, missing_blobs)
                .await?;
            match bound {
                Some(b) => after = Some(b),
                None => return Ok(sent),
            }
        }
    }

    /// The newest null version's stamp any of `nodes` (those that answer) holds for the key.
    async fn newest_null(&self, bucket: &str, key: &str, nodes: &[usize]) -> Option<Stamp> {
        let windows = join_all(nodes.iter().map(|&i| {
            let node = self.node(i).clone();
            async move {
                node.get_record(bucket, key, &Bodies::None, &Select::CURRENT)
                    .await
            }
        }))
        .await;
        windows
            .iter()
            .filter_map(|w| w.as_ref().ok()?.as_ref())
            .flat_map(|r| &r.versions)
            .filter(|v| v.null)
            .map(|v| v.stamp.clone())
            .max()
    }

    /// Which of `nodes` (replicas of the key) lack a version of `(bucket, key)` old enough
    /// to have reached them ([`is_behind`]), comparing the key's history page by page: for
    /// keys whose history a list page only holds the start of. Every one of `nodes` must
    /// answer every page.
    pub async fn behind_replicas(
        &self,
        bucket: &str,
        key: &str,
        nodes: &[usize],
    ) -> Result<Vec<usize>, Error> {
        let newest_null = self.newest_null(bucket, key, nodes).await;
        let mut behind: Vec<usize> = Vec::new();
        let mut after: Option<Stamp> = None;
        loop {
            let select = Select::Page {
                after: after.clone(),
                limit: COMPARE_PAGE,
            };
            let reads = nodes.iter().map(|&i| {
                let node = self.node(i).clone();
                let select = select.clone();
                async move {
                    let page = node.get_record(bucket, key, &Bodies::None, &select).await;
                    (i, page)
                }
            });
            let mut pages = Vec::with_capacity(nodes.len());
            for (i, page) in join_all(reads).await {
                match page {
                    Ok(record) => pages.push((i, record.unwrap_or_default())),
                    Err(e) => {
                        return Err(Error::Node {
                            op: "compare history",
                            node: self.node(i).url().to_owned(),
                            source: e,
                        });
                    }
                }
            }
            let bound = page_bound(pages.iter().map(|(_, r)| r));
            let mut merged = ObjectRecord::default();
            for (_, r) in &mut pages {
                r.versions.retain(|v| {
                    bound.as_ref().is_none_or(|b| v.stamp <= *b)
                        && !(v.null && newest_null.as_ref().is_some_and(|n| *n > v.stamp))
                });
                merged.merge(r);
            }
            for (i, r) in &pages {
                if !behind.contains(i) && is_behind(r, &merged) {
                    behind.push(*i);
                }
            }
            match bound {
                Some(b) => after = Some(b),
                None => return Ok(behind),
            }
        }
    }

    /// One page of [`Cluster::repair_key`]: `answers` are the replicas' versions of one
    /// stamp range.
    async fn repair_page(
        &self,
        bucket: &str,
        key: &str,
        target: usize,
        replicas: &[usize],
        answers: Vec<(usize, Result<Option<ObjectRecord>, NodeError>)>,
        missing_blobs: &[String],
    ) -> Result<bool, Error> {
        let mut merged = ObjectRecord::default();
        let mut mine: Option<ObjectRecord> = None;
        let mut holders: Vec<(usize, ObjectRecord)> = Vec::new();
        for (i, answer) in answers {
            match answer {
                Ok(record) if i == target => mine = Some(record.unwrap_or_default()),
                Ok(Some(record)) => {
                    merged.merge(&record);
                    holders.push((i, record));
                }
                Ok(None) => {}
                Err(e) if i == target => {
                    return Err(Error::Node {
                        op: "repair: read target record",
                        node: self.node(i).url().to_owned(),
                        source: e,
                    });
                }
                Err(_) => {}
            }
        }
        let mine = mine.unwrap_or_default();
        merged.merge(&mine);

        let present: HashSet<_> = mine.versions.iter().map(|v| &v.stamp).collect();
        let mut needed: Vec<(String, Option<String>, Vec<usize>)> = Vec::new();
        for v in &merged.versions {
            let VersionState::Object(meta) = &v.state else {
                continue;
            };
            let lacks_version = !present.contains(&v.stamp);
            for (id, md5) in blobs_of(meta) {
                if lacks_version || missing_blobs.contains(&id) {
                    // Replicas whose record has this version come first: they wrote its blob.
                    let mut sources: Vec<usize> = holders
                        .iter()
                        .filter(|(_, r)| r.versions.iter().any(|x| x.stamp == v.stamp))
                        .map(|(i, _)| *i)
                        .collect();
                    let others: Vec<usize> = replicas
                        .iter()
                        .copied()
                        .filter(|&i| i != target && !sources.contains(&i))
                        .collect();
                    sources.extend(others);
                    needed.push((id, md5, sources));
                }
            }
        }
        for (id, md5, sources) in &needed {
            match self.copy_blob(id, sources, target, md5.as_deref()).await? {
                Copy::Done => {}
                Copy::NoSource => {
                    tracing::error!(bucket, key, blob = %id, "no replica holds a good copy of this blob; it cannot be repaired");
                }
            }
        }
        let record_stale = merged != mine;
        if record_stale {
            match self.node(target).put_record(bucket, key, &merged).await {
                Ok(()) => {}
                // The target promised a conditional write's ballot above versions it
                // lacks: they can only reach it through the key's agreement now.
                Err(NodeError::Stale(_)) => {
                    self.compare_and_set::<Error>(bucket, key, None, Select::CURRENT, |_, _, _| {
                        super::Decision::Apply(merged.clone())
                    })
                    .await?;
                }
                Err(e) => {
                    return Err(Error::Node {
                        op: "repair: write record",
                        node: self.node(target).url().to_owned(),
                        source: e,
                    });
                }
            }
        }
        Ok(record_stale || !needed.is_empty())
    }

    /// [`Cluster::copy_blob`], failing when no source has a good copy.
    pub(super) async fn copy_blob_to(
        &self,
        id: &str,
        sources: &[usize],
        target: usize,
        md5: Option<&str>,
    ) -> Result<(), Error> {
        match self.copy_blob(id, sources, target, md5).await? {
            Copy::Done => Ok(()),
            Copy::NoSource => Err(quorum_failed(
                "copy blob",
                1,
                0,
                vec![format!("no replica has a good copy of blob {id}")],
            )),
        }
    }

    /// Copies blob `id` to `target` from the first of `sources` that has a good copy.
    async fn copy_blob(
        &self,
        id: &str,
        sources: &[usize],
        target: usize,
        md5: Option<&str>,
    ) -> Result<Copy, Error> {
        let mut reasons = Vec::new();
        let mut any_unreachable = false;
        for &s in sources {
            let source = self.node(s);
            let stream = match source.get_blob(id, None).await {
                Ok(stream) => stream,
                Err(e) => {
                    let missing = matches!(&e, NodeError::Corrupt(_))
                        || matches!(&e, NodeError::Status { status, .. } if status.as_u16() == 404);
                    any_unreachable |= !missing;
                    reasons.push(format!("{}: {e}", source.url()));
                    continue;
                }
            };
            let body = stream.map(|r| r.map_err(|e| -> BoxError { Box::new(e) }));
            match self.node(target).put_blob(id, body, md5).await {
                Ok(_) => return Ok(Copy::Done),
                Err(e) => {
                    any_unreachable = true;
                    reasons.push(format!(
                        "{} → {}: {e}",
                        source.url(),
                        self.node(target).url()
                    ));
                }
            }
        }
        if any_unreachable || sources.is_empty() {
            return Err(Error::QuorumFailed {
                op: "repair: copy blob",
                needed: 1,
                got: 0,
                per_node: reasons,
            });
        }
        Ok(Copy::NoSource)
    }

    /// Compares what every replica answered for a key with the merge of all answers and
    /// repairs, in the background, each replica that answered with less.
    pub(super) fn spawn_read_repair(
        &self,
        bucket: &str,
        key: &str,
        answers: Vec<(usize, Option<ObjectRecord>)>,
        merged: ObjectRecord,
        select: Select,
    ) {
        for (i, record) in answers {
            if !is_behind(&record.unwrap_or_default(), &merged) {
                continue;
            }
            self.metrics().read_repairs.inc();
            if !select.is_current() {
                self.spawn_repair(bucket, key, i, Vec::new(), "read repair");
                continue;
            }
            // A window read saw part of the history: bring the replica up to that part.
            let (cluster, b, k) = (self.clone(), bucket.to_owned(), key.to_owned());
            let (want, select) = (merged.clone(), select.clone());
            tokio::spawn(async move {
                let node = cluster.node(i).url().to_owned();
                let outcome = cluster.bring_up_to(&b, &k, i, &want, &select).await;
                let label = if outcome.is_ok() { "ok" } else { "failed" };
                cluster.metrics().repairs.with_label_values(&[label]).inc();
                match outcome {
                    Ok(_) => {
                        tracing::info!(node, bucket = b, key = k, "read repair: replica brought up")
                    }
                    Err(e) => tracing::warn!(node, bucket = b, key = k, "read repair failed: {e}"),
                }
            });
        }
    }

    /// Repairs replica `target` of a key in the background, logging the outcome.
    pub fn spawn_repair(
        &self,
        bucket: &str,
        key: &str,
        target: usize,
        missing_blobs: Vec<String>,
        why: &'static str,
    ) {
        let (cluster, bucket, key) = (self.clone(), bucket.to_owned(), key.to_owned());
        tokio::spawn(async move {
            let node = cluster.node(target).url().to_owned();
            match cluster
                .repair_key(&bucket, &key, target, &missing_blobs)
                .await
            {
                Ok(true) => {
                    cluster.metrics().repairs.with_label_values(&["ok"]).inc();
                    tracing::info!(node, bucket, key, "{why}: replica repaired");
                }
                Ok(false) => {}
                Err(e) => {
                    cluster
                        .metrics()
                        .repairs
                        .with_label_values(&["failed"])
                        .inc();
                    tracing::warn!(node, bucket, key, "{why} failed: {e}");
                }
            }
        });
    }
}

/// Health checks answer faster than data calls: a stopped node must not stall the worker.
const HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// What the repair worker needs of the nodes, one node at a time.
impl Cluster {
    pub async fn node_healthy(&self, i: usize) -> bool {
        let node = self.node(i);
        tokio::time::timeout(HEALTH_TIMEOUT.min(node.timeout()), node.health())
            .await
            .unwrap_or(false)
    }

    /// The layout version node `i` has committed (0: none), as it answers now (within the
    /// health checks' deadline); `None` when it does not answer.
    pub async fn node_layout_version(&self, i: usize) -> Option<u64> {
        let node = self.client_at(&self.node_url(i));
        let deadline = HEALTH_TIMEOUT.min(node.timeout());
        match tokio::time::timeout(deadline, node.layout_view()).await {
            Ok(Ok(view)) => Some(view.map_or(0, |l| l.version)),
            _ => None,
        }
    }

    /// A page of the keys node `i` holds agreement state for, after `after`.
    pub async fn agreed_keys_of(
        &self,
        i: usize,
        after: Option<&str>,
    ) -> Result<node::proto::paxos::AgreedKeys, NodeError> {
        self.node(i).agreed_keys(after).await
    }

    /// Node `i`'s id, as it answers now (within the health checks' deadline).
    pub async fn node_id(&self, i: usize) -> Result<String, Error> {
        let node = self.node(i);
        let deadline = HEALTH_TIMEOUT.min(node.timeout());
        let answer = match tokio::time::timeout(deadline, node.info()).await {
            Ok(answer) => answer,
            Err(_) => Err(NodeError::Timeout(deadline)),
        };
        answer
            .map(|i| i.node_id)
            .map_err(|e| quorum_failed("node info", 1, 0, vec![format!("{}: {e}", node.url())]))
    }

    /// Whether node `i` grants (or renews) the repair lease to `holder`.
    pub async fn take_lease(&self, i: usize, holder: &str, ttl: std::time::Duration) -> bool {
        match self.node(i).lease("repair", holder, ttl).await {
            Ok(reply) => reply.granted,
            Err(_) => false,
        }
    }

    /// The repair hints node `i` holds; `None` when it cannot be asked.
    pub async fn hints_of(&self, i: usize) -> Option<Vec<Hint>> {
        self.node(i)
            .get_hints(node::proto::MAX_LIST_LIMIT)
            .await
            .ok()
    }

    /// Removes a handled hint from every node that may hold it (unless raised again since).
    pub async fn delete_hint(&self, hint: Hint) {
        let hint = [hint];
        let nodes = self.all_nodes();
        let deletes = nodes.iter().map(|&i| {
            let hint = &hint;
            async move { self.node(i).delete_hints(hint).await }
        });
        join_all(deletes).await;
    }
}

impl Cluster {
    /// Brings node `target`'s record of bucket `name` up to the merge of every reachable
    /// node's; `Ok(false)` when it was not behind.
    pub async fn repair_bucket(&self, name: &str, target: usize) -> Result<bool, Error> {
        let mut nodes = self.all_nodes();
        if !nodes.contains(&target) {
            nodes.push(target);
        }
        let reads = nodes
            .iter()
            .map(|&i| async move { (i, self.node(i).get_bucket(name).await) });
        let mut answers = join_all(reads).await;
        let at = answers.iter().position(|(i, _)| *i == target).unwrap_or(0);
        let (_, mine) = answers.swap_remove(at);
        let mine = mine.map_err(|source| Error::Node {
            op: "repair: read target bucket record",
            node: self.node_url(target),
            source,
        })?;
        let mut merged = mine.clone();
        for record in answers.into_iter().flat_map(|(_, r)| r).flatten() {
            match &mut merged {
                Some(m) => m.merge(&record),
                None => merged = Some(record),
            }
        }
        match merged {
            Some(merged) if Some(&merged) != mine.as_ref() => {
                let node = self.node(target);
                node.put_bucket(&merged)
                    .await
                    .map_err(|source| Error::Node {
                        op: "repair: write bucket record",
                        node: node.url().to_owned(),
                        source,
                    })?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
