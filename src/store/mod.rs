//! The object-version layer: the one place where object versions are created, read and
//! destroyed, between the S3 handlers (`s3`) and the replicated quorum layer (`quorum`).
//!
//! What it owns, so that no handler has to know it:
//! - **placement**: which replicas hold a key, in what order to read its body, and where a
//!   multipart upload's record lives (`uploads`);
//! - **the write context**: the bucket's versioning state and the key's newest stamp, read
//!   before a write so that its version orders after everything the read saw (`write`);
//! - **which version, and whose body**: one quorum read picks the version a request
//!   addresses, and the body is opened on the replicas that read found (`read`);
//! - **committing**: plain writes go to W replicas; writes with a condition go through the
//!   key's compare-and-set (`conditional`); deletes write markers or purge tombstones
//!   (`delete`); tag and ACL changes rewrite the version with a newer register (`tags`);
//! - **bucket records**: creation, deletion and configuration changes, stamped after
//!   everything the bucket record holds (`buckets`).
//!
//! Blob bytes are never released here: a blob that no record refers to any more is freed
//! by garbage collection (`gc`), which re-checks every replica first. So a handler can
//! never free a blob that is still referenced, whatever it does.
//!
//! Errors are `crate::error::Error`; the S3 handlers turn them into S3 errors.

mod buckets;
mod conditional;
mod context;
mod delete;
mod read;
mod tags;
pub(crate) mod uploads;
mod write;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use node::proto::Stamp;

use crate::quorum::Cluster;
pub use crate::quorum::{ListedVersion, Listing, ObjectStream, VersionListing};
pub use conditional::{Condition, EtagMatch};
pub use delete::Deleted;
pub use read::{Found, Need};
pub use uploads::{CompletedObject, Completion, PartWriter, Upload, UploadInit, UploadState};
pub use write::{ObjectFields, Written};

/// Bodies up to this size live inside the record: one round trip, one fsync.
pub const INLINE_MAX: usize = 64 * 1024;

/// Handle on the stored objects: cheap to clone, one per gateway.
#[derive(Clone)]
pub struct Store {
    /// Never used directly: each operation takes the newest layout with `cluster()`.
    live: Cluster,
    /// Whether each bucket has had versioning configured, as recently read: only what
    /// version id a read of a null version shows depends on it.
    versioned: Arc<Mutex<HashMap<String, (Instant, bool)>>>,
}

/// How long a bucket's versioning state read for a null version's id is reused.
const VERSIONED_TTL: Duration = Duration::from_secs(1);
/// Times a read fenced by a layout change is tried again.
const FENCED_RETRIES: usize = 3;

impl Store {
    pub fn new(cluster: Cluster) -> Self {
        Store {
            live: cluster,
            versioned: Arc::default(),
        }
    }

    /// The cluster placing keys with the newest layout this gateway follows. Call once
    /// per step: a step's placement and requests must come from one layout.
    pub fn cluster(&self) -> Cluster {
        self.live.current()
    }

    /// Runs the read `op` (which takes its layout from [`Store::cluster`]) and, when nodes
    /// fenced it because the layout changed while it ran, again once this gateway follows
    /// the newer layout: a reader never sees a layout change as an error.
    pub(crate) async fn unfenced<T, Fut>(
        &self,
        op: impl Fn() -> Fut,
    ) -> Result<T, crate::error::Error>
    where
        Fut: Future<Output = Result<T, crate::error::Error>>,
    {
        let mut tries = 0;
        loop {
            let version = self.cluster().layout().version;
            match op().await {
                Err(e) if e.fenced() && tries < FENCED_RETRIES => {
                    tries += 1;
                    self.wait_for_layout_after(version).await;
                }
                other => return other,
            }
        }
    }

    /// Waits (bounded) until the gateway follows a layout newer than `version`.
    async fn wait_for_layout_after(&self, version: u64) {
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.cluster().layout().version <= version && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Whether versioning is (or was) configured on `bucket`: then a null version shows
    /// the version id `null`, else none. Read at most once per [`VERSIONED_TTL`] per
    /// gateway, and again at once after this gateway changed the bucket.
    async fn bucket_versioned(&self, bucket: &str) -> Result<bool, crate::error::Error> {
        let cached = self.versioned.lock().ok().and_then(|m| {
            m.get(bucket)
                .filter(|(at, _)| at.elapsed() < VERSIONED_TTL)
                .map(|(_, v)| *v)
        });
        if let Some(v) = cached {
            return Ok(v);
        }
        let record = self.bucket(bucket).await?;
        let versioned = record.live(&record.versioning).is_some();
        if let Ok(mut m) = self.versioned.lock() {
            // Bounded: entries of buckets not read for a while go.
            m.retain(|_, (at, _)| at.elapsed() < VERSIONED_TTL);
            m.insert(bucket.to_owned(), (Instant::now(), versioned));
        }
        Ok(versioned)
    }

    /// Forgets what [`Store::bucket_versioned`] read of `bucket`.
    fn forget_versioned(&self, bucket: &str) {
        if let Ok(mut m) = self.versioned.lock() {
            m.remove(bucket);
        }
    }

    /// The hybrid clock's next timestamp (µs), for answers that report "now".
    pub fn now(&self) -> u64 {
        self.cluster().next_timestamp(None)
    }

    /// A fresh stamp ordered after `seen` (µs).
    fn stamp_after(&self, seen: Option<u64>) -> Stamp {
        Stamp {
            ts: self.cluster().next_timestamp(seen),
            id: Cluster::new_id(),
        }
    }

    /// One page of a bucket's keys (ListObjects, ListObjectsV2). Listings asked for no
    /// entries at all answer an empty page that is not truncated, as S3 does.
    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: &str,
        max_keys: usize,
    ) -> Result<Listing, crate::error::Error> {
        if max_keys == 0 {
            return Ok(Listing::default());
        }
        self.unfenced(|| async {
            self.cluster()
                .list_objects(bucket, prefix, delimiter, after, max_keys)
                .await
        })
        .await
    }

    /// One page of a bucket's versions (ListObjectVersions).
    #[allow(clippy::too_many_arguments)]
    pub async fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: &str,
        version_id_marker: Option<&str>,
        max_keys: usize,
        show_null_markers: bool,
    ) -> Result<VersionListing, crate::error::Error> {
        if max_keys == 0 {
            return Ok(VersionListing::default());
        }
        self.unfenced(|| async {
            self.cluster()
                .list_versions(
                    bucket,
                    prefix,
                    delimiter,
                    key_marker,
                    version_id_marker,
                    max_keys,
                    show_null_markers,
                )
                .await
        })
        .await
    }
}
