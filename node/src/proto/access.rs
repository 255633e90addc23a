//! Access keys and bucket grants, as the cluster keeps them.
//!
//! An access key is a record of its own, fully replicated on every node like the bucket
//! table; its whole state is one last-writer-wins register, so a delete (a newer state with
//! `deleted`) wins over every older change and is never undone by a replica that missed it.
//! A grant is a register per key id inside the bucket record: two admins granting two keys
//! at once both win. The gateway decides what a key may do; nodes only store and merge.

use serde::{Deserialize, Serialize};

use super::Lww;

/// Longest access key id a node stores.
pub const MAX_KEY_ID_LEN: usize = 128;

/// One access key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The access key id (printable ASCII).
    pub id: String,
    pub state: Lww<KeyState>,
}

/// What an access key is, as of its register's stamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    /// A label for people; not unique.
    pub name: String,
    pub secret: String,
    /// Unix seconds after which the key is refused; `None`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Whether the key may create buckets (it then owns those it creates).
    #[serde(default)]
    pub allow_create_bucket: bool,
    /// A deleted key: refused everywhere, and never again valid.
    #[serde(default)]
    pub deleted: bool,
}

/// What a key may do in one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Perms {
    /// GET and HEAD of objects, listings, reading tags, ACLs and attributes, copy source.
    #[serde(default)]
    pub read: bool,
    /// PUT, DELETE, multipart, copy destination, writing tags.
    #[serde(default)]
    pub write: bool,
    /// Bucket configuration and DeleteBucket.
    #[serde(default)]
    pub owner: bool,
}

/// S3's PublicAccessBlock: what makes a bucket public, refused or ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    /// Refuse setting a public ACL.
    #[serde(default)]
    pub block_public_acls: bool,
    /// Ignore public ACLs already set.
    #[serde(default)]
    pub ignore_public_acls: bool,
    /// Refuse setting a public policy.
    #[serde(default)]
    pub block_public_policy: bool,
    /// Ignore what a public policy grants to anyone.
    #[serde(default)]
    pub restrict_public_buckets: bool,
}

impl Perms {
    pub fn any(self) -> bool {
        self.read || self.write || self.owner
    }
}

impl KeyRecord {
    /// Last writer wins; commutative, associative and idempotent.
    pub fn merge(&mut self, other: &KeyRecord) {
        self.state.merge(&other.state);
    }

    /// Whether `id` may name an access key: 1 to [`MAX_KEY_ID_LEN`] printable ASCII
    /// characters.
    pub fn valid_id(id: &str) -> bool {
        !id.is_empty() && id.len() <= MAX_KEY_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
    }
}
