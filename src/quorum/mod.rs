//! The replicated quorum layer: which nodes to ask, how many answers make a success, and the
//! fan-out that returns as soon as the quorum is met while the remaining calls finish in the
//! background.
//!
//! Counting rules live in the pure [`QuorumTracker`]; everything async is in [`Cluster`] and
//! its submodules (`write` for blobs and records, `read` for records and blob streams, `list`
//! for merged listings, `buckets` for the fully replicated bucket table). A quorum failure
//! carries every replica's reason so one log line explains it.

mod buckets;
mod cas;
mod collect;
mod hedge;
mod keys;
mod list;
mod need;
mod outcome;
mod read;
mod repair;
mod settle;
mod tables;
mod topology;
mod upload;
mod uploads;
mod write;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::config::Config;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::node_client::{LayoutSeen, NodeClient, NodeError, new_pool};
use node::proto::layout::{Layout, LayoutNode};

pub use cas::Decision;
pub use list::{ListedVersion, Listing, ScannedKey, UploadListing, VersionListing};
pub use need::Need;
pub use outcome::{Earlier, ZERO_STAMP, earlier_outcome};
pub use read::ObjectStream;
pub use repair::is_behind;
pub use topology::Topology;
pub use upload::{BlobStored, BlobUpload};

/// Where a quorum stands after some answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not decided yet: more answers are needed and still possible.
    Pending,
    /// At least `needed` calls succeeded.
    Met,
    /// Too many failed: `needed` successes can no longer happen.
    Failed,
}

/// Counts successes and failures (errors and timeouts alike) of `total` calls that need
/// `needed` successes.
#[derive(Debug, Clone)]
pub struct QuorumTracker {
    total: usize,
    needed: usize,
    ok: usize,
    failed: usize,
}

impl QuorumTracker {
    pub fn new(total: usize, needed: usize) -> Self {
        QuorumTracker {
            total,
            needed,
            ok: 0,
            failed: 0,
        }
    }

    pub fn record(&mut self, success: bool) -> Outcome {
        if success {
            self.ok += 1;
        } else {
            self.failed += 1;
        }
        self.outcome()
    }

    pub fn outcome(&self) -> Outcome {
        if self.ok >= self.needed {
            Outcome::Met
        } else if self.total - self.failed.min(self.total) < self.needed {
            Outcome::Failed
        } else {
            Outcome::Pending
        }
    }
}

/// Shared handle on the data nodes, cheap to clone. It places keys with the layout it was
/// made with (see `topology`); [`Cluster::current`] gives one with the newest layout.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
    topo: Arc<Topology>,
}

struct Inner {
    registry: topology::Registry,
    /// The newest layout followed; replaced whole by `install`.
    topology: RwLock<Arc<Topology>>,
    seen: Arc<LayoutSeen>,
    config_replicas: usize,
    write_quorum: usize,
    read_quorum: usize,
    clock: Hlc,
    metrics: Metrics,
    liveness: hedge::Liveness,
}

impl Cluster {
    /// A cluster handle placing keys with a provisional layout made from `--nodes` (URLs
    /// as ids, version 0) until [`Cluster::install`] adopts the committed one. Requests
    /// placed with it carry no layout version; the gateway installs the committed layout
    /// before it serves anything.
    pub fn new(config: &Config, metrics: Metrics) -> Result<Self, String> {
        let seen = Arc::new(LayoutSeen::default());
        let template = NodeClient::new(
            String::new(),
            new_pool(config.node_ca.as_deref())?,
            &config.cluster_secret,
            config.node_timeout,
        )?
        .reporting_to(seen.clone());
        let registry = topology::Registry::new(template);
        let provisional = Layout {
            version: 0,
            ..Layout::first(
                config
                    .nodes
                    .iter()
                    .map(|url| LayoutNode {
                        id: url.clone(),
                        url: url.clone(),
                        zone: String::new(),
                        capacity: 0,
                    })
                    .collect(),
                config.replicas,
            )
        };
        let topo = Arc::new(Topology::build(provisional, &registry));
        let liveness = hedge::Liveness::new(topo.clients.len());
        Ok(Cluster {
            inner: Arc::new(Inner {
                registry,
                topology: RwLock::new(topo.clone()),
                seen,
                config_replicas: config.replicas,
                write_quorum: config.write_quorum,
                read_quorum: config.read_quorum,
                clock: Hlc::default(),
                metrics,
                liveness,
            }),
            topo,
        })
    }

    /// Node `i`'s client, stamped with this handle's layout.
    fn node(&self, i: usize) -> NodeClient {
        match self.topo.clients.get(i) {
            Some(c) => c.clone(),
            // An index from a newer handle: the registry only grows, so it names a node.
            None => self.inner.newest().clients[i].stamped(self.topo.layout.version),
        }
    }

    /// The owners of a record address (see [`Topology::placed`]), every live replica set.
    fn replicas(&self, bucket: &str, key: &str) -> Vec<usize> {
        self.placed(bucket, key).targets
    }

    /// Where nodes report the layout versions they committed.
    pub fn layout_seen(&self) -> Arc<LayoutSeen> {
        self.inner.seen.clone()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The URL of every node the registry knows, by index (members or not).
    pub fn node_urls(&self) -> Vec<String> {
        self.topo
            .clients
            .iter()
            .map(|n| n.url().to_owned())
            .collect()
    }

    /// The URL of node `i`.
    pub fn node_url(&self, i: usize) -> String {
        self.node(i).url().to_owned()
    }

    /// The nodes holding `(bucket, key)`, as indexes for the write calls.
    pub fn replicas_of(&self, bucket: &str, key: &str) -> Vec<usize> {
        self.replicas(bucket, key)
    }

    /// How many nodes answer their health check, and how many writes need.
    pub async fn reachable_nodes(&self) -> (usize, usize) {
        let checks = self
            .all_nodes()
            .into_iter()
            .map(|i| async move { self.node(i).health().await });
        let up = futures::future::join_all(checks)
            .await
            .into_iter()
            .filter(|ok| *ok)
            .count();
        (up, self.inner.write_quorum)
    }

    /// A fresh unique id (version ids, blob ids): 32 lowercase hex characters.
    pub fn new_id() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    /// Counts a failed `op` call to node `i` in `storage_errors`; returns the reason a
    /// quorum failure reports for it.
    fn count_failure(&self, i: usize, op: &str, e: &NodeError) -> String {
        let node = self.node(i);
        let node = node.url();
        // A stale stamp is the ordering rule at work, and a stale layout the fence at
        // work: neither is a failing node.
        if !matches!(e, NodeError::Stale(_) | NodeError::StaleLayout { .. }) {
            self.metrics()
                .storage_errors
                .with_label_values(&[node, op])
                .inc();
        }
        format!("{node}: {e}")
    }

    /// The next hybrid-logical timestamp, after everything this gateway has seen.
    pub fn next_timestamp(&self, seen: Option<u64>) -> u64 {
        self.inner.clock.next(seen)
    }
}

/// Spawns `call` once per node in `targets`; each call runs to completion in its own task
/// even after the caller has stopped waiting (the background part of a quorum write).
fn spawn_each<T, F, Fut>(
    cluster: &Cluster,
    targets: &[usize],
    call: F,
) -> Vec<(
    usize,
    impl Future<Output = Result<T, NodeError>> + use<T, F, Fut>,
)>
where
    T: Send + 'static,
    F: Fn(usize, NodeClient) -> Fut,
    Fut: Future<Output = Result<T, NodeError>> + Send + 'static,
{
    targets
        .iter()
        .map(|&i| {
            let task = tokio::spawn(call(i, cluster.node(i).clone()));
            (i, async move {
                task.await
                    .unwrap_or_else(|e| Err(NodeError::BadReply(format!("task: {e}"))))
            })
        })
        .collect()
}

/// Waits until the calls' successes meet `need` (returning their results, first answers
/// first) or until that has become impossible (a `QuorumFailed` naming every node's
/// reason). Spawned calls still running keep running.
async fn gather<T, Fut>(
    cluster: &Cluster,
    op: &'static str,
    calls: Vec<(usize, Fut)>,
    need: Need,
) -> Result<Vec<(usize, T)>, Error>
where
    Fut: Future<Output = Result<T, NodeError>>,
{
    let called: Vec<usize> = calls.iter().map(|(i, _)| *i).collect();
    let mut tracker = need.tracker(&called);
    let needed = need.needed();
    let mut reasons = Vec::new();
    if tracker.outcome() == Outcome::Failed {
        return Err(quorum_failed(op, needed, 0, reasons));
    }
    let mut pending: FuturesUnordered<_> = calls
        .into_iter()
        .map(|(i, f)| async move { (i, f.await) })
        .collect();
    let mut ok = Vec::with_capacity(needed);
    while let Some((i, result)) = pending.next().await {
        let success = match result {
            Ok(v) => {
                ok.push((i, v));
                true
            }
            Err(e) => {
                reasons.push(cluster.count_failure(i, op, &e));
                false
            }
        };
        match tracker.record(i, success) {
            Outcome::Met => return Ok(ok),
            Outcome::Failed => break,
            Outcome::Pending => {}
        }
    }
    cluster
        .metrics()
        .quorum_failures
        .with_label_values(&[op])
        .inc();
    Err(quorum_failed(op, needed, tracker.successes(), reasons))
}

fn quorum_failed(op: &'static str, needed: usize, got: usize, per_node: Vec<String>) -> Error {
    Error::QuorumFailed {
        op,
        needed,
        got,
        per_node,
    }
}

/// Hybrid logical clock: wall-clock microseconds, but never behind (and never equal to)
/// anything this gateway has produced or seen, so a version written after reading another
/// always orders after it even when gateway clocks disagree.
#[derive(Default)]
struct Hlc {
    last: AtomicU64,
}

impl Hlc {
    fn next(&self, seen: Option<u64>) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let floor = seen.map_or(0, |s| s.saturating_add(1));
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = now.max(floor).max(last.saturating_add(1));
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(actual) => last = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every order of ok (o), error (e) and timeout (t) answers from 3 replicas, with the
    /// outcome after each answer, for W = 2 (and R = 2, the same table).
    #[test]
    fn quorum_table_rf3_q2() {
        // answers → outcome after each answer
        let table = [
            ("ooo", "P M M"),
            ("ooe", "P M M"),
            ("oeo", "P P M"),
            ("eoo", "P P M"),
            ("oee", "P P F"),
            ("eoe", "P P F"),
            ("eeo", "P F F"),
            ("eee", "P F F"),
            ("oot", "P M M"),
            ("oto", "P P M"),
            ("too", "P P M"),
            ("ott", "P P F"),
            ("tot", "P P F"),
            ("tto", "P F F"),
            ("ttt", "P F F"),
            ("ote", "P P F"),
            ("eto", "P F F"),
            ("teo", "P F F"),
        ];
        for (answers, expected) in table {
            let mut t = QuorumTracker::new(3, 2);
            let got: Vec<&str> = answers
                .chars()
                .map(|c| match t.record(c == 'o') {
                    Outcome::Pending => "P",
                    Outcome::Met => "M",
                    Outcome::Failed => "F",
                })
                .collect();
            assert_eq!(got.join(" "), expected, "answers {answers}");
        }
    }

    #[test]
    fn quorum_edges() {
        assert_eq!(QuorumTracker::new(3, 3).record(false), Outcome::Failed);
        assert_eq!(QuorumTracker::new(1, 1).record(true), Outcome::Met);
        assert_eq!(QuorumTracker::new(1, 2).outcome(), Outcome::Failed);
        let mut t = QuorumTracker::new(5, 3);
        assert_eq!(t.record(false), Outcome::Pending);
        assert_eq!(t.record(false), Outcome::Pending);
        assert_eq!(t.record(false), Outcome::Failed);
    }

    #[test]
    fn clock_is_strictly_monotonic_and_respects_what_it_saw() {
        let c = Hlc::default();
        let a = c.next(None);
        let b = c.next(None);
        assert!(b > a);
        let far = b + 10_000_000_000;
        assert_eq!(c.next(Some(far)), far + 1);
        assert!(c.next(None) > far + 1);
    }
}
