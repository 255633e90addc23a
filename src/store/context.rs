//! The write context: what a write must know before it commits, read at a quorum when
//! the request begins. New versions are stamped after everything that read saw, so a write
//! never orders before a version its client could already read; a conditional write's
//! refusal may rest on it (the state it shows was durable before it was returned).

use node::proto::{
    Bodies, CannedAcl, Lww, ObjectRecord, Select, Stamp, Tags, Version, VersionState, Versioning,
};

use super::Store;
use crate::error::Error;

/// What a write needs to know before it can commit: the bucket's versioning state and
/// the newest timestamp of the key.
pub(super) struct WriteContext {
    pub versioning: Option<Versioning>,
    pub seen: Option<u64>,
    /// The tag set a new object version starts with (`x-amz-tagging`).
    pub tags: Option<Tags>,
    /// The ACL a new object version starts with (`x-amz-acl`; `None`: private).
    pub acl: Option<CannedAcl>,
    /// The key's current object as the context's read saw it (for conditional writes).
    pub current: Option<Current>,
}

impl WriteContext {
    pub fn new(versioning: Option<Versioning>, record: Option<&ObjectRecord>) -> Self {
        WriteContext {
            versioning,
            seen: record.and_then(|r| r.newest_stamp()).map(|s| s.ts),
            tags: None,
            acl: None,
            current: record.and_then(Current::of),
        }
    }

    /// Whether new versions are null versions (unversioned and suspended buckets).
    pub fn null(&self) -> bool {
        self.versioning != Some(Versioning::Enabled)
    }

    /// A new version under this context: an object starts with the write's tags and ACL,
    /// stamped like the version.
    pub fn version(&self, stamp: Stamp, state: VersionState, follows: Option<Stamp>) -> Version {
        let object = matches!(state, VersionState::Object(_));
        Version {
            tags: self.tags.clone().filter(|_| object).map(|value| Lww {
                stamp: stamp.clone(),
                value,
            }),
            acl: self.acl.filter(|_| object).map(|value| Lww {
                stamp: stamp.clone(),
                value,
            }),
            stamp,
            null: self.null(),
            state,
            follows,
        }
    }

    /// The `x-amz-version-id` S3 returns for a write in this bucket.
    pub fn version_id_for(&self, v: &Version) -> Option<String> {
        self.versioning.map(|_| v.s3_version_id().to_owned())
    }
}

/// What a condition looks at of a key's current object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Current {
    pub ts: u64,
    pub size: u64,
    pub etag: String,
}

impl Current {
    pub fn of(record: &ObjectRecord) -> Option<Current> {
        record.current_object().map(|(v, meta)| Current {
            ts: v.stamp.ts,
            size: meta.size,
            etag: meta.etag.clone(),
        })
    }
}

impl Store {
    /// Reads the bucket (which must exist) and the key's record concurrently.
    pub(super) async fn write_context(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<WriteContext, Error> {
        let cluster = self.cluster();
        let (b, r) = tokio::join!(
            self.bucket(bucket),
            cluster.read_record(bucket, key, Bodies::None, Select::CURRENT)
        );
        let bucket = b?;
        // The bucket's current life only: a re-created bucket starts unversioned.
        let versioning = bucket.live(&bucket.versioning).copied();
        Ok(WriteContext::new(versioning, r?.record.as_ref()))
    }
}
