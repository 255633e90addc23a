//! What a layout change moves: for every stored key, the nodes that gain it and those
//! that lose it between two member lists, with the bytes its versions hold. `admin layout
//! plan` shows it before a change; the migration worker starts its count of what remains
//! from it.

use std::collections::BTreeMap;

use node::proto::layout::{LayoutNode, owners, placed_key};
use node::proto::{ObjectRecord, VersionState};
use serde::Serialize;

use crate::error::Error;
use crate::quorum::Cluster;
use crate::store::uploads;

/// What one node would gain and lose.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct NodeMove {
    pub keys_in: u64,
    pub bytes_in: u64,
    pub keys_out: u64,
    pub bytes_out: u64,
}

/// Everything a change from one member list to another moves.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Plan {
    pub keys_scanned: u64,
    /// Keys with at least one new owner.
    pub keys_moving: u64,
    /// Bytes copied in all: each moving key's bytes once per new owner.
    pub bytes_moving: u64,
    /// By node id.
    pub nodes: BTreeMap<String, NodeMove>,
}

/// Scans every bucket (and its uploads) through `cluster` and counts what moves from
/// `before` to `after`.
pub async fn plan(
    cluster: &Cluster,
    before: &[LayoutNode],
    after: &[LayoutNode],
    replicas: usize,
) -> Result<Plan, Error> {
    let mut plan = Plan::default();
    for n in before.iter().chain(after) {
        plan.nodes.entry(n.id.clone()).or_default();
    }
    let buckets = cluster.list_buckets().await?;
    let namespaces = buckets
        .iter()
        .filter(|b| b.exists.value)
        .flat_map(|b| [b.name.clone(), uploads::namespace(&b.name)]);
    for namespace in namespaces {
        let mut cursor = String::new();
        loop {
            let round = cluster
                .scan_round(&namespace, "", &cursor, 1000, false, false)
                .await?;
            for scanned in &round.keys {
                let bytes = record_bytes(&scanned.merged);
                let (gain, lose) = moves(before, after, replicas, &namespace, &scanned.key);
                plan.add(bytes, gain, lose);
            }
            match round.next {
                Some(next) => cursor = next,
                None => break,
            }
        }
    }
    Ok(plan)
}

impl Plan {
    fn add(&mut self, bytes: u64, gain: Vec<String>, lose: Vec<String>) {
        self.keys_scanned += 1;
        if !gain.is_empty() {
            self.keys_moving += 1;
            self.bytes_moving += bytes * gain.len() as u64;
        }
        for id in gain {
            let m = self.nodes.entry(id).or_default();
            m.keys_in += 1;
            m.bytes_in += bytes;
        }
        for id in lose {
            let m = self.nodes.entry(id).or_default();
            m.keys_out += 1;
            m.bytes_out += bytes;
        }
    }
}

/// The ids that gain `(namespace, key)` and those that lose it, from `before` to `after`.
pub fn moves(
    before: &[LayoutNode],
    after: &[LayoutNode],
    replicas: usize,
    namespace: &str,
    key: &str,
) -> (Vec<String>, Vec<String>) {
    let (b, k) = placed_key(namespace, key);
    let ids = |nodes: &[LayoutNode]| -> Vec<String> {
        owners(nodes, replicas, b, k)
            .into_iter()
            .map(|i| nodes[i].id.clone())
            .collect()
    };
    let (old, new) = (ids(before), ids(after));
    let gain = new.iter().filter(|i| !old.contains(i)).cloned().collect();
    let lose = old.iter().filter(|i| !new.contains(i)).cloned().collect();
    (gain, lose)
}

/// The bytes a record's object versions hold.
pub fn record_bytes(record: &ObjectRecord) -> u64 {
    record
        .versions
        .iter()
        .map(|v| match &v.state {
            VersionState::Object(meta) => meta.size,
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::staging;

    fn node(i: usize) -> LayoutNode {
        staging::new_node(format!("n{i}"), &format!("http://h{i}"), None, None)
    }

    #[test]
    fn adding_a_node_moves_about_its_share_and_only_to_it() {
        let before: Vec<LayoutNode> = (0..3).map(node).collect();
        let after: Vec<LayoutNode> = (0..4).map(node).collect();
        let mut gained = 0;
        for k in 0..1000 {
            let (gain, lose) = moves(&before, &after, 3, "b", &format!("k{k}"));
            assert_eq!(gain.len(), lose.len());
            assert!(gain.iter().all(|g| g == "n3"), "only the new node gains");
            gained += gain.len();
        }
        // n3 should own 3/4 of the keys: 750 expected.
        assert!((650..850).contains(&gained), "{gained}");
        let same = moves(&before, &before, 3, "b", "k");
        assert!(same.0.is_empty() && same.1.is_empty());
    }
}
