//! The layout register's endpoints (`/layout...`, see `node::proto::layout`). These calls
//! are never fenced: they are how a gateway learns the layout it would be fenced with.

use http::Method;
use node::proto::encode_segment;
use node::proto::layout::{Layout, LayoutPrepare, LayoutPromise, LayoutProposal, LayoutView};
use node::proto::paxos::{AcceptReply, Ballot};

use super::{NodeClient, NodeError};

impl NodeClient {
    /// The node's committed layout (`GET /layout`); `None` before one was agreed.
    pub async fn layout_view(&self) -> Result<Option<Layout>, NodeError> {
        let view: Option<LayoutView> = self
            .call_json(self.request(Method::GET, "/layout", Self::empty()))
            .await?;
        Ok(view.and_then(|v| v.committed))
    }

    pub async fn layout_prepare(&self, ballot: &Ballot) -> Result<LayoutPromise, NodeError> {
        let body = LayoutPrepare {
            ballot: ballot.clone(),
        };
        let req = self.request(Method::POST, "/layout/prepare", Self::json_body(&body));
        self.call_json(req)
            .await?
            .ok_or_else(|| NodeError::BadReply("empty layout promise".into()))
    }

    pub async fn layout_accept(
        &self,
        ballot: &Ballot,
        value: &Layout,
    ) -> Result<AcceptReply, NodeError> {
        let body = LayoutProposal {
            ballot: ballot.clone(),
            value: value.clone(),
        };
        let req = self.request(Method::POST, "/layout/accept", Self::json_body(&body));
        self.call_json(req)
            .await?
            .ok_or_else(|| NodeError::BadReply("empty layout accept answer".into()))
    }

    /// Installs `value` on the node if it is newer than the node's committed layout.
    pub async fn layout_commit(&self, value: &Layout) -> Result<(), NodeError> {
        let req = self.request(Method::POST, "/layout/commit", Self::json_body(value));
        self.call_json::<serde_json::Value>(req).await.map(drop)
    }

    /// Drops the node's copy of the record at `(bucket, key)`, which it no longer owns.
    /// `Ok(false)`: the node still owns it or a migration runs (`StillOwner`).
    pub async fn release(&self, bucket: &str, key: &str) -> Result<bool, NodeError> {
        let path = format!(
            "/layout/release/{}/{}",
            encode_segment(bucket),
            encode_segment(key)
        );
        let req = self.request(Method::POST, &path, Self::empty());
        match self.call_json::<serde_json::Value>(req).await {
            Ok(_) => Ok(true),
            Err(NodeError::Status { code, .. })
                if code == node::proto::layout::STILL_OWNER_CODE =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}
