//! Giving up a key's record: after a migration, a node that no longer owns a key removes
//! its copy (every version, the key's head and its Paxos state), so that the blobs only
//! that copy referred to become garbage the node's collection frees.
//!
//! Invariant: it goes through the record writer like every other change, and through
//! [`versions::remove`], which keeps the blob references, the version ids and the tombstone
//! times exact; the Paxos state's accepted value gives up its references too (see
//! [`refs`]). Everything is read and decoded before anything is removed, so a record that
//! does not decode is left whole (`Corrupt`), never half removed.

use redb::Table;

use super::versions::{self, Tables};
use super::{Change, ObjectKeys, RecordStore, get_decoded, paxos, refs};
use crate::error::Error;
use crate::proto::Version;
use crate::proto::paxos::PaxosState;

type Bytes<'t> = Table<'t, &'static [u8], &'static [u8]>;

impl RecordStore {
    /// Removes the record of (bucket, key) from this node; returns once committed. A
    /// record that is not here is already released.
    pub(crate) async fn release_object(&self, bucket: &str, key: &str) -> Result<(), Error> {
        let key = ObjectKeys::new(bucket, key)?;
        self.write(Change::Release { key }).await.map(drop)
    }
}

/// [`RecordStore::release_object`] inside the writer's transaction; true when anything
/// was removed.
pub(super) fn release(
    paxos_table: &mut Bytes<'_>,
    objects: &mut Tables<'_>,
    key: &ObjectKeys,
) -> Result<bool, Error> {
    let stored: Vec<Version> = versions::load(&objects.versions, &key.head)?;
    let state: Option<PaxosState> = get_decoded(paxos_table, &key.paxos)?;
    let mut changed = false;
    for v in &stored {
        versions::remove(objects, &key.head, &v.stamp)?;
        changed = true;
    }
    changed |= objects
        .heads
        .remove(key.head.as_slice())
        .map_err(Error::db("remove head"))?
        .is_some();
    if let Some(state) = state {
        refs::accepted_changed(&mut objects.refs, &key.paxos, paxos::pending(&state), None)?;
        paxos_table
            .remove(key.paxos.as_slice())
            .map_err(Error::db("remove paxos state"))?;
        changed = true;
    }
    Ok(changed)
}
