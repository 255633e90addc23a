//! The gateway's side of the cluster layout register (`node::proto::layout`): reading the
//! committed layout, changing it by compare-and-set, building the first one, and following
//! it. The pure rules of a change are in `staging`.
//!
//! A change is one round of single-decree Paxos per revision (CASPaxos): prepare and
//! accept need a majority of every member list involved, the current members, the previous
//! ones while a migration runs, and the members the change makes, so two admins (or two
//! gateways retiring a migration) can never both win, and a proposer that missed a newer
//! layout learns it from the promises. A value a promise reports as accepted but not yet
//! committed may have been chosen: it is finished (accepted again under this ballot and
//! committed) before the caller's change is tried on top of it.
//!
//! Invariant: a layout is committed to a node only once a majority of each of its member
//! lists accepted it, so every committed layout is a chosen one, and revisions rise by one.

mod follow;
pub mod plan;
pub mod staging;

pub use follow::Membership;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use node::proto::Stamp;
use node::proto::layout::{Layout, LayoutNode};
use node::proto::paxos::Ballot;

use crate::node_client::{NodeClient, NodeError};
use crate::quorum::{Cluster, Need, Outcome};

/// How many rounds a change tries before it reports contention.
const ROUNDS: u32 = 8;

/// Why a layout change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// Other proposers kept winning; nothing of this change was committed.
    #[error("the layout is being changed concurrently; try again")]
    Contended,
    /// The change is not allowed on the committed layout.
    #[error("{0}")]
    Refused(String),
    /// Too few nodes answered.
    #[error("too few nodes answered: {0}")]
    Unavailable(String),
}

/// Reads and changes the register through unplaced node clients. Cheap to clone.
#[derive(Clone)]
pub struct LayoutRegister {
    template: NodeClient,
    /// Adopts a value the moment it is chosen, before the nodes hear of its commit: the
    /// gateway that made a change never sends a request the nodes will fence.
    follower: Option<Cluster>,
}

/// How a round ended.
enum Round {
    /// The caller's value is committed.
    Chosen(Layout),
    /// A newer layout exists (learned or finished by this round): try again on top of it.
    Behind(Layout),
}

impl LayoutRegister {
    /// `template` gives the pool, secret and deadline; it must be unstamped.
    pub fn new(template: NodeClient, follower: Option<Cluster>) -> LayoutRegister {
        LayoutRegister { template, follower }
    }

    fn client(&self, url: &str) -> NodeClient {
        self.template.at(url)
    }

    /// The newest committed layout among the nodes at `urls` that answer; `Ok(None)` when
    /// those that answered have none, `Unavailable` when none answered.
    pub async fn read(&self, urls: &[String]) -> Result<Option<Layout>, ChangeError> {
        let calls = urls.iter().map(|u| {
            let c = self.client(u);
            async move { (c.url().to_owned(), c.layout_view().await) }
        });
        let mut newest: Option<Layout> = None;
        let mut answered = false;
        let mut reasons = Vec::new();
        for (url, answer) in futures::future::join_all(calls).await {
            match answer {
                Ok(view) => {
                    answered = true;
                    newest = newer(newest, view);
                }
                Err(e) => reasons.push(format!("{url}: {e}")),
            }
        }
        if answered {
            Ok(newest)
        } else {
            Err(ChangeError::Unavailable(reasons.join("; ")))
        }
    }

    /// Applies `change` to the committed layout (read from `seeds` and the members) and
    /// commits the result, retried on top of concurrent changes. `change` answers the value
    /// to propose (its revision is set here), `None` for nothing to do, or why the change
    /// is refused. Returns the layout committed at the end.
    pub async fn change<F>(&self, seeds: &[String], change: F) -> Result<Layout, ChangeError>
    where
        F: Fn(Option<&Layout>) -> Result<Option<Layout>, String>,
    {
        let mut known: Option<Layout> = None;
        for round in 0..ROUNDS {
            let mut urls = seeds.to_vec();
            if let Some(k) = &known {
                add_urls(&mut urls, &k.all_nodes());
            }
            let read = self.read(&urls).await?;
            let current = newer(known.take(), read);
            let Some(mut next) = change(current.as_ref()).map_err(ChangeError::Refused)? else {
                return current.ok_or_else(|| ChangeError::Refused("no layout yet".into()));
            };
            next.revision = current.as_ref().map_or(1, |c| c.revision + 1);
            match self.propose(current.as_ref(), next).await {
                Ok(Round::Chosen(layout)) => return Ok(layout),
                Ok(Round::Behind(newer)) => known = Some(newer),
                Err(ChangeError::Contended) => {
                    known = current;
                    // Jitter from a random id: no rand dependency for one number.
                    let jitter = (uuid::Uuid::new_v4().as_u128() % 180) as u64 + 20;
                    let ms = jitter * u64::from(round + 1);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(ChangeError::Contended)
    }

    /// The committed layout, or, when no seed has one, layout version 1 made from every
    /// seed's id (the first start of a cluster: every node must answer).
    pub async fn bootstrap(&self, seeds: &[String], replicas: usize) -> Result<Layout, String> {
        if let Some(layout) = self.read(seeds).await.map_err(|e| e.to_string())? {
            return Ok(layout);
        }
        let infos = seeds.iter().map(|u| {
            let c = self.client(u);
            async move { (c.url().to_owned(), c.info().await) }
        });
        let mut nodes: Vec<LayoutNode> = Vec::new();
        for (url, info) in futures::future::join_all(infos).await {
            let info = info.map_err(|e| {
                format!("{url}: {e} (the first layout is made from every node's id)")
            })?;
            if let Some(twin) = nodes.iter().find(|n| n.id == info.node_id) {
                return Err(format!(
                    "{url} and {} have the same node id {}",
                    twin.url, info.node_id
                ));
            }
            nodes.push(staging::new_node(info.node_id, &url, None, None));
        }
        if nodes.len() < replicas {
            return Err(format!(
                "{} nodes cannot hold {replicas} replicas",
                nodes.len()
            ));
        }
        let first = Layout::first(nodes, replicas);
        self.change(seeds, |current| match current {
            Some(_) => Ok(None),
            None => Ok(Some(first.clone())),
        })
        .await
        .map_err(|e| e.to_string())
    }

    /// One Paxos round proposing `next` on top of `current`.
    async fn propose(&self, current: Option<&Layout>, next: Layout) -> Result<Round, ChangeError> {
        let base = current.map_or(0, |c| c.revision);
        let ballot = new_ballot();
        let promises = self
            .quorum(current, &next, |c| {
                let ballot = ballot.clone();
                async move {
                    let p = c.layout_prepare(&ballot).await?;
                    Ok((p.promised, p))
                }
            })
            .await?;
        let committed = promises.iter().filter_map(|p| p.committed.clone());
        if let Some(newer) = committed
            .filter(|l| l.revision > base)
            .max_by_key(|l| l.revision)
        {
            return Ok(Round::Behind(newer));
        }
        // The highest-ballot value accepted past the base may have been chosen: finish it.
        let pending = promises
            .iter()
            .filter_map(|p| p.accepted.clone())
            .filter(|(_, l)| l.revision > base)
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, l)| l);
        let ours = pending.is_none();
        let value = pending.unwrap_or(next);
        self.quorum(current, &value, |c| {
            let (ballot, value) = (ballot.clone(), value.clone());
            async move {
                let a = c.layout_accept(&ballot, &value).await?;
                Ok((a.accepted, ()))
            }
        })
        .await?;
        if let Some(cluster) = &self.follower {
            cluster.install(value.clone());
        }
        let urls: Vec<String> = acceptors(current, &value)
            .into_iter()
            .map(|(_, u)| u)
            .collect();
        self.commit_everywhere(&urls, &value).await;
        Ok(if ours {
            Round::Chosen(value)
        } else {
            Round::Behind(value)
        })
    }

    /// Sends `value` as committed to every node in `urls`, waiting for each (bounded by
    /// the call deadline). A node that misses it learns it from the next change's promises
    /// or from a gateway that pushes it.
    async fn commit_everywhere(&self, urls: &[String], value: &Layout) {
        let calls = urls.iter().map(|u| {
            let c = self.client(u);
            async move {
                if let Err(e) = c.layout_commit(value).await {
                    tracing::warn!(node = %c.url(), "layout commit not delivered: {e}");
                }
            }
        });
        futures::future::join_all(calls).await;
    }

    /// Calls `call` on every acceptor of a round from `current` to `next` until a
    /// majority of each of their member lists granted; the grants' answers. A refusal
    /// counts as a failure and makes a failed round `Contended`.
    async fn quorum<T, F, Fut>(
        &self,
        current: Option<&Layout>,
        next: &Layout,
        call: F,
    ) -> Result<Vec<T>, ChangeError>
    where
        F: Fn(NodeClient) -> Fut,
        Fut: Future<Output = Result<(bool, T), NodeError>>,
    {
        let acceptors = acceptors(current, next);
        let need = Need::per_set(&member_sets(&acceptors, current, next), |n| n / 2 + 1);
        let called: Vec<usize> = (0..acceptors.len()).collect();
        let mut tracker = need.tracker(&called);
        let mut pending: FuturesUnordered<_> = acceptors
            .iter()
            .enumerate()
            .map(|(i, (_, url))| {
                let fut = call(self.client(url));
                async move { (i, fut.await) }
            })
            .collect();
        let (mut granted, mut refused, mut reasons) = (Vec::new(), false, Vec::new());
        while let Some((i, answer)) = pending.next().await {
            let ok = match answer {
                Ok((true, v)) => {
                    granted.push(v);
                    true
                }
                Ok((false, _)) => {
                    refused = true;
                    false
                }
                Err(e) => {
                    reasons.push(format!("{}: {e}", acceptors[i].1));
                    false
                }
            };
            match tracker.record(i, ok) {
                Outcome::Met => return Ok(granted),
                Outcome::Failed => break,
                Outcome::Pending => {}
            }
        }
        if refused {
            Err(ChangeError::Contended)
        } else {
            Err(ChangeError::Unavailable(reasons.join("; ")))
        }
    }
}

/// Every node a round from `current` to `next` involves, once by id, with the address
/// `next` gives it (a node that moved is reached where it is now), else the current one.
fn acceptors(current: Option<&Layout>, next: &Layout) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = Vec::new();
    let mut add = |nodes: Vec<&LayoutNode>| {
        for n in nodes {
            if !all.iter().any(|(id, _)| *id == n.id) {
                all.push((n.id.clone(), n.url.clone()));
            }
        }
    };
    add(next.all_nodes());
    if let Some(c) = current {
        add(c.all_nodes());
    }
    all
}

/// The member lists a round needs a majority of, as indexes into `acceptors`: the
/// current members, the previous ones while migrating, and those of `next` (and its
/// previous).
fn member_sets(
    acceptors: &[(String, String)],
    current: Option<&Layout>,
    next: &Layout,
) -> Vec<Vec<usize>> {
    let mut lists: Vec<&[LayoutNode]> = vec![&next.nodes];
    lists.extend(next.previous.as_deref());
    if let Some(c) = current {
        lists.push(&c.nodes);
        lists.extend(c.previous.as_deref());
    }
    let mut sets: Vec<Vec<usize>> = Vec::new();
    for list in lists {
        let mut set: Vec<usize> = list
            .iter()
            .filter_map(|n| acceptors.iter().position(|(id, _)| *id == n.id))
            .collect();
        set.sort_unstable();
        if !sets.contains(&set) {
            sets.push(set);
        }
    }
    sets
}

pub(crate) fn add_urls(urls: &mut Vec<String>, nodes: &[&LayoutNode]) {
    for n in nodes {
        if !urls.contains(&n.url) {
            urls.push(n.url.clone());
        }
    }
}

/// The newer (higher revision) of two layouts.
pub fn newer(a: Option<Layout>, b: Option<Layout>) -> Option<Layout> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.revision > a.revision { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// A ballot above any this gateway made before (wall-clock microseconds, unique id).
fn new_ballot() -> Ballot {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    Stamp {
        ts,
        id: uuid::Uuid::new_v4().simple().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: usize) -> LayoutNode {
        staging::new_node(format!("n{i}"), &format!("http://h{i}"), None, None)
    }

    #[test]
    fn a_change_needs_a_majority_of_old_and_new_members() {
        let old = Layout::first((0..3).map(node).collect(), 3);
        let next = staging::apply(
            &staging::stage(&old, node::proto::layout::Change::Add { node: node(3) })
                .expect("stage"),
        )
        .expect("apply");
        let acceptors = acceptors(Some(&old), &next);
        assert_eq!(acceptors.len(), 4);
        let sets = member_sets(&acceptors, Some(&old), &next);
        assert_eq!(sets, vec![vec![0, 1, 2, 3], vec![0, 1, 2]]);
        let need = Need::per_set(&sets, |n| n / 2 + 1);
        assert!(!need.met_by(&[0, 3]), "2 of 4 is no majority");
        assert!(need.met_by(&[0, 1, 3]));
    }

    #[test]
    fn newer_prefers_the_higher_revision() {
        let a = Layout::first(vec![node(0)], 1);
        let b = Layout {
            revision: 2,
            ..a.clone()
        };
        assert_eq!(newer(Some(a.clone()), Some(b.clone())), Some(b.clone()));
        assert_eq!(newer(Some(b.clone()), Some(a.clone())), Some(b));
        assert_eq!(newer(None, Some(a.clone())), Some(a));
        assert_eq!(newer(None, None), None);
    }
}
