//! The bucket table: small, so every node holds every bucket record.
//!
//! Writes need a majority of all nodes and reads need enough answers to overlap every
//! majority (N - majority + 1, asked as `hedge` describes), so a read sees every
//! acknowledged create, delete and versioning change. While a migration runs, both in the
//! previous and in the current member set. Records merge last-writer-wins per field.

use std::collections::BTreeMap;

use node::proto::BucketRecord;

use super::{Cluster, Need, gather, spawn_each};
use crate::error::Error;

impl Cluster {
    /// Every member of the layout, previous members included while a migration runs.
    pub fn all_nodes(&self) -> Vec<usize> {
        self.topo.all_nodes()
    }

    pub(super) fn bucket_write_quorum(&self) -> Need {
        Need::per_set(&self.topo.member_sets(), |n| n / 2 + 1)
    }

    pub(super) fn bucket_read_quorum(&self) -> Need {
        Need::per_set(&self.topo.member_sets(), |n| n - (n / 2 + 1) + 1)
    }

    /// The merged record of `name`, deleted or not; `None` if no node knows it.
    pub async fn get_bucket(&self, name: &str) -> Result<Option<BucketRecord>, Error> {
        let n: std::sync::Arc<str> = name.into();
        let (answers, _) = self
            .hedged_read(
                "read bucket",
                &self.all_nodes(),
                self.bucket_read_quorum(),
                |node| {
                    let n = n.clone();
                    async move { node.get_bucket(&n).await }
                },
            )
            .await?;
        let mut merged: Option<BucketRecord> = None;
        for record in answers.into_iter().filter_map(|(_, r)| r) {
            match &mut merged {
                Some(m) => m.merge(&record),
                None => merged = Some(record),
            }
        }
        Ok(merged)
    }

    /// The record of `name` if the bucket exists now.
    pub async fn existing_bucket(&self, name: &str) -> Result<Option<BucketRecord>, Error> {
        Ok(self.get_bucket(name).await?.filter(|b| b.exists.value))
    }

    pub async fn put_bucket(&self, record: BucketRecord) -> Result<(), Error> {
        let record = std::sync::Arc::new(record);
        let calls = spawn_each(self, &self.all_nodes(), |i, node| {
            let (cluster, record) = (self.clone(), record.clone());
            async move {
                let result = node.put_bucket(&record).await;
                if let Err(e) = &result {
                    cluster.raise_hint(&record.name, "", i, e);
                }
                result
            }
        });
        gather(self, "write bucket", calls, self.bucket_write_quorum())
            .await
            .map(|_| ())
    }

    /// Every existing bucket, sorted by name.
    pub async fn list_buckets(&self) -> Result<Vec<BucketRecord>, Error> {
        let (answers, _) = self
            .hedged_read(
                "list buckets",
                &self.all_nodes(),
                self.bucket_read_quorum(),
                |node| async move { node.list_buckets().await },
            )
            .await?;
        let mut merged: BTreeMap<String, BucketRecord> = BTreeMap::new();
        for record in answers.into_iter().flat_map(|(_, r)| r) {
            match merged.get_mut(&record.name) {
                Some(m) => m.merge(&record),
                None => {
                    merged.insert(record.name.clone(), record);
                }
            }
        }
        Ok(merged.into_values().filter(|b| b.exists.value).collect())
    }
}
