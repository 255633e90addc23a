//! What garbage collection (see [`crate::gc`]) asks of the nodes, one node at a time.

use std::time::Duration;

use node::proto::gc::{Dropped, GcCollected, GcScan, Referenced, TombstonePage, TombstoneRef};
use node::proto::{Bodies, ObjectRecord, Select, Stamp};

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

    /// Which of `ids` something on node `i` refers to, by which keys.
    pub async fn gc_referenced(&self, i: usize, ids: &[String]) -> Result<Vec<Referenced>, Error> {
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

    /// Tombstones node `i` has held for longer than `grace`, a page after `after`.
    pub async fn gc_tombstones(
        &self,
        i: usize,
        grace: Duration,
        after: Option<&str>,
    ) -> Result<TombstonePage, Error> {
        self.node(i)
            .gc_tombstones(grace, after)
            .await
            .map_err(self.gc_error(i, "gc tombstones"))
    }

    /// Has node `i` drop those of `tombstones` that are still tombstones there.
    pub async fn gc_drop(&self, i: usize, tombstones: &[TombstoneRef]) -> Result<Dropped, Error> {
        self.node(i)
            .gc_drop(tombstones)
            .await
            .map_err(self.gc_error(i, "gc drop"))
    }

    /// Those of versions `stamps` of `(bucket, key)` that node `i` holds as purge
    /// tombstones.
    pub async fn tombstones_on(
        &self,
        i: usize,
        bucket: &str,
        key: &str,
        stamps: &[Stamp],
    ) -> Result<ObjectRecord, Error> {
        let select = Select::Current {
            with: None,
            stamps: stamps.to_vec(),
            since: None,
        };
        let mut record = self
            .node(i)
            .get_record(bucket, key, &Bodies::None, &select)
            .await
            .map_err(self.gc_error(i, "gc read tombstones"))?
            .unwrap_or_default();
        record
            .versions
            .retain(|v| v.is_purged() && stamps.contains(&v.stamp));
        Ok(record)
    }

    /// Writes `tombstones` of `(bucket, key)` to node `i`.
    pub async fn push_tombstones(
        &self,
        i: usize,
        bucket: &str,
        key: &str,
        tombstones: &ObjectRecord,
    ) -> Result<(), Error> {
        self.node(i)
            .put_record(bucket, key, tombstones)
            .await
            .map_err(self.gc_error(i, "gc push tombstones"))
    }
}
