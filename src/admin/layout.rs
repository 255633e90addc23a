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

use http::StatusCode;
use node::proto::layout::{Change, Layout, LayoutNode};
use serde::Deserialize;
use serde_json::Value;

use super::{AdminApi, Answer, Refusal, bad};
use crate::layout::{ChangeError, plan, staging};

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
            .on_committed(|current| staging::stage(current, change.clone()))
            .await?;
        tracing::info!(revision = layout.revision, "layout change staged");
        answer(&layout)
    }

    pub(super) async fn layout_revert(&self) -> Answer {
        answer(&self.on_committed(staging::revert).await?)
    }

    pub(super) async fn layout_apply(&self) -> Answer {
        let layout = self.on_committed(staging::apply).await?;
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
        let plan = plan::plan(&cluster, &layout.nodes, &after, layout.replicas).await?;
        Ok((
            StatusCode::OK,
            serde_json::to_value(&plan).unwrap_or(Value::Null),
        ))
    }

    /// Commits `f` of the committed layout (there must be one).
    async fn on_committed(
        &self,
        f: impl Fn(&Layout) -> Result<Layout, String>,
    ) -> Result<Layout, Refusal> {
        let layout = self
            .membership
            .change(|current| {
                let current = current.ok_or("the cluster has no layout yet")?;
                f(current).map(Some)
            })
            .await?;
        Ok(layout)
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
