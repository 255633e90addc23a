//! The access key table: small, so every node holds every key record, as with buckets.
//! Writes need a majority of all nodes and reads enough answers to overlap every majority,
//! so a read sees every acknowledged create and delete. Records merge last-writer-wins.

use std::collections::BTreeMap;

use node::proto::access::KeyRecord;

use super::{Cluster, gather, spawn_each};
use crate::error::Error;

impl Cluster {
    /// Every access key record (deleted keys included), by id.
    pub async fn list_keys(&self) -> Result<Vec<KeyRecord>, Error> {
        let (answers, _) = self
            .hedged_read(
                "list access keys",
                &self.all_nodes(),
                self.bucket_read_quorum(),
                |node| async move { node.list_keys().await },
            )
            .await?;
        let mut merged: BTreeMap<String, KeyRecord> = BTreeMap::new();
        for record in answers.into_iter().flat_map(|(_, r)| r) {
            match merged.get_mut(&record.id) {
                Some(m) => m.merge(&record),
                None => {
                    merged.insert(record.id.clone(), record);
                }
            }
        }
        Ok(merged.into_values().collect())
    }

    /// Merges `record` into a majority of the nodes (all of them, eventually).
    pub async fn put_key(&self, record: KeyRecord) -> Result<(), Error> {
        let record = std::sync::Arc::new(record);
        let calls = spawn_each(self, &self.all_nodes(), |_, node| {
            let record = record.clone();
            async move { node.put_key(&record).await }
        });
        gather(self, "write access key", calls, self.bucket_write_quorum())
            .await
            .map(|_| ())
    }
}
