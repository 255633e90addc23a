//! Discarding multipart uploads (aborted, completed, or abandoned past their expiry): the
//! upload's record is purged on its replicas. Its part blobs are then referred to by
//! nothing but the object a completion made of them, if any; garbage collection
//! ([`crate::gc`]) frees the others, never while a CompleteMultipartUpload that read the
//! upload is still writing its object (the grace, and the re-check against the records).

use node::proto::{ObjectRecord, Version};

use super::Cluster;
use crate::error::Error;

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
            versions: record.versions.iter().map(Version::tombstone).collect(),
        };
        if let Some(v) = extra {
            tombstones.merge(&ObjectRecord::single(v));
        }
        self.write_record(namespace, address, tombstones, replicas)
            .await
    }
}
