//! Compact list answers (`GET /list/{bucket}?summary=1`): per key, each version's stamp,
//! `null` flag, state, size and ETag, which is all that ListObjects, ListObjectVersions,
//! ListMultipartUploads and DeleteBucket's emptiness check look at. Bodies, headers, user
//! metadata and checksums stay on the node.
//!
//! Invariants: the JSON field names are those of [`ListPage`], [`ObjectRecord`] and
//! [`Version`], so a [`RecordSummary`] decodes straight from a stored or sent full record
//! (the rest is skipped, never buffered) and a [`SummaryPage`] from a full [`ListPage`]: a
//! node that ignores `summary=1` still gives a usable answer. [`RecordSummary::merge`] and
//! [`ObjectRecord::merge`] are the same function ([`merge_versions`]), so the summary of a
//! merge is the merge of the summaries and a gateway may merge summaries instead of records.
//!
//! [`ListPage`]: super::ListPage

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ObjectRecord, Stamp, Version, VersionState};

/// What merging looks at in a version.
pub(crate) trait Versioned: Clone {
    fn stamp(&self) -> &Stamp;
    fn is_null(&self) -> bool;
    fn is_purged(&self) -> bool;
    /// Joins the mutable parts of another copy of the same live version into this one.
    fn absorb(&mut self, _other: &Self) {}
    /// What a merged version keeps (a tombstone keeps nothing mutable).
    fn normalized(self) -> Self {
        self
    }
    /// Whether [`Versioned::normalized`] would leave this version as it is.
    fn is_normalized(&self) -> bool {
        true
    }
}

impl Versioned for Version {
    fn stamp(&self) -> &Stamp {
        &self.stamp
    }
    fn is_null(&self) -> bool {
        self.null
    }
    fn is_purged(&self) -> bool {
        Version::is_purged(self)
    }
    /// Two copies of a live version keep the newer tag set and ACL, and an inline body one
    /// of them was read without.
    fn absorb(&mut self, other: &Self) {
        super::merge_opt(&mut self.tags, &other.tags);
        super::merge_opt(&mut self.acl, &other.acl);
        if let (VersionState::Object(mine), VersionState::Object(theirs)) =
            (&mut self.state, &other.state)
            && mine.data == super::Data::InlineOmitted
            && matches!(theirs.data, super::Data::Inline { .. })
        {
            mine.data = theirs.data.clone();
        }
    }
    /// A purge tombstone drops the version's tags and ACL.
    fn normalized(mut self) -> Self {
        if self.is_purged() {
            self.tags = None;
            self.acl = None;
        }
        self
    }
    fn is_normalized(&self) -> bool {
        !(self.is_purged() && (self.tags.is_some() || self.acl.is_some()))
    }
}

impl Versioned for VersionSummary {
    fn stamp(&self) -> &Stamp {
        &self.stamp
    }
    fn is_null(&self) -> bool {
        self.null
    }
    fn is_purged(&self) -> bool {
        VersionSummary::is_purged(self)
    }
}

/// The union of two version lists by stamp, where a purge tombstone wins over the version it
/// deletes and two copies of a live version join their mutable parts (tags), then null
/// versions older than the newest null version dropped; sorted by stamp. The join of a
/// semilattice (commutative, associative, idempotent).
pub(super) fn merge_versions<V: Versioned>(mine: &[V], theirs: &[V]) -> Vec<V> {
    let mut by_stamp: BTreeMap<&Stamp, V> = BTreeMap::new();
    for v in mine.iter().chain(theirs.iter()) {
        match by_stamp.get_mut(v.stamp()) {
            None => {
                by_stamp.insert(v.stamp(), v.clone());
            }
            Some(kept) if kept.is_purged() => {}
            Some(kept) if v.is_purged() => *kept = v.clone(),
            Some(kept) => kept.absorb(v),
        }
    }
    let newest_null = by_stamp
        .values()
        .filter(|v| v.is_null())
        .map(|v| v.stamp())
        .max()
        .cloned();
    by_stamp
        .into_values()
        .filter(|v| !v.is_null() || Some(v.stamp()) == newest_null.as_ref())
        .map(Versioned::normalized)
        .collect()
}

/// True when `versions` is what [`merge_versions`] makes of it alone: strictly ascending
/// stamps (so no duplicates), at most one null version, every version normalized.
fn is_normal<V: Versioned>(versions: &[V]) -> bool {
    versions.windows(2).all(|w| w[0].stamp() < w[1].stamp())
        && versions.iter().filter(|v| v.is_null()).count() <= 1
        && versions.iter().all(Versioned::is_normalized)
}

/// The join of `mine` and `theirs` into `mine`. Replicas' copies usually agree, so the
/// join's laws give two shortcuts without building anything: a normal list joined with
/// itself is itself (idempotence), and the empty list joined with a normal list is that
/// list.
pub(super) fn merge_into<V: Versioned + PartialEq>(mine: &mut Vec<V>, theirs: &[V]) {
    if is_normal(theirs) {
        if mine.is_empty() {
            mine.extend_from_slice(theirs);
            return;
        }
        if mine == theirs {
            return;
        }
    }
    *mine = merge_versions(mine, theirs);
}

/// The kind of a summarised version (the `state` tag of [`VersionState`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SummaryState {
    Object,
    DeleteMarker,
    Purged,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One version without its body and metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionSummary {
    pub stamp: Stamp,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub null: bool,
    pub state: SummaryState,
    /// Object size (0 for markers and tombstones).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    /// The S3 ETag without quotes (empty for markers and tombstones).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub etag: String,
}

impl VersionSummary {
    /// The version id S3 clients see.
    pub fn s3_version_id(&self) -> &str {
        if self.null { "null" } else { &self.stamp.id }
    }

    pub fn is_purged(&self) -> bool {
        self.state == SummaryState::Purged
    }
}

impl From<&Version> for VersionSummary {
    fn from(v: &Version) -> Self {
        let (state, size, etag) = match &v.state {
            VersionState::Object(meta) => (SummaryState::Object, meta.size, meta.etag.clone()),
            VersionState::DeleteMarker => (SummaryState::DeleteMarker, 0, String::new()),
            VersionState::Purged => (SummaryState::Purged, 0, String::new()),
        };
        VersionSummary {
            stamp: v.stamp.clone(),
            null: v.null,
            state,
            size,
            etag,
        }
    }
}

/// Every version of one key, oldest first, summarised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordSummary {
    pub versions: Vec<VersionSummary>,
}

impl RecordSummary {
    /// The same join as [`ObjectRecord::merge`].
    pub fn merge(&mut self, other: &RecordSummary) {
        merge_into(&mut self.versions, &other.versions);
    }

    /// The newest version that is not purged: the key's current state.
    pub fn current(&self) -> Option<&VersionSummary> {
        self.versions.iter().rev().find(|v| !v.is_purged())
    }

    /// The current version if it is an object (not a delete marker).
    pub fn current_object(&self) -> Option<&VersionSummary> {
        self.current().filter(|v| v.state == SummaryState::Object)
    }

    /// Looks a version up by the id S3 clients see (`null` included).
    pub fn find_s3_version(&self, version_id: &str) -> Option<&VersionSummary> {
        self.versions
            .iter()
            .rev()
            .find(|v| v.s3_version_id() == version_id)
    }
}

impl From<&ObjectRecord> for RecordSummary {
    fn from(record: &ObjectRecord) -> Self {
        RecordSummary {
            versions: record.versions.iter().map(VersionSummary::from).collect(),
        }
    }
}

/// One key of a [`SummaryPage`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryEntry {
    pub key: String,
    pub record: RecordSummary,
}

/// Answer to `GET /list/{bucket}?summary=1`: like [`super::ListPage`], summarised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryPage {
    pub entries: Vec<SummaryEntry>,
    /// True when more matching records exist after the last entry.
    pub truncated: bool,
}
