//! What garbage collection (see [`crate::gc`]) asks of the nodes, one node at a time.

use std::time::Duration;

use node::proto::gc::{GcCollected, GcScan};

use super::Cluster;
use crate::error::Error;
use crate::node_client::NodeError;

impl Cluster {
    fn gc_error(&self, i: usize, op: &'static str) -> impl FnOnce(NodeError) -> Error + '_ {
        move |source| {
            self.count_failure(i, op, &source);
            Error::Node {
                op,
                node: self.node(i).url().to_owned(),
                source,
            }
        }
    }

    /// The blobs of shard `shard` that nothing on node `i` refers to.
    pub async fn gc_scan(&self, i: usize, shard: u8, grace: Duration) -> Result<GcScan, Error> {
        self.node(i)
            .gc_scan(shard, grace)
            .await
            .map_err(self.gc_error(i, "gc scan"))
    }

    /// Which of `ids` something on node `i` refers to.
    pub async fn gc_referenced(&self, i: usize, ids: &[String]) -> Result<Vec<String>, Error> {
        self.node(i)
            .gc_referenced(ids)
            .await
            .map_err(self.gc_error(i, "gc referenced"))
    }

    /// Has node `i` delete those of `ids` that, checked again, nothing on it refers to.
    pub async fn gc_collect(
        &self,
        i: usize,
        ids: &[String],
        grace: Duration,
    ) -> Result<GcCollected, Error> {
        self.node(i)
            .gc_collect(ids, grace)
            .await
            .map_err(self.gc_error(i, "gc collect"))
    }
}
