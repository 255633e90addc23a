//! CopyObject: a new version of the destination whose bytes are those of the source.
//!
//! The bytes are read through the same verified, fail-over read path as GetObject and
//! written through the same path as PutObject (the destination may live on other nodes
//! when N > RF), so a copy is checked end to end like any upload: the MD5 of what was
//! written must equal the source's.

use futures::StreamExt;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::dto::timestamp;
use super::object::{StoredHeaders, check_metadata, user_metadata};
use super::resolve::{Preconditions, Reader, resolve_for_read};
use super::{Gateway, acl, check_key, conditional, copy_source, tagging};
use crate::integrity::{BodyDigest, Claims, Verified, etag};
use crate::store::{Found, Need, ObjectFields, ObjectStream, Store};

pub(super) async fn copy_object(
    gw: &Gateway,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let input = req.input;
    check_key(&input.key)?;
    let acl = acl::for_object_write(
        gw,
        req.credentials.as_ref(),
        &input.bucket,
        acl::acl_request!(input, [&input.grant_read_acp, &input.grant_write_acp]),
    )
    .await?;
    let (src_bucket, src_key, src_version) = copy_source(&input.copy_source)?;
    let condition = conditional::for_write(input.if_match.as_ref(), input.if_none_match.as_ref());
    let store = &gw.store;
    let conditions = Preconditions {
        if_match: input.copy_source_if_match.as_ref(),
        if_none_match: input.copy_source_if_none_match.as_ref(),
        if_modified_since: input.copy_source_if_modified_since.as_ref(),
        if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
    };
    let reader = Reader::of_source(&req.extensions);
    let source = read_source(
        store,
        (src_bucket, src_key, src_version),
        conditions,
        reader,
    )
    .await?;
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
    // S3 does not copy ACLs: the copy has the one the request asks for.
    let fields = ObjectFields {
        acl,
        ..copied_fields(&input, &source, replace)?
    };
    let mut new = store.new_object(&input.bucket, &input.key);
    let mut stream = store.open_body(&source, 0, source.meta.size).await?;
    let mut digest = BodyDigest::new(Claims {
        algorithms: source.checksums().into_keys().collect(),
        ..Claims::default()
    });
    while let Some(chunk) = next_source_chunk(&mut stream).await? {
        digest.update(&chunk);
        new.push(chunk).await?;
    }
    let verified = same_bytes(digest, &source)?;
    let written = new.commit(verified, fields, &condition).await?;
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag(&source.meta.etag)),
            last_modified: Some(timestamp(written.version.stamp.ts)),
            ..Default::default()
        }),
        version_id: written.version_id,
        copy_source_version_id: source.version_id(),
        ..Default::default()
    }))
}

/// What the copy carries besides its bytes: the request's headers, metadata and tags
/// (`REPLACE` directives) or the source's; a multipart source keeps its multipart ETag.
fn copied_fields(input: &CopyObjectInput, source: &Found, replace: bool) -> S3Result<ObjectFields> {
    let meta = &source.meta;
    let (headers, user_metadata) = if replace {
        let headers = StoredHeaders {
            content_type: input.content_type.as_deref(),
            cache_control: input.cache_control.as_deref(),
            content_disposition: input.content_disposition.as_deref(),
            content_encoding: input.content_encoding.as_deref(),
            content_language: input.content_language.as_deref(),
            expires: input.expires.as_deref(),
        };
        (headers.into_map(), user_metadata(input.metadata.clone()))
    } else {
        (meta.headers.clone(), meta.user_metadata.clone())
    };
    let tags = match tagging::replaces(input.tagging_directive.as_ref())? {
        true => tagging::from_header(input.tagging.as_deref())?,
        false => Some(source.version.tag_set()).filter(|t| !t.is_empty()),
    };
    Ok(ObjectFields {
        headers,
        user_metadata,
        tags,
        acl: None,
        etag: Some(meta.etag.clone()),
    })
}

/// The digests of the bytes a copy wrote, which must be the source's: a source that
/// changed while it was read would otherwise be copied half old, half new.
fn same_bytes(digest: BodyDigest, source: &Found) -> S3Result<Verified> {
    let verified = digest.verify(None)?;
    // Multipart sources have no whole-body MD5 recorded; their parts were checked on read.
    if !source.meta.md5.is_empty() && verified.md5 != source.meta.md5 {
        return Err(s3_error!(
            InternalError,
            "copy source changed while being copied; retry"
        ));
    }
    Ok(verified)
}

/// A copy whose source "was not modified" did not happen: S3 answers 412 where a GET
/// would answer 304.
fn copy_condition_error(e: s3s::S3Error) -> s3s::S3Error {
    if *e.code() == s3s::S3ErrorCode::NotModified {
        s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        )
    } else {
        e
    }
}

/// The next chunk of a copy source.
pub(super) async fn next_source_chunk(stream: &mut ObjectStream) -> S3Result<Option<bytes::Bytes>> {
    match stream.next().await {
        None => Ok(None),
        Some(Ok(chunk)) => Ok(Some(chunk)),
        Some(Err(e)) => Err(s3_error!(
            ServiceUnavailable,
            "copy source read failed: {e}"
        )),
    }
}

/// The source version of an UploadPartCopy or CopyObject, once its preconditions hold.
pub(super) async fn read_source(
    store: &Store,
    source: (&str, &str, Option<&str>),
    conditions: Preconditions<'_>,
    reader: Reader,
) -> S3Result<Found> {
    resolve_for_read(store, source, Need::Body, conditions, reader)
        .await
        .map_err(copy_condition_error)
}
