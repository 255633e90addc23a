//! Which replicas a read asks first, and when it asks the rest.
//!
//! A record read needs R answers, so it asks R replicas and keeps the others in reserve: a
//! replica that fails is replaced at once, and when the quorum is still incomplete after
//! the hedge delay (a few times the recent read time) every remaining replica is asked.
//! Asking all RF replicas up front cost a third more node work per GET and HEAD for an
//! answer nobody waited for.
//!
//! Invariants: every replica is eventually asked when fewer than R answer, so a read fails
//! only when asking all of them would have failed too; replicas believed up are asked
//! before those believed down; the starting replica rotates, so read repair still compares
//! every pair of replicas over successive reads.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::{Cluster, Need, Outcome, quorum_failed};
use crate::error::Error;
use crate::node_client::{NodeClient, NodeError};

/// Answers that arrive after a hedged read returned: each call still in flight sends its
/// result here, and the channel closes once the last one has.
pub(super) type Late<T> = UnboundedReceiver<(usize, Result<T, NodeError>)>;

/// Bounds of the hedge delay: never so short that a busy machine hedges every read, never
/// so long that a frozen replica stalls reads for long.
const HEDGE_MIN: Duration = Duration::from_millis(5);
const HEDGE_MAX: Duration = Duration::from_millis(200);
/// The hedge fires at this multiple of the recent quorum read time.
const HEDGE_FACTOR: u64 = 4;

/// What the read path believes about the nodes; shared by every request of one gateway.
pub(super) struct Liveness {
    /// Node `i` failed a call as unreachable or timed out, and no health check has seen
    /// it answer since. By registry index; grows with the registry.
    down: RwLock<Vec<AtomicBool>>,
    rotation: AtomicUsize,
    /// Moving average of quorum record-read times, µs.
    read_micros: AtomicU64,
}

impl Liveness {
    pub(super) fn new(nodes: usize) -> Liveness {
        Liveness {
            down: RwLock::new((0..nodes).map(|_| AtomicBool::new(false)).collect()),
            rotation: AtomicUsize::new(0),
            read_micros: AtomicU64::new(1_000),
        }
    }
}

impl Cluster {
    fn liveness(&self) -> &Liveness {
        &self.inner.liveness
    }

    /// Makes room for the verdicts on `nodes` nodes.
    pub(super) fn liveness_grow(&self, nodes: usize) {
        let mut down = self
            .liveness()
            .down
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        while down.len() < nodes {
            down.push(AtomicBool::new(false));
        }
    }

    /// Records a health check's verdict on node `i`.
    pub fn set_node_up(&self, i: usize, up: bool) {
        self.liveness_grow(i + 1);
        let down = self.liveness().down.read();
        let down = down.unwrap_or_else(PoisonError::into_inner);
        if let Some(d) = down.get(i) {
            d.store(!up, Ordering::Relaxed);
        }
    }

    /// Whether a failed call or health check left node `i` believed down.
    pub(super) fn believed_down(&self, i: usize) -> bool {
        let down = self.liveness().down.read();
        let down = down.unwrap_or_else(PoisonError::into_inner);
        down.get(i).is_some_and(|d| d.load(Ordering::Relaxed))
    }

    /// Notes the outcome of a read call to node `i`: a node that cannot be reached is
    /// asked last until a health check sees it again.
    pub(super) fn note_read_failure(&self, i: usize, e: &NodeError) {
        if matches!(e, NodeError::Unreachable(_) | NodeError::Timeout(_)) {
            self.set_node_up(i, false);
        }
    }

    /// `replicas` in the order to ask them: rotated per read, those believed up first.
    pub(super) fn read_order(&self, replicas: &[usize]) -> Vec<usize> {
        let n = replicas.len().max(1);
        let start = self.liveness().rotation.fetch_add(1, Ordering::Relaxed) % n;
        let rotated = replicas[start..].iter().chain(&replicas[..start]);
        let down = |i: usize| self.believed_down(i);
        let (up, down): (Vec<usize>, Vec<usize>) = rotated.partition(|&&i| !down(i));
        up.into_iter().chain(down).collect()
    }

    /// How long a read waits for its first replicas before asking the rest.
    pub(super) fn hedge_delay(&self) -> Duration {
        let recent = self.liveness().read_micros.load(Ordering::Relaxed);
        Duration::from_micros(recent.saturating_mul(HEDGE_FACTOR)).clamp(HEDGE_MIN, HEDGE_MAX)
    }

    /// Feeds one quorum read's time into the moving average (weight 1/16).
    pub(super) fn observe_read(&self, took: Duration) {
        let sample = took.as_micros().min(u128::from(u64::MAX)) as u64;
        let avg = &self.liveness().read_micros;
        let old = avg.load(Ordering::Relaxed);
        let new = old - old / 16 + sample / 16;
        avg.store(new, Ordering::Relaxed);
    }
}

impl Cluster {
    /// Calls `call` on the fewest of `replicas` (in [`Cluster::read_order`]) that can meet
    /// `need`, replacing each that fails by the next, and calling all the rest once the
    /// hedge delay has passed. Returns the successful answers, first first, as soon as they
    /// meet `need`, with the calls still in flight; fails with every node's reason once
    /// `need` cannot be met.
    pub(super) async fn hedged_read<T, F, Fut>(
        &self,
        op: &'static str,
        replicas: &[usize],
        need: Need,
        call: F,
    ) -> Result<(Vec<(usize, T)>, Late<T>), Error>
    where
        T: Send + 'static,
        F: Fn(NodeClient) -> Fut,
        Fut: Future<Output = Result<T, NodeError>> + Send + 'static,
    {
        let started = Instant::now();
        let (tx, mut rx) = unbounded_channel();
        let ask = |i: usize| {
            let (answer, tx) = (call(self.node(i).clone()), tx.clone());
            tokio::spawn(async move {
                let _ = tx.send((i, answer.await));
            });
        };
        let order = self.read_order(replicas);
        let first = need.first_asks(&order);
        first.iter().copied().for_each(&ask);
        let mut reserve = order
            .into_iter()
            .filter(|i| !first.contains(i))
            .collect::<Vec<_>>()
            .into_iter();
        let hedge = tokio::time::sleep(self.hedge_delay());
        tokio::pin!(hedge);
        let needed = need.needed();
        let mut tracker = need.tracker(replicas);
        let (mut answers, mut reasons) = (Vec::with_capacity(needed), Vec::new());
        while tracker.outcome() == Outcome::Pending {
            let (i, result) = tokio::select! {
                answer = rx.recv() => match answer {
                    Some(answer) => answer,
                    None => break,
                },
                () = &mut hedge, if reserve.len() > 0 => {
                    reserve.by_ref().for_each(&ask);
                    continue;
                }
            };
            match result {
                Ok(answer) => {
                    answers.push((i, answer));
                    tracker.record(i, true);
                }
                Err(e) => {
                    self.note_read_failure(i, &e);
                    reasons.push(self.count_failure(i, op, &e));
                    tracker.record(i, false);
                    reserve.next().map(&ask);
                }
            }
        }
        if tracker.outcome() != Outcome::Met {
            self.metrics()
                .quorum_failures
                .with_label_values(&[op])
                .inc();
            return Err(quorum_failed(op, needed, tracker.successes(), reasons));
        }
        self.observe_read(started.elapsed());
        Ok((answers, rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::metrics::Metrics;

    fn cluster() -> Cluster {
        let config = Config {
            nodes: (0..3)
                .map(|i| format!("http://127.0.0.1:{}", 9000 + i))
                .collect(),
            access_key: "a".into(),
            secret_key: "s".into(),
            cluster_secret: "c".into(),
            replicas: 3,
            write_quorum: 2,
            read_quorum: 2,
            node_timeout: Duration::from_secs(1),
            body_idle_timeout: std::time::Duration::from_secs(20),
            repair_interval: Duration::from_secs(1),
            scan_interval: None,
            upload_expiry: None,
            gc_grace: Duration::from_secs(3600),
            tombstone_grace: Duration::from_secs(86_400),
            gc_interval: Duration::from_secs(600),
            rebalance_rate: 0,
            domains: Vec::new(),
            admin_token: None,
            tls_cert: None,
            tls_key: None,
            node_ca: None,
        };
        Cluster::new(&config, Metrics::new()).expect("cluster")
    }

    #[tokio::test]
    async fn reads_rotate_over_the_replicas_and_ask_nodes_believed_down_last() {
        let c = cluster();
        let firsts: Vec<Vec<usize>> = (0..3).map(|_| c.read_order(&[2, 0, 1])).collect();
        assert_eq!(firsts, [[2, 0, 1], [0, 1, 2], [1, 2, 0]]);
        c.note_read_failure(0, &NodeError::Timeout(Duration::from_secs(1)));
        // Other failures say nothing about reachability.
        c.note_read_failure(1, &NodeError::BadReply("x".into()));
        let orders: Vec<Vec<usize>> = (0..3).map(|_| c.read_order(&[2, 0, 1])).collect();
        assert_eq!(orders, [[2, 1, 0], [1, 2, 0], [1, 2, 0]]);
        c.set_node_up(0, true);
        assert_eq!(c.read_order(&[2, 0, 1]), [2, 0, 1]);
    }

    #[tokio::test]
    async fn the_hedge_delay_follows_recent_reads_within_its_bounds() {
        let c = cluster();
        assert_eq!(c.hedge_delay(), HEDGE_MIN);
        for _ in 0..200 {
            c.observe_read(Duration::from_millis(10));
        }
        let d = c.hedge_delay();
        assert!(
            d > Duration::from_millis(35) && d <= Duration::from_millis(40),
            "{d:?}"
        );
        for _ in 0..200 {
            c.observe_read(Duration::from_secs(5));
        }
        assert_eq!(c.hedge_delay(), HEDGE_MAX);
    }
}
