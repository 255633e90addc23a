//! A version's mutable parts: its tag set and its ACL, each a last-writer-wins register
//! inside the version's entry of the object record, stamped by the hybrid clock. A change
//! is a record write of the whole version with the new register, through the same quorum
//! path as any write (a missed replica gets a repair hint), so a replica that missed the
//! object itself learns it too. A purge always wins over both.

use node::proto::{CannedAcl, Lww, ObjectRecord, Stamp, Tags, Version};

use super::{Found, Store};
use crate::error::Error;

impl Store {
    /// Gives the version `found` (read with `Need::Body`: a replica that lacks the version
    /// stores it whole) the tag set `tags`, stamped after every change the version had.
    pub async fn set_tags(&self, found: Found, tags: Tags) -> Result<(), Error> {
        self.rewrite(found, |v, stamp| v.tags = Some(Lww { stamp, value: tags }))
            .await
    }

    /// Gives the version `found` (read with `Need::Body`) the ACL `acl`.
    pub async fn set_acl(&self, found: Found, acl: CannedAcl) -> Result<(), Error> {
        self.rewrite(found, |v, stamp| v.acl = Some(Lww { stamp, value: acl }))
            .await
    }

    /// Writes the version `found` changed by `change`, which sets a register to the stamp
    /// it is given.
    async fn rewrite(
        &self,
        found: Found,
        change: impl FnOnce(&mut Version, Stamp),
    ) -> Result<(), Error> {
        let (bucket, key, mut version) = (&found.bucket, &found.key, found.version);
        let stamp = self.stamp_after(Some(version.changed_at()));
        change(&mut version, stamp);
        let replicas = self.cluster().replicas_of(bucket, key);
        self.cluster()
            .write_record(bucket, key, ObjectRecord::single(version), &replicas)
            .await
    }
}
