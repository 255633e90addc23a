//! CopyObject: a new version of the destination whose bytes are those of the source.
//!
//! The bytes are read through the same verified, fail-over read path as GetObject and
//! written through the same quorum write path as PutObject (the destination may live on
//! other nodes when N > RF), so a copy is checked end to end like any upload: the MD5 of
//! what was written must equal the source's.

use futures::StreamExt;
use node::proto::Data;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::bucket::timestamp;
use super::object::{
    INLINE_MAX, StoredHeaders, WriteContext, commit_version, new_meta, resolve_version,
};
use super::{Gateway, check_key};
use crate::integrity::{BodyDigest, Claims, etag};

pub(super) async fn copy_object(
    gw: &Gateway,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let input = req.input;
    check_key(&input.key)?;
    let CopySource::Bucket {
        bucket: src_bucket,
        key: src_key,
        version_id: src_version,
    } = &input.copy_source
    else {
        return Err(s3_error!(
            NotImplemented,
            "Only bucket copy sources are supported"
        ));
    };
    if input.if_match.is_some() || input.if_none_match.is_some() {
        return Err(s3_error!(
            NotImplemented,
            "Conditional writes (If-Match / If-None-Match on copy) are not supported yet"
        ));
    }
    let cluster = &gw.cluster;
    let (version, meta, replicas) =
        resolve_version(cluster, src_bucket, src_key, src_version.as_deref()).await?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str().eq_ignore_ascii_case("REPLACE"));
    let same_object = src_bucket.as_ref() == input.bucket && src_key.as_ref() == input.key;
    if same_object && !replace && src_version.is_none() {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself \
             without changing the object's metadata, storage class, website redirect location \
             or encryption attributes."
        ));
    }
    let ctx = WriteContext::load(cluster, &input.bucket, &input.key).await?;

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
        source => {
            let mut stream = match source {
                Data::Inline { bytes } => {
                    let chunk = Ok(bytes::Bytes::copy_from_slice(bytes));
                    futures::stream::once(async move { chunk }).boxed()
                }
                Data::Blob { id } => cluster
                    .open_blob((src_bucket, src_key), id, &replicas, 0, meta.size)
                    .await?
                    .into_stream()
                    .boxed(),
                Data::Parts { parts } => {
                    cluster
                        .open_parts((src_bucket, src_key), parts, &replicas, 0, meta.size)
                        .await?
                }
            };
            let mut u = cluster.start_blob_upload(&input.bucket, &input.key);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk
                    .map_err(|e| s3_error!(ServiceUnavailable, "copy source read failed: {e}"))?;
                digest.update(&chunk);
                u.send(chunk).await?;
            }
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
    let written = commit_version(cluster, &input.bucket, &input.key, &ctx, new, upload).await?;
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
