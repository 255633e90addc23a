//! Writing a new object version: the write context it orders after, its body (inline in
//! the record up to [`INLINE_MAX`], else a blob streamed to the key's replicas while it
//! arrives), and the commit, plain or through the key's compare-and-set.
//!
//! Invariant: a version becomes visible only after its body is durable on the replicas
//! its record goes to (a blob-backed record reaches a replica only once that replica
//! acknowledged the blob with the right MD5), so no read can find a version whose bytes
//! are missing.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use node::proto::{CannedAcl, Data, ObjectMeta, Tags, Version, VersionState};
use tokio::task::JoinHandle;

use super::conditional::Condition;
use super::context::WriteContext;
use super::{INLINE_MAX, Store};
use crate::checksum;
use crate::error::Error;
use crate::integrity::Verified;
use crate::quorum::{BlobStored, BlobUpload};

/// What a new object version carries besides its body: the stored standard headers, the
/// user metadata, its first tag set, and (for a copy of a multipart object) the ETag.
#[derive(Debug, Default, Clone)]
pub struct ObjectFields {
    pub headers: BTreeMap<String, String>,
    pub user_metadata: BTreeMap<String, String>,
    pub tags: Option<Tags>,
    /// The ACL it starts with (`None`: private).
    pub acl: Option<CannedAcl>,
    /// The ETag, when it is not the body's MD5.
    pub etag: Option<String>,
}

/// A version as committed, and the version id S3 reports for it (none in an unversioned
/// bucket).
#[derive(Debug, Clone)]
pub struct Written {
    pub version: Version,
    pub version_id: Option<String>,
}

/// A new object version whose body is on its way: [`NewObject::push`] each chunk, then
/// [`NewObject::commit`]. Dropped without a commit, nothing becomes visible (a blob
/// already streamed is garbage for garbage collection to free).
pub struct NewObject {
    store: Store,
    bucket: String,
    key: String,
    context: Context,
    head: BytesMut,
    upload: Option<BlobUpload>,
}

enum Context {
    /// Read while the body is still arriving.
    Loading(JoinHandle<Result<WriteContext, Error>>),
    Ready(WriteContext),
}

impl Store {
    /// Starts a new version of `(bucket, key)`; the bucket and the key's current record are
    /// read while the body arrives, so the version orders after everything that read saw.
    pub fn new_object(&self, bucket: &str, key: &str) -> NewObject {
        let (store, b, k) = (self.clone(), bucket.to_owned(), key.to_owned());
        let task = tokio::spawn(async move { store.write_context(&b, &k).await });
        NewObject {
            store: self.clone(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            context: Context::Loading(task),
            head: BytesMut::new(),
            upload: None,
        }
    }

    /// Commits a new version in `state` (an object or a delete marker) after `ctx`: to W
    /// replicas, or under `condition` through the key's compare-and-set. `stored` is the
    /// blob the version refers to, if any: a replica gets the record only once it holds it.
    pub(super) async fn commit(
        &self,
        bucket: &str,
        key: &str,
        ctx: &WriteContext,
        state: VersionState,
        stored: Option<BlobStored>,
        condition: &Condition,
    ) -> Result<Written, Error> {
        let version = if condition.is_set() {
            self.commit_if(bucket, key, ctx, state, condition, stored)
                .await?
        } else {
            let version = self.new_version(ctx, state);
            let cluster = &self.cluster();
            match stored {
                Some(s) => cluster.commit_blob_version(bucket, key, version, s).await?,
                None => {
                    let replicas = cluster.replicas_of(bucket, key);
                    cluster
                        .write_version(bucket, key, version, &replicas)
                        .await?
                }
            }
        };
        Ok(Written {
            version_id: ctx.version_id_for(&version),
            version,
        })
    }

    /// A new version's stamp, null flag, first tags and ACL under `ctx`.
    fn new_version(&self, ctx: &WriteContext, state: VersionState) -> Version {
        ctx.version(self.stamp_after(ctx.seen), state, None)
    }
}

impl NewObject {
    /// The bucket and key's state the version will order after; fails when the bucket
    /// does not exist.
    async fn context(&mut self) -> Result<&mut WriteContext, Error> {
        if let Context::Loading(task) = &mut self.context {
            let ctx = task
                .await
                .map_err(|e| Error::Internal(format!("write context task failed: {e}")))??;
            self.context = Context::Ready(ctx);
        }
        match &mut self.context {
            Context::Ready(ctx) => Ok(ctx),
            Context::Loading(_) => Err(Error::Internal("write context not loaded".into())),
        }
    }

    /// Adds the next chunk of the body. Past [`INLINE_MAX`] bytes the body becomes a blob,
    /// and only once the bucket is known to exist do bytes go to disks.
    pub async fn push(&mut self, chunk: Bytes) -> Result<(), Error> {
        if let Some(upload) = &mut self.upload {
            return upload.send(chunk).await;
        }
        self.head.extend_from_slice(&chunk);
        if self.head.len() > INLINE_MAX {
            self.context().await?;
            let cluster = &self.store.cluster();
            let mut upload = cluster.start_blob_upload(&self.bucket, &self.key);
            upload.send(std::mem::take(&mut self.head).freeze()).await?;
            self.upload = Some(upload);
        }
        Ok(())
    }

    /// Makes the version visible: its body, verified as `verified`, durable first.
    pub async fn commit(
        mut self,
        verified: Verified,
        fields: ObjectFields,
        condition: &Condition,
    ) -> Result<Written, Error> {
        let ctx = self.context().await?;
        ctx.tags = fields.tags;
        ctx.acl = fields.acl;
        let data = match &self.upload {
            Some(u) => Data::Blob {
                id: u.id().to_owned(),
            },
            None => Data::Inline {
                bytes: std::mem::take(&mut self.head).to_vec(),
            },
        };
        let meta = ObjectMeta {
            size: verified.size,
            etag: fields.etag.unwrap_or_else(|| verified.md5.clone()),
            md5: verified.md5,
            data,
            headers: fields.headers,
            user_metadata: fields.user_metadata,
            part_number: None,
            checksums: checksum::to_stored(&verified.checksums),
            checksum_type: None,
            checksum_algorithm: None,
        };
        let stored = match self.upload.take() {
            Some(u) => Some(u.finish(&meta.md5).await?),
            None => None,
        };
        let Context::Ready(ctx) = &self.context else {
            return Err(Error::Internal("write context not loaded".into()));
        };
        let (store, bucket, key) = (&self.store, &self.bucket, &self.key);
        let state = VersionState::Object(meta);
        store
            .commit(bucket, key, ctx, state, stored, condition)
            .await
    }
}
