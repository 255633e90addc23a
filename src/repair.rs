//! The repair worker: a background loop in every gateway that keeps every key at its full
//! replication factor, and the numbers an operator watches while it does.
//!
//! One unit of work per iteration: take the health checker's verdicts (`health`, a loop of
//! its own), take the repair lease, work through the repair hints the nodes hold (writes
//! that missed a replica), and now and then run an anti-entropy pass that compares every
//! replica's records and blobs, or, while two layouts are live, the migration (`migrate`).
//! Only the gateway holding the lease (granted by a majority of nodes) repairs, so several
//! gateways neither fight over work nor double it; every gateway reads the hints, so all of
//! them report the same `replication_lag`. A failing node is retried with exponential
//! backoff; hints are repaired one at a time and a pass's repairs a few at a time, which
//! keeps them below client traffic. The loop ends promptly on shutdown; pending work stays
//! in the nodes' hints.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::join_all;
use node::proto::{Bodies, Hint, ObjectRecord, Select};
use serde::Serialize;
use tokio::sync::watch;

mod agreements;
mod compare;
mod health;
mod migrate;

use migrate::Pace;
pub use migrate::Rebalance;

use crate::gc::GcStatus;
use crate::layout::Membership;
use crate::quorum::Cluster;
use crate::store::uploads;

/// How the worker paces itself.
#[derive(Debug, Clone)]
pub struct RepairConfig {
    /// Pause between two iterations of the loop.
    pub interval: Duration,
    /// Pause between the starts of two anti-entropy passes; `None` turns them off.
    pub scan_interval: Option<Duration>,
    /// Age past which an upload in progress is aborted by the pass; `None`: never.
    pub upload_expiry: Option<Duration>,
    /// The graces of garbage collection, which runs after an anti-entropy pass once
    /// `gc_interval` has gone by since the last one began.
    pub gc_grace: crate::gc::Graces,
    pub gc_interval: Duration,
    /// Bytes per second a migration copies at most (0: unthrottled).
    pub rebalance_rate: u64,
}

/// Hints handled per iteration, so the loop comes back to its health checks often.
const HINTS_PER_ITERATION: usize = 256;
/// Pause between two pages of an anti-entropy pass: it reads everything, slowly.
const SCAN_PAGE_PAUSE: Duration = Duration::from_millis(5);

/// What `/status` shows of the worker.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairStatus {
    pub gateway: String,
    pub repair_leader: bool,
    pub nodes: Vec<NodeStatus>,
    pub replication_lag: usize,
    pub repair_queue_length: usize,
    pub repairs_done: u64,
    pub repairs_failed: u64,
    pub last_anti_entropy_pass: Option<PassStatus>,
    pub last_gc_pass: Option<GcStatus>,
    /// The version of the layout this gateway follows.
    pub layout_version: u64,
    pub rebalance: Rebalance,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub url: String,
    /// The node's id (see `node::proto::NodeInfo`), once it answered.
    pub id: Option<String>,
    pub up: bool,
    /// The layout version the node has committed, when it answered.
    pub layout_version: Option<u64>,
    /// The node has committed the layout this gateway follows (or a newer one).
    pub layout_synced: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PassStatus {
    /// Unix seconds when the pass ended.
    pub finished_at: u64,
    pub duration_ms: u64,
    pub keys_compared: u64,
    pub replicas_repaired: u64,
    pub complete: bool,
}

/// What one anti-entropy pass has done so far.
#[derive(Default)]
struct Pass {
    compared: u64,
    repaired: u64,
    /// Keys (and their bytes) with a current owner not in sync at the end of the pass.
    short_keys: u64,
    short_bytes: u64,
    /// False once the pass was cut short: a page or a history could not be read.
    complete: bool,
    /// Keys with a replica still behind at the end of the pass.
    lagging: BTreeSet<(String, String)>,
}

/// What a migration needs to know of a finished pass.
struct PassSummary {
    complete: bool,
    short_keys: u64,
    short_bytes: u64,
}

/// A shared, cheap snapshot of the worker's state.
pub type SharedStatus = Arc<Mutex<RepairStatus>>;

struct Worker {
    /// Followed for the newest layout; `cluster` is this iteration's snapshot of it.
    live: Cluster,
    cluster: Cluster,
    membership: Membership,
    rebalance: Rebalance,
    /// The moving keys whose agreement the running migration carried over.
    carried: agreements::Carried,
    pace: Pace,
    config: RepairConfig,
    id: String,
    status: SharedStatus,
    /// The health checker's verdicts, by node index.
    health: watch::Receiver<health::Verdicts>,
    up: health::Verdicts,
    /// Node index → (consecutive failures, not before).
    backoff: HashMap<usize, (u32, Instant)>,
    /// Keys an anti-entropy pass found below RF and could not repair yet.
    scan_lagging: BTreeSet<(String, String)>,
    next_scan: Option<Instant>,
    /// No lease requests before then (see `take_lease`).
    lease_pause: Option<Instant>,
    /// When the last garbage-collection pass began (the worker's start at first).
    last_gc: Option<Instant>,
}

/// Runs the worker until `stop` turns true.
pub async fn run(
    cluster: Cluster,
    membership: Membership,
    config: RepairConfig,
    status: SharedStatus,
    mut stop: watch::Receiver<bool>,
) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    if let Ok(mut s) = status.lock() {
        s.gateway.clone_from(&id);
    }
    let next_scan = config
        .scan_interval
        .map(|i| Instant::now() + i.min(Duration::from_secs(60)));
    // One round before the first iteration: the worker starts knowing which nodes are up.
    let (mut checker, verdicts) = health::Checker::new(cluster.clone(), status.clone());
    checker.round().await;
    tokio::spawn(checker.run(config.interval, stop.clone()));
    let mut worker = Worker {
        cluster: cluster.current(),
        live: cluster,
        membership,
        rebalance: Rebalance::default(),
        carried: agreements::Carried::default(),
        pace: Pace::new(config.rebalance_rate),
        config,
        id,
        status,
        health: verdicts,
        up: Vec::new(),
        backoff: HashMap::new(),
        scan_lagging: BTreeSet::new(),
        next_scan,
        lease_pause: None,
        // The first pass waits an interval too: a gateway that just started has
        // anti-entropy to do first.
        last_gc: Some(Instant::now()),
    };
    loop {
        worker.iteration(&stop).await;
        tokio::select! {
            _ = tokio::time::sleep(worker.config.interval) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        if *stop.borrow() {
            break;
        }
    }
    tracing::info!("repair worker stopped");
}

impl Worker {
    async fn iteration(&mut self, stop: &watch::Receiver<bool>) {
        self.cluster = self.live.current();
        self.take_verdicts(self.cluster.node_urls().len());
        let leader = self.take_lease().await;
        if !leader {
            // What this gateway's last pass found lagging is the new leader's to find and
            // repair now: kept, it would be reported forever.
            self.scan_lagging.clear();
        }
        let hint_lag = self.work_hints(leader).await;
        self.publish();
        if leader && self.cluster.layout().previous.is_some() {
            // No garbage collection while two layouts are live: a blob's references are
            // moving between nodes.
            self.migrate(stop).await;
        } else if leader
            && let Some(at) = self.next_scan
            && Instant::now() >= at
        {
            self.anti_entropy(stop).await;
            if self
                .last_gc
                .is_none_or(|at| at.elapsed() >= self.config.gc_interval)
            {
                self.last_gc = Some(Instant::now());
                let gc = crate::gc::pass(&self.cluster, self.config.gc_grace, stop).await;
                if let Ok(mut s) = self.status.lock() {
                    s.last_gc_pass = Some(gc);
                }
            }
            self.next_scan = self.config.scan_interval.map(|i| Instant::now() + i);
        }
        let mut lagging = hint_lag;
        lagging.extend(self.scan_lagging.iter().cloned());
        self.cluster
            .metrics()
            .replication_lag
            .set(lagging.len() as i64);
        if let Ok(mut s) = self.status.lock() {
            s.replication_lag = lagging.len();
            s.repair_leader = leader;
        }
    }

    /// Aborts the upload recorded at `(namespace, address)` if it is a multipart upload
    /// older than the configured expiry, or drops what a completed one left for retries
    /// once the completion is that old. True when it was aborted.
    /// `partial`: `merged` holds only the start of the record's history.
    async fn expire_upload(
        &self,
        namespace: &str,
        address: &str,
        merged: &ObjectRecord,
        partial: bool,
    ) -> bool {
        let (Some(expiry), Some((bucket, key, id))) = (
            self.config.upload_expiry,
            uploads::parse_address(namespace, address),
        ) else {
            return false;
        };
        // An upload of many parts: its whole record, to purge every part.
        let whole;
        let merged = if partial {
            let replicas = self.cluster.replicas_of(namespace, address);
            match self
                .cluster
                .read_record_on(namespace, address, replicas, Bodies::None, Select::All)
                .await
            {
                Ok(read) => {
                    whole = read.record.unwrap_or_default();
                    &whole
                }
                Err(e) => {
                    tracing::warn!(bucket, key, upload = id, "upload record not read: {e}");
                    return false;
                }
            }
        } else {
            merged
        };
        // The initial entry of an upload in progress; else a completion entry (the only
        // live one a completed upload keeps).
        let init = merged
            .versions
            .iter()
            .find(|v| v.stamp.id == id && !v.is_purged());
        let in_progress = init.is_some();
        let started = init
            .or_else(|| merged.versions.iter().rev().find(|v| !v.is_purged()))
            .map(|v| v.stamp.ts);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        if started.is_none_or(|ts| now.saturating_sub(ts) < expiry.as_micros() as u64) {
            return false;
        }
        let replicas = self.cluster.replicas_of(namespace, address);
        match self
            .cluster
            .purge_record(namespace, address, merged, None, &replicas)
            .await
        {
            Ok(()) if !in_progress => {
                tracing::debug!(bucket, key, upload = id, "completed upload forgotten");
                true
            }
            Ok(()) => {
                tracing::info!(
                    bucket,
                    key,
                    upload = id,
                    "abandoned multipart upload aborted"
                );
                // Its part blobs are garbage now, for garbage collection to free.
                self.cluster.metrics().uploads_expired.inc();
                true
            }
            Err(e) => {
                tracing::warn!(
                    bucket,
                    key,
                    upload = id,
                    "abandoned upload not aborted yet: {e}"
                );
                false
            }
        }
    }

    /// Takes the health checker's newest verdicts; a node seen up again after being down
    /// is retried at once.
    fn take_verdicts(&mut self, known: usize) {
        let verdicts = self.health.borrow_and_update().clone();
        for (i, now) in verdicts.iter().enumerate() {
            if *now == Some(true) && self.up.get(i).copied().flatten() == Some(false) {
                self.backoff.remove(&i);
            }
        }
        self.up = verdicts;
        self.up.resize(known, None);
    }

    fn usable(&self, i: usize) -> bool {
        self.up[i] == Some(true)
            && self
                .backoff
                .get(&i)
                .is_none_or(|(_, until)| Instant::now() >= *until)
    }

    fn failed(&mut self, i: usize) {
        let entry = self.backoff.entry(i).or_insert((0, Instant::now()));
        entry.0 = entry.0.saturating_add(1);
        let delay = self.config.interval * 2u32.saturating_pow(entry.0.min(6));
        entry.1 = Instant::now() + delay;
    }

    fn count(&self, ok: bool) {
        let label = if ok { "ok" } else { "failed" };
        self.cluster
            .metrics()
            .repairs
            .with_label_values(&[label])
            .inc();
        if let Ok(mut s) = self.status.lock() {
            if ok {
                s.repairs_done += 1;
            } else {
                s.repairs_failed += 1;
            }
        }
    }

    /// Takes or renews the repair lease on a majority of nodes. A gateway that holds some
    /// grants but no majority stops asking for a random while, so its grants lapse: two
    /// gateways holding half the members each (a member set of even size) would otherwise
    /// renew their halves forever and neither would lead.
    async fn take_lease(&mut self) -> bool {
        let ttl = (self.config.interval * 5).max(Duration::from_secs(3));
        if self.lease_pause.is_some_and(|until| Instant::now() < until) {
            return false;
        }
        // A majority of the current members: across one change of one node, the
        // majorities of two gateways' layouts intersect.
        let members = self.cluster.topology().member_sets().swap_remove(0);
        let n = members.len();
        let grants = join_all(
            members
                .iter()
                .map(|&i| self.cluster.take_lease(i, &self.id, ttl)),
        )
        .await;
        let granted = grants.into_iter().filter(|g| *g).count();
        if granted > 0 && granted <= n / 2 {
            let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
            self.lease_pause = Some(Instant::now() + ttl.mul_f64(1.0 + jitter));
        }
        granted > n / 2
    }

    /// Reads every node's hints and, as leader, works through them. Returns the keys that
    /// are still known to be below RF.
    async fn work_hints(&mut self, leader: bool) -> BTreeSet<(String, String)> {
        let urls = self.cluster.node_urls();
        let members = self.cluster.all_nodes();
        let fetched = join_all(members.iter().map(|&i| self.cluster.hints_of(i))).await;
        // (target, bucket, key) → newest since; the same hint sits on several nodes.
        let mut hints: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        for hint in fetched.into_iter().flatten().flatten() {
            let since = hints
                .entry((hint.target, hint.bucket, hint.key))
                .or_insert(hint.since);
            *since = (*since).max(hint.since);
        }
        self.cluster.metrics().repair_queue.set(hints.len() as i64);
        if let Ok(mut s) = self.status.lock() {
            s.repair_queue_length = hints.len();
        }
        let mut lagging: BTreeSet<(String, String)> = hints
            .keys()
            .map(|(_, b, k)| (b.clone(), k.clone()))
            .collect();
        if !leader {
            return lagging;
        }
        let mut done: BTreeMap<(String, String), usize> = BTreeMap::new();
        let mut pending: BTreeMap<(String, String), usize> = BTreeMap::new();
        for ((target, bucket, key), since) in hints.into_iter().take(HINTS_PER_ITERATION) {
            *pending.entry((bucket.clone(), key.clone())).or_default() += 1;
            let hint = Hint {
                target: target.clone(),
                bucket: bucket.clone(),
                key: key.clone(),
                since,
            };
            let Some(i) = urls
                .iter()
                .position(|u| *u == target)
                .filter(|i| members.contains(i))
            else {
                // A node no longer in the cluster: nothing to repair there.
                self.cluster.delete_hint(hint).await;
                *done.entry((bucket, key)).or_default() += 1;
                continue;
            };
            if !self.usable(i) {
                continue;
            }
            let repaired = if key.is_empty() {
                self.cluster.repair_bucket(&bucket, i).await
            } else {
                self.cluster.repair_key(&bucket, &key, i, &[]).await
            };
            match repaired {
                Ok(_) => {
                    tracing::info!(node = %target, bucket, key, "repair done");
                    self.count(true);
                    self.cluster.delete_hint(hint).await;
                    *done.entry((bucket, key)).or_default() += 1;
                }
                Err(e) => {
                    tracing::warn!(node = %target, bucket, key, "repair failed, will retry: {e}");
                    self.count(false);
                    self.failed(i);
                }
            }
        }
        for (k, n) in done {
            if pending.get(&k) == Some(&n) {
                lagging.remove(&k);
            }
        }
        lagging
    }

    /// Compares every replica of every key (records, and whether their blobs are on disk)
    /// and repairs each replica that has less than the others.
    /// One pass over every key; what it found short, for the migration.
    async fn anti_entropy(&mut self, stop: &watch::Receiver<bool>) -> PassSummary {
        let started = Instant::now();
        // Buckets first: the object pass walks the buckets the nodes know of.
        let (buckets, buckets_repaired) = self.cluster.sync_buckets().await;
        let keys_repaired = self.cluster.sync_keys().await;
        let mut pass = Pass {
            repaired: (buckets_repaired + keys_repaired) as u64,
            complete: true,
            ..Pass::default()
        };
        let namespaces = buckets
            .iter()
            .filter(|b| b.exists.value)
            .flat_map(|b| [b.name.clone(), uploads::namespace(&b.name)]);
        for namespace in namespaces {
            if !self.scan_namespace(&namespace, stop, &mut pass).await {
                pass.complete = false;
                break;
            }
        }
        let summary = PassSummary {
            complete: pass.complete,
            short_keys: pass.short_keys,
            short_bytes: pass.short_bytes,
        };
        self.finish_pass(started, pass);
        summary
    }

    /// Compares every key of `namespace` across its replicas, page by page, and repairs
    /// the replicas behind. False when the pass must stop (asked to, or a page failed).
    async fn scan_namespace(
        &mut self,
        namespace: &str,
        stop: &watch::Receiver<bool>,
        pass: &mut Pass,
    ) -> bool {
        let mut cursor = String::new();
        // Every member's page when they are all up: a pass compares every replica (and
        // finds every stray copy). With a member down, the listing quorum still hears
        // from a holder of every key, and the key's check counts the owner as lacking.
        let every_member = self
            .cluster
            .all_nodes()
            .iter()
            .all(|&i| self.up[i] == Some(true));
        loop {
            if *stop.borrow() {
                return false;
            }
            let round = match self
                .cluster
                .scan_round(namespace, "", &cursor, 1000, true, every_member)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(bucket = namespace, "anti-entropy pass cut short: {e}");
                    return false;
                }
            };
            let mut checks = Vec::with_capacity(round.keys.len());
            for scanned in &round.keys {
                if let Some(check) = self
                    .compare_key(namespace, scanned, &round.answered, pass)
                    .await
                {
                    checks.push(check);
                }
            }
            self.repair_round(namespace, checks, pass).await;
            self.cluster
                .metrics()
                .anti_entropy_keys
                .inc_by(round.keys.len() as u64);
            match round.next {
                Some(next) => cursor = next,
                None => return true,
            }
            tokio::time::sleep(SCAN_PAGE_PAUSE).await;
        }
    }

    /// Records a finished (or cut short) pass: lagging keys, metrics, status, one log line.
    fn finish_pass(&mut self, started: Instant, pass: Pass) {
        self.scan_lagging = pass.lagging;
        if pass.complete {
            self.cluster.metrics().anti_entropy_passes.inc();
        }
        let finished_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let status = PassStatus {
            finished_at,
            duration_ms: started.elapsed().as_millis() as u64,
            keys_compared: pass.compared,
            replicas_repaired: pass.repaired,
            complete: pass.complete,
        };
        tracing::info!(
            keys = status.keys_compared,
            repaired = status.replicas_repaired,
            ms = status.duration_ms,
            complete = status.complete,
            "anti-entropy pass finished"
        );
        if let Ok(mut s) = self.status.lock() {
            s.last_anti_entropy_pass = Some(status);
        }
    }
}
