//! Object and bucket tagging: Put/Get/DeleteObjectTagging, Put/Get/DeleteBucketTagging,
//! and the `x-amz-tagging` header of writes.
//!
//! How tags are stored and replicated is the store's (`store::tags`); bucket tags are a
//! register in the bucket record.
//!
//! Validation follows S3: at most 10 tags per object (50 per bucket), keys of 1 to 128 and
//! values of at most 256 characters, unique keys, no `aws:` prefix; otherwise `InvalidTag`.

use node::proto::{BucketRecord, Lww, Tags};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::resolve::resolve_version;
use super::{Gateway, check_key};
use crate::store::Need;

const MAX_OBJECT_TAGS: usize = 10;
const MAX_BUCKET_TAGS: usize = 50;
const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_CHARS: usize = 256;

/// Checks a tag set as S3 does and returns it as a map.
fn validate<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    max_tags: usize,
) -> S3Result<Tags> {
    let mut tags = Tags::new();
    for (key, value) in pairs {
        if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
            return Err(s3_error!(
                InvalidTag,
                "The TagKey you have provided is invalid: it must be 1 to {MAX_KEY_CHARS} characters"
            ));
        }
        if value.chars().count() > MAX_VALUE_CHARS {
            return Err(s3_error!(
                InvalidTag,
                "The TagValue you have provided is too long, max {MAX_VALUE_CHARS}"
            ));
        }
        if key.starts_with("aws:") {
            return Err(s3_error!(
                InvalidTag,
                "Your TagKey cannot be prefixed with aws:"
            ));
        }
        if tags.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(s3_error!(
                InvalidTag,
                "Cannot provide multiple Tags with the same key"
            ));
        }
    }
    if tags.len() > max_tags {
        return Err(s3_error!(
            InvalidTag,
            "Object tags cannot be greater than {max_tags}"
        ));
    }
    Ok(tags)
}

fn from_tagging(tagging: &Tagging, max_tags: usize) -> S3Result<Tags> {
    validate(
        tagging.tag_set.iter().map(|t| {
            (
                t.key.as_deref().unwrap_or_default(),
                t.value.as_deref().unwrap_or_default(),
            )
        }),
        max_tags,
    )
}

fn to_tag_set(tags: &Tags) -> TagSet {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

/// Parses the `x-amz-tagging` header (URL query encoding: `k1=v1&k2=v2`); `None` when
/// absent or empty.
pub(super) fn from_header(header: Option<&str>) -> S3Result<Option<Tags>> {
    let Some(header) = header.filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let decode = |s: &str| -> S3Result<String> {
        let s = s.replace('+', " ");
        percent_encoding::percent_decode_str(&s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| s3_error!(InvalidArgument, "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates."))
    };
    let mut pairs = Vec::new();
    for item in header.split('&').filter(|i| !i.is_empty()) {
        let (k, v) = item.split_once('=').unwrap_or((item, ""));
        pairs.push((decode(k)?, decode(v)?));
    }
    let tags = validate(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        MAX_OBJECT_TAGS,
    )?;
    Ok(Some(tags))
}

/// `x-amz-tagging-directive`: whether a copy takes the request's tags (REPLACE) or the
/// source's (COPY, the default).
pub(super) fn replaces(directive: Option<&TaggingDirective>) -> S3Result<bool> {
    match directive.map(|d| d.as_str()) {
        None => Ok(false),
        Some(d) if d.eq_ignore_ascii_case("COPY") => Ok(false),
        Some(d) if d.eq_ignore_ascii_case("REPLACE") => Ok(true),
        Some(d) => Err(s3_error!(InvalidArgument, "Unknown tagging directive: {d}")),
    }
}

pub(super) async fn put_object_tagging(
    gw: &Gateway,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let input = req.input;
    check_key(&input.key)?;
    let tags = from_tagging(&input.tagging, MAX_OBJECT_TAGS)?;
    let found = resolve_version(
        &gw.store,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        Need::Body,
    )
    .await?;
    let version_id = found.version_id();
    gw.store.set_tags(found, tags).await?;
    Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
}

pub(super) async fn get_object_tagging(
    gw: &Gateway,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let input = req.input;
    check_key(&input.key)?;
    let found = resolve_version(
        &gw.store,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        Need::Meta,
    )
    .await?;
    Ok(S3Response::new(GetObjectTaggingOutput {
        tag_set: to_tag_set(&found.version.tag_set()),
        version_id: found.version_id(),
    }))
}

pub(super) async fn delete_object_tagging(
    gw: &Gateway,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let input = req.input;
    check_key(&input.key)?;
    let found = resolve_version(
        &gw.store,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        Need::Body,
    )
    .await?;
    let version_id = found.version_id();
    if found.version.tags.is_some() {
        gw.store.set_tags(found, Tags::new()).await?;
    }
    Ok(S3Response::new(DeleteObjectTaggingOutput { version_id }))
}

pub(super) async fn put_bucket_tagging(
    gw: &Gateway,
    req: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let input = req.input;
    let tags = from_tagging(&input.tagging, MAX_BUCKET_TAGS)?;
    let set = |b: &mut BucketRecord, stamp| b.tags = Some(Lww { stamp, value: tags });
    gw.store.update_bucket(&input.bucket, set).await?;
    Ok(S3Response::new(PutBucketTaggingOutput::default()))
}

pub(super) async fn get_bucket_tagging(
    gw: &Gateway,
    req: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    let record = gw.store.bucket(&req.input.bucket).await?;
    match record.live(&record.tags).filter(|t| !t.is_empty()) {
        Some(tags) => Ok(S3Response::new(GetBucketTaggingOutput {
            tag_set: to_tag_set(tags),
        })),
        None => Err(s3_error!(NoSuchTagSet, "The TagSet does not exist")),
    }
}

pub(super) async fn delete_bucket_tagging(
    gw: &Gateway,
    req: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    let set = |b: &mut BucketRecord, stamp| {
        b.tags = Some(Lww {
            stamp,
            value: Tags::new(),
        })
    };
    gw.store.update_bucket(&req.input.bucket, set).await?;
    Ok(S3Response::new(DeleteBucketTaggingOutput::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_decodes_url_query_encoding() {
        let tags = from_header(Some("a=1&b%20c=x+y&empty=&d=%C3%A9"))
            .expect("valid")
            .expect("some");
        assert_eq!(tags.get("a").map(String::as_str), Some("1"));
        assert_eq!(tags.get("b c").map(String::as_str), Some("x y"));
        assert_eq!(tags.get("empty").map(String::as_str), Some(""));
        assert_eq!(tags.get("d").map(String::as_str), Some("é"));
        assert_eq!(from_header(Some("")).expect("empty"), None);
        assert_eq!(from_header(None).expect("absent"), None);
    }

    #[test]
    fn invalid_tag_sets_are_refused() {
        let code = |h: &str| from_header(Some(h)).expect_err("invalid").code().clone();
        let eleven: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
        assert_eq!(code(&eleven.join("&")), s3s::S3ErrorCode::InvalidTag);
        assert_eq!(code("a=1&a=2"), s3s::S3ErrorCode::InvalidTag);
        assert_eq!(
            code(&format!("{}=v", "k".repeat(129))),
            s3s::S3ErrorCode::InvalidTag
        );
        assert_eq!(
            code(&format!("k={}", "v".repeat(257))),
            s3s::S3ErrorCode::InvalidTag
        );
        assert_eq!(code("aws:x=1"), s3s::S3ErrorCode::InvalidTag);
        // Limits count characters, not bytes.
        assert!(from_header(Some(&format!("k={}", "é".repeat(256)))).is_ok());
    }
}
