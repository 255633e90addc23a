//! CopyObject: a new version of the destination whose bytes are those of the source.
//!
//! The bytes are read through the same verified, fail-over read path as GetObject and
//! written through the same quorum write path as PutObject (the destination may live on
//! other nodes when N > RF), so a copy is checked end to end like any upload: the MD5 of
//! what was written must equal the source's.

use bytes::Bytes;
use futures::StreamExt;
use node::proto::{Data, ObjectMeta};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::bucket::timestamp;
use super::conditional::WriteCondition;
use super::object::{
    INLINE_MAX, Need, Preconditions, StoredHeaders, WriteContext, check_metadata, commit_version,
    new_meta, resolve_for_read,
};
use super::{Gateway, acl, check_key, copy_source, tagging};
use crate::integrity::{BodyDigest, Claims, etag};
use crate::quorum::{BlobUpload, Cluster, ObjectStream};

pub(super) async fn copy_object(
    gw: &Gateway,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let input = req.input;
    check_key(&input.key)?;
    acl::check_object_write(
        input.acl.as_ref(),
        input.grant_full_control.as_deref(),
        [
            input.grant_read.as_deref(),
            input.grant_read_acp.as_deref(),
            input.grant_write_acp.as_deref(),
        ],
    )?;
    let (src_bucket, src_key, src_version) = copy_source(&input.copy_source)?;
    let condition = WriteCondition::for_write(input.if_match.clone(), input.if_none_match.clone())?;
    let cluster = &gw.cluster;
    let conditions = Preconditions {
        if_match: input.copy_source_if_match.as_ref(),
        if_none_match: input.copy_source_if_none_match.as_ref(),
        if_modified_since: input.copy_source_if_modified_since.as_ref(),
        if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
    };
    let (version, meta, replicas) = resolve_for_read(
        cluster,
        src_bucket,
        src_key,
        src_version,
        Need::Body,
        conditions,
    )
    .await
    .map_err(copy_condition_error)?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str().eq_ignore_ascii_case("REPLACE"));
    if replace {
        check_metadata(input.metadata.as_ref())?;
    }
    let same_object = src_bucket == input.bucket && src_key == input.key;
    if same_object && !replace && src_version.is_none() {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself \
             without changing the object's metadata, storage class, website redirect location \
             or encryption attributes."
        ));
    }
    let mut ctx = WriteContext::load(cluster, &input.bucket, &input.key).await?;
    ctx.tags = match tagging::replaces(input.tagging_directive.as_ref())? {
        true => tagging::from_header(input.tagging.as_deref())?,
        false => Some(version.tag_set()).filter(|t| !t.is_empty()),
    };

    // Re-read and re-write the bytes, verifying they still hash to the source's MD5.
    let mut digest = BodyDigest::new(Claims {
        algorithms: meta.checksums.keys().filter_map(|k| known(k)).collect(),
        ..Claims::default()
    });
    let (data, upload) = match &meta.data {
        Data::Inline { bytes } if bytes.len() <= INLINE_MAX => {
            digest.update(bytes);
            (
                Data::Inline {
                    bytes: bytes.clone(),
                },
                None,
            )
        }
        _ => {
            let mut stream = source_stream(
                cluster,
                (src_bucket, src_key),
                &meta,
                &replicas,
                0,
                meta.size,
            )
            .await?;
            let mut u = cluster.start_blob_upload(&input.bucket, &input.key);
            copy_into(&mut stream, &mut digest, &mut u).await?;
            (
                Data::Blob {
                    id: u.id().to_owned(),
                },
                Some(u),
            )
        }
    };
    let verified = digest.verify(None)?;
    // Multipart sources have no whole-body MD5 recorded; their parts were checked on read.
    if !meta.md5.is_empty() && verified.md5 != meta.md5 {
        return Err(s3_error!(
            InternalError,
            "copy source changed while being copied; retry"
        ));
    }
    let (headers, metadata) = if replace {
        (
            StoredHeaders {
                content_type: input.content_type.as_deref(),
                cache_control: input.cache_control.as_deref(),
                content_disposition: input.content_disposition.as_deref(),
                content_encoding: input.content_encoding.as_deref(),
                content_language: input.content_language.as_deref(),
                expires: input.expires.as_deref(),
            }
            .into_map(),
            input.metadata,
        )
    } else {
        (
            meta.headers.clone(),
            Some(meta.user_metadata.clone().into_iter().collect()),
        )
    };
    let mut new = new_meta(verified, data, StoredHeaders::none(), metadata);
    new.headers = headers;
    // A multipart source keeps its multipart ETag.
    new.etag.clone_from(&meta.etag);
    let new_etag = new.etag.clone();
    let written = commit_version(
        cluster,
        &input.bucket,
        &input.key,
        &ctx,
        new,
        upload,
        &condition,
    )
    .await?;
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag(&new_etag)),
            last_modified: Some(timestamp(written.stamp.ts)),
            ..Default::default()
        }),
        version_id: ctx.version_id_for(&written),
        copy_source_version_id: (!version.null).then(|| version.stamp.id.clone()),
        ..Default::default()
    }))
}

fn known(name: &str) -> Option<&'static str> {
    ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]
        .into_iter()
        .find(|n| *n == name)
}

/// A copy whose source "was not modified" did not happen: S3 answers 412 where a GET
/// would answer 304.
pub(super) fn copy_condition_error(e: s3s::S3Error) -> s3s::S3Error {
    if *e.code() == s3s::S3ErrorCode::NotModified {
        s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        )
    } else {
        e
    }
}

/// The bytes `start..end` of a copy source, from wherever they are stored.
pub(super) async fn source_stream(
    cluster: &Cluster,
    owner: (&str, &str),
    meta: &ObjectMeta,
    replicas: &[usize],
    start: u64,
    end: u64,
) -> S3Result<ObjectStream> {
    Ok(match &meta.data {
        Data::Inline { bytes } => {
            let chunk = Ok(Bytes::copy_from_slice(&bytes[start as usize..end as usize]));
            futures::stream::once(async move { chunk }).boxed()
        }
        Data::InlineOmitted => return Err(super::object::body_not_read()),
        Data::Blob { id } => cluster
            .open_blob(owner, id, replicas, start, end)
            .await?
            .into_stream()
            .boxed(),
        Data::Parts { parts } => {
            cluster
                .open_parts(owner, parts, replicas, start, end)
                .await?
        }
    })
}

/// Streams a copy source into an upload, hashing it on the way.
pub(super) async fn copy_into(
    stream: &mut ObjectStream,
    digest: &mut BodyDigest,
    upload: &mut BlobUpload,
) -> S3Result<()> {
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| s3_error!(ServiceUnavailable, "copy source read failed: {e}"))?;
        digest.update(&chunk);
        upload.send(chunk).await?;
    }
    Ok(())
}
