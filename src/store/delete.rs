//! Deleting: without a version id a delete writes a new version, a delete marker
//! (versioned and suspended buckets) or a hidden null marker (unversioned buckets), so it
//! merges and replicates like any write. With a version id it writes that version's purge
//! tombstone, which wins over the version on every replica; garbage collection frees the
//! bytes once no record refers to them and drops the tombstone once every replica holds it.

use node::proto::{Bodies, ObjectRecord, Select, VersionState};

use super::Store;
use super::conditional::Condition;
use super::context::WriteContext;
use crate::error::Error;

/// What a delete did, as S3 reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// The version id involved: the one named, or the new delete marker's.
    pub version_id: Option<String>,
    /// Whether the version involved is a delete marker.
    pub delete_marker: bool,
}

impl Store {
    /// Deletes `key`: a delete marker, or for `version_id` a permanent purge; under
    /// `condition` (when set) atomically with respect to other conditional writes.
    pub async fn delete(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        condition: &Condition,
    ) -> Result<Deleted, Error> {
        let cluster = self.cluster();
        let (b, read) = tokio::join!(
            self.bucket(bucket),
            cluster.read_record(bucket, key, Bodies::None, Select::current_and(version_id))
        );
        let bucket_rec = b?;
        let record = read?.record;
        let versioning = bucket_rec.live(&bucket_rec.versioning).copied();
        let ctx = WriteContext::new(versioning, record.as_ref());
        if let Some(id) = version_id {
            return self
                .purge(bucket, key, id, record.as_ref(), condition)
                .await;
        }
        // Unversioned: nothing to delete means nothing to write (S3 answers 204 all the
        // same), unless a condition must be checked atomically.
        let current = record.as_ref().and_then(|r| r.current_object());
        if ctx.versioning.is_none() && current.is_none() && !condition.is_set() {
            return Ok(Deleted {
                version_id: None,
                delete_marker: false,
            });
        }
        let state = VersionState::DeleteMarker;
        let written = self
            .commit(bucket, key, &ctx, state, None, condition)
            .await?;
        Ok(Deleted {
            version_id: written.version_id,
            delete_marker: ctx.versioning.is_some(),
        })
    }

    /// Purges version `id` of `key`, as `record` (read at a quorum) shows it.
    async fn purge(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
        record: Option<&ObjectRecord>,
        condition: &Condition,
    ) -> Result<Deleted, Error> {
        let target = if condition.is_set() {
            self.purge_if(bucket, key, id, condition).await?
        } else {
            // Deleting a version that does not exist succeeds, as in S3.
            let Some(target) = record.and_then(|r| r.find_s3_version(id)) else {
                return Ok(Deleted {
                    version_id: Some(id.to_owned()),
                    delete_marker: false,
                });
            };
            let replicas = self.cluster().replicas_of(bucket, key);
            let tombstone = ObjectRecord::single(target.tombstone());
            self.cluster()
                .write_record(bucket, key, tombstone, &replicas)
                .await?;
            Some(target.clone())
        };
        Ok(Deleted {
            version_id: Some(id.to_owned()),
            delete_marker: target.is_some_and(|v| matches!(v.state, VersionState::DeleteMarker)),
        })
    }
}
