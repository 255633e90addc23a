//! The conditions of writes as S3 requests carry them: `If-None-Match: *` and `If-Match`
//! on PutObject, CopyObject and CompleteMultipartUpload, and `If-Match` (with size and
//! last-modified variants) on DeleteObject and DeleteObjects. They become the store's
//! [`Condition`], which the store evaluates atomically (`store::conditional`).

use s3s::dto::{ETag, ETagCondition, Timestamp};

use crate::store::{Condition, EtagMatch};

/// An `If-Match` / `If-None-Match` value as the store compares it.
pub(super) fn etag_match(c: &ETagCondition) -> EtagMatch {
    match c.as_etag() {
        None => EtagMatch::Any,
        Some(ETag::Strong(value)) => EtagMatch::Strong(value.clone()),
        Some(ETag::Weak(_)) => EtagMatch::Weak,
    }
}

/// The condition of a PutObject, CopyObject or CompleteMultipartUpload: `If-Match` and
/// `If-None-Match`, each `*` or an ETag.
pub(super) fn for_write(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> Condition {
    Condition {
        if_match: if_match.map(etag_match),
        if_none_match: if_none_match.map(etag_match),
        ..Default::default()
    }
}

/// The condition of a delete (`If-Match`, `x-amz-if-match-size`,
/// `x-amz-if-match-last-modified-time`, or their DeleteObjects counterparts).
pub(super) fn for_delete(
    if_match: Option<&ETagCondition>,
    last_modified: Option<&Timestamp>,
    size: Option<i64>,
) -> Condition {
    let secs = |t: &Timestamp| time::OffsetDateTime::from(t.clone()).unix_timestamp();
    Condition {
        if_match: if_match.map(etag_match),
        if_none_match: None,
        last_modified_secs: last_modified.map(secs),
        size,
    }
}

/// DeleteObjects carries a plain ETag per key instead of a header.
pub(super) fn for_batch_delete(
    e_tag: Option<&ETag>,
    last_modified: Option<&Timestamp>,
    size: Option<i64>,
) -> Condition {
    let if_match = e_tag.map(|e| ETagCondition::ETag(e.clone()));
    for_delete(if_match.as_ref(), last_modified, size)
}
