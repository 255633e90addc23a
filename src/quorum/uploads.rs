//! Discarding multipart uploads (aborted, completed, or abandoned past their expiry): the
//! upload's record is purged on its replicas, and part blobs nobody refers to are freed.
//!
//! A part blob is freed only after a grace period, and only if no version of the target
//! key refers to it then: a CompleteMultipartUpload that read the upload just before it
//! was discarded may still be writing an object made of those parts, and its bytes must
//! never be taken from under it.

use std::collections::HashSet;
use std::time::Duration;

use node::proto::{Bodies, Data, ObjectMeta, ObjectRecord, Select, Version, VersionState};

use super::Cluster;
use super::repair::blobs_of;
use crate::error::Error;

/// How long a discarded upload's part blobs stay before they are freed.
const PART_RELEASE_GRACE: Duration = Duration::from_secs(60);

/// Every blob an upload record's parts were stored in.
pub fn part_blobs(record: &ObjectRecord) -> Vec<String> {
    record
        .versions
        .iter()
        .filter_map(|v| match &v.state {
            VersionState::Object(ObjectMeta {
                data: Data::Blob { id },
                part_number: Some(_),
                ..
            }) => Some(id.clone()),
            _ => None,
        })
        .collect()
}

impl Cluster {
    /// Turns every version of the record at `(namespace, address)` into a purge tombstone
    /// on `replicas` (W must merge it), adding `extra` in the same write.
    pub async fn purge_record(
        &self,
        namespace: &str,
        address: &str,
        record: &ObjectRecord,
        extra: Option<Version>,
        replicas: &[usize],
    ) -> Result<(), Error> {
        let mut tombstones = ObjectRecord {
            versions: record
                .versions
                .iter()
                .map(|v| Version {
                    stamp: v.stamp.clone(),
                    null: v.null,
                    state: VersionState::Purged,
                    tags: None,
                    follows: None,
                })
                .collect(),
        };
        if let Some(v) = extra {
            tombstones.merge(&ObjectRecord::single(v));
        }
        self.write_record(namespace, address, tombstones, replicas)
            .await
    }

    /// Frees `blobs` of an upload of `(bucket, key)` after the grace period, except those
    /// a version of the key refers to by then. If the key cannot be read, nothing is
    /// freed: an orphan costs space, a wrong delete would cost data.
    pub fn free_parts_later(&self, bucket: &str, key: &str, blobs: Vec<String>) {
        if blobs.is_empty() {
            return;
        }
        let (cluster, bucket, key) = (self.clone(), bucket.to_owned(), key.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(PART_RELEASE_GRACE).await;
            let record = match cluster
                .read_record(&bucket, &key, Bodies::None, Select::All)
                .await
            {
                Ok(read) => read.record.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(bucket, key, "parts of a discarded upload kept: {e}");
                    return;
                }
            };
            let used: HashSet<String> = record
                .versions
                .iter()
                .filter_map(|v| match &v.state {
                    VersionState::Object(meta) => Some(blobs_of(meta)),
                    _ => None,
                })
                .flatten()
                .map(|(id, _)| id)
                .collect();
            let unused: Vec<String> = blobs.into_iter().filter(|b| !used.contains(b)).collect();
            cluster.delete_blobs_in_background(unused, cluster.replicas_of(&bucket, &key));
        });
    }
}
