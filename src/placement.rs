//! Which nodes hold a given (bucket, key): rendezvous (highest random weight) hashing.
//!
//! Pure and deterministic: every gateway with the same node list computes the same replica
//! set, in the same preference order. Adding or removing a node only moves the keys whose
//! top-RF set included it. Node identity is its URL as configured.

use md5::{Digest, Md5};

/// The node list and replication factor a placement is computed from.
#[derive(Debug, Clone)]
pub struct Placement {
    nodes: Vec<String>,
    replicas: usize,
}

impl Placement {
    /// `replicas` must not exceed `nodes.len()` (checked by `Config::validate`).
    pub fn new(nodes: Vec<String>, replicas: usize) -> Self {
        Placement { nodes, replicas }
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Indexes (into the node list) of the `replicas` nodes owning `(bucket, key)`, highest
    /// score first.
    pub fn replicas(&self, bucket: &str, key: &str) -> Vec<usize> {
        let mut scored: Vec<(u128, usize)> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (score(node, bucket, key), i))
            .collect();
        // Ties are astronomically unlikely; the index keeps the order total anyway.
        scored.sort_unstable_by(|a, b| b.cmp(a));
        scored
            .into_iter()
            .take(self.replicas)
            .map(|(_, i)| i)
            .collect()
    }
}

fn score(node: &str, bucket: &str, key: &str) -> u128 {
    let mut h = Md5::new();
    h.update(node.as_bytes());
    h.update([0]);
    h.update(bucket.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    u128::from_be_bytes(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("http://10.0.0.{i}:3900")).collect()
    }

    #[test]
    fn three_nodes_three_replicas_means_everyone_holds_everything() {
        let p = Placement::new(nodes(3), 3);
        for k in 0..100 {
            let mut r = p.replicas("b", &format!("k{k}"));
            r.sort();
            assert_eq!(r, vec![0, 1, 2]);
        }
    }

    #[test]
    fn placement_is_deterministic_distinct_and_balanced() {
        let p = Placement::new(nodes(5), 3);
        let mut load: HashMap<usize, usize> = HashMap::new();
        for k in 0..5000 {
            let key = format!("key-{k}");
            let r = p.replicas("bucket", &key);
            assert_eq!(r, p.replicas("bucket", &key));
            assert_eq!(r.len(), 3);
            let mut d = r.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), 3, "replicas must be distinct nodes");
            for i in r {
                *load.entry(i).or_default() += 1;
            }
        }
        // 15000 placements over 5 nodes: 3000 each on average.
        for (node, n) in load {
            assert!((2600..3400).contains(&n), "node {node} holds {n}");
        }
    }

    #[test]
    fn adding_a_node_moves_only_keys_that_pick_it() {
        let before = Placement::new(nodes(5), 3);
        let after = Placement::new(nodes(6), 3);
        let mut moved = 0;
        for k in 0..2000 {
            let key = format!("k{k}");
            let mut a = before.replicas("b", &key);
            let mut b = after.replicas("b", &key);
            if a != b {
                moved += 1;
                // The only change allowed: the new node (index 5) displaced one replica.
                assert!(b.contains(&5));
                a.sort();
                b.retain(|&i| i != 5);
                b.sort();
                assert!(b.iter().all(|i| a.contains(i)));
            }
        }
        // About RF/N = 3/6 of keys gain the new node.
        assert!((800..1200).contains(&moved), "moved {moved}");
    }
}
