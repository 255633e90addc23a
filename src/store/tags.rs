//! Object tags: a version's tag set is a last-writer-wins register inside the version's
//! entry of the object record, stamped by the hybrid clock. A tag change is a record write
//! of the whole version with the new register, through the same quorum path as any write
//! (a missed replica gets a repair hint), so a replica that missed the object itself learns
//! it too. A purge always wins over tags.

use node::proto::{Lww, ObjectRecord, Tags, Version};

use super::{Found, Store};
use crate::error::Error;

impl Store {
    /// Gives the version `found` (read with `Need::Body`: a replica that lacks the version
    /// stores it whole) the tag set `tags`, stamped after every change the version had.
    pub async fn set_tags(&self, found: Found, tags: Tags) -> Result<(), Error> {
        let (bucket, key, version) = (&found.bucket, &found.key, found.version);
        let stamp = self.stamp_after(Some(version.changed_at()));
        let update = Version {
            tags: Some(Lww { stamp, value: tags }),
            ..version
        };
        let replicas = self.cluster.replicas_of(bucket, key);
        self.cluster
            .write_record(bucket, key, ObjectRecord::single(update), &replicas)
            .await
    }
}
