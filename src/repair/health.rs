//! Node health checks, in a loop of their own: a verdict must not wait behind the repair
//! work of the worker's iteration (an anti-entropy pass that pays the node timeout on every
//! page while a node is frozen), since requests skip the nodes these checks see down.
//!
//! Each round asks every member for `/health`, then asks the ones that answered who they
//! are and which layout version they committed. It publishes the verdicts three ways: to
//! the cluster (request routing), to the `node_up` gauge and `/status`, and to the worker
//! through a watch channel. A round is bounded by the health deadline twice over, so a node
//! that stops answering is reported down within about two rounds.

use futures::future::join_all;
use tokio::sync::watch;

use super::{NodeStatus, SharedStatus};
use crate::quorum::Cluster;

/// Each node's last verdict by index in the registry; `None`: not checked yet.
pub(super) type Verdicts = Vec<Option<bool>>;

pub(super) struct Checker {
    /// Followed for the newest layout: the members to check.
    live: Cluster,
    status: SharedStatus,
    up: Verdicts,
    /// The id each node last answered with.
    ids: Vec<Option<String>>,
    verdicts: watch::Sender<Verdicts>,
}

impl Checker {
    pub(super) fn new(live: Cluster, status: SharedStatus) -> (Self, watch::Receiver<Verdicts>) {
        let (verdicts, rx) = watch::channel(Vec::new());
        let checker = Self {
            live,
            status,
            up: Vec::new(),
            ids: Vec::new(),
            verdicts,
        };
        (checker, rx)
    }

    /// Checks every `interval` until `stop` turns true.
    pub(super) async fn run(
        mut self,
        interval: std::time::Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            self.round().await;
        }
    }

    /// One health check of every member; logs each transition once.
    pub(super) async fn round(&mut self) {
        let cluster = self.live.current();
        let urls = cluster.node_urls();
        self.up.resize(urls.len(), None);
        self.ids.resize(urls.len(), None);
        let members = cluster.all_nodes();
        let cluster = &cluster;
        let answers = join_all(members.iter().map(|&i| async move {
            if !cluster.node_healthy(i).await {
                return (false, None, None);
            }
            // Asked each round, not once: a restart may be quicker than the health checks,
            // and a wiped disk (or an address that now leads to another node) shows as a
            // new id.
            let (id, version) = futures::join!(cluster.node_id(i), cluster.node_layout_version(i));
            (true, Some(id), version)
        }))
        .await;
        let ours = cluster.layout().version;
        let mut nodes = Vec::with_capacity(members.len());
        for (&i, (up, id, layout_version)) in members.iter().zip(answers) {
            let url = &urls[i];
            match (self.up[i], up) {
                (Some(true) | None, false) => tracing::warn!(node = %url, "node down"),
                (Some(false), true) => tracing::info!(node = %url, "node up"),
                _ => {}
            }
            self.up[i] = Some(up);
            cluster.set_node_up(i, up);
            cluster
                .metrics()
                .node_up
                .with_label_values(&[url])
                .set(i64::from(up));
            if let Some(answer) = id {
                self.learn_id(i, url, answer);
            }
            nodes.push(NodeStatus {
                url: url.clone(),
                id: self.ids[i].clone(),
                up,
                layout_version,
                layout_synced: layout_version.is_some_and(|v| v >= ours),
            });
        }
        if let Ok(mut s) = self.status.lock() {
            s.nodes = nodes;
        }
        self.verdicts.send_replace(self.up.clone());
    }

    fn learn_id(&mut self, i: usize, url: &str, answer: Result<String, crate::error::Error>) {
        match answer {
            Ok(id) => {
                match &self.ids[i] {
                    Some(known) if *known != id => tracing::warn!(
                        node = %url,
                        was = %known,
                        now = %id,
                        "the node at this address has a new id: its disk was replaced or wiped, or the address leads to another node"
                    ),
                    Some(_) => {}
                    None => tracing::info!(node = %url, id = %id, "node identified"),
                }
                self.ids[i] = Some(id);
            }
            Err(e) => tracing::warn!(node = %url, "node id not read: {e}"),
        }
    }
}
