//! Multipart uploads: CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
//! AbortMultipartUpload, ListParts, ListMultipartUploads, UploadPartCopy.
//!
//! An upload in progress is a record of its own, stored on the replicas of the final key
//! under the pseudo-bucket `<bucket>/uploads` (a `/` can never occur in a real bucket name)
//! and the key `<key>\0<upload id>`. Its versions are the upload's initial entry (stamp id =
//! upload id, carrying the object's headers and metadata) and one entry per uploaded part,
//! each part a blob on those same replicas. Completing writes the object's version with
//! `Data::Parts` referring to the chosen blobs (no byte is copied, and the work is linear
//! in the number of parts), then purges the upload's record, leaving only the result for
//! a retried completion (`completion`).

mod checksum;
mod complete;
mod completion;

use std::collections::BTreeMap;

use checksum::UploadChecksum;
pub(super) use complete::complete_multipart_upload;
use md5::{Digest, Md5};
use node::proto::{
    Bodies, Data, Lww, ObjectMeta, ObjectRecord, PartRef, Select, Stamp, Tags, Version,
    VersionState,
};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::bucket::{owner, timestamp};
use super::conditional::{WriteCondition, commit_if};
use super::copy::{copy_condition_error, copy_into, source_stream};
use super::object::{
    Need, Preconditions, StoredHeaders, WriteContext, check_metadata, pump, resolve_for_read,
};
use super::{Gateway, acl, check_key, copy_source, tagging};
use crate::error::Error;
use crate::integrity::{BodyDigest, Claims, Verified, etag};
use crate::quorum::{BlobUpload, Cluster, UPLOADS_SUFFIX};
use crate::xml_escape::Escapes;

/// Parts other than the last must be at least this large (S3's rule).
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
const MAX_PART_NUMBER: i32 = 10_000;

/// Where the record of upload `id` of `(bucket, key)` lives.
fn upload_address(bucket: &str, key: &str, id: &str) -> (String, String) {
    (format!("{bucket}{UPLOADS_SUFFIX}"), format!("{key}\0{id}"))
}

/// An upload in progress, as read from a read quorum.
struct Upload {
    record: ObjectRecord,
    init: ObjectMeta,
    /// The tags the object will have (`x-amz-tagging` on CreateMultipartUpload).
    tags: Option<Tags>,
    replicas: Vec<usize>,
}

async fn load_upload(cluster: &Cluster, bucket: &str, key: &str, id: &str) -> S3Result<Upload> {
    let (record, replicas) = read_upload_record(cluster, bucket, key, id).await?;
    Upload::parse(record, replicas, id).map_err(|_| no_such_upload())
}

/// The record of upload `id` (empty when there is none) and the replicas it lives on.
async fn read_upload_record(
    cluster: &Cluster,
    bucket: &str,
    key: &str,
    id: &str,
) -> S3Result<(ObjectRecord, Vec<usize>)> {
    let (ub, uk) = upload_address(bucket, key, id);
    let replicas = cluster.replicas_of(bucket, key);
    let read = cluster
        .read_record_on(&ub, &uk, replicas.clone(), Bodies::All, Select::All)
        .await?;
    Ok((read.record.unwrap_or_default(), replicas))
}

fn no_such_upload() -> s3s::S3Error {
    s3_error!(
        NoSuchUpload,
        "The specified multipart upload does not exist."
    )
}

impl Upload {
    /// The upload in progress `record` holds, or the record back if it holds none.
    fn parse(record: ObjectRecord, replicas: Vec<usize>, id: &str) -> Result<Upload, ObjectRecord> {
        let init = record.versions.iter().find_map(|v| match &v.state {
            VersionState::Object(m) if v.stamp.id == id && m.part_number.is_none() => {
                Some((m.clone(), v.tags.as_ref().map(|t| t.value.clone())))
            }
            _ => None,
        });
        match init {
            Some((init, tags)) => Ok(Upload {
                record,
                init,
                tags,
                replicas,
            }),
            None => Err(record),
        }
    }
}

pub(super) async fn create_multipart_upload(
    gw: &Gateway,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let input = req.input;
    check_key(&input.key)?;
    check_metadata(input.metadata.as_ref())?;
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
    let cluster = &gw.cluster;
    WriteContext::load(cluster, &input.bucket, &input.key).await?;
    let spec = UploadChecksum::from_create(
        input.checksum_algorithm.as_ref(),
        input.checksum_type.as_ref(),
    )?;
    let id = Cluster::new_id();
    let headers = StoredHeaders {
        content_type: input.content_type.as_deref(),
        cache_control: input.cache_control.as_deref(),
        content_disposition: input.content_disposition.as_deref(),
        content_encoding: input.content_encoding.as_deref(),
        content_language: input.content_language.as_deref(),
        expires: input.expires.as_deref(),
    };
    let stamp = Stamp {
        ts: cluster.next_timestamp(None),
        id: id.clone(),
    };
    let init = Version {
        stamp: stamp.clone(),
        null: false,
        state: VersionState::Object(ObjectMeta {
            size: 0,
            // The (empty) inline body is checked against its MD5 like any other.
            md5: hex::encode(Md5::digest(b"")),
            etag: String::new(),
            data: Data::Inline { bytes: Vec::new() },
            headers: headers.into_map(),
            user_metadata: input.metadata.unwrap_or_default().into_iter().collect(),
            part_number: None,
            checksums: Default::default(),
            checksum_type: spec.as_ref().map(|c| c.kind.to_owned()),
            checksum_algorithm: spec.as_ref().map(|c| c.algorithm.to_owned()),
        }),
        tags: tags.map(|value| Lww { stamp, value }),
        follows: None,
    };
    let (ub, uk) = upload_address(&input.bucket, &input.key, &id);
    let replicas = cluster.replicas_of(&input.bucket, &input.key);
    cluster
        .write_record(&ub, &uk, ObjectRecord::single(init), &replicas)
        .await?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(Escapes::text_in(&req.extensions, input.key)),
        upload_id: Some(id),
        checksum_algorithm: spec
            .as_ref()
            .map(|c| ChecksumAlgorithm::from(c.algorithm.to_owned())),
        checksum_type: spec.map(|c| ChecksumType::from(c.kind.to_owned())),
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
    check_part_number(input.part_number)?;
    let cluster = &gw.cluster;
    let upload = load_upload(cluster, &input.bucket, &input.key, &input.upload_id).await?;
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
    let mut upload = cluster.start_blob_upload(&input.bucket, &input.key);
    let mut body = input.body;
    pump(&mut body, &mut digest, &mut upload).await?;
    let trailers = trailing_headers.and_then(|t| t.take());
    let verified = digest.verify(trailers.as_ref())?;
    record_part(
        cluster,
        (&input.bucket, &input.key, &input.upload_id),
        input.part_number,
        &verified,
        upload,
    )
    .await?;
    let mut out = UploadPartOutput {
        e_tag: Some(etag(&verified.md5)),
        ..Default::default()
    };
    set_checksums!(out, &verified.checksums);
    Ok(S3Response::new(out))
}

/// Makes an uploaded part part of the upload: the blob to W replicas, then the upload's
/// record gains the part (a re-upload of a number supersedes the older one).
async fn record_part(
    cluster: &Cluster,
    (bucket, key, upload_id): (&str, &str, &str),
    part_number: i32,
    verified: &Verified,
    upload: BlobUpload,
) -> S3Result<()> {
    let blob = upload.id().to_owned();
    let stored = upload.finish(&verified.md5).await?;
    let part = Version {
        stamp: Stamp {
            ts: cluster.next_timestamp(None),
            id: Cluster::new_id(),
        },
        null: false,
        state: VersionState::Object(ObjectMeta {
            size: verified.size,
            md5: verified.md5.clone(),
            etag: verified.md5.clone(),
            data: Data::Blob { id: blob },
            headers: Default::default(),
            user_metadata: Default::default(),
            part_number: Some(part_number as u32),
            checksums: verified.checksums.clone(),
            checksum_type: None,
            checksum_algorithm: None,
        }),
        tags: None,
        follows: None,
    };
    let (ub, uk) = upload_address(bucket, key, upload_id);
    cluster.commit_blob_version(&ub, &uk, part, stored).await?;
    Ok(())
}

fn check_part_number(n: i32) -> S3Result<()> {
    if (1..=MAX_PART_NUMBER).contains(&n) {
        Ok(())
    } else {
        Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive"
        ))
    }
}

pub(super) async fn upload_part_copy(
    gw: &Gateway,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let input = req.input;
    check_part_number(input.part_number)?;
    let (src_bucket, src_key, src_version) = copy_source(&input.copy_source)?;
    let cluster = &gw.cluster;
    let upload = load_upload(cluster, &input.bucket, &input.key, &input.upload_id).await?;
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
    let (start, end) = match input.copy_source_range.as_deref() {
        None => (0, meta.size),
        Some(range) => parse_copy_range(range, meta.size)?,
    };
    let mut stream =
        source_stream(cluster, (src_bucket, src_key), &meta, &replicas, start, end).await?;
    let mut digest = BodyDigest::new(Claims {
        algorithms: UploadChecksum::of_upload(&upload.init)
            .map(|c| c.algorithm)
            .into_iter()
            .collect(),
        ..Claims::default()
    });
    let mut upload = cluster.start_blob_upload(&input.bucket, &input.key);
    copy_into(&mut stream, &mut digest, &mut upload).await?;
    let verified = digest.verify(None)?;
    record_part(
        cluster,
        (&input.bucket, &input.key, &input.upload_id),
        input.part_number,
        &verified,
        upload,
    )
    .await?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(etag(&verified.md5)),
            last_modified: Some(timestamp(cluster.next_timestamp(None))),
            ..Default::default()
        }),
        copy_source_version_id: (!version.null).then(|| version.stamp.id.clone()),
        ..Default::default()
    }))
}

/// `x-amz-copy-source-range: bytes=first-last`, both inclusive and inside the source.
fn parse_copy_range(range: &str, size: u64) -> S3Result<(u64, u64)> {
    let invalid = || {
        s3_error!(
            InvalidArgument,
            "Range specified is not valid for source object of size: {size}"
        )
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

/// The newest uploaded copy of a part: its metadata, blob and upload time.
struct NewestPart<'a> {
    meta: &'a ObjectMeta,
    blob: &'a str,
    ts: u64,
}

/// The newest uploaded copy of every part number, in part order: one pass over the record
/// (versions are sorted by stamp, so a later copy replaces an earlier one), which keeps
/// completing and listing linear in the number of parts.
fn newest_parts(record: &ObjectRecord) -> BTreeMap<u32, NewestPart<'_>> {
    let mut parts = BTreeMap::new();
    for v in &record.versions {
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
                blob: id.as_str(),
                ts: v.stamp.ts,
            };
            parts.insert(*n, part);
        }
    }
    parts
}

/// Purges the upload's record (every version becomes a tombstone), so it can neither be
/// completed again nor listed; a completion leaves its `completion` entry in the same write.
async fn finish_upload(
    cluster: &Cluster,
    bucket: &str,
    key: &str,
    id: &str,
    upload: &Upload,
    completion: Option<Version>,
) -> Result<(), Error> {
    let (ub, uk) = upload_address(bucket, key, id);
    cluster
        .purge_record(&ub, &uk, &upload.record, completion, &upload.replicas)
        .await
}

pub(super) async fn abort_multipart_upload(
    gw: &Gateway,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let input = req.input;
    let cluster = &gw.cluster;
    let upload = load_upload(cluster, &input.bucket, &input.key, &input.upload_id).await?;
    finish_upload(
        cluster,
        &input.bucket,
        &input.key,
        &input.upload_id,
        &upload,
        None,
    )
    .await?;
    // The part blobs are now unreferenced (unless a completion raced the abort): garbage
    // collection frees them.
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
    let upload = load_upload(&gw.cluster, &input.bucket, &input.key, &input.upload_id).await?;
    let newest = newest_parts(&upload.record);
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
            set_checksums!(part, &p.meta.checksums);
            part
        })
        .collect();
    let next = parts.last().and_then(|p| p.part_number);
    let spec = UploadChecksum::of_upload(&upload.init);
    Ok(S3Response::new(ListPartsOutput {
        checksum_algorithm: spec
            .as_ref()
            .map(|c| ChecksumAlgorithm::from(c.algorithm.to_owned())),
        checksum_type: spec.map(|c| ChecksumType::from(c.kind.to_owned())),
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
    gw.cluster
        .existing_bucket(&input.bucket)
        .await?
        .ok_or(Error::NoSuchBucket)?;
    let listing = gw
        .cluster
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
