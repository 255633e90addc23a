//! Membership as the rest of the gateway sees it: the register plus the seed list, joined
//! at start and followed while the gateway runs.
//!
//! Invariant: the gateway serves nothing placed before it installed a committed layout
//! (`join` returns first), and afterwards installs every newer revision it reads, woken by
//! a node reporting a newer version or by a poll.

use std::time::Duration;

use node::proto::layout::Layout;
use tokio::sync::watch;

use super::{ChangeError, LayoutRegister, staging};
use crate::quorum::Cluster;

/// How often the follower reads the layout when no node reported a newer version: staged
/// changes and URL changes do not raise the version.
const POLL: Duration = Duration::from_secs(1);

/// The register, the seeds, and the cluster handle that follows the layout. Cheap to clone.
#[derive(Clone)]
pub struct Membership {
    register: LayoutRegister,
    seeds: Vec<String>,
    cluster: Cluster,
    replicas: usize,
}

impl Membership {
    pub fn new(cluster: &Cluster, seeds: Vec<String>, replicas: usize) -> Membership {
        let template = cluster.client_at("");
        Membership {
            register: LayoutRegister::new(template, Some(cluster.clone())),
            seeds,
            cluster: cluster.clone(),
            replicas,
        }
    }

    /// A handle on the newest layout followed.
    pub fn cluster(&self) -> Cluster {
        self.cluster.current()
    }

    /// Where to read the register: the seeds and every member this gateway knows of.
    fn urls(&self) -> Vec<String> {
        let mut urls = self.seeds.clone();
        let current = self.cluster.current();
        if current.layout().version > 0 {
            super::add_urls(&mut urls, &current.layout().all_nodes());
        }
        urls
    }

    /// The newest committed layout the nodes hold (installed here too).
    pub async fn read(&self) -> Result<Layout, ChangeError> {
        match self.register.read(&self.urls()).await? {
            Some(layout) => {
                self.cluster.install(layout.clone());
                Ok(layout)
            }
            None => Err(ChangeError::Refused("the cluster has no layout yet".into())),
        }
    }

    /// [`LayoutRegister::change`] from what this gateway knows; the result is installed.
    pub async fn change<F>(&self, change: F) -> Result<Layout, ChangeError>
    where
        F: Fn(Option<&Layout>) -> Result<Option<Layout>, String>,
    {
        let layout = self.register.change(&self.urls(), change).await?;
        self.cluster.install(layout.clone());
        Ok(layout)
    }

    /// Installs the committed layout, building version 1 from the seeds on a cluster's
    /// first start; retried until it succeeds (true) or `stop` turns true (false).
    pub async fn join(&self, stop: &mut watch::Receiver<bool>) -> bool {
        let mut logged = false;
        loop {
            match self.register.bootstrap(&self.seeds, self.replicas).await {
                Ok(layout) => {
                    self.cluster.install(layout.clone());
                    self.relocate(&layout).await;
                    return true;
                }
                Err(e) => {
                    if !logged {
                        tracing::warn!("waiting for the cluster layout: {e}");
                        logged = true;
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.wait_for(|s| *s) => return false,
            }
        }
    }

    /// Records the addresses members answer at now, when a seed is a member that moved
    /// (a node restarted on another port or host keeps its id and its data).
    async fn relocate(&self, layout: &Layout) {
        let infos = self.seeds.iter().map(|url| {
            let client = self.cluster.client_at(url);
            async move { client.info().await.map(|i| (i.node_id, url.clone())) }
        });
        let seen: Vec<(String, String)> = futures::future::join_all(infos)
            .await
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        if staging::relocate(layout, &seen).is_none() {
            return;
        }
        match self
            .change(|current| Ok(current.and_then(|c| staging::relocate(c, &seen))))
            .await
        {
            Ok(l) => tracing::info!(revision = l.revision, "member addresses updated"),
            Err(e) => tracing::warn!("member addresses not updated: {e}"),
        }
    }

    /// Follows layout changes until `stop` turns true.
    pub async fn follow(self, mut stop: watch::Receiver<bool>) {
        let seen = self.cluster.layout_seen();
        loop {
            tokio::select! {
                _ = seen.changed() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.read().await {
                tracing::debug!("layout not read: {e}");
            }
        }
    }
}
