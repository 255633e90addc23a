//! Multipart uploads: CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
//! AbortMultipartUpload, ListParts, ListMultipartUploads, UploadPartCopy.
//!
//! Where an upload's record lives, how parts are stored and what a completion leaves for
//! retries is the store's (`store::uploads`); these handlers check the S3 rules (part
//! numbers, sizes, ETags, checksums) and shape the answers.

mod combine;
mod complete;

use combine::UploadChecksum;
pub(super) use complete::complete_multipart_upload;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::copy::{next_source_chunk, read_source};
use super::dto::{owner, timestamp};
use super::object::{StoredHeaders, check_metadata, next_chunk, user_metadata};
use super::resolve::{Preconditions, Reader};
use super::{Gateway, acl, check_key, copy_source, tagging};
use crate::checksum;
use crate::integrity::{BodyDigest, Claims, etag};
use crate::store::{PartWriter, UploadInit};
use crate::xml_escape::Escapes;

/// Parts other than the last must be at least this large (S3's rule).
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
const MAX_PART_NUMBER: i32 = 10_000;

pub(super) async fn create_multipart_upload(
    gw: &Gateway,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let input = req.input;
    check_key(&input.key)?;
    check_metadata(input.metadata.as_ref())?;
    let tags = tagging::from_header(input.tagging.as_deref())?;
    let acl = acl::for_object_write(
        gw,
        req.credentials.as_ref(),
        &input.bucket,
        acl::acl_request!(input, [&input.grant_read_acp, &input.grant_write_acp]),
    )
    .await?;
    let spec = UploadChecksum::from_create(
        input.checksum_algorithm.as_ref(),
        input.checksum_type.as_ref(),
    )?;
    let headers = StoredHeaders {
        content_type: input.content_type.as_deref(),
        cache_control: input.cache_control.as_deref(),
        content_disposition: input.content_disposition.as_deref(),
        content_encoding: input.content_encoding.as_deref(),
        content_language: input.content_language.as_deref(),
        expires: input.expires.as_deref(),
    };
    let init = UploadInit {
        headers: headers.into_map(),
        user_metadata: user_metadata(input.metadata),
        tags,
        acl,
        checksum_algorithm: spec.map(|c| c.algorithm),
        checksum_type: spec.map(|c| c.kind),
    };
    let id = gw
        .store
        .create_upload(&input.bucket, &input.key, init)
        .await?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(Escapes::text_in(&req.extensions, input.key)),
        upload_id: Some(id),
        checksum_algorithm: spec.map(|c| ChecksumAlgorithm::from(c.algorithm.name().to_owned())),
        checksum_type: spec.map(|c| ChecksumType::from(c.kind.name().to_owned())),
        ..Default::default()
    }))
}

pub(super) async fn upload_part(
    gw: &Gateway,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let S3Request {
        input,
        headers,
        trailing_headers,
        ..
    } = req;
    let number = check_part_number(input.part_number)?;
    let store = &gw.store;
    let upload = store
        .upload_in_progress(&input.bucket, &input.key, &input.upload_id)
        .await?;
    let mut claims = Claims::from_headers(
        &headers,
        input.content_md5.as_deref(),
        input.checksum_algorithm.as_ref(),
    )?;
    // Every part of an upload with a checksum algorithm gets that checksum, sent or not.
    if let Some(spec) = UploadChecksum::of_upload(&upload.init)
        && !claims.algorithms.contains(&spec.algorithm)
    {
        claims.algorithms.push(spec.algorithm);
    }
    let mut digest = BodyDigest::new(claims);
    let mut part: PartWriter = store.new_part(&upload);
    let mut body = input.body;
    while let Some(chunk) = next_chunk(&mut body).await? {
        digest.update(&chunk);
        part.push(chunk).await?;
    }
    let trailers = trailing_headers.and_then(|t| t.take());
    let verified = digest.verify(trailers.as_ref())?;
    part.commit(number, &verified).await?;
    let mut out = UploadPartOutput {
        e_tag: Some(etag(&verified.md5)),
        ..Default::default()
    };
    set_checksums!(out, &verified.checksums);
    Ok(S3Response::new(out))
}

fn check_part_number(n: i32) -> S3Result<u32> {
    match u32::try_from(n) {
        Ok(n) if (1..=MAX_PART_NUMBER as u32).contains(&n) => Ok(n),
        _ => Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive"
        )),
    }
}

pub(super) async fn upload_part_copy(
    gw: &Gateway,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let input = req.input;
    let number = check_part_number(input.part_number)?;
    let source = copy_source(&input.copy_source)?;
    let store = &gw.store;
    let upload = store
        .upload_in_progress(&input.bucket, &input.key, &input.upload_id)
        .await?;
    let conditions = Preconditions {
        if_match: input.copy_source_if_match.as_ref(),
        if_none_match: input.copy_source_if_none_match.as_ref(),
        if_modified_since: input.copy_source_if_modified_since.as_ref(),
        if_unmodified_since: input.copy_source_if_unmodified_since.as_ref(),
    };
    let source = read_source(
        store,
        source,
        conditions,
        Reader::of_source(&req.extensions),
    )
    .await?;
    let (start, end) = match input.copy_source_range.as_deref() {
        None => (0, source.meta.size),
        Some(range) => parse_copy_range(range, source.meta.size)?,
    };
    let mut stream = store.open_body(&source, start, end).await?;
    let mut digest = BodyDigest::new(Claims {
        algorithms: UploadChecksum::of_upload(&upload.init)
            .map(|c| c.algorithm)
            .into_iter()
            .collect(),
        ..Claims::default()
    });
    let mut part = store.new_part(&upload);
    while let Some(chunk) = next_source_chunk(&mut stream).await? {
        digest.update(&chunk);
        part.push(chunk).await?;
    }
    let verified = digest.verify(None)?;
    part.commit(number, &verified).await?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(etag(&verified.md5)),
            last_modified: Some(timestamp(store.now())),
            ..Default::default()
        }),
        copy_source_version_id: source.version_id(),
        ..Default::default()
    }))
}

/// `x-amz-copy-source-range: bytes=first-last`, both inclusive and inside the source.
/// Anything else is S3's 400 InvalidRange (not the 416 of a GET's Range).
fn parse_copy_range(range: &str, size: u64) -> S3Result<(u64, u64)> {
    let invalid = || {
        let mut e = s3_error!(
            InvalidRange,
            "Range specified is not valid for source object of size: {size}"
        );
        e.set_status_code(http::StatusCode::BAD_REQUEST);
        e
    };
    let (first, last) = range
        .trim()
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(invalid)?;
    let first: u64 = first.trim().parse().map_err(|_| invalid())?;
    let last: u64 = last.trim().parse().map_err(|_| invalid())?;
    if first > last || last >= size {
        return Err(invalid());
    }
    Ok((first, last + 1))
}

pub(super) async fn abort_multipart_upload(
    gw: &Gateway,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let input = req.input;
    let store = &gw.store;
    let upload = store
        .upload_in_progress(&input.bucket, &input.key, &input.upload_id)
        .await?;
    store.abort_upload(&upload).await?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

/// S3 returns at most this many parts or uploads per page.
const MAX_PAGE: usize = 1000;

fn page_size(requested: Option<i32>, what: &str) -> S3Result<usize> {
    match requested {
        None => Ok(MAX_PAGE),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "{what} must not be negative")),
        Some(n) => Ok((n as usize).min(MAX_PAGE)),
    }
}

pub(super) async fn list_parts(
    gw: &Gateway,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let input = req.input;
    let max = page_size(input.max_parts, "max-parts")?;
    let marker = input.part_number_marker.unwrap_or(0).max(0) as u32;
    let upload = gw
        .store
        .upload_in_progress(&input.bucket, &input.key, &input.upload_id)
        .await?;
    let newest = upload.newest_parts();
    let after = newest.range(marker.saturating_add(1)..);
    let truncated = after.clone().count() > max;
    let parts: Vec<Part> = after
        .take(max)
        .map(|(&n, p)| {
            let mut part = Part {
                part_number: Some(n as i32),
                e_tag: Some(etag(&p.meta.md5)),
                size: Some(p.meta.size as i64),
                last_modified: Some(timestamp(p.ts)),
                ..Default::default()
            };
            set_checksums!(part, &checksum::from_stored(&p.meta.checksums));
            part
        })
        .collect();
    let next = parts.last().and_then(|p| p.part_number);
    let spec = UploadChecksum::of_upload(&upload.init);
    Ok(S3Response::new(ListPartsOutput {
        checksum_algorithm: spec.map(|c| ChecksumAlgorithm::from(c.algorithm.name().to_owned())),
        checksum_type: spec.map(|c| ChecksumType::from(c.kind.name().to_owned())),
        bucket: Some(input.bucket),
        key: Some(Escapes::text_in(&req.extensions, input.key)),
        upload_id: Some(input.upload_id),
        max_parts: Some(max as i32),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: if truncated { next } else { None },
        is_truncated: Some(truncated),
        parts: Some(parts),
        owner: Some(owner()),
        initiator: Some(Initiator {
            display_name: Some("s3quorum".into()),
            id: Some("s3quorum".into()),
        }),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        ..Default::default()
    }))
}

pub(super) async fn list_multipart_uploads(
    gw: &Gateway,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let input = req.input;
    let max = page_size(input.max_uploads, "max-uploads")?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let key_marker = input.key_marker.clone().unwrap_or_default();
    gw.store.bucket(&input.bucket).await?;
    let listing = gw
        .store
        .list_uploads(
            &input.bucket,
            &prefix,
            input.delimiter.as_deref().filter(|d| !d.is_empty()),
            &key_marker,
            input.upload_id_marker.as_deref().filter(|m| !m.is_empty()),
            max,
        )
        .await?;
    let (next_key_marker, next_upload_id_marker) = match listing.uploads.last() {
        Some(last) if listing.truncated => (Some(last.key.clone()), Some(last.upload_id.clone())),
        _ => (None, None),
    };
    let uploads = listing
        .uploads
        .into_iter()
        .map(|u| MultipartUpload {
            key: Some(Escapes::text_in(&req.extensions, u.key)),
            upload_id: Some(u.upload_id),
            initiated: Some(timestamp(u.initiated)),
            owner: Some(owner()),
            initiator: Some(Initiator {
                display_name: Some("s3quorum".into()),
                id: Some("s3quorum".into()),
            }),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: Some(Escapes::text_in(&req.extensions, prefix)),
        delimiter: input
            .delimiter
            .filter(|d| !d.is_empty())
            .map(|d| Escapes::text_in(&req.extensions, d)),
        key_marker: Some(Escapes::text_in(&req.extensions, key_marker)),
        upload_id_marker: input
            .upload_id_marker
            .map(|m| Escapes::text_in(&req.extensions, m)),
        max_uploads: Some(max as i32),
        is_truncated: Some(listing.truncated),
        next_key_marker: next_key_marker.map(|k| Escapes::text_in(&req.extensions, k)),
        next_upload_id_marker,
        uploads: Some(uploads),
        common_prefixes: Some(
            listing
                .common_prefixes
                .into_iter()
                .map(|p| CommonPrefix {
                    prefix: Some(Escapes::text_in(&req.extensions, p)),
                })
                .collect(),
        ),
        ..Default::default()
    }))
}
