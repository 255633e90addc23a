//! The gateway's picture of the cluster: the committed layout it follows, a client per
//! node, and where each key lives under it.
//!
//! Nodes are known by index into an append-only registry of clients keyed by URL, so an
//! index stays valid across layout changes (a node that moves to a new URL gets a new
//! index; an old index keeps naming the old URL). A [`Topology`] is one immutable snapshot:
//! the layout, and the registry's clients stamped with that layout's version. Each
//! operation places its key and sends its requests with one snapshot (see
//! [`Cluster::current`]), so a request is never placed by one layout and stamped with
//! another: a node that committed a newer layout refuses it instead of serving it.
//!
//! While a migration runs (`previous` is set), a key has two replica sets, its owners
//! among the previous members and among the current ones; requests go to both and need a
//! quorum in each (see `need`).

use std::sync::{Arc, Mutex, PoisonError};

use node::proto::layout::{Layout, LayoutNode, owners, placed_key};

use super::Cluster;
use super::need::Need;
use crate::node_client::NodeClient;

/// One layout and the clients to reach its nodes, stamped with its version.
pub struct Topology {
    pub(super) layout: Layout,
    /// By registry index, every node the registry knew when this snapshot was made.
    pub(super) clients: Vec<NodeClient>,
    /// Registry index of each member, in `layout.nodes` order.
    current: Vec<usize>,
    /// Registry index of each previous member, while a migration runs.
    previous: Option<Vec<usize>>,
}

/// Where one key lives under one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// Every owner once: the current owners (best first), then previous owners not among
    /// them.
    pub targets: Vec<usize>,
    /// The replica sets a quorum is needed in: the current owners, and the previous ones
    /// while they differ.
    pub sets: Vec<Vec<usize>>,
}

/// The append-only client registry.
pub(super) struct Registry {
    template: NodeClient,
    clients: Mutex<Vec<NodeClient>>,
}

impl Registry {
    /// `template` gives every client its pool, secret, timeout and layout reporting.
    pub(super) fn new(template: NodeClient) -> Registry {
        Registry {
            template,
            clients: Mutex::new(Vec::new()),
        }
    }

    /// The index of the client for `url`, made on first use.
    pub(super) fn index(&self, url: &str) -> usize {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = clients.iter().position(|c| c.url() == url) {
            return i;
        }
        clients.push(self.template.at(url));
        clients.len() - 1
    }

    /// The node call deadline every client has.
    pub(super) fn timeout(&self) -> std::time::Duration {
        self.template.timeout()
    }

    fn snapshot(&self, version: u64) -> Vec<NodeClient> {
        let clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients.iter().map(|c| c.stamped(version)).collect()
    }
}

impl Topology {
    pub(super) fn build(layout: Layout, registry: &Registry) -> Topology {
        let index = |nodes: &[LayoutNode]| -> Vec<usize> {
            nodes.iter().map(|n| registry.index(&n.url)).collect()
        };
        let current = index(&layout.nodes);
        let previous = layout.previous.as_deref().map(index);
        Topology {
            clients: registry.snapshot(layout.version),
            layout,
            current,
            previous,
        }
    }

    /// The owners of `(bucket, key)`, a record address placed as `placed_key` says.
    pub fn placed(&self, bucket: &str, key: &str) -> Placed {
        let (b, k) = placed_key(bucket, key);
        let rf = self.layout.replicas;
        let current: Vec<usize> = owners(&self.layout.nodes, rf, b, k)
            .into_iter()
            .map(|j| self.current[j])
            .collect();
        let mut targets = current.clone();
        let mut sets = vec![current];
        if let (Some(nodes), Some(index)) = (&self.layout.previous, &self.previous) {
            let before: Vec<usize> = owners(nodes, rf, b, k)
                .into_iter()
                .map(|j| index[j])
                .collect();
            let mut same = before.clone();
            same.sort_unstable();
            let mut now = sets[0].clone();
            now.sort_unstable();
            if same != now {
                targets.extend(before.iter().filter(|i| !sets[0].contains(i)));
                sets.push(before);
            }
        }
        Placed { targets, sets }
    }

    /// Every member, current then previous, once.
    pub fn all_nodes(&self) -> Vec<usize> {
        let mut all = self.current.clone();
        for &i in self.previous.iter().flatten() {
            if !all.contains(&i) {
                all.push(i);
            }
        }
        all
    }

    /// The member sets a fully replicated table needs its quorum in.
    pub fn member_sets(&self) -> Vec<Vec<usize>> {
        let mut sets = vec![self.current.clone()];
        if let Some(p) = &self.previous {
            sets.push(p.clone());
        }
        sets
    }

    /// The registry index of member `id`, current or previous.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        let find = |nodes: &[LayoutNode], index: &[usize]| {
            nodes.iter().position(|n| n.id == id).map(|j| index[j])
        };
        find(&self.layout.nodes, &self.current).or_else(|| {
            self.layout
                .previous
                .as_deref()
                .zip(self.previous.as_deref())
                .and_then(|(n, i)| find(n, i))
        })
    }
}

impl super::Inner {
    pub(super) fn newest(&self) -> Arc<Topology> {
        self.topology
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Cluster {
    /// A handle on the newest layout this gateway follows. Operations take one at their
    /// start and use it throughout.
    pub fn current(&self) -> Cluster {
        Cluster {
            inner: self.inner.clone(),
            topo: self.inner.newest(),
        }
    }

    /// W: acknowledgements a write needs in each replica set.
    pub fn write_quorum(&self) -> usize {
        self.inner.write_quorum
    }

    /// R: answers a read needs in each replica set.
    pub fn read_quorum(&self) -> usize {
        self.inner.read_quorum
    }

    /// An unplaced client for `url` (no layout version sent): for the layout register.
    pub fn client_at(&self, url: &str) -> NodeClient {
        self.inner.registry.template.at(url)
    }

    /// The layout this handle places keys with.
    pub fn layout(&self) -> &Layout {
        &self.topo.layout
    }

    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// Adopts `layout` when its revision is newer than the one followed; true if it did.
    pub fn install(&self, layout: Layout) -> bool {
        let mut newest = self
            .inner
            .topology
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if layout.revision <= newest.layout.revision && newest.layout.version > 0 {
            return false;
        }
        if layout.replicas != self.inner.config_replicas {
            tracing::warn!(
                layout = layout.replicas,
                configured = self.inner.config_replicas,
                "the cluster layout's replication factor differs from --replicas; following the layout"
            );
        }
        let (version, revision) = (layout.version, layout.revision);
        let topo = Arc::new(Topology::build(layout, &self.inner.registry));
        self.liveness_grow(topo.clients.len());
        *newest = topo;
        tracing::info!(version, revision, "following cluster layout");
        true
    }

    /// Where `(bucket, key)` lives under this handle's layout.
    pub fn placed(&self, bucket: &str, key: &str) -> Placed {
        self.topo.placed(bucket, key)
    }

    /// W in each replica set of `(bucket, key)`.
    pub(super) fn write_need(&self, bucket: &str, key: &str) -> Need {
        let w = self.inner.write_quorum;
        Need::per_set(&self.placed(bucket, key).sets, |_| w)
    }

    /// R in each replica set of `(bucket, key)`.
    pub(super) fn read_need(&self, bucket: &str, key: &str) -> Need {
        let r = self.inner.read_quorum;
        Need::per_set(&self.placed(bucket, key).sets, |_| r)
    }

    /// A majority of each replica set of `(bucket, key)`: the agreement's quorum.
    pub(super) fn majority_need(&self, bucket: &str, key: &str) -> Need {
        Need::per_set(&self.placed(bucket, key).sets, |n| n / 2 + 1)
    }
}
