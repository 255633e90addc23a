//! Object operations: PutObject, GetObject, HeadObject (deletes are in `delete`).
//!
//! PutObject reads the body once: MD5 and checksums are computed on the fly while the bytes
//! go to the replicas; bodies up to `INLINE_MAX` travel inside the record instead. Nothing
//! becomes visible until the body ended and every digest matched (`integrity`). The
//! bucket and the key's current record are read while the body is still arriving, so the
//! new version's timestamp orders after everything the read saw.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use node::proto::{
    Bodies, Data, Lww, ObjectMeta, ObjectRecord, Select, Stamp, Tags, Version, VersionState,
    Versioning,
};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

mod resolve;

pub(super) use resolve::{Need, Preconditions, body_not_read, resolve_for_read, resolve_version};

use super::bucket::timestamp;
use super::conditional::{Current, WriteCondition, commit_if};
use super::{Gateway, acl, check_key, tagging};
use crate::error::Error;
use crate::integrity::{BodyDigest, Claims, Verified, body_error, etag};
use crate::quorum::{BlobUpload, Cluster};

/// Bodies up to this size live inside the record: one round trip, one fsync.
pub(super) const INLINE_MAX: usize = 64 * 1024;

/// Standard headers stored with an object and returned on GET/HEAD.
pub(super) struct StoredHeaders<'a> {
    pub content_type: Option<&'a str>,
    pub cache_control: Option<&'a str>,
    pub content_disposition: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub content_language: Option<&'a str>,
    pub expires: Option<&'a str>,
}

impl StoredHeaders<'_> {
    pub fn none() -> Self {
        StoredHeaders {
            content_type: None,
            cache_control: None,
            content_disposition: None,
            content_encoding: None,
            content_language: None,
            expires: None,
        }
    }

    pub fn into_map(self) -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        let mut put = |name: &str, value: Option<&str>| {
            if let Some(v) = value {
                map.insert(name.to_owned(), v.to_owned());
            }
        };
        put("content-type", self.content_type);
        put("cache-control", self.cache_control);
        put("content-disposition", self.content_disposition);
        // aws-chunked is the transfer framing of the upload, not a property of the object.
        let encoding = self.content_encoding.map(|e| {
            e.split(',')
                .map(str::trim)
                .filter(|t| !t.eq_ignore_ascii_case("aws-chunked") && !t.is_empty())
                .collect::<Vec<_>>()
                .join(", ")
        });
        put(
            "content-encoding",
            encoding.as_deref().filter(|e| !e.is_empty()),
        );
        put("content-language", self.content_language);
        put("expires", self.expires);
        map
    }
}

/// What a write needs to know before it can commit: the bucket's versioning state and
/// the newest timestamp of the key.
pub(super) struct WriteContext {
    pub versioning: Option<Versioning>,
    pub seen: Option<u64>,
    /// The tag set a new object version starts with (`x-amz-tagging`).
    pub tags: Option<Tags>,
    /// The key's current object as the context's read saw it (for conditional writes).
    pub current: Option<Current>,
}

impl WriteContext {
    /// Reads the bucket (which must exist) and the key's record concurrently.
    pub async fn load(cluster: &Cluster, bucket: &str, key: &str) -> Result<Self, Error> {
        let (b, r) = tokio::join!(
            cluster.existing_bucket(bucket),
            cluster.read_record(bucket, key, Bodies::None, Select::CURRENT)
        );
        let bucket = b?.ok_or(Error::NoSuchBucket)?;
        Ok(WriteContext::new(
            bucket.live(&bucket.versioning).copied(),
            r?.record.as_ref(),
        ))
    }

    pub fn new(versioning: Option<Versioning>, record: Option<&ObjectRecord>) -> Self {
        WriteContext {
            versioning,
            seen: record.and_then(|r| r.newest_stamp()).map(|s| s.ts),
            tags: None,
            current: record.and_then(Current::of),
        }
    }

    /// A new version's stamp and null flag under this bucket's versioning state.
    pub fn new_version(&self, cluster: &Cluster, state: VersionState) -> Version {
        let stamp = Stamp {
            ts: cluster.next_timestamp(self.seen),
            id: Cluster::new_id(),
        };
        let tags = match state {
            VersionState::Object(_) => self.tags.clone().map(|value| Lww {
                stamp: stamp.clone(),
                value,
            }),
            _ => None,
        };
        Version {
            stamp,
            null: self.versioning != Some(Versioning::Enabled),
            state,
            tags,
            follows: None,
        }
    }

    /// The `x-amz-version-id` S3 returns for a write in this bucket.
    pub fn version_id_for(&self, v: &Version) -> Option<String> {
        self.versioning.map(|_| v.s3_version_id().to_owned())
    }
}

/// Writes a new version with `data` and `meta` fields: the record to W replicas (after
/// the blob, for blob data). With a `condition`, through the key's compare-and-set.
pub(super) async fn commit_version(
    cluster: &Cluster,
    bucket: &str,
    key: &str,
    ctx: &WriteContext,
    meta: ObjectMeta,
    upload: Option<BlobUpload>,
    condition: &WriteCondition,
) -> S3Result<Version> {
    let stored = match upload {
        Some(u) => Some(u.finish(&meta.md5).await?),
        None => None,
    };
    if condition.is_set() {
        let state = VersionState::Object(meta);
        let written = commit_if(cluster, bucket, key, ctx, state, condition, stored).await?;
        return Ok(written.version);
    }
    let version = ctx.new_version(cluster, VersionState::Object(meta));
    let version = match stored {
        Some(stored) => {
            cluster
                .commit_blob_version(bucket, key, version, stored)
                .await?
        }
        None => {
            let replicas = cluster.replicas_of(bucket, key);
            cluster
                .write_version(bucket, key, version, &replicas)
                .await?
        }
    };
    Ok(version)
}

pub(super) fn new_meta(
    verified: Verified,
    data: Data,
    headers: StoredHeaders<'_>,
    metadata: Option<Metadata>,
) -> ObjectMeta {
    ObjectMeta {
        size: verified.size,
        etag: verified.md5.clone(),
        md5: verified.md5,
        data,
        headers: headers.into_map(),
        user_metadata: metadata.unwrap_or_default().into_iter().collect(),
        part_number: None,
        checksums: verified.checksums,
        checksum_type: None,
        checksum_algorithm: None,
    }
}

/// S3's limit on user metadata: the UTF-8 bytes of every `x-amz-meta-*` name (without the
/// prefix) and value together.
const MAX_USER_METADATA: usize = 2 * 1024;

/// Refuses user metadata over S3's 2 KB limit (400 MetadataTooLarge), before any byte of
/// the body is stored.
pub(super) fn check_metadata(metadata: Option<&Metadata>) -> S3Result<()> {
    let size: usize = metadata
        .into_iter()
        .flatten()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if size > MAX_USER_METADATA {
        return Err(s3_error!(
            MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size ({size} bytes, \
             at most {MAX_USER_METADATA})."
        ));
    }
    Ok(())
}

pub(super) async fn put_object(
    gw: &Gateway,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let S3Request {
        input,
        headers,
        trailing_headers,
        ..
    } = req;
    check_key(&input.key)?;
    check_metadata(input.metadata.as_ref())?;
    let condition = WriteCondition::for_write(input.if_match.clone(), input.if_none_match.clone())?;
    let tags = tagging::from_header(input.tagging.as_deref())?;
    acl::check_object_write(
        input.acl.as_ref(),
        input.grant_full_control.as_deref(),
        [
            input.grant_read.as_deref(),
            input.grant_read_acp.as_deref(),
            input.grant_write_acp.as_deref(),
        ],
    )?;
    let claims = Claims::from_headers(
        &headers,
        input.content_md5.as_deref(),
        input.checksum_algorithm.as_ref(),
    )?;
    let cluster = gw.cluster.clone();
    let (bucket, key) = (input.bucket.clone(), input.key.clone());
    let context = {
        let (c, b, k) = (cluster.clone(), bucket.clone(), key.clone());
        tokio::spawn(async move { WriteContext::load(&c, &b, &k).await })
    };
    let mut context = Some(context);
    let mut ctx: Option<WriteContext> = None;

    let mut digest = BodyDigest::new(claims);
    let mut head = BytesMut::new();
    let mut upload: Option<BlobUpload> = None;
    let mut body = input.body;
    while head.len() <= INLINE_MAX {
        let Some(chunk) = next_chunk(&mut body).await? else {
            break;
        };
        digest.update(&chunk);
        head.extend_from_slice(&chunk);
    }
    if head.len() > INLINE_MAX {
        // Past the inline size: the bucket must exist before bytes go to disks.
        ctx = Some(join_context(context.take()).await?);
        let mut u = cluster.start_blob_upload(&bucket, &key);
        u.send(std::mem::take(&mut head).freeze()).await?;
        pump(&mut body, &mut digest, &mut u).await?;
        upload = Some(u);
    }
    let trailers = trailing_headers.and_then(|t| t.take());
    let verified = digest.verify(trailers.as_ref())?;
    let mut ctx = match ctx {
        Some(c) => c,
        None => join_context(context.take()).await?,
    };
    ctx.tags = tags;
    let data = match &upload {
        Some(u) => Data::Blob {
            id: u.id().to_owned(),
        },
        None => Data::Inline {
            bytes: head.to_vec(),
        },
    };
    let headers = StoredHeaders {
        content_type: input.content_type.as_deref(),
        cache_control: input.cache_control.as_deref(),
        content_disposition: input.content_disposition.as_deref(),
        content_encoding: input.content_encoding.as_deref(),
        content_language: input.content_language.as_deref(),
        expires: headers.get("expires").and_then(|v| v.to_str().ok()),
    };
    let checksums = verified.checksums.clone();
    let meta = new_meta(verified, data, headers, input.metadata);
    let md5 = meta.md5.clone();
    let version = commit_version(&cluster, &bucket, &key, &ctx, meta, upload, &condition).await?;
    let mut out = PutObjectOutput {
        e_tag: Some(etag(&md5)),
        version_id: ctx.version_id_for(&version),
        ..Default::default()
    };
    set_checksums!(out, &checksums);
    Ok(S3Response::new(out))
}

async fn next_chunk(body: &mut Option<StreamingBlob>) -> S3Result<Option<Bytes>> {
    match body {
        Some(b) => b.next().await.transpose().map_err(body_error),
        None => Ok(None),
    }
}

/// Streams the rest of a client body into `upload`, hashing it on the way.
pub(super) async fn pump(
    body: &mut Option<StreamingBlob>,
    digest: &mut BodyDigest,
    upload: &mut BlobUpload,
) -> S3Result<()> {
    while let Some(chunk) = next_chunk(body).await? {
        digest.update(&chunk);
        upload.send(chunk).await?;
    }
    Ok(())
}

async fn join_context(
    task: Option<tokio::task::JoinHandle<Result<WriteContext, Error>>>,
) -> S3Result<WriteContext> {
    let task = task.ok_or_else(|| s3_error!(InternalError, "write context read twice"))?;
    let ctx = task
        .await
        .map_err(|e| s3_error!(InternalError, "write context task failed: {e}"))??;
    Ok(ctx)
}

/// Fills the metadata fields shared by GetObjectOutput and HeadObjectOutput.
macro_rules! fill_object_fields {
    ($out:expr, $version:expr, $meta:expr) => {{
        let h = &$meta.headers;
        $out.e_tag = Some(etag(&$meta.etag));
        $out.last_modified = Some(timestamp($version.stamp.ts));
        $out.content_type = h.get("content-type").cloned();
        $out.cache_control = h.get("cache-control").cloned();
        $out.content_disposition = h.get("content-disposition").cloned();
        $out.content_encoding = h.get("content-encoding").cloned();
        $out.content_language = h.get("content-language").cloned();
        $out.expires = h.get("expires").cloned();
        $out.accept_ranges = Some("bytes".into());
        if !$meta.user_metadata.is_empty() {
            $out.metadata = Some($meta.user_metadata.clone().into_iter().collect());
        }
        let tag_count = $version.tag_set().len();
        $out.tag_count = (tag_count > 0).then_some(tag_count as i32);
    }};
}

/// The byte range of part `n` (1-based) of an object: a multipart object's part, or the
/// whole object as its only part.
fn part_range(meta: &ObjectMeta, n: i32) -> S3Result<(u64, u64)> {
    if !(1..=10_000).contains(&n) {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ));
    }
    let index = (n - 1) as usize;
    let range = match &meta.data {
        Data::Parts { parts } => parts.get(index).map(|part| {
            let start: u64 = parts[..index].iter().map(|p| p.size).sum();
            (start, start + part.size)
        }),
        _ => (index == 0).then_some((0, meta.size)),
    };
    range.ok_or_else(|| {
        let mut e = S3Error::with_message(
            S3ErrorCode::Custom("InvalidPartNumber".into()),
            "The requested partnumber is not satisfiable",
        );
        e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
        e
    })
}

/// `x-amz-checksum-type` of a stored object with checksums: a multipart object's recorded
/// type, otherwise FULL_OBJECT (the checksum covers the whole body).
pub(super) fn checksum_type(meta: &ObjectMeta) -> Option<ChecksumType> {
    if meta.checksums.is_empty() {
        return None;
    }
    let kind = meta.checksum_type.as_deref().unwrap_or("FULL_OBJECT");
    Some(ChecksumType::from(kind.to_owned()))
}

fn checksum_mode_enabled(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case("ENABLED"))
}

pub(super) async fn get_object(
    gw: &Gateway,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let input = req.input;
    if input.part_number.is_some() && input.range.is_some() {
        return Err(s3_error!(
            InvalidRequest,
            "Cannot specify both Range header and partNumber query parameter"
        ));
    }
    let (version, meta, replicas) = resolve_for_read(
        &gw.cluster,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        Need::Body,
        Preconditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        },
    )
    .await?;
    let (start, end) = match (&input.range, input.part_number) {
        // No byte of an empty object can be asked for (s3s would answer `bytes 0-0/0`).
        (Some(_), _) if meta.size == 0 => {
            return Err(s3_error!(
                InvalidRange,
                "The requested range is not satisfiable"
            ));
        }
        (Some(r), _) => {
            let range = r.check(meta.size)?;
            (range.start, range.end)
        }
        (None, Some(n)) => part_range(&meta, n)?,
        (None, None) => (0, meta.size),
    };
    let partial = input.range.is_some() || (start, end) != (0, meta.size);
    let body = match &meta.data {
        Data::Inline { bytes } => {
            let slice = Bytes::copy_from_slice(&bytes[start as usize..end as usize]);
            StreamingBlob::from(s3s::Body::from(slice))
        }
        Data::InlineOmitted => return Err(body_not_read()),
        Data::Blob { id } => {
            let reader = gw
                .cluster
                .open_blob((&input.bucket, &input.key), id, &replicas, start, end)
                .await?;
            streaming_body(reader.into_stream())
        }
        Data::Parts { parts } => {
            let stream = gw
                .cluster
                .open_parts((&input.bucket, &input.key), parts, &replicas, start, end)
                .await?;
            streaming_body(stream)
        }
    };
    let mut out = GetObjectOutput {
        body: Some(body),
        content_length: Some((end - start) as i64),
        version_id: version_id_header(&version),
        ..Default::default()
    };
    fill_object_fields!(out, version, meta);
    if let Data::Parts { parts } = &meta.data
        && input.part_number.is_some()
    {
        out.parts_count = Some(parts.len() as i32);
    }
    if partial {
        out.content_range = Some(format!(
            "bytes {}-{}/{}",
            start,
            end.saturating_sub(1),
            meta.size
        ));
    } else if checksum_mode_enabled(input.checksum_mode.as_ref()) {
        set_checksums!(out, &meta.checksums);
        out.checksum_type = checksum_type(&meta);
    }
    Ok(S3Response::new(out))
}

pub(super) async fn head_object(
    gw: &Gateway,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let input = req.input;
    let (version, meta, _) = resolve_for_read(
        &gw.cluster,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        Need::Meta,
        Preconditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        },
    )
    .await?;
    let mut out = HeadObjectOutput {
        content_length: Some(meta.size as i64),
        version_id: version_id_header(&version),
        ..Default::default()
    };
    let range = match (&input.range, input.part_number) {
        (Some(r), _) => Some(r.check(meta.size).map(|r| (r.start, r.end))?),
        (None, Some(n)) => {
            if let Data::Parts { parts } = &meta.data {
                out.parts_count = Some(parts.len() as i32);
            }
            Some(part_range(&meta, n)?)
        }
        (None, None) => None,
    };
    if let Some((start, end)) = range.filter(|r| *r != (0, meta.size) || input.range.is_some()) {
        out.content_length = Some((end - start) as i64);
        out.content_range = Some(format!(
            "bytes {}-{}/{}",
            start,
            end.saturating_sub(1),
            meta.size
        ));
    }
    fill_object_fields!(out, version, meta);
    if range.is_none() && checksum_mode_enabled(input.checksum_mode.as_ref()) {
        set_checksums!(out, &meta.checksums);
        out.checksum_type = checksum_type(&meta);
    }
    Ok(S3Response::new(out))
}

fn streaming_body(
    stream: impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
) -> StreamingBlob {
    let frames = stream.map(|r| r.map(hyper::body::Frame::data));
    StreamingBlob::from(s3s::Body::http_body_unsync(
        http_body_util::StreamBody::new(frames),
    ))
}

/// S3 shows a version id on reads only for objects written under versioning.
fn version_id_header(v: &Version) -> Option<String> {
    (!v.null).then(|| v.stamp.id.clone())
}
