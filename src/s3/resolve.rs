//! Which stored version a read addresses (current, or by `versionId`; delete markers
//! answer as S3 does) and whether its preconditions (`If-Match`, `If-None-Match`,
//! `If-Modified-Since`, `If-Unmodified-Since`, or a copy's `x-amz-copy-source-if-*`) hold.

use super::*;

/// Whether a read needs the object's bytes, or only what describes them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(in crate::s3) enum Need {
    Meta,
    /// The bytes too: an inline body comes with the record.
    Body,
}

/// The version a read addresses: the current one, or `version_id`. Delete markers answer
/// as S3 does: 404 NoSuchKey with `x-amz-delete-marker` when current, 405 when named.
/// With [`Need::Meta`] an inline body is left out (`Data::InlineOmitted`).
pub(in crate::s3) async fn resolve_version(
    cluster: &Cluster,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    need: Need,
) -> S3Result<(Version, ObjectMeta, Vec<usize>)> {
    if let Some(id) = version_id {
        super::super::check_version_id(id)?;
    }
    let bodies = match need {
        Need::Meta => Bodies::None,
        Need::Body => Bodies::Of(version_id.map(str::to_owned)),
    };
    // The current state, and the version asked for: cheap whatever the key's history.
    let select = Select::current_and(version_id);
    let mut read = cluster
        .read_record(bucket, key, bodies, select.clone())
        .await?;
    let pick = |r: &ObjectRecord| -> Option<Version> {
        match version_id {
            Some(id) => r.find_s3_version(id).filter(|v| !v.is_purged()),
            None => r.current(),
        }
        .cloned()
    };
    let mut found = read.record.as_ref().and_then(pick);
    // Each replica sent the body of the version *it* would serve; when the merge picked
    // one no answer carried a body for (a purge only one replica knew of), ask again for all.
    let body_missing = |v: &Option<Version>| matches!(v, Some(Version { state: VersionState::Object(m), .. }) if m.data == Data::InlineOmitted);
    if need == Need::Body && body_missing(&found) {
        read = cluster
            .read_record(bucket, key, Bodies::All, select)
            .await?;
        found = read.record.as_ref().and_then(pick);
        if body_missing(&found) {
            return Err(s3_error!(
                InternalError,
                "inline body missing from a full record read"
            ));
        }
    }
    let Some(version) = found else {
        cluster
            .existing_bucket(bucket)
            .await?
            .ok_or(Error::NoSuchBucket)?;
        return Err(match version_id {
            Some(_) => Error::NoSuchVersion.into(),
            None => Error::NoSuchKey.into(),
        });
    };
    match &version.state {
        VersionState::Object(meta) => Ok((version.clone(), meta.clone(), read.replicas)),
        _ => {
            let mut err = match version_id {
                Some(_) => S3Error::with_message(
                    S3ErrorCode::MethodNotAllowed,
                    "The specified method is not allowed against this resource.",
                ),
                None => S3Error::with_message(
                    S3ErrorCode::NoSuchKey,
                    "The specified key does not exist.",
                ),
            };
            let mut headers = http::HeaderMap::new();
            headers.insert(
                "x-amz-delete-marker",
                http::HeaderValue::from_static("true"),
            );
            if let Ok(v) = http::HeaderValue::from_str(version.s3_version_id()) {
                headers.insert("x-amz-version-id", v);
            }
            err.set_headers(headers);
            Err(err)
        }
    }
}

/// The conditional headers of a GET or HEAD (or a copy's `x-amz-copy-source-if-*`).
pub(in crate::s3) struct Preconditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
}

/// The version a GET or HEAD addresses, once its preconditions hold.
pub(in crate::s3) async fn resolve_for_read(
    cluster: &Cluster,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    need: Need,
    pre: Preconditions<'_>,
) -> S3Result<(Version, ObjectMeta, Vec<usize>)> {
    let (version, meta, replicas) = resolve_version(cluster, bucket, key, version_id, need).await?;
    check_preconditions(&meta, &version, pre)?;
    Ok((version, meta, replicas))
}

/// GET/HEAD preconditions, in the order RFC 9110 §13.2.2 and S3 evaluate them.
fn check_preconditions(
    meta: &ObjectMeta,
    version: &Version,
    pre: Preconditions<'_>,
) -> S3Result<()> {
    let Preconditions {
        if_match,
        if_none_match,
        if_modified_since,
        if_unmodified_since,
    } = pre;
    let ours = etag(&meta.etag);
    let last_modified_secs = version.stamp.ts / 1_000_000;
    let secs = |t: &Timestamp| {
        let seconds = time::OffsetDateTime::from(t.clone()).unix_timestamp();
        u64::try_from(seconds).unwrap_or(0)
    };
    let matches =
        |c: &ETagCondition| c.is_any() || c.as_etag().is_some_and(|e| e.strong_cmp(&ours));
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
        if let Ok(v) = http::HeaderValue::from_str(&format!("\"{}\"", meta.etag)) {
            headers.insert(http::header::ETAG, v);
        }
        err.set_headers(headers);
        return Err(err);
    }
    Ok(())
}

/// A body was to be served from a record read without it: a bug, not a client error.
pub(in crate::s3) fn body_not_read() -> S3Error {
    s3_error!(InternalError, "object body was not read")
}
