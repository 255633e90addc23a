//! Conditional writes: `If-None-Match: *` and `If-Match` on PutObject, CopyObject and
//! CompleteMultipartUpload, and `If-Match` (with size and last-modified variants) on
//! DeleteObject and DeleteObjects.
//!
//! A write with a condition never takes the plain write path: its new version is joined
//! into the record through the per-key compare-and-set of `quorum::cas`, which evaluates
//! the condition against a state that contains every earlier write, conditional or not. So
//! of many concurrent `If-None-Match: *` creates of one key, across gateways, exactly one
//! succeeds. The condition is always about the key's *current* version, as in S3.

use node::proto::{Lww, ObjectRecord, Select, Stamp, Version, VersionState, Versioning};
use s3s::dto::{ETag, ETagCondition, Timestamp};
use s3s::{S3Error, S3Result, s3_error};

use super::object::WriteContext;
use crate::error::Error;
use crate::integrity::etag;
use crate::quorum::{BlobStored, Cluster, Decision, Earlier, ZERO_STAMP, earlier_outcome};

/// The preconditions of one write.
#[derive(Debug, Default, Clone)]
pub(super) struct WriteCondition {
    /// `If-Match`: the current version must be an object with this ETag (`*`: any object).
    pub if_match: Option<ETagCondition>,
    /// `If-None-Match: *`: there must be no current object (a delete marker counts as none).
    pub if_none_match: bool,
    /// Delete only: the current object must have been modified at this time (seconds)...
    pub if_match_last_modified: Option<Timestamp>,
    /// ...and have this size.
    pub if_match_size: Option<i64>,
}

impl WriteCondition {
    /// The condition of a PutObject, CopyObject or CompleteMultipartUpload. S3 accepts only
    /// `*` in `If-None-Match` on writes.
    pub fn for_write(
        if_match: Option<ETagCondition>,
        if_none_match: Option<ETagCondition>,
    ) -> S3Result<Self> {
        let if_none_match = match if_none_match {
            None => false,
            Some(c) if c.is_any() => true,
            Some(_) => {
                return Err(s3_error!(
                    NotImplemented,
                    "If-None-Match on a write supports only the value *"
                ));
            }
        };
        Ok(WriteCondition {
            if_match,
            if_none_match,
            ..Default::default()
        })
    }

    /// The condition of a delete (`If-Match`, `x-amz-if-match-size`,
    /// `x-amz-if-match-last-modified-time`, or their DeleteObjects counterparts).
    pub fn for_delete(
        if_match: Option<ETagCondition>,
        last_modified: Option<Timestamp>,
        size: Option<i64>,
    ) -> Self {
        WriteCondition {
            if_match,
            if_none_match: false,
            if_match_last_modified: last_modified,
            if_match_size: size,
        }
    }

    /// DeleteObjects carries a plain ETag per key instead of a header.
    pub fn for_batch_delete(
        e_tag: Option<ETag>,
        last_modified: Option<Timestamp>,
        size: Option<i64>,
    ) -> Self {
        Self::for_delete(e_tag.map(ETagCondition::ETag), last_modified, size)
    }

    pub fn is_set(&self) -> bool {
        self.if_match.is_some()
            || self.if_none_match
            || self.if_match_last_modified.is_some()
            || self.if_match_size.is_some()
    }

    /// Checks the condition against the key's record as it stands.
    pub fn check(&self, record: &ObjectRecord) -> S3Result<()> {
        self.check_current(Current::of(record).as_ref())
    }

    /// Checks the condition against the key's current object (`None`: there is none).
    pub fn check_current(&self, current: Option<&Current>) -> S3Result<()> {
        if self.if_none_match && current.is_some() {
            return Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold: the key exists"
            ));
        }
        let needs_object = self.if_match.is_some()
            || self.if_match_last_modified.is_some()
            || self.if_match_size.is_some();
        if !needs_object {
            return Ok(());
        }
        let Some(current) = current else {
            return Err(Error::NoSuchKey.into());
        };
        let ours = etag(&current.etag);
        let etag_ok = match &self.if_match {
            None => true,
            Some(c) => c.is_any() || c.as_etag().is_some_and(|e| e.strong_cmp(&ours)),
        };
        let secs = |t: &Timestamp| time::OffsetDateTime::from(t.clone()).unix_timestamp();
        let modified_ok = self
            .if_match_last_modified
            .as_ref()
            .is_none_or(|t| secs(t) == (current.ts / 1_000_000) as i64);
        let size_ok = self
            .if_match_size
            .is_none_or(|s| u64::try_from(s).is_ok_and(|s| s == current.size));
        if etag_ok && modified_ok && size_ok {
            Ok(())
        } else {
            Err(s3_error!(PreconditionFailed))
        }
    }
}

/// What a condition looks at of a key's current object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Current {
    pub ts: u64,
    pub size: u64,
    pub etag: String,
}

impl Current {
    pub fn of(record: &ObjectRecord) -> Option<Current> {
        record.current_object().map(|(v, meta)| Current {
            ts: v.stamp.ts,
            size: meta.size,
            etag: meta.etag.clone(),
        })
    }
}

/// What a conditional write committed: its version as stored, and the write context it
/// replaced (for freeing a replaced null version's blobs).
pub(super) struct Committed {
    pub version: Version,
    pub ctx: WriteContext,
}

/// Writes a new version in `state` (with `write`'s tags) under `condition`, atomically
/// with respect to every other write of the key. `stored` is the blob upload the version
/// refers to, and `blobs` every blob it refers to: when the write is refused (or lost
/// without ever being proposed) they are freed; when its outcome is unknown they are left
/// alone.
#[allow(clippy::too_many_arguments)]
pub(super) async fn commit_if(
    cluster: &Cluster,
    bucket: &str,
    key: &str,
    write: &WriteContext,
    state: VersionState,
    condition: &WriteCondition,
    stored: Option<BlobStored>,
) -> S3Result<Committed> {
    // A refusal may rest on any committed state read at a quorum: the write context's read
    // (made when the request began, and durable before it answered) already shows a
    // failing condition often, and then no agreement round is needed. A success always
    // goes through the compare-and-set.
    condition.check_current(write.current.as_ref())?;
    let versioning = write.versioning;
    let null = versioning != Some(Versioning::Enabled);
    // Every version this request proposed (one per round that applied it), with the view
    // it was applied to; and what the last round decided (the request's version, if the
    // round committed).
    let mut mine: Vec<(Version, ObjectRecord)> = Vec::new();
    let mut chosen: Option<(Version, ObjectRecord)> = None;
    let result = cluster
        .compare_and_set::<S3Error>(
            bucket,
            key,
            stored,
            Select::CURRENT,
            |view, stamp, proposed| {
                if proposed {
                    let versions: Vec<Version> = mine.iter().map(|(v, _)| v.clone()).collect();
                    match earlier_outcome(view, &versions) {
                        Earlier::Applied(i) => {
                            chosen = Some(mine[i].clone());
                            return Decision::AlreadyApplied;
                        }
                        Earlier::Unknown => return Decision::Refuse(outcome_unknown()),
                        Earlier::NotApplied => {}
                    }
                }
                if let Err(e) = condition.check(view) {
                    return Decision::Refuse(e);
                }
                // A new object version starts with the write's tags, stamped like the version.
                let tags = match (&state, &write.tags) {
                    (VersionState::Object(_), Some(value)) => Some(Lww {
                        stamp: stamp.clone(),
                        value: value.clone(),
                    }),
                    _ => None,
                };
                let version = Version {
                    stamp: stamp.clone(),
                    null,
                    state: state.clone(),
                    tags,
                    follows: Some(view.newest_stamp().cloned().unwrap_or(ZERO_STAMP)),
                };
                mine.push((version.clone(), view.clone()));
                chosen = Some((version.clone(), view.clone()));
                Decision::Apply(ObjectRecord::single(version))
            },
        )
        .await;
    result?;
    let Some((version, before)) = chosen else {
        return Err(s3_error!(
            InternalError,
            "conditional write committed without its version"
        ));
    };
    let abandoned = mine.iter().map(|(v, _)| v.stamp.clone());
    cluster.purge_abandoned(bucket, key, &version, abandoned.collect());
    let ctx = WriteContext::new(versioning, Some(&before));
    Ok(Committed { version, ctx })
}

fn outcome_unknown() -> S3Error {
    Error::Contention {
        outcome_unknown: true,
    }
    .into()
}

/// Permanently deletes version `version_id` (S3's id, `null` included) under `condition`.
/// Returns the purged version, `None` if there was no such version.
pub(super) async fn purge_if(
    cluster: &Cluster,
    bucket: &str,
    key: &str,
    version_id: &str,
    condition: &WriteCondition,
) -> S3Result<Option<Version>> {
    let mut target: Option<Version> = None;
    change_if(
        cluster,
        bucket,
        key,
        condition,
        Select::current_and(Some(version_id)),
        |view, _| {
            target = view.find_s3_version(version_id).cloned();
            match &target {
                Some(v) if v.is_purged() => None,
                Some(v) => Some(ObjectRecord::single(Version {
                    stamp: v.stamp.clone(),
                    null: v.null,
                    state: VersionState::Purged,
                    tags: None,
                    follows: None,
                })),
                // Nothing to delete; the condition is still checked atomically.
                None => Some(ObjectRecord::default()),
            }
        },
    )
    .await?;
    Ok(target)
}

/// The compare-and-set shared by conditional writes: `change` gives what to join into the
/// view, or `None` when this request's change is already part of it. Returns the committed
/// record and the view the change was applied to.
async fn change_if(
    cluster: &Cluster,
    bucket: &str,
    key: &str,
    condition: &WriteCondition,
    select: Select,
    mut change: impl FnMut(&ObjectRecord, &Stamp) -> Option<ObjectRecord>,
) -> S3Result<(ObjectRecord, ObjectRecord)> {
    let mut before = ObjectRecord::default();
    let result = cluster
        .compare_and_set::<S3Error>(bucket, key, None, select, |view, stamp, _| {
            let Some(c) = change(view, stamp) else {
                return Decision::AlreadyApplied;
            };
            if let Err(e) = condition.check(view) {
                return Decision::Refuse(e);
            }
            before = view.clone();
            Decision::Apply(c)
        })
        .await;
    result.map(|committed| (committed, before))
}
