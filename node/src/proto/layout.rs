//! The cluster layout: which nodes exist, where they are and which of them own a key.
//!
//! The layout is one register, held by every node and changed by a compare-and-set the
//! nodes agree on (single-decree Paxos repeated per change, in the manner of CASPaxos):
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | GET | `/layout` | | [`LayoutView`] |
//! | POST | `/layout/prepare` | [`LayoutPrepare`] | [`LayoutPromise`] |
//! | POST | `/layout/accept` | [`LayoutProposal`] | [`super::paxos::AcceptReply`] |
//! | POST | `/layout/commit` | [`Layout`] | 204 |
//! | POST | `/layout/release/{bucket}/{key}` | | 204, or 409 [`STILL_OWNER_CODE`] |
//!
//! A change is prepared and accepted by a majority of the nodes of the layout it starts
//! from and of the layout it makes; only then is it committed, so a committed layout is a
//! chosen one. Every record request a gateway sends names the layout version
//! ([`Layout::version`]) it placed the key with, in [`LAYOUT_HEADER`]; a node whose committed
//! layout is newer refuses it (409, code `StaleLayout`), and every node answer carries the
//! node's committed version in the same header, so a gateway learns of a change at its next
//! call.
//!
//! The node fences every route but `/health`, `/info`, `/metrics`, the layout routes,
//! `/lease` and the blob routes (blobs are immutable and addressed by random ids; only
//! records say which blobs matter). A request without the header is served: callers that
//! place nothing (tools, tests) need not know the layout.
//!
//! `release` removes a key's record (every version and its Paxos state) from a node that
//! no longer owns it, once a migration has finished: the node refuses while it has no
//! committed layout, while a migration runs (`previous` is set) or while it is one of the
//! key's owners. A record address is placed by [`placed_key`].
//!
//! Placement is pure: weighted rendezvous hashing over node ids (the URL may change without
//! moving anything); when the layout has at least RF zones, a key's replicas are in
//! distinct zones.

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::paxos::Ballot;

/// Request and answer header: the layout version the sender works with.
pub const LAYOUT_HEADER: &str = "x-s3q-layout";

/// Error code (409) of a request fenced with a layout version older than the node's
/// committed one: the sender must fetch the newer layout and place the key again.
pub const STALE_LAYOUT_CODE: &str = "StaleLayout";

/// Error code (409) of a `release` the node refuses: it has no committed layout, a
/// migration runs, or it still owns the key.
pub const STILL_OWNER_CODE: &str = "StillOwner";

/// One member of a layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutNode {
    pub id: String,
    pub url: String,
    /// Failure domain; nodes without one share the zone `""`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub zone: String,
    /// Bytes this node should hold relative to the others; 0: as much as the average
    /// of those that state one (all equal when none does).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub capacity: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A change waiting for `admin layout apply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    Add {
        node: LayoutNode,
    },
    Remove {
        id: String,
    },
    /// `id` leaves and `node` (a new id, maybe a new URL) takes its place.
    Replace {
        id: String,
        node: LayoutNode,
    },
}

/// The register's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Placement version: bumped when the owners of keys change (an applied change, or the
    /// end of a migration). Requests are fenced with it.
    pub version: u64,
    /// Bumped on every change of the register, staging included: what a compare-and-set
    /// compares.
    pub revision: u64,
    pub replicas: usize,
    pub nodes: Vec<LayoutNode>,
    /// While a migration runs: the members before the last applied change. A key is read
    /// and written with a quorum among its owners in this list and in `nodes`, until the
    /// migration has copied it to all its owners in `nodes` and retires this list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Vec<LayoutNode>>,
    /// Changes waiting for `apply`, in the order they were staged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub staged: Vec<Change>,
}

/// `GET /layout`: the node's committed layout (none before the first one is agreed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutView {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed: Option<Layout>,
}

/// `prepare`: promise to ignore every ballot lower than `ballot`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutPrepare {
    pub ballot: Ballot,
}

/// Answer to a layout `prepare`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutPromise {
    pub promised: bool,
    /// The highest ballot this node has promised.
    pub highest: Ballot,
    /// The last value this node accepted, with its ballot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<(Ballot, Layout)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed: Option<Layout>,
}

/// `accept`: a value under a ballot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutProposal {
    pub ballot: Ballot,
    pub value: Layout,
}

impl Layout {
    /// Version 1, made from a plain node list (`--nodes` on a cluster's first start).
    pub fn first(nodes: Vec<LayoutNode>, replicas: usize) -> Layout {
        Layout {
            version: 1,
            revision: 1,
            replicas,
            nodes,
            previous: None,
            staged: Vec::new(),
        }
    }

    pub fn node(&self, id: &str) -> Option<&LayoutNode> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Every node of the current and (while migrating) the previous member list, once.
    pub fn all_nodes(&self) -> Vec<&LayoutNode> {
        let mut all: Vec<&LayoutNode> = self.nodes.iter().collect();
        for n in self.previous.iter().flatten() {
            if !all.iter().any(|m| m.id == n.id) {
                all.push(n);
            }
        }
        all
    }

    /// The members after `staged` are applied, or why they can't be.
    pub fn staged_members(&self) -> Result<Vec<LayoutNode>, String> {
        let mut nodes = self.nodes.clone();
        for change in &self.staged {
            apply(&mut nodes, change)?;
        }
        Ok(nodes)
    }
}

/// Applies one change to a member list.
pub fn apply(nodes: &mut Vec<LayoutNode>, change: &Change) -> Result<(), String> {
    let known = |nodes: &[LayoutNode], node: &LayoutNode| {
        nodes.iter().any(|n| n.id == node.id || n.url == node.url)
    };
    match change {
        Change::Add { node } => {
            if known(nodes, node) {
                return Err(format!(
                    "node {} ({}) is already a member",
                    node.id, node.url
                ));
            }
            nodes.push(node.clone());
        }
        Change::Remove { id } => {
            let before = nodes.len();
            nodes.retain(|n| n.id != *id);
            if nodes.len() == before {
                return Err(format!("no member has id {id}"));
            }
        }
        Change::Replace { id, node } => {
            let Some(at) = nodes.iter().position(|n| n.id == *id) else {
                return Err(format!("no member has id {id}"));
            };
            let old = nodes.remove(at);
            if known(nodes, node) {
                nodes.insert(at, old);
                return Err(format!(
                    "node {} ({}) is already a member",
                    node.id, node.url
                ));
            }
            nodes.insert(at, node.clone());
        }
    }
    Ok(())
}

/// The (bucket, key) a record address is placed by: a multipart upload's record (bucket
/// `<bucket>/<kind>`, key `<key>\0<anything>`) lives with its object's key; any other
/// address is placed by itself. A `/` never occurs in a real bucket name, nor a NUL in a key.
pub fn placed_key<'a>(bucket: &'a str, key: &'a str) -> (&'a str, &'a str) {
    match (bucket.split_once('/'), key.split_once('\0')) {
        (Some((real_bucket, _)), Some((real_key, _))) => (real_bucket, real_key),
        _ => (bucket, key),
    }
}

/// The `replicas` owners of `(bucket, key)` among `nodes`, as indexes into `nodes`, best
/// first: weighted rendezvous hashing, then zones kept distinct while there are enough.
pub fn owners(nodes: &[LayoutNode], replicas: usize, bucket: &str, key: &str) -> Vec<usize> {
    let weights = weights(nodes);
    let mut ranked: Vec<(f64, usize)> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (score(&n.id, weights[i], bucket, key), i))
        .collect();
    // Ties are astronomically unlikely; the index keeps the order total anyway.
    ranked.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let zones = {
        let mut z: Vec<&str> = nodes.iter().map(|n| n.zone.as_str()).collect();
        z.sort_unstable();
        z.dedup();
        z.len()
    };
    let want = replicas.min(nodes.len());
    let mut chosen: Vec<usize> = Vec::with_capacity(want);
    if zones >= want {
        for &(_, i) in &ranked {
            if chosen.len() == want {
                break;
            }
            if !chosen.iter().any(|&c| nodes[c].zone == nodes[i].zone) {
                chosen.push(i);
            }
        }
    } else {
        chosen.extend(ranked.iter().take(want).map(|&(_, i)| i));
    }
    chosen
}

/// Each node's weight: its capacity, or the mean stated capacity for a node without one.
fn weights(nodes: &[LayoutNode]) -> Vec<f64> {
    let stated: Vec<f64> = nodes
        .iter()
        .filter(|n| n.capacity > 0)
        .map(|n| n.capacity as f64)
        .collect();
    let mean = if stated.is_empty() {
        1.0
    } else {
        stated.iter().sum::<f64>() / stated.len() as f64
    };
    nodes
        .iter()
        .map(|n| {
            if n.capacity > 0 {
                n.capacity as f64
            } else {
                mean
            }
        })
        .collect()
}

/// Weighted rendezvous score: `-w / ln(u)` with `u` uniform in (0, 1) from the hash, so a
/// node wins a key with probability proportional to its weight.
fn score(id: &str, weight: f64, bucket: &str, key: &str) -> f64 {
    let mut h = Md5::new();
    h.update(id.as_bytes());
    h.update([0]);
    h.update(bucket.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    let digest: [u8; 16] = h.finalize().into();
    let bits = u64::from_be_bytes(digest[..8].try_into().unwrap_or([0; 8]));
    // 53 bits, shifted off zero: u in (0, 1).
    let u = ((bits >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -weight / u.ln()
}

#[cfg(test)]
mod tests;
