//! Conditional writes: a new version (object or delete marker) or a purge that happens
//! only if a condition on the key's *current* version holds, as S3's `If-Match`,
//! `If-None-Match: *` and the delete variants (size, last-modified time) ask.
//!
//! A write with a condition never takes the plain write path: its change is joined into
//! the record through the per-key compare-and-set of `quorum::cas`, which evaluates the
//! condition against a state that contains every earlier write, conditional or not. So of
//! many concurrent `If-None-Match: *` creates of one key, across gateways, exactly one
//! succeeds.

use node::proto::{ObjectRecord, Select, Stamp, Version, VersionState};

use super::Store;
use super::context::{Current, WriteContext};
use crate::error::Error;
use crate::quorum::{BlobStored, Decision, Earlier, ZERO_STAMP, earlier_outcome};

/// An ETag a condition names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtagMatch {
    /// `*`: any object.
    Any,
    /// A strong ETag, without its quotes.
    Strong(String),
    /// A weak ETag: never equal to a stored one under the strong comparison S3 uses.
    Weak,
}

impl EtagMatch {
    pub fn matches(&self, etag: &str) -> bool {
        match self {
            EtagMatch::Any => true,
            EtagMatch::Strong(e) => e == etag,
            EtagMatch::Weak => false,
        }
    }
}

/// The preconditions of one write.
#[derive(Debug, Default, Clone)]
pub struct Condition {
    /// The current version must be an object with this ETag.
    pub if_match: Option<EtagMatch>,
    /// The current version must not be an object with this ETag (`Any`: there must be no
    /// current object; a delete marker counts as none).
    pub if_none_match: Option<EtagMatch>,
    /// The current object must have been modified at this time (Unix seconds)...
    pub last_modified_secs: Option<i64>,
    /// ...and have this size.
    pub size: Option<i64>,
}

impl Condition {
    pub fn is_set(&self) -> bool {
        self.if_match.is_some()
            || self.if_none_match.is_some()
            || self.last_modified_secs.is_some()
            || self.size.is_some()
    }

    /// Checks the condition against the key's record as it stands.
    fn check(&self, record: &ObjectRecord) -> Result<(), Error> {
        self.check_current(Current::of(record).as_ref())
    }

    /// Checks the condition against the key's current object (`None`: there is none).
    fn check_current(&self, current: Option<&Current>) -> Result<(), Error> {
        if let (Some(m), Some(current)) = (&self.if_none_match, current)
            && m.matches(&current.etag)
        {
            return Err(Error::PreconditionFailed("the key exists with that ETag"));
        }
        let needs_object =
            self.if_match.is_some() || self.last_modified_secs.is_some() || self.size.is_some();
        if !needs_object {
            return Ok(());
        }
        let Some(current) = current else {
            return Err(Error::NoSuchKey);
        };
        let etag_ok = self
            .if_match
            .as_ref()
            .is_none_or(|m| m.matches(&current.etag));
        let modified_ok = self
            .last_modified_secs
            .is_none_or(|t| t == (current.ts / 1_000_000) as i64);
        let size_ok = self
            .size
            .is_none_or(|s| u64::try_from(s).is_ok_and(|s| s == current.size));
        if etag_ok && modified_ok && size_ok {
            Ok(())
        } else {
            Err(Error::PreconditionFailed("the current object differs"))
        }
    }
}

impl Store {
    /// Writes a new version in `state` (with `write`'s tags) under `condition`, atomically
    /// with respect to every other write of the key. `stored` is the blob upload the
    /// version refers to. Returns the version as committed.
    pub(super) async fn commit_if(
        &self,
        bucket: &str,
        key: &str,
        write: &WriteContext,
        state: VersionState,
        condition: &Condition,
        stored: Option<BlobStored>,
    ) -> Result<Version, Error> {
        // A refusal may rest on any committed state read at a quorum: the write context's
        // read (made when the request began, and durable before it answered) already shows
        // a failing condition often, and then no agreement round is needed. A success
        // always goes through the compare-and-set.
        condition.check_current(write.current.as_ref())?;
        // Every version this request proposed (one per round that applied it); and what
        // the last round decided (the request's version, if the round committed).
        let mut mine: Vec<Version> = Vec::new();
        let mut chosen: Option<Version> = None;
        self.cluster()
            .compare_and_set::<Error>(
                bucket,
                key,
                stored,
                Select::CURRENT,
                |view, stamp, proposed| {
                    if proposed {
                        match earlier_outcome(view, &mine) {
                            Earlier::Applied(i) => {
                                chosen = Some(mine[i].clone());
                                return Decision::AlreadyApplied;
                            }
                            Earlier::Unknown => {
                                return Decision::Refuse(Error::Contention {
                                    outcome_unknown: true,
                                });
                            }
                            Earlier::NotApplied => {}
                        }
                    }
                    if let Err(e) = condition.check(view) {
                        return Decision::Refuse(e);
                    }
                    let follows = view.newest_stamp().cloned().unwrap_or(ZERO_STAMP);
                    let version = write.version(stamp.clone(), state.clone(), Some(follows));
                    mine.push(version.clone());
                    chosen = Some(version.clone());
                    Decision::Apply(ObjectRecord::single(version))
                },
            )
            .await?;
        let version = chosen.ok_or_else(|| {
            Error::Internal("conditional write committed without its version".into())
        })?;
        let abandoned = mine.iter().map(|v| v.stamp.clone()).collect();
        self.cluster()
            .purge_abandoned(bucket, key, &version, abandoned);
        Ok(version)
    }

    /// Permanently deletes version `version_id` (S3's id, `null` included) under
    /// `condition`. Returns the purged version, `None` if there was no such version.
    pub(super) async fn purge_if(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        condition: &Condition,
    ) -> Result<Option<Version>, Error> {
        let mut target: Option<Version> = None;
        let select = Select::current_and(Some(version_id));
        self.change_if(bucket, key, condition, select, |view, _| {
            target = view.find_s3_version(version_id).cloned();
            match &target {
                Some(v) if v.is_purged() => None,
                Some(v) => Some(ObjectRecord::single(v.tombstone())),
                // Nothing to delete; the condition is still checked atomically.
                None => Some(ObjectRecord::default()),
            }
        })
        .await?;
        Ok(target)
    }

    /// The compare-and-set shared by conditional changes that are not new versions:
    /// `change` gives what to join into the view, or `None` when this request's change is
    /// already part of it. Returns the committed record.
    async fn change_if(
        &self,
        bucket: &str,
        key: &str,
        condition: &Condition,
        select: Select,
        mut change: impl FnMut(&ObjectRecord, &Stamp) -> Option<ObjectRecord>,
    ) -> Result<ObjectRecord, Error> {
        self.cluster()
            .compare_and_set::<Error>(bucket, key, None, select, |view, stamp, _| {
                let Some(c) = change(view, stamp) else {
                    return Decision::AlreadyApplied;
                };
                if let Err(e) = condition.check(view) {
                    return Decision::Refuse(e);
                }
                Decision::Apply(c)
            })
            .await
    }
}
