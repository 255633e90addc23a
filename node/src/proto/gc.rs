//! The garbage-collection routes: how the repair-lease holder finds the blobs nothing
//! refers to and has them deleted.
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | POST | `/gc/scan/{shard}?grace_secs=` | | [`GcScan`]: the shard's blobs no record here refers to |
//! | POST | `/gc/referenced` | `Vec<String>` blob ids (at most [`MAX_GC_IDS`]) | `Vec<`[`Referenced`]`>`: those a record here refers to, and by which keys |
//! | POST | `/gc/collect?grace_secs=` | `Vec<String>` blob ids (at most [`MAX_GC_IDS`]) | [`GcCollected`] |
//! | GET | `/gc/tombstones?grace_secs=&after=&limit=` | | [`TombstonePage`]: purge tombstones held longer than the grace |
//! | POST | `/gc/drop` | `Vec<TombstoneRef>` (at most [`MAX_GC_IDS`]) | [`Dropped`] |
//!
//! A shard is the blob directory `blobs/{shard:02x}/` (blob ids start with two hex digits):
//! [`GC_SHARDS`] of them. `scan` also removes this node's quarantined copies of blobs
//! that were written again since (a repair replaced the bad copy). `collect` deletes each
//! blob, and its quarantined copy, only if, checked again inside the record writer (so no
//! record change slips between the check and the delete), no record here refers to it,
//! none did within the grace, and its file is older than the grace. `scan` counts a blob
//! as waiting by the same two ages. `drop` removes each named version that is still a
//! purge tombstone here (the key's head too when nothing is left of it); the caller has
//! made sure every replica of the key holds the tombstone.

use serde::{Deserialize, Serialize};

use super::Stamp;

/// Shard directories of the blob store.
pub const GC_SHARDS: u16 = 256;
/// Most blob ids one `referenced` or `collect` request names.
pub const MAX_GC_IDS: usize = 10_000;
/// Most keys one [`Referenced`] names; a blob more keys refer to says so with `more`.
pub const MAX_REFERRING_KEYS: usize = 16;

/// A blob some record on the node refers to: which record addresses do, and whether the
/// node holds the blob's file. The collector needs the keys to tell a replica's reference
/// (its copy may be a repair source) from a reference on a node that no longer owns the
/// key once the layout changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referenced {
    pub id: String,
    /// The record addresses (bucket, key) whose stored versions or accepted Paxos values
    /// refer to the blob; at most [`MAX_REFERRING_KEYS`], in the node's order.
    pub keys: Vec<KeyRef>,
    /// More keys refer to it than `keys` names.
    #[serde(default)]
    pub more: bool,
    /// The node holds the blob's file (not only a quarantined copy).
    pub stored: bool,
}

/// A record address: a bucket (or an upload namespace) and a key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyRef {
    pub bucket: String,
    pub key: String,
}

/// A blob file nothing on the node refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcBlob {
    pub id: String,
    /// Bytes on disk (data, checksum table and footer).
    pub size: u64,
    /// Only a quarantined copy is left (bad bytes this node found).
    #[serde(default)]
    pub quarantined: bool,
}

/// What `POST /gc/scan/{shard}` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcScan {
    /// Blob files (and quarantined copies) the shard holds.
    #[serde(default)]
    pub files: u64,
    /// Unreferenced here and older than the grace: candidates, if no other node refers to
    /// them either.
    pub unreferenced: Vec<GcBlob>,
    /// Unreferenced here but younger than the grace (a write may still be on its way).
    pub waiting: u64,
    pub waiting_bytes: u64,
    /// Quarantined copies removed because the blob was written again since.
    pub quarantine_cleared: u64,
}

/// What `POST /gc/collect` deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcCollected {
    pub deleted: Vec<String>,
    pub bytes: u64,
}

/// A purge tombstone: version `stamp` of `(bucket, key)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TombstoneRef {
    pub bucket: String,
    pub key: String,
    pub stamp: Stamp,
}

/// What `GET /gc/tombstones` lists: tombstones the node has held for longer than the
/// grace, in the node's order; `next` continues the listing (`after=`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TombstonePage {
    pub tombstones: Vec<TombstoneRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// What `POST /gc/drop` dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    pub dropped: u64,
}
