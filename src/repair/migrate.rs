//! The migration a layout change starts, run by the repair lease holder: once every node
//! fences the old layout, anti-entropy passes over the owners under both layouts copy
//! each key to its new owners (paced by `--rebalance-rate-mib`); the first complete pass
//! that leaves every key in sync on all its current owners the health checks see up, and
//! on at least W of them, retires the previous members.
//!
//! Why the steps are safe:
//! - a gateway still on the old layout can get neither a write nor a read quorum once
//!   fewer than min(W, R) members lack the new layout: any W or R of a key's old owners
//!   include a node that refuses it (`StaleLayout`). So after `ready`, every new write
//!   reaches both replica sets and a pass sees everything written before;
//! - retirement needs a complete pass with no key short (see `compare`), so when the
//!   previous members stop being asked, at least W current owners of every key hold every
//!   acknowledged write, and any R of them include one that does. A new owner down meanwhile
//!   is caught up later, as after any failure, or replaced by the next change;
//! - a node's copy of a key it no longer owns is released only once no migration runs and
//!   every owner holds the key (the node checks ownership itself, too).

use std::time::Duration;

use node::proto::layout::Layout;
use serde::Serialize;

use super::Worker;
use crate::layout::{plan, staging};

/// `/status` `rebalance`: what the running migration has left. Zeros when none runs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rebalance {
    /// The layout version being migrated to; `None` when no migration runs.
    pub migrating_to: Option<u64>,
    pub keys_remaining: u64,
    pub bytes_remaining: u64,
    /// Key copies made on new owners, and their bytes, since the migration began.
    pub copies_made: u64,
    pub bytes_copied: u64,
    /// Members that have not committed the new layout yet (the migration waits for them).
    pub waiting_for: Vec<String>,
}

/// A throttle: `rate` bytes per second (0: none).
pub(super) struct Pace {
    rate: u64,
}

impl Pace {
    pub(super) fn new(rate: u64) -> Pace {
        Pace { rate }
    }

    /// How long copying `bytes` should take at this pace.
    fn delay(&self, bytes: u64) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(bytes as f64 / self.rate as f64)
    }

    pub(super) async fn after(&self, bytes: u64) {
        let d = self.delay(bytes);
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
}

impl Worker {
    /// One step of the migration of the layout this iteration follows.
    pub(super) async fn migrate(&mut self, stop: &tokio::sync::watch::Receiver<bool>) {
        let layout = self.cluster.layout().clone();
        if self.rebalance.migrating_to != Some(layout.version) {
            self.begin(&layout).await;
        }
        if !self.ready(&layout).await || !self.carry_agreements().await {
            return;
        }
        let pass = self.anti_entropy(stop).await;
        if pass.complete && pass.short_keys == 0 {
            self.retire(layout.version).await;
        } else {
            self.rebalance.keys_remaining = pass.short_keys;
            self.rebalance.bytes_remaining = pass.short_bytes;
            self.publish();
        }
    }

    /// Starts the count of a new migration from what the change moves.
    async fn begin(&mut self, layout: &Layout) {
        let previous = layout.previous.as_deref().unwrap_or_default();
        tracing::info!(version = layout.version, "migration started");
        let moved = plan::plan(&self.cluster, previous, &layout.nodes, layout.replicas).await;
        let (keys, bytes) = match moved {
            Ok(p) => (p.keys_moving, p.bytes_moving),
            Err(e) => {
                tracing::warn!("migration size not counted: {e}");
                (0, 0)
            }
        };
        self.rebalance = Rebalance {
            migrating_to: Some(layout.version),
            keys_remaining: keys,
            bytes_remaining: bytes,
            ..Default::default()
        };
        self.publish();
    }

    /// Whether enough members fence the old layout for a pass to see every write; pushes
    /// the layout to members that missed its commit.
    async fn ready(&mut self, layout: &Layout) -> bool {
        let members = self.cluster.all_nodes();
        let checks = members.iter().map(|&i| {
            let client = self.cluster.client_at(&self.cluster.node_url(i));
            async move {
                match client.layout_view().await {
                    Ok(Some(c)) if c.version >= layout.version => true,
                    Ok(_) => client.layout_commit(layout).await.is_ok(),
                    Err(_) => false,
                }
            }
        });
        let answers = futures::future::join_all(checks).await;
        let lacking: Vec<String> = members
            .iter()
            .zip(answers)
            .filter(|(_, ok)| !ok)
            .map(|(&i, _)| self.cluster.node_url(i))
            .collect();
        let ready = lacking.len() < self.cluster.write_quorum().min(self.cluster.read_quorum());
        if !lacking.is_empty() {
            tracing::warn!(?lacking, ready, "members without the new layout");
        }
        self.rebalance.waiting_for = if ready { Vec::new() } else { lacking };
        self.publish();
        ready
    }

    /// Ends the migration of `version`.
    async fn retire(&mut self, version: u64) {
        match self
            .membership
            .change(|current| Ok(current.and_then(|c| staging::retire(c, version))))
            .await
        {
            Ok(layout) => {
                tracing::info!(
                    version = layout.version,
                    copies = self.rebalance.copies_made,
                    bytes = self.rebalance.bytes_copied,
                    "migration done: previous members retired"
                );
                self.cluster = self.live.current();
                self.rebalance = Rebalance::default();
                self.publish();
            }
            Err(e) => tracing::warn!("migration not retired yet: {e}"),
        }
    }

    /// A copy of `bytes` made on a new owner.
    pub(super) async fn copied(&mut self, bytes: u64) {
        let r = &mut self.rebalance;
        r.copies_made += 1;
        r.bytes_copied += bytes;
        r.keys_remaining = r.keys_remaining.saturating_sub(1);
        r.bytes_remaining = r.bytes_remaining.saturating_sub(bytes);
        self.publish();
        self.pace.after(bytes).await;
    }

    /// Drops the copies `strays` hold of a key every owner has; a node that still owns
    /// it, or sees a migration, refuses.
    pub(super) async fn release(&mut self, namespace: &str, key: &str, strays: &[usize]) {
        for &s in strays {
            if !self.usable(s) {
                continue;
            }
            let client = self.cluster.client_at(&self.cluster.node_url(s));
            match client.release(namespace, key).await {
                Ok(true) => {
                    tracing::debug!(node = %client.url(), bucket = namespace, key, "stray copy released");
                }
                Ok(false) => {
                    tracing::debug!(node = %client.url(), bucket = namespace, key, "stray copy kept: the node refused");
                }
                Err(e) => {
                    tracing::warn!(node = %client.url(), bucket = namespace, key, "stray copy not released: {e}");
                }
            }
        }
    }

    /// Publishes the followed layout's version and its migration. Whether a migration runs
    /// is the layout's to say, not this worker's: the lease may have moved to another
    /// gateway, whose worker then migrates and retires while this one only follows. Its
    /// counts are this worker's, and only while they are of the running migration.
    pub(super) fn publish(&self) {
        let layout = self.cluster.layout();
        let running = layout.previous.is_some().then_some(layout.version);
        let rebalance = match running {
            None => Rebalance::default(),
            Some(_) if self.rebalance.migrating_to == running => self.rebalance.clone(),
            Some(_) => Rebalance {
                migrating_to: running,
                ..Rebalance::default()
            },
        };
        if let Ok(mut s) = self.status.lock() {
            s.rebalance = rebalance;
            s.layout_version = layout.version;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_spreads_bytes_over_time() {
        let p = Pace::new(1 << 20);
        assert_eq!(p.delay(1 << 20), Duration::from_secs(1));
        assert_eq!(p.delay(0), Duration::ZERO);
        assert_eq!(Pace::new(0).delay(u64::MAX), Duration::ZERO);
    }
}
