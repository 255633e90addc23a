//! Object operations: PutObject, GetObject, HeadObject (deletes are in `delete`).
//!
//! PutObject reads the body once: MD5 and checksums are computed on the fly while the
//! bytes go to the store (`store::NewObject`), which keeps small bodies inside the record
//! and streams larger ones to the replicas. Nothing becomes visible until the body ended
//! and every digest matched (`integrity`).

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::StreamExt;
use node::proto::{Data, ObjectMeta};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::dto::timestamp;
use super::resolve::{Preconditions, Reader, resolve_for_read};
use super::{Gateway, acl, check_key, conditional, tagging};
use crate::checksum::Kind;
use crate::guard::body_error;
use crate::integrity::{BodyDigest, Claims, etag};
use crate::store::{Need, ObjectFields};

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
        credentials,
        ..
    } = req;
    check_key(&input.key)?;
    check_metadata(input.metadata.as_ref())?;
    let condition = conditional::for_write(input.if_match.as_ref(), input.if_none_match.as_ref());
    let tags = tagging::from_header(input.tagging.as_deref())?;
    let acl = acl::for_object_write(
        gw,
        credentials.as_ref(),
        &input.bucket,
        acl::acl_request!(input, [&input.grant_read_acp, &input.grant_write_acp]),
    )
    .await?;
    let claims = Claims::from_headers(
        &headers,
        input.content_md5.as_deref(),
        input.checksum_algorithm.as_ref(),
    )?;
    let mut new = gw.store.new_object(&input.bucket, &input.key);
    let mut digest = BodyDigest::new(claims);
    let mut body = input.body;
    while let Some(chunk) = next_chunk(&mut body).await? {
        digest.update(&chunk);
        new.push(chunk).await?;
    }
    let trailers = trailing_headers.and_then(|t| t.take());
    let verified = digest.verify(trailers.as_ref())?;
    let stored = StoredHeaders {
        content_type: input.content_type.as_deref(),
        cache_control: input.cache_control.as_deref(),
        content_disposition: input.content_disposition.as_deref(),
        content_encoding: input.content_encoding.as_deref(),
        content_language: input.content_language.as_deref(),
        expires: headers.get("expires").and_then(|v| v.to_str().ok()),
    };
    let fields = ObjectFields {
        headers: stored.into_map(),
        user_metadata: user_metadata(input.metadata),
        tags,
        acl,
        etag: None,
    };
    let (md5, checksums) = (verified.md5.clone(), verified.checksums.clone());
    let written = new.commit(verified, fields, &condition).await?;
    let mut out = PutObjectOutput {
        e_tag: Some(etag(&md5)),
        version_id: written.version_id,
        ..Default::default()
    };
    set_checksums!(out, &checksums);
    Ok(S3Response::new(out))
}

/// The next chunk of a client body.
pub(super) async fn next_chunk(body: &mut Option<StreamingBlob>) -> S3Result<Option<Bytes>> {
    match body {
        Some(b) => b.next().await.transpose().map_err(body_error),
        None => Ok(None),
    }
}

/// `x-amz-meta-*` as stored.
pub(super) fn user_metadata(metadata: Option<Metadata>) -> BTreeMap<String, String> {
    metadata.unwrap_or_default().into_iter().collect()
}

/// Fills the metadata fields shared by GetObjectOutput and HeadObjectOutput.
macro_rules! fill_object_fields {
    ($out:expr, $found:expr) => {{
        let (version, meta) = (&$found.version, &$found.meta);
        let h = &meta.headers;
        $out.e_tag = Some(etag(&meta.etag));
        $out.last_modified = Some(timestamp(version.stamp.ts));
        $out.content_type = h.get("content-type").cloned();
        $out.cache_control = h.get("cache-control").cloned();
        $out.content_disposition = h.get("content-disposition").cloned();
        $out.content_encoding = h.get("content-encoding").cloned();
        $out.content_language = h.get("content-language").cloned();
        $out.expires = h.get("expires").cloned();
        $out.accept_ranges = Some("bytes".into());
        if !meta.user_metadata.is_empty() {
            $out.metadata = Some(meta.user_metadata.clone().into_iter().collect());
        }
        let tag_count = version.tag_set().len();
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
    // S3 answers a part number past the object's part count with 400, not 416.
    range.ok_or_else(|| {
        let mut e = S3Error::with_message(
            S3ErrorCode::Custom("InvalidPartNumber".into()),
            "The requested partnumber is not satisfiable",
        );
        e.set_status_code(http::StatusCode::BAD_REQUEST);
        e
    })
}

/// `x-amz-checksum-type` of a stored object with checksums: a multipart object's recorded
/// type, otherwise FULL_OBJECT (the checksum covers the whole body).
pub(super) fn checksum_type(meta: &ObjectMeta) -> Option<ChecksumType> {
    if meta.checksums.is_empty() {
        return None;
    }
    let kind = meta.checksum_type.as_deref().and_then(Kind::parse);
    let kind = kind.unwrap_or(Kind::FullObject);
    Some(ChecksumType::from(kind.name().to_owned()))
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
    let found = resolve_for_read(
        &gw.store,
        (&input.bucket, &input.key, input.version_id.as_deref()),
        Need::Body,
        Preconditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        },
        Reader::of_target(&req.extensions),
    )
    .await?;
    let meta = &found.meta;
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
        (None, Some(n)) => part_range(meta, n)?,
        (None, None) => (0, meta.size),
    };
    let partial = input.range.is_some() || (start, end) != (0, meta.size);
    let stream = gw.store.open_body(&found, start, end).await?;
    let mut out = GetObjectOutput {
        body: Some(streaming_body(stream)),
        content_length: Some((end - start) as i64),
        version_id: found.version_id(),
        ..Default::default()
    };
    fill_object_fields!(out, found);
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
        set_checksums!(out, &found.checksums());
        out.checksum_type = checksum_type(meta);
    }
    Ok(S3Response::new(out))
}

pub(super) async fn head_object(
    gw: &Gateway,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let input = req.input;
    let found = resolve_for_read(
        &gw.store,
        (&input.bucket, &input.key, input.version_id.as_deref()),
        Need::Meta,
        Preconditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref(),
            if_unmodified_since: input.if_unmodified_since.as_ref(),
        },
        Reader::of_target(&req.extensions),
    )
    .await?;
    let meta = &found.meta;
    let mut out = HeadObjectOutput {
        content_length: Some(meta.size as i64),
        version_id: found.version_id(),
        ..Default::default()
    };
    let range = match (&input.range, input.part_number) {
        (Some(r), _) => Some(r.check(meta.size).map(|r| (r.start, r.end))?),
        (None, Some(n)) => {
            if let Data::Parts { parts } = &meta.data {
                out.parts_count = Some(parts.len() as i32);
            }
            Some(part_range(meta, n)?)
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
    fill_object_fields!(out, found);
    if range.is_none() && checksum_mode_enabled(input.checksum_mode.as_ref()) {
        set_checksums!(out, &found.checksums());
        out.checksum_type = checksum_type(meta);
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
