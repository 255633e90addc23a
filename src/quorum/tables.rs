//! Anti-entropy of the tables every node holds whole: bucket records and access keys.
//! Writes reach a majority of the nodes; this brings the rest up, so a node that was down
//! or lost its disk gets every bucket and key back (deleted ones' tombstones included)
//! and the majority that later reads overlap keeps holding.
//!
//! Records of both tables merge as joins (last writer wins per register), so writing the
//! merge of every copy to a node that lacks it is idempotent and races no client write.

use std::collections::BTreeMap;

use futures::future::join_all;
use node::proto::BucketRecord;
use node::proto::access::KeyRecord;

use super::Cluster;
use crate::node_client::{NodeClient, NodeError};

/// A record of a fully replicated table.
trait TableRecord: Clone + PartialEq + Send + Sync + 'static {
    const TABLE: &'static str;
    fn name(&self) -> &str;
    fn join(&mut self, other: &Self);
}

impl TableRecord for BucketRecord {
    const TABLE: &'static str = "bucket";
    fn name(&self) -> &str {
        &self.name
    }
    fn join(&mut self, other: &Self) {
        self.merge(other);
    }
}

impl TableRecord for KeyRecord {
    const TABLE: &'static str = "access key";
    fn name(&self) -> &str {
        &self.id
    }
    fn join(&mut self, other: &Self) {
        self.merge(other);
    }
}

impl Cluster {
    /// Makes every reachable node hold the merge of all nodes' bucket records. Returns
    /// the merged records and how many node records were brought up to date.
    pub async fn sync_buckets(&self) -> (Vec<BucketRecord>, usize) {
        let nodes = self.all_nodes();
        let lists = join_all(
            nodes
                .iter()
                .map(|&i| async move { (i, self.node(i).list_buckets().await) }),
        )
        .await;
        self.sync_table(lists, |node, r| async move { node.put_bucket(&r).await })
            .await
    }

    /// Makes every reachable node hold the merge of all nodes' access key records.
    /// Returns how many node records were brought up to date.
    pub async fn sync_keys(&self) -> usize {
        let nodes = self.all_nodes();
        let lists = join_all(
            nodes
                .iter()
                .map(|&i| async move { (i, self.node(i).list_keys().await) }),
        )
        .await;
        let (_, repaired) = self
            .sync_table(lists, |node, r| async move { node.put_key(&r).await })
            .await;
        repaired
    }

    /// Writes the merge of `lists` (node i's table, or why it did not answer) to each node
    /// that answered without some merged record.
    async fn sync_table<R, Fut>(
        &self,
        lists: Vec<(usize, Result<Vec<R>, NodeError>)>,
        put: impl Fn(NodeClient, R) -> Fut,
    ) -> (Vec<R>, usize)
    where
        R: TableRecord,
        Fut: Future<Output = Result<(), NodeError>>,
    {
        let mut merged: BTreeMap<String, R> = BTreeMap::new();
        for record in lists.iter().flat_map(|(_, l)| l).flatten() {
            merged
                .entry(record.name().to_owned())
                .and_modify(|m| m.join(record))
                .or_insert_with(|| record.clone());
        }
        let mut writes = Vec::new();
        for &(i, ref list) in &lists {
            let Ok(list) = list else { continue };
            for record in merged.values().filter(|r| !list.contains(r)) {
                let (node, name) = (self.node(i).clone(), record.name().to_owned());
                let url = node.url().to_owned();
                let write = put(node, record.clone());
                writes.push(async move {
                    match write.await {
                        Ok(()) => {
                            tracing::info!(node = url, name, "{} record repaired", R::TABLE);
                            true
                        }
                        Err(e) => {
                            tracing::warn!(node = url, name, "{} repair failed: {e}", R::TABLE);
                            false
                        }
                    }
                });
            }
        }
        let repaired = join_all(writes).await.into_iter().filter(|ok| *ok).count();
        (merged.into_values().collect(), repaired)
    }
}
