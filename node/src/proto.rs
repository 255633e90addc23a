//! The wire contract between gateways and data nodes: routes, header names, request and
//! response bodies, and the metadata records with their merge function.
//!
//! Invariants: everything here is pure (no IO). `ObjectRecord::merge`,
//! `BucketRecord::merge` and `KeyRecord::merge` are commutative, associative and idempotent, so a record may be
//! written, re-sent and repaired in any order and every replica converges to the same value.
//! A version's content is immutable once written; the only changes a version ever sees are
//! its tag set (a last-writer-wins register with its own stamp) and becoming `Purged`
//! (permanently deleted). A purge tombstone always wins and carries no tags.
//!
//! Routes (every route but `/health` and `/metrics` must be signed with the cluster
//! secret, see [`auth`]; `/metrics` is open because Prometheus scrapers do not carry the
//! secret, and it reveals no stored data):
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | GET | `/health` | | `ok` |
//! | GET | `/info` | | [`NodeInfo`] |
//! | PUT | `/blobs/{id}` | raw bytes (chunked) | [`BlobPutReply`] |
//! | GET | `/blobs/{id}` | `Range: bytes=a-b` optional | raw bytes, 200 or 206 |
//! | GET | `/records/{bucket}/{key}?select=&with=&bodies=` | | [`ObjectRecord`] (the versions [`Select`] names) or 404 |
//! | POST | `/records/{bucket}/{key}` | [`ObjectRecord`] (merged in) | 204 |
//! | GET | `/list/{bucket}?after=&prefix=&limit=&bodies=` | | [`ListPage`] (`bodies=none`: inline bodies left out) |
//! | GET | `/buckets` | | `Vec<BucketRecord>` |
//! | GET | `/buckets/{bucket}` | | [`BucketRecord`] or 404 |
//! | POST | `/buckets/{bucket}` | [`BucketRecord`] (merged in) | 204 |
//! | GET | `/keys` | | `Vec<KeyRecord>` (see [`access`]), deleted keys included |
//! | POST | `/keys/{id}` | [`access::KeyRecord`] (merged in) | 204 |
//! | GET | `/list/{bucket}?...&check_blobs=1` | | [`ListPage`] with `missing_blobs` filled |
//! | GET | `/list/{bucket}?...&summary=1` | | [`SummaryPage`] (no bodies or metadata) |
//! | GET | `/list/{bucket}?...&select=current` | | each key's window only (see [`Select`]) |
//! | POST | `/hints` | `Vec<Hint>` (stored; a newer `since` replaces an older) | 204 |
//! | GET | `/hints?limit=` | | `Vec<Hint>`, ascending by (target, bucket, key); `limit` defaults to and is capped at [`MAX_LIST_LIMIT`] |
//! | POST | `/hints/delete` | `Vec<Hint>` (each removed only if the stored `since` is not newer than the given one) | 204 |
//! | POST | `/lease/{name}` | [`LeaseRequest`] | [`LeaseReply`] |
//! | GET | `/metrics` | | Prometheus text (open: no secret needed) |
//! | POST | `/paxos/{bucket}/{key}/{prepare,accept,commit}` | see [`paxos`] | see [`paxos`] |
//! | POST | `/gc/{scan/{shard},referenced,collect}` | see [`gc`] | see [`gc`] |
//! | GET, POST | `/layout`, `/layout/{prepare,accept,commit}`, `/layout/release/{bucket}/{key}` | see [`layout`] | see [`layout`] |
//!
//! Path segments `{bucket}` and `{key}` are percent-encoded with [`encode_segment`]; blob ids
//! are 32 lowercase hex characters. Errors are [`ErrorBody`] with a non-2xx status. Every
//! answer carries the node's committed layout version in [`layout::LAYOUT_HEADER`], and
//! record routes refuse a request placed with an older one (see [`layout`]).

use std::collections::BTreeMap;

pub mod access;
pub mod auth;
pub mod gc;
pub mod layout;
pub mod paxos;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::{Deserialize, Serialize};

mod block_crcs;
mod bodies;
mod select;
mod summary;

#[cfg(test)]
use summary::merge_versions;

pub use block_crcs::{BlockCrcs, table_digest};
pub use bodies::Bodies;
pub use select::{MAX_PAGE_BYTES, MAX_SELECT_STAMPS, Select, windows_cover};
pub(crate) use summary::Versioned;
pub use summary::{RecordSummary, SummaryEntry, SummaryPage, SummaryState, VersionSummary};

/// Optional header on `PUT /blobs/{id}`: the hex MD5 the sender expects. A node refuses
/// (and does not keep) a body whose MD5 differs.
pub const EXPECTED_MD5_HEADER: &str = "x-s3q-expected-md5";
/// Optional header on `PUT /blobs/{id}`: `crc32c` says the body ends with the trailers
/// [`EXPECTED_MD5_HEADER`] (the sender's MD5 of the body, stored as the blob's MD5) and
/// [`BLOCK_CRCS_TRAILER`], declared in a `Trailer` header. The node then does not hash the
/// body with MD5; it refuses (and does not keep) a body whose block checksum table differs
/// from the sender's, or that lacks the trailers, and answers its own table digest in
/// [`BlobPutReply::block_crcs`].
pub const CHECK_HEADER: &str = "x-s3q-check";
/// Trailer of a `crc32c`-checked blob upload: [`table_digest`] of the sender's table.
pub const BLOCK_CRCS_TRAILER: &str = "x-s3q-block-crcs";
/// Size of the blocks whose CRC32C a node records at write time and checks on every read.
pub const BLOB_BLOCK_SIZE: u64 = 64 * 1024;
/// Largest JSON body (record, bucket record) a node or gateway buffers.
pub const MAX_RECORD_BODY: usize = 16 * 1024 * 1024;
/// Largest number of entries a node returns in one `ListPage`.
pub const MAX_LIST_LIMIT: usize = 1000;

/// Characters left as they are in an encoded path segment. Everything else, `.` and `/`
/// included, is percent-encoded, so `..` or `a/b` can never be read as path structure.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');

/// Error code of a 404 for a blob the node quarantined as corrupt (bad bytes it found),
/// unlike `NotFound` (a blob it never had, or is still receiving).
pub const QUARANTINED_CODE: &str = "Quarantined";

/// Percent-encodes a bucket name or object key for use as one path segment.
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Decodes a path segment made by [`encode_segment`]; `None` if it is not valid UTF-8.
pub fn decode_segment(s: &str) -> Option<String> {
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// True when `id` is a well-formed blob id (32 lowercase hex characters).
pub fn is_valid_blob_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Error body of every non-2xx node answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `NotFound`, `DigestMismatch`, `Corrupt`.
    pub code: String,
    pub message: String,
    /// With [`STALE_CODE`]: the ballot the refused stamp was below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promised: Option<Stamp>,
}

/// Error code (409) of a plain record write that would add a version stamped below a
/// ballot the node promised for the key. The writer stamps its version again above
/// [`ErrorBody::promised`] and retries; readers repairing a record finish the key's
/// agreement instead. This is what orders plain writes with conditional ones.
pub const STALE_CODE: &str = "Stale";

/// Answer to `GET /info`: who the node is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Made on the node's first start and kept in its data directory: it names the disk's
    /// contents, whatever address the node has.
    pub node_id: String,
}

/// Whether `id` may name a node: 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
pub fn valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Answer to `PUT /blobs/{id}`: what the node durably stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobPutReply {
    /// Hex MD5 of the bytes the node stored: computed by the node itself, or, for a
    /// `crc32c`-checked upload, the sender's (the node's scrubber verifies it later).
    pub md5: String,
    pub size: u64,
    /// For a `crc32c`-checked upload: [`table_digest`] of the table the node computed
    /// from the bytes it stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_crcs: Option<String>,
}

/// Total order of versions: a hybrid logical timestamp (microseconds since the Unix epoch,
/// never behind the newest timestamp its writer has seen) broken by a unique id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    pub ts: u64,
    pub id: String,
}

/// Where an object's bytes live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Data {
    /// Small bodies travel inside the record: one round trip instead of two.
    Inline {
        #[serde(with = "b64")]
        bytes: Vec<u8>,
    },
    /// An inline body a record read left out because the reader did not ask for it
    /// (`GET /records/..?bodies=`): the meta's `md5` and `size` still describe it. Only
    /// ever in answers to readers; nodes refuse to store it.
    InlineOmitted,
    /// A blob stored under `id` on the same replicas as the record.
    Blob { id: String },
    /// A completed multipart upload: its parts' blobs, in order, on the same replicas.
    Parts { parts: Vec<PartRef> },
}

impl Data {
    /// Inline, whether or not a read left the bytes out.
    pub fn is_inline(&self) -> bool {
        matches!(self, Data::Inline { .. } | Data::InlineOmitted)
    }
}

/// One part of a multipart object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRef {
    pub number: u32,
    pub blob: String,
    pub size: u64,
    /// Hex MD5 of the part (its ETag).
    pub md5: String,
    /// The part's verified checksums, algorithm → base64 (GetObjectAttributes lists them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checksums: BTreeMap<String, String>,
}

/// Everything S3 returns about one stored object version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub size: u64,
    /// Hex MD5 of the body (the S3 ETag of a single-part object, without quotes).
    pub md5: String,
    /// The S3 ETag without quotes: `md5` for single-part, `md5-of-md5s-N` for multipart.
    pub etag: String,
    pub data: Data,
    /// Standard headers stored with the object (`content-type`, `cache-control`, ...),
    /// lowercase names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// `x-amz-meta-*` user metadata, names without the prefix.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_metadata: BTreeMap<String, String>,
    /// For an uploaded part (inside a multipart upload's record): its part number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_number: Option<u32>,
    /// Verified full-object checksums, algorithm name (`CRC32`, `SHA256`, ...) → base64.
    /// A multipart object's COMPOSITE checksum carries S3's `-N` suffix.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checksums: BTreeMap<String, String>,
    /// S3's `x-amz-checksum-type` (`COMPOSITE` or `FULL_OBJECT`) of a multipart object, or
    /// of a multipart upload's initial entry: the type its object will get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_type: Option<String>,
    /// On a multipart upload's initial entry only: the checksum algorithm it was created
    /// with, which every part is checksummed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<String>,
}

impl ObjectMeta {
    /// Equal in everything but `data`.
    fn same_but_data(&self, other: &ObjectMeta) -> bool {
        // Destructured so that a new field cannot be forgotten here.
        let ObjectMeta {
            size,
            md5,
            etag,
            data: _,
            headers,
            user_metadata,
            part_number,
            checksums,
            checksum_type,
            checksum_algorithm,
        } = self;
        *size == other.size
            && *md5 == other.md5
            && *etag == other.etag
            && *headers == other.headers
            && *user_metadata == other.user_metadata
            && *part_number == other.part_number
            && *checksums == other.checksums
            && *checksum_type == other.checksum_type
            && *checksum_algorithm == other.checksum_algorithm
    }
}

/// What a version is.
// Versions live in vectors that are decoded, merged and encoded whole; a boxed meta would
// add an allocation per version for no gain, so the size difference is accepted.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum VersionState {
    Object(ObjectMeta),
    DeleteMarker,
    /// Permanently deleted (`DELETE ?versionId=`): a tombstone that keeps a stale replica
    /// from bringing the version back.
    Purged,
}

/// One version of one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub stamp: Stamp,
    /// The S3 `null` version (writes to unversioned or suspended buckets). A newer null
    /// version replaces every older one.
    #[serde(default)]
    pub null: bool,
    #[serde(flatten)]
    pub state: VersionState,
    /// The object's tag set, mutable after the write (PutObjectTagging): the newest tag
    /// stamp wins. `None` on delete markers, purge tombstones and untagged objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Lww<Tags>>,
    /// The version's ACL (PutObjectAcl, or `x-amz-acl` on the write), mutable like the tags:
    /// the newest stamp wins. `None` is private, and is all tombstones carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Lww<CannedAcl>>,
    /// On a version a conditional write created: the newest stamp of the record its
    /// condition was evaluated on (the zero stamp for none). Immutable like the content.
    /// A conditional writer whose earlier proposal vanished from the record (a newer null
    /// version replaced it) reads here whether its proposal was part of the state the
    /// replacing write saw. `None` on plain writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follows: Option<Stamp>,
}

/// An S3 tag set: key → value (keys are unique).
pub type Tags = BTreeMap<String, String>;

/// The ACLs s3quorum keeps: everything has one owner with FULL_CONTROL, and a version may
/// also be readable by anyone (S3's canned `public-read`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CannedAcl {
    Private,
    PublicRead,
}

impl Version {
    /// The version id S3 clients see.
    pub fn s3_version_id(&self) -> &str {
        if self.null { "null" } else { &self.stamp.id }
    }

    pub fn is_purged(&self) -> bool {
        matches!(self.state, VersionState::Purged)
    }

    /// The purge tombstone of this version: same stamp and null flag, no content. It wins
    /// over the version on every replica it reaches.
    pub fn tombstone(&self) -> Version {
        Version::tombstone_of(self.stamp.clone(), self.null)
    }

    /// The purge tombstone of the version stamped `stamp`.
    pub fn tombstone_of(stamp: Stamp, null: bool) -> Version {
        Version {
            stamp,
            null,
            state: VersionState::Purged,
            tags: None,
            acl: None,
            follows: None,
        }
    }

    /// The version's tag set (empty when untagged).
    pub fn tag_set(&self) -> Tags {
        self.tags
            .as_ref()
            .map(|t| t.value.clone())
            .unwrap_or_default()
    }

    /// Whether anyone may read this version (its ACL is `public-read`).
    pub fn is_public_read(&self) -> bool {
        self.acl
            .as_ref()
            .is_some_and(|a| a.value == CannedAcl::PublicRead)
    }

    /// Whether `other` is this version as far as a reader can tell: equal, except that an
    /// omitted inline body matches any inline body (the meta's MD5 names the bytes).
    pub fn same_as(&self, other: &Version) -> bool {
        match (&self.state, &other.state) {
            (VersionState::Object(a), VersionState::Object(b))
                if a.data.is_inline()
                    && b.data.is_inline()
                    && (a.data == Data::InlineOmitted || b.data == Data::InlineOmitted) =>
            {
                let (
                    Version {
                        stamp,
                        null,
                        tags,
                        acl,
                        ..
                    },
                    o,
                ) = (self, other);
                *stamp == o.stamp
                    && *null == o.null
                    && *tags == o.tags
                    && *acl == o.acl
                    && a.same_but_data(b)
            }
            _ => self == other,
        }
    }

    /// When the version last changed (written, or its tags or ACL set), µs: what repair
    /// uses to tell a change still on its way from one a replica missed.
    pub fn changed_at(&self) -> u64 {
        let tags = self.tags.as_ref().map(|t| t.stamp.ts);
        let acl = self.acl.as_ref().map(|a| a.stamp.ts);
        self.stamp.ts.max(tags.unwrap_or(0)).max(acl.unwrap_or(0))
    }
}

/// All versions of one (bucket, key), oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub versions: Vec<Version>,
}

impl ObjectRecord {
    pub fn single(version: Version) -> Self {
        ObjectRecord {
            versions: vec![version],
        }
    }

    /// Merges `other` into `self`: the union of versions by stamp, where a purge tombstone
    /// wins over the version it deletes (and drops its tags), two copies of a live version
    /// keep the newer tag set, then null versions older than the newest null version are
    /// dropped. This is a join of a semilattice, so replicas converge whatever the order,
    /// grouping or repetition of the writes they receive.
    pub fn merge(&mut self, other: &ObjectRecord) {
        summary::merge_into(&mut self.versions, &other.versions);
    }

    /// The newest version that is not purged: the object's current state.
    pub fn current(&self) -> Option<&Version> {
        self.versions.iter().rev().find(|v| !v.is_purged())
    }

    /// The current version if it is an object (not a delete marker).
    pub fn current_object(&self) -> Option<(&Version, &ObjectMeta)> {
        match self.current() {
            Some(
                v @ Version {
                    state: VersionState::Object(meta),
                    ..
                },
            ) => Some((v, meta)),
            _ => None,
        }
    }

    /// The newest stamp in the record, purged versions included (for hybrid clocks).
    pub fn newest_stamp(&self) -> Option<&Stamp> {
        self.versions.last().map(|v| &v.stamp)
    }

    /// Looks a version up by the id S3 clients see (`null` included).
    pub fn find_s3_version(&self, version_id: &str) -> Option<&Version> {
        self.versions
            .iter()
            .rev()
            .find(|v| v.s3_version_id() == version_id)
    }
}

/// Versioning state of a bucket, as S3 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    Enabled,
    Suspended,
}

/// A last-writer-wins register ordered by [`Stamp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lww<T> {
    pub stamp: Stamp,
    pub value: T,
}

impl<T: Clone> Lww<T> {
    pub(super) fn merge(&mut self, other: &Lww<T>) {
        if other.stamp > self.stamp {
            *self = other.clone();
        }
    }
}

/// Joins two optional registers: any value beats none, then the newer stamp wins.
pub(super) fn merge_opt<T: Clone>(mine: &mut Option<Lww<T>>, theirs: &Option<Lww<T>>) {
    match (mine.as_mut(), theirs) {
        (Some(m), Some(t)) => m.merge(t),
        (None, Some(t)) => *mine = Some(t.clone()),
        _ => {}
    }
}

/// A bucket, fully replicated on every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    pub name: String,
    /// Whether the bucket exists; the stamp of the latest create or delete. A create's
    /// stamp timestamp is the bucket's creation date.
    pub exists: Lww<bool>,
    /// `None` until versioning is first configured.
    pub versioning: Option<Lww<Versioning>>,
    /// Bucket tags (PutBucketTagging); an empty set is a deleted configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Lww<Tags>>,
    /// CORS rules (PutBucketCors); an empty list is a deleted configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Lww<Vec<CorsRule>>>,
    /// What each access key (by id) may do here; a register per key, so grants to
    /// different keys never overwrite each other. No permission at all is a revoked grant.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub grants: BTreeMap<String, Lww<access::Perms>>,
    /// The bucket policy's JSON (PutBucketPolicy); empty is a deleted policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Lww<String>>,
    /// Whether the bucket's ACL is the canned `public-read` (anyone may list it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_read: Option<Lww<bool>>,
    /// The bucket's PublicAccessBlock settings; all off is a deleted configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_access_block: Option<Lww<access::PublicAccessBlock>>,
}

/// One CORS rule of a bucket, as S3 defines it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<i32>,
}

impl BucketRecord {
    /// A record for a bucket created (or deleted, `exists = false`) under `stamp`, with no
    /// configuration.
    pub fn new(name: String, stamp: Stamp, exists: bool) -> Self {
        BucketRecord {
            name,
            exists: Lww {
                stamp,
                value: exists,
            },
            versioning: None,
            tags: None,
            cors: None,
            grants: BTreeMap::new(),
            policy: None,
            public_read: None,
            public_access_block: None,
        }
    }

    /// Last-writer-wins per field (per key for grants); commutative, associative and
    /// idempotent.
    pub fn merge(&mut self, other: &BucketRecord) {
        self.exists.merge(&other.exists);
        merge_opt(&mut self.versioning, &other.versioning);
        merge_opt(&mut self.tags, &other.tags);
        merge_opt(&mut self.cors, &other.cors);
        merge_opt(&mut self.policy, &other.policy);
        merge_opt(&mut self.public_read, &other.public_read);
        merge_opt(&mut self.public_access_block, &other.public_access_block);
        for (key, grant) in &other.grants {
            match self.grants.get_mut(key) {
                Some(mine) => mine.merge(grant),
                None => {
                    self.grants.insert(key.clone(), grant.clone());
                }
            }
        }
    }

    /// What key `id` may do in the bucket's current life (a grant from an earlier bucket
    /// of the same name counts for nothing).
    pub fn perms_of(&self, id: &str) -> access::Perms {
        self.grants
            .get(id)
            .filter(|g| self.exists.value && g.stamp > self.exists.stamp)
            .map(|g| g.value)
            .unwrap_or_default()
    }

    /// A configuration field's value if it was set in the bucket's current life: a value
    /// stamped before the latest create belongs to an earlier bucket of the same name.
    pub fn live<'a, T>(&self, field: &'a Option<Lww<T>>) -> Option<&'a T> {
        field
            .as_ref()
            .filter(|f| self.exists.value && f.stamp > self.exists.stamp)
            .map(|f| &f.value)
    }
}

/// One key and its record in a [`ListPage`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    pub key: String,
    pub record: ObjectRecord,
    /// With `check_blobs=1`: ids of blobs this node's record refers to (versions not
    /// purged) that are not on this node's disk (lost, or quarantined as corrupt).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_blobs: Vec<String>,
    /// The part of `missing_blobs` this node quarantined: bad bytes it found (the rest it
    /// never got, or is still writing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub corrupt_blobs: Vec<String>,
    /// `record` holds only the key's oldest versions (a full-record page bounds how many
    /// versions of one key it carries): readers compare the rest page by page
    /// (`Select::Page`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// Repair work: `target` (a node URL as the gateways know it) is known to lack the newest
/// state of `(bucket, key)`, or of the bucket record of `bucket` when `key` is empty (no
/// object key is). Stored on the replicas that did get the write, so the work survives a
/// gateway crash; identified by (target, bucket, key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hint {
    pub target: String,
    pub bucket: String,
    pub key: String,
    /// When the hint was (last) raised, µs since the Unix epoch. A delete names the `since`
    /// it processed, so a hint raised again meanwhile survives.
    pub since: u64,
}

/// `POST /lease/{name}`: take or renew a named lease for `ttl_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRequest {
    pub holder: String,
    pub ttl_ms: u64,
}

/// Answer to a lease request: whether `holder` has it now, and who does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseReply {
    pub granted: bool,
    pub holder: String,
    /// Milliseconds until the current holder's lease runs out.
    pub remaining_ms: u64,
}

/// Answer to `GET /list/{bucket}`: records with key > `after` and starting with `prefix`,
/// in ascending byte order of the key, at most `limit` of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPage {
    pub entries: Vec<ListEntry>,
    /// True when more matching records exist after the last entry.
    pub truncated: bool,
}

mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
