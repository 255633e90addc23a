//! The admin API's layout routes (`/v1/layout...`): show the committed layout, stage a
//! change, drop it, apply it, and plan what it would move.
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | GET | `/v1/layout` | | the committed layout |
//! | POST | `/v1/layout/stage` | `{"op": "add", "url", "zone"?, "capacity"?}`, `{"op": "remove", "id"}` or `{"op": "replace", "id", "url", "zone"?, "capacity"?}` | the layout |
//! | POST | `/v1/layout/revert` | | the layout |
//! | POST | `/v1/layout/apply` | | the layout |
//! | GET | `/v1/layout/plan` | | keys and bytes each node would gain and lose |
//!
//! A node joining (add, replace) is asked its id at its URL first: a layout only ever
//! names nodes that answered under that id.

use std::collections::BTreeMap;

use http::StatusCode;
use node::proto::layout::{Change, Layout, LayoutNode, owners, placed_key};
use node::proto::{ObjectRecord, VersionState};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AdminApi, Answer, Refusal, bad};
use crate::layout::{ChangeError, staging};
use crate::quorum::Cluster;
use crate::store::uploads;

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum Stage {
    Add {
        url: String,
        #[serde(default)]
        zone: Option<String>,
        #[serde(default)]
        capacity: Option<u64>,
    },
    Remove {
        id: String,
    },
    Replace {
        id: String,
        url: String,
        #[serde(default)]
        zone: Option<String>,
        #[serde(default)]
        capacity: Option<u64>,
    },
}

/// What one node would gain and lose if the staged change were applied.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct NodeMove {
    pub keys_in: u64,
    pub bytes_in: u64,
    pub keys_out: u64,
    pub bytes_out: u64,
}

/// `GET /v1/layout/plan`.
#[derive(Debug, Default, Serialize)]
struct Plan {
    version: u64,
    staged: usize,
    keys_scanned: u64,
    keys_moving: u64,
    bytes_moving: u64,
    nodes: BTreeMap<String, NodeMove>,
}

impl From<ChangeError> for Refusal {
    fn from(e: ChangeError) -> Self {
        let status = match e {
            ChangeError::Refused(_) => StatusCode::CONFLICT,
            ChangeError::Contended => StatusCode::CONFLICT,
            ChangeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        Refusal(status, e.to_string())
    }
}

fn answer(layout: &Layout) -> Answer {
    Ok((
        StatusCode::OK,
        serde_json::to_value(layout).unwrap_or_default(),
    ))
}

impl AdminApi {
    pub(super) async fn layout_show(&self) -> Answer {
        answer(&self.membership.read().await?)
    }

    pub(super) async fn layout_stage(&self, stage: Stage) -> Answer {
        let change = match stage {
            Stage::Add {
                url,
                zone,
                capacity,
            } => Change::Add {
                node: self.joining(&url, zone, capacity).await?,
            },
            Stage::Remove { id } => Change::Remove { id },
            Stage::Replace {
                id,
                url,
                zone,
                capacity,
            } => Change::Replace {
                id,
                node: self.joining(&url, zone, capacity).await?,
            },
        };
        let layout = self
            .membership
            .change(|current| {
                let current = current.ok_or("the cluster has no layout yet")?;
                staging::stage(current, change.clone()).map(Some)
            })
            .await?;
        tracing::info!(revision = layout.revision, "layout change staged");
        answer(&layout)
    }

    pub(super) async fn layout_revert(&self) -> Answer {
        let layout = self
            .membership
            .change(|current| {
                let current = current.ok_or("the cluster has no layout yet")?;
                staging::revert(current).map(Some)
            })
            .await?;
        answer(&layout)
    }

    pub(super) async fn layout_apply(&self) -> Answer {
        let layout = self
            .membership
            .change(|current| {
                let current = current.ok_or("the cluster has no layout yet")?;
                staging::apply(current).map(Some)
            })
            .await?;
        tracing::info!(
            version = layout.version,
            nodes = layout.nodes.len(),
            "layout change applied: rebalancing"
        );
        answer(&layout)
    }

    pub(super) async fn layout_plan(&self) -> Answer {
        let layout = self.membership.read().await?;
        let after = match layout.staged_members() {
            Ok(nodes) if !layout.staged.is_empty() => nodes,
            Ok(_) => return Err(bad("no change is staged")),
            Err(e) => return Err(bad(e)),
        };
        let cluster = self.membership.cluster();
        let mut plan = Plan {
            version: layout.version,
            staged: layout.staged.len(),
            ..Plan::default()
        };
        for n in layout.nodes.iter().chain(&after) {
            plan.nodes.entry(n.id.clone()).or_default();
        }
        let buckets = cluster.list_buckets().await?;
        let namespaces = buckets
            .iter()
            .filter(|b| b.exists.value)
            .flat_map(|b| [b.name.clone(), uploads::namespace(&b.name)]);
        for namespace in namespaces {
            scan_moves(&cluster, &namespace, &layout, &after, &mut plan).await?;
        }
        Ok((
            StatusCode::OK,
            serde_json::to_value(&plan).unwrap_or(Value::Null),
        ))
    }

    /// The node at `url` as a layout member: its id is what it answers.
    async fn joining(
        &self,
        url: &str,
        zone: Option<String>,
        capacity: Option<u64>,
    ) -> Result<LayoutNode, Refusal> {
        let url = url.trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(bad(format!("{url:?} is not an http(s) URL")));
        }
        let cluster = self.membership.cluster();
        let info = cluster.client_at(url).info().await.map_err(|e| {
            Refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{url} did not say its node id: {e}"),
            )
        })?;
        Ok(staging::new_node(info.node_id, url, zone, capacity))
    }
}

/// Adds to `plan` what every key of `namespace` would move from `before` to `after`.
async fn scan_moves(
    cluster: &Cluster,
    namespace: &str,
    layout: &Layout,
    after: &[LayoutNode],
    plan: &mut Plan,
) -> Result<(), Refusal> {
    let mut cursor = String::new();
    loop {
        let round = cluster
            .scan_round(namespace, "", &cursor, 1000, false)
            .await?;
        for scanned in &round.keys {
            plan.keys_scanned += 1;
            let bytes = record_bytes(&scanned.merged);
            let moves = moves(
                &layout.nodes,
                after,
                layout.replicas,
                namespace,
                &scanned.key,
            );
            if !moves.0.is_empty() {
                plan.keys_moving += 1;
                plan.bytes_moving += bytes * moves.0.len() as u64;
            }
            for id in moves.0 {
                let m = plan.nodes.entry(id).or_default();
                m.keys_in += 1;
                m.bytes_in += bytes;
            }
            for id in moves.1 {
                let m = plan.nodes.entry(id).or_default();
                m.keys_out += 1;
                m.bytes_out += bytes;
            }
        }
        match round.next {
            Some(next) => cursor = next,
            None => return Ok(()),
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
