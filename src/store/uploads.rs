//! Multipart uploads in progress, and the address scheme of their records.
//!
//! An upload in progress is a record of its own, stored on the replicas of the final key
//! under the pseudo-bucket `<bucket>/uploads` (a `/` can never occur in a real bucket name)
//! and the key `<key>\0<upload id>`; the quorum layer places such derived addresses with
//! the key they derive from. Its versions are the upload's initial entry (stamp id = upload
//! id, carrying the object's headers and metadata) and one entry per uploaded part, each
//! part a blob on those same replicas. Completing writes the object's version with
//! `Data::Parts` referring to the chosen blobs (no byte is copied, and the work is linear
//! in the number of parts), then purges the upload's record, leaving only the result for
//! a retried completion (`completion`).

mod completion;

use std::collections::BTreeMap;

use bytes::Bytes;
use node::proto::{
    Bodies, CannedAcl, Data, Lww, ObjectMeta, ObjectRecord, PartRef, Select, Tags, Version,
    VersionState,
};

pub use completion::Completion;

use super::conditional::Condition;
use super::{Store, Written};
use crate::checksum::{self, Algorithm, Checksums, Kind};
use crate::error::Error;
use crate::integrity::Verified;
use crate::quorum::{BlobUpload, UploadListing};

/// Record addresses of multipart uploads use this suffix on the bucket name.
pub(crate) const UPLOADS_SUFFIX: &str = "/uploads";

/// The MD5 of an empty body: the initial entry's (empty) inline body is checked against
/// it like any other.
const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

/// The pseudo-bucket holding the upload records of `bucket`.
pub(crate) fn namespace(bucket: &str) -> String {
    format!("{bucket}{UPLOADS_SUFFIX}")
}

/// Where the record of upload `id` of `(bucket, key)` lives.
fn address(bucket: &str, key: &str, id: &str) -> (String, String) {
    (namespace(bucket), format!("{key}\0{id}"))
}

/// The `(bucket, key, upload id)` an upload record address stands for; `None` for the
/// address of anything else.
pub(crate) fn parse_address<'a>(
    namespace: &'a str,
    address: &'a str,
) -> Option<(&'a str, &'a str, &'a str)> {
    let bucket = namespace.strip_suffix(UPLOADS_SUFFIX)?;
    let (key, id) = address.split_once('\0')?;
    Some((bucket, key, id))
}

/// What an upload's object will carry besides its parts (CreateMultipartUpload).
#[derive(Debug, Default, Clone)]
pub struct UploadInit {
    pub headers: BTreeMap<String, String>,
    pub user_metadata: BTreeMap<String, String>,
    pub tags: Option<Tags>,
    /// The ACL the object will have (`None`: private).
    pub acl: Option<CannedAcl>,
    /// The checksum every part gets, and how the object's combines them.
    pub checksum_algorithm: Option<Algorithm>,
    pub checksum_type: Option<Kind>,
}

/// An upload in progress, as read from a read quorum.
pub struct Upload {
    pub bucket: String,
    pub key: String,
    pub id: String,
    /// The initial entry: the object's headers, metadata and checksum settings.
    pub init: ObjectMeta,
    /// The tags the object will have (`x-amz-tagging` on CreateMultipartUpload).
    pub tags: Option<Tags>,
    /// The ACL the object will have (`x-amz-acl` on CreateMultipartUpload).
    pub acl: Option<CannedAcl>,
    record: ObjectRecord,
}

/// What an upload id stands for.
pub enum UploadState {
    InProgress(Box<Upload>),
    /// Completed: the result, for a retry of that completion.
    Completed(Completion),
    /// Never started, aborted, or forgotten after its expiry.
    Unknown,
}

/// The newest uploaded copy of a part.
pub struct NewestPart<'a> {
    pub meta: &'a ObjectMeta,
    /// When it was uploaded (µs).
    pub ts: u64,
    blob: &'a str,
}

/// What a completed upload's object is made of, besides the parts chosen.
pub struct CompletedObject {
    pub size: u64,
    pub etag: String,
    pub checksums: Checksums,
    pub checksum_type: Option<Kind>,
}

/// One part on its way: [`PartWriter::push`] each chunk, then [`PartWriter::commit`].
pub struct PartWriter {
    store: Store,
    address: (String, String),
    upload: BlobUpload,
}

impl Upload {
    /// The newest uploaded copy of every part number, in part order: one pass over the
    /// record (versions are sorted by stamp, so a later copy replaces an earlier one),
    /// which keeps completing and listing linear in the number of parts.
    pub fn newest_parts(&self) -> BTreeMap<u32, NewestPart<'_>> {
        let mut parts = BTreeMap::new();
        for v in &self.record.versions {
            if let VersionState::Object(
                meta @ ObjectMeta {
                    data: Data::Blob { id },
                    part_number: Some(n),
                    ..
                },
            ) = &v.state
            {
                let part = NewestPart {
                    meta,
                    ts: v.stamp.ts,
                    blob: id.as_str(),
                };
                parts.insert(*n, part);
            }
        }
        parts
    }

    /// The upload in progress `record` holds.
    fn parse(bucket: &str, key: &str, id: &str, record: ObjectRecord) -> UploadState {
        let init = record.versions.iter().find_map(|v| match &v.state {
            VersionState::Object(m) if v.stamp.id == id && m.part_number.is_none() => Some((
                m.clone(),
                v.tags.as_ref().map(|t| t.value.clone()),
                v.acl.as_ref().map(|a| a.value),
            )),
            _ => None,
        });
        match init {
            Some((init, tags, acl)) => UploadState::InProgress(Box::new(Upload {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                id: id.to_owned(),
                init,
                tags,
                acl,
                record,
            })),
            None => match Completion::find(&record) {
                Some(done) => UploadState::Completed(done),
                None => UploadState::Unknown,
            },
        }
    }
}

impl Store {
    /// Starts an upload of `(bucket, key)` (the bucket must exist); returns its id.
    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        init: UploadInit,
    ) -> Result<String, Error> {
        self.write_context(bucket, key).await?;
        let stamp = self.stamp_after(None);
        let id = stamp.id.clone();
        let entry = Version {
            stamp: stamp.clone(),
            null: false,
            state: VersionState::Object(ObjectMeta {
                size: 0,
                md5: EMPTY_MD5.to_owned(),
                etag: String::new(),
                data: Data::Inline { bytes: Vec::new() },
                headers: init.headers,
                user_metadata: init.user_metadata,
                part_number: None,
                checksums: Default::default(),
                checksum_type: init.checksum_type.map(|k| k.name().to_owned()),
                checksum_algorithm: init.checksum_algorithm.map(|a| a.name().to_owned()),
            }),
            tags: init.tags.map(|value| Lww {
                stamp: stamp.clone(),
                value,
            }),
            acl: init.acl.map(|value| Lww { stamp, value }),
            follows: None,
        };
        let (ub, uk) = address(bucket, key, &id);
        let replicas = self.cluster().replicas_of(bucket, key);
        self.cluster()
            .write_record(&ub, &uk, ObjectRecord::single(entry), &replicas)
            .await?;
        Ok(id)
    }

    /// What upload `id` of `(bucket, key)` stands for, read from a read quorum.
    pub async fn upload(&self, bucket: &str, key: &str, id: &str) -> Result<UploadState, Error> {
        let (ub, uk) = address(bucket, key, id);
        let replicas = self.cluster().replicas_of(bucket, key);
        let read = self
            .cluster()
            .read_record_on(&ub, &uk, replicas, Bodies::All, Select::All)
            .await?;
        let record = read.record.unwrap_or_default();
        Ok(Upload::parse(bucket, key, id, record))
    }

    /// Upload `id` of `(bucket, key)`, which must be in progress (`NoSuchUpload`).
    pub async fn upload_in_progress(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
    ) -> Result<Upload, Error> {
        match self.upload(bucket, key, id).await? {
            UploadState::InProgress(upload) => Ok(*upload),
            _ => Err(Error::NoSuchUpload),
        }
    }

    /// Starts a part of `upload`: its bytes stream to the key's replicas as they arrive.
    pub fn new_part(&self, upload: &Upload) -> PartWriter {
        let cluster = &self.cluster();
        PartWriter {
            store: self.clone(),
            address: address(&upload.bucket, &upload.key, &upload.id),
            upload: cluster.start_blob_upload(&upload.bucket, &upload.key),
        }
    }

    /// Completes `upload` with the newest copies of the parts numbered `chosen` (each
    /// must exist): the object's version first (under `condition`, when set), then the
    /// upload's record is purged, keeping `done` for retries. Returns the version written
    /// and `done` with its version id.
    pub async fn complete_upload(
        &self,
        upload: &Upload,
        chosen: &[u32],
        object: CompletedObject,
        condition: &Condition,
        mut done: Completion,
    ) -> Result<(Written, Completion), Error> {
        let newest = upload.newest_parts();
        let parts = chosen
            .iter()
            .map(|n| {
                let p = newest
                    .get(n)
                    .ok_or(Error::Internal(format!("part {n} vanished")))?;
                Ok(PartRef {
                    number: *n,
                    blob: p.blob.to_owned(),
                    size: p.meta.size,
                    md5: p.meta.md5.clone(),
                    checksums: p.meta.checksums.clone(),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let (bucket, key) = (&upload.bucket, &upload.key);
        let mut ctx = self.write_context(bucket, key).await?;
        ctx.tags = upload.tags.clone();
        ctx.acl = upload.acl;
        let meta = ObjectMeta {
            size: object.size,
            // The MD5 of the whole body is not known without reading it again.
            md5: String::new(),
            etag: object.etag,
            data: Data::Parts { parts },
            headers: upload.init.headers.clone(),
            user_metadata: upload.init.user_metadata.clone(),
            part_number: None,
            checksums: checksum::to_stored(&object.checksums),
            checksum_type: object.checksum_type.map(|k| k.name().to_owned()),
            checksum_algorithm: None,
        };
        // A refused completion leaves the upload as it is: the client may retry or abort.
        let state = VersionState::Object(meta);
        let written = self
            .commit(bucket, key, &ctx, state, None, condition)
            .await?;
        done.version_id.clone_from(&written.version_id);
        let entry = done.to_version(written.version.stamp.clone());
        // Parts uploaded but not chosen (re-uploads, left-out numbers) are garbage now,
        // for garbage collection to free.
        self.finish_upload(upload, Some(entry)).await?;
        Ok((written, done))
    }

    /// Aborts `upload`. Its part blobs are then unreferenced (unless a completion raced
    /// the abort): garbage collection frees them.
    pub async fn abort_upload(&self, upload: &Upload) -> Result<(), Error> {
        self.finish_upload(upload, None).await
    }

    /// Purges the upload's record (every version becomes a tombstone), so it can neither
    /// be completed again nor listed; a completion leaves its entry in the same write.
    async fn finish_upload(
        &self,
        upload: &Upload,
        completion: Option<Version>,
    ) -> Result<(), Error> {
        let (ub, uk) = address(&upload.bucket, &upload.key, &upload.id);
        let replicas = self.cluster().replicas_of(&upload.bucket, &upload.key);
        self.cluster()
            .purge_record(&ub, &uk, &upload.record, completion, &replicas)
            .await
    }

    /// One page of a bucket's uploads in progress (ListMultipartUploads).
    pub async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: &str,
        upload_id_marker: Option<&str>,
        max_uploads: usize,
    ) -> Result<UploadListing, Error> {
        if max_uploads == 0 {
            return Ok(UploadListing::default());
        }
        let (c, ns) = (&self.cluster(), namespace(bucket));
        c.list_uploads(
            &ns,
            prefix,
            delimiter,
            key_marker,
            upload_id_marker,
            max_uploads,
        )
        .await
    }
}

impl PartWriter {
    pub async fn push(&mut self, chunk: Bytes) -> Result<(), Error> {
        self.upload.send(chunk).await
    }

    /// Makes the part part of the upload: the blob to W replicas, then the upload's
    /// record gains the part (a re-upload of a number supersedes the older one).
    pub async fn commit(self, part_number: u32, verified: &Verified) -> Result<(), Error> {
        let blob = self.upload.id().to_owned();
        let stored = self.upload.finish(&verified.md5).await?;
        let part = Version {
            stamp: self.store.stamp_after(None),
            null: false,
            state: VersionState::Object(ObjectMeta {
                size: verified.size,
                md5: verified.md5.clone(),
                etag: verified.md5.clone(),
                data: Data::Blob { id: blob },
                headers: Default::default(),
                user_metadata: Default::default(),
                part_number: Some(part_number),
                checksums: checksum::to_stored(&verified.checksums),
                checksum_type: None,
                checksum_algorithm: None,
            }),
            tags: None,
            acl: None,
            follows: None,
        };
        let (ub, uk) = &self.address;
        let cluster = &self.store.cluster();
        cluster.commit_blob_version(ub, uk, part, stored).await?;
        Ok(())
    }
}
