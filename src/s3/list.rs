//! ListObjects (V1, which rclone uses) and ListObjectsV2 over one merged listing.
//!
//! `encoding-type=url` is applied here (s3s does not): when a client asks for it, every key
//! and prefix in the answer is percent-encoded and the encoding type is echoed, which is
//! what botocore needs to decode them; otherwise control characters are escaped. Continuation tokens are the base64 of the last key
//! or common prefix returned.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::dto::{continuation_token, continue_after, owner, timestamp};
use crate::integrity::etag;
use crate::store::Listing;
use crate::xml_escape::Escapes;

/// S3 never returns more than 1000 keys per page.
const MAX_KEYS: usize = 1000;

/// Unreserved characters and `/` stay as they are, as in S3's own url encoding.
const KEY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// How keys and echoed strings go into a listing: percent-encoded when the client asked
/// for `encoding-type=url`, else with control characters escaped (see `xml_escape`).
pub(super) struct Encoder {
    url: bool,
    escapes: Option<Escapes>,
}

impl Encoder {
    pub(super) fn new(
        encoding_type: Option<&EncodingType>,
        extensions: &http::Extensions,
    ) -> S3Result<Self> {
        let escapes = Escapes::of(extensions).cloned();
        match encoding_type.map(|e| e.as_str()) {
            None => Ok(Encoder {
                url: false,
                escapes,
            }),
            Some(e) if e.eq_ignore_ascii_case("url") => Ok(Encoder { url: true, escapes }),
            Some(other) => Err(s3_error!(
                InvalidArgument,
                "Invalid Encoding Method specified in Request: {other}"
            )),
        }
    }

    pub(super) fn apply(&self, s: String) -> String {
        if self.url {
            utf8_percent_encode(&s, KEY_ENCODE).to_string()
        } else if let Some(e) = &self.escapes {
            e.text(s)
        } else {
            s
        }
    }

    pub(super) fn echo(&self) -> Option<EncodingType> {
        self.url
            .then(|| EncodingType::from_static(EncodingType::URL))
    }
}

/// The `Delimiter` a listing echoes: none for an empty one, which S3 treats as absent.
pub(super) fn echoed_delimiter(delimiter: Option<String>, enc: &Encoder) -> Option<String> {
    delimiter.filter(|d| !d.is_empty()).map(|d| enc.apply(d))
}

pub(super) fn max_keys(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        None => Ok(MAX_KEYS),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok((n as usize).min(MAX_KEYS)),
    }
}

async fn list(
    gw: &Gateway,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    after: &str,
    max_keys: usize,
) -> S3Result<Listing> {
    let (exists, listing) = tokio::join!(
        gw.store.bucket(bucket),
        gw.store.list_objects(
            bucket,
            prefix,
            delimiter.filter(|d| !d.is_empty()),
            after,
            max_keys
        )
    );
    exists?;
    Ok(listing?)
}

fn contents(listing: &mut Listing, enc: &Encoder) -> (Vec<Object>, Vec<CommonPrefix>) {
    let objects = std::mem::take(&mut listing.objects)
        .into_iter()
        .map(|o| Object {
            key: Some(enc.apply(o.key)),
            e_tag: Some(etag(&o.version.etag)),
            size: Some(o.version.size as i64),
            last_modified: Some(timestamp(o.version.stamp.ts)),
            storage_class: Some(ObjectStorageClass::from_static(
                ObjectStorageClass::STANDARD,
            )),
            owner: Some(owner()),
            ..Default::default()
        })
        .collect();
    let prefixes = std::mem::take(&mut listing.common_prefixes)
        .into_iter()
        .map(|p| CommonPrefix {
            prefix: Some(enc.apply(p)),
        })
        .collect();
    (objects, prefixes)
}

pub(super) async fn list_objects(
    gw: &Gateway,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = req.input;
    let enc = Encoder::new(input.encoding_type.as_ref(), &req.extensions)?;
    let max = max_keys(input.max_keys)?;
    let prefix = input.prefix.unwrap_or_default();
    let marker = input.marker.unwrap_or_default();
    let mut listing = list(
        gw,
        &input.bucket,
        &prefix,
        input.delimiter.as_deref(),
        &marker,
        max,
    )
    .await?;
    let (objects, prefixes) = contents(&mut listing, &enc);
    // V1 returns NextMarker only with a delimiter; clients use the last key otherwise.
    let next_marker = (listing.truncated
        && input.delimiter.as_ref().is_some_and(|d| !d.is_empty()))
    .then(|| listing.next_marker.clone().map(|m| enc.apply(m)))
    .flatten();
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        prefix: Some(enc.apply(prefix)),
        marker: Some(enc.apply(marker)),
        max_keys: Some(max as i32),
        is_truncated: Some(listing.truncated),
        contents: Some(objects),
        common_prefixes: Some(prefixes),
        delimiter: echoed_delimiter(input.delimiter, &enc),
        next_marker,
        encoding_type: enc.echo(),
        ..Default::default()
    }))
}

pub(super) async fn list_objects_v2(
    gw: &Gateway,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = req.input;
    let enc = Encoder::new(input.encoding_type.as_ref(), &req.extensions)?;
    let max = max_keys(input.max_keys)?;
    let prefix = input.prefix.unwrap_or_default();
    let after = match &input.continuation_token {
        Some(token) => continue_after(token)?,
        None => input.start_after.clone().unwrap_or_default(),
    };
    let mut listing = list(
        gw,
        &input.bucket,
        &prefix,
        input.delimiter.as_deref(),
        &after,
        max,
    )
    .await?;
    let (objects, prefixes) = contents(&mut listing, &enc);
    let key_count = (objects.len() + prefixes.len()) as i32;
    let next_continuation_token = listing
        .truncated
        .then(|| listing.next_marker.as_ref().map(|m| continuation_token(m)))
        .flatten();
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(enc.apply(prefix)),
        max_keys: Some(max as i32),
        key_count: Some(key_count),
        continuation_token: input.continuation_token,
        is_truncated: Some(listing.truncated),
        next_continuation_token,
        contents: Some(objects),
        common_prefixes: Some(prefixes),
        delimiter: echoed_delimiter(input.delimiter, &enc),
        encoding_type: enc.echo(),
        start_after: input.start_after.map(|s| enc.apply(s)),
        ..Default::default()
    }))
}
