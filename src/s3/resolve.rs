//! Which stored version a read addresses (current, or by `versionId`) and whether its
//! preconditions (`If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`,
//! or a copy's `x-amz-copy-source-if-*`) hold. Every handler that reads a version goes
//! through [`resolve_version`], so version ids are checked in one place.

use s3s::dto::{ETagCondition, Timestamp};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

use super::check_version_id;
use crate::access::PublicOnly;
use crate::store::{Found, Need, Store};

/// The version a request addresses: the current one, or `version_id`. Delete markers
/// answer as S3 does: 404 NoSuchKey with `x-amz-delete-marker` when current, 405 when
/// named. With [`Need::Meta`] an inline body is left out.
pub(super) async fn resolve_version(
    store: &Store,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    need: Need,
) -> S3Result<Found> {
    if let Some(id) = version_id {
        check_version_id(id)?;
    }
    Ok(store.read_version(bucket, key, version_id, need).await?)
}

/// The conditional headers of a GET or HEAD (or a copy's `x-amz-copy-source-if-*`).
#[derive(Default)]
pub(super) struct Preconditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
}

/// Who reads a version: a caller with read access to the bucket, or one that may read
/// only versions whose ACL is `public-read` (see [`crate::access::PublicOnly`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reader {
    Granted,
    PublicOnly,
}

impl Reader {
    /// Who reads the object a request names.
    pub fn of_target(extensions: &http::Extensions) -> Reader {
        Reader::when(extensions.get::<PublicOnly>().is_some_and(|p| p.target))
    }

    /// Who reads the source object of a copy.
    pub fn of_source(extensions: &http::Extensions) -> Reader {
        Reader::when(extensions.get::<PublicOnly>().is_some_and(|p| p.source))
    }

    fn when(public_only: bool) -> Reader {
        if public_only {
            Reader::PublicOnly
        } else {
            Reader::Granted
        }
    }
}

/// The version a GET or HEAD addresses, once its preconditions hold. A reader of public
/// versions only learns nothing else: a version that is missing, a delete marker or not
/// public is 403 AccessDenied to it, before any precondition is looked at.
pub(super) async fn resolve_for_read(
    store: &Store,
    (bucket, key, version_id): (&str, &str, Option<&str>),
    need: Need,
    pre: Preconditions<'_>,
    reader: Reader,
) -> S3Result<Found> {
    let found = resolve_version(store, bucket, key, version_id, need).await;
    let found = match (found, reader) {
        (Ok(f), Reader::PublicOnly) if !f.version.is_public_read() => return Err(denied()),
        (Err(e), Reader::PublicOnly) if hides_existence(&e) => return Err(denied()),
        (found, _) => found?,
    };
    check_preconditions(&found, pre)?;
    Ok(found)
}

fn denied() -> S3Error {
    S3Error::with_message(S3ErrorCode::AccessDenied, "Access Denied")
}

/// Whether an error tells about the key's versions (absent, deleted) rather than the
/// request or the store.
fn hides_existence(e: &S3Error) -> bool {
    matches!(
        e.code(),
        S3ErrorCode::NoSuchKey | S3ErrorCode::NoSuchVersion | S3ErrorCode::MethodNotAllowed
    )
}

/// GET/HEAD preconditions, in the order RFC 9110 §13.2.2 and S3 evaluate them.
fn check_preconditions(found: &Found, pre: Preconditions<'_>) -> S3Result<()> {
    let Preconditions {
        if_match,
        if_none_match,
        if_modified_since,
        if_unmodified_since,
    } = pre;
    let stored = &found.meta.etag;
    let last_modified_secs = found.version.stamp.ts / 1_000_000;
    let secs = |t: &Timestamp| {
        let seconds = time::OffsetDateTime::from(t.clone()).unix_timestamp();
        u64::try_from(seconds).unwrap_or(0)
    };
    let matches = |c: &ETagCondition| super::conditional::etag_match(c).matches(stored);
    match if_match {
        Some(c) if !matches(c) => return Err(s3_error!(PreconditionFailed)),
        None if if_unmodified_since.is_some_and(|t| last_modified_secs > secs(t)) => {
            return Err(s3_error!(PreconditionFailed));
        }
        _ => {}
    }
    let not_modified = match if_none_match {
        Some(c) => matches(c),
        None => if_modified_since.is_some_and(|t| last_modified_secs <= secs(t)),
    };
    if not_modified {
        let mut err = S3Error::new(S3ErrorCode::NotModified);
        let mut headers = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&format!("\"{stored}\"")) {
            headers.insert(http::header::ETAG, v);
        }
        err.set_headers(headers);
        return Err(err);
    }
    Ok(())
}
