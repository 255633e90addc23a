//! Reading a version: which stored version a request addresses (the current one, or one
//! named by its S3 version id) and its body, opened on the replicas the same read found.
//!
//! One quorum read decides both, so the version and its body cannot disagree: the body of
//! a blob-backed version is opened on the replicas that answered that read, first-answering
//! first, and an inline body comes inside the record itself.

use bytes::Bytes;
use futures::StreamExt;
use node::proto::{Bodies, Data, ObjectMeta, ObjectRecord, Select, Version, VersionState};

use super::Store;
use crate::checksum::{self, Checksums};
use crate::error::Error;
use crate::quorum::ObjectStream;

/// Whether a read needs the object's bytes, or only what describes them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Need {
    Meta,
    /// The bytes too: an inline body comes with the record.
    Body,
}

/// A version found by [`Store::read_version`]: an object (never a delete marker).
#[derive(Debug, Clone)]
pub struct Found {
    pub version: Version,
    pub meta: ObjectMeta,
    pub(super) bucket: String,
    pub(super) key: String,
    /// The key's replicas, those that answered the read first at the front.
    pub(super) replicas: Vec<usize>,
    /// Whether the bucket has versioning configured (read only for null versions).
    versioned: bool,
}

impl Found {
    /// The version id S3 shows for this version: `null` for a null version in a bucket
    /// with versioning configured (enabled or suspended), none in an unversioned bucket.
    pub fn version_id(&self) -> Option<String> {
        if self.version.null {
            self.versioned.then(|| "null".to_owned())
        } else {
            Some(self.version.stamp.id.clone())
        }
    }

    /// The checksums stored with the object.
    pub fn checksums(&self) -> Checksums {
        checksum::from_stored(&self.meta.checksums)
    }
}

impl Store {
    /// The version `(bucket, key)` addresses: the current one, or the one with S3 version
    /// id `version_id`. A delete marker is [`Error::DeleteMarker`]; no version is
    /// `NoSuchKey` / `NoSuchVersion` (or `NoSuchBucket`). With [`Need::Meta`] an inline
    /// body is left out (`Data::InlineOmitted`).
    pub async fn read_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        need: Need,
    ) -> Result<Found, Error> {
        self.unfenced(|| self.read_version_once(bucket, key, version_id, need))
            .await
    }

    async fn read_version_once(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        need: Need,
    ) -> Result<Found, Error> {
        let bodies = match need {
            Need::Meta => Bodies::None,
            Need::Body => Bodies::Of(version_id.map(str::to_owned)),
        };
        // The current state, and the version asked for: cheap whatever the key's history.
        let select = Select::current_and(version_id);
        let cluster = &self.cluster();
        let mut read = cluster
            .read_record(bucket, key, bodies, select.clone())
            .await?;
        let pick = |r: &ObjectRecord| -> Option<Version> {
            match version_id {
                Some(id) => r.find_s3_version(id).filter(|v| !v.is_purged()),
                None => r.current(),
            }
            .cloned()
        };
        let mut found = read.record.as_ref().and_then(pick);
        // Each replica sent the body of the version *it* would serve; when the merge picked
        // one no answer carried a body for (a purge only one replica knew of), ask again
        // for all of them.
        if need == Need::Body && body_missing(found.as_ref()) {
            read = cluster
                .read_record(bucket, key, Bodies::All, select)
                .await?;
            found = read.record.as_ref().and_then(pick);
            if body_missing(found.as_ref()) {
                return Err(Error::Internal(
                    "inline body missing from a full record read".into(),
                ));
            }
        }
        let Some(version) = found else {
            self.bucket(bucket).await?;
            return Err(match version_id {
                Some(_) => Error::NoSuchVersion,
                None => Error::NoSuchKey,
            });
        };
        match &version.state {
            VersionState::Object(meta) => Ok(Found {
                meta: meta.clone(),
                versioned: version.null && self.bucket_versioned(bucket).await?,
                version,
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                replicas: read.replicas,
            }),
            // The hidden null marker of an unversioned bucket is no object, nothing more.
            _ if version_id.is_none() && version.null && !self.bucket_versioned(bucket).await? => {
                Err(Error::NoSuchKey)
            }
            _ => Err(Error::DeleteMarker {
                version_id: version.s3_version_id().to_owned(),
                named: version_id.is_some(),
            }),
        }
    }

    /// The bytes `start..end` of a found version, from wherever they are stored.
    pub async fn open_body(
        &self,
        found: &Found,
        start: u64,
        end: u64,
    ) -> Result<ObjectStream, Error> {
        let owner = (found.bucket.as_str(), found.key.as_str());
        let replicas = &found.replicas;
        Ok(match &found.meta.data {
            Data::Inline { bytes } => {
                let range = bytes.get(start as usize..end as usize);
                let chunk = range
                    .map(Bytes::copy_from_slice)
                    .ok_or_else(|| Error::Internal("range outside an inline body".into()));
                let chunk = chunk?;
                futures::stream::once(async move { Ok(chunk) }).boxed()
            }
            Data::InlineOmitted => return Err(Error::Internal("object body was not read".into())),
            Data::Blob { id } => self
                .cluster()
                .open_blob(owner, id, replicas, start, end)
                .await?
                .into_stream()
                .boxed(),
            Data::Parts { parts } => {
                self.cluster()
                    .open_parts(owner, parts, replicas, start, end)
                    .await?
            }
        })
    }
}

fn body_missing(v: Option<&Version>) -> bool {
    matches!(v, Some(Version { state: VersionState::Object(m), .. }) if m.data == Data::InlineOmitted)
}
