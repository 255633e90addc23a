//! Which blobs this node's records refer to (table `blob_refs`), so that garbage collection
//! tells a blob nothing here refers to with one range lookup instead of a read of every
//! record.
//!
//! Layout (values empty):
//! - `blob_id 0x00 0x01 version_key` for each stored version whose data lives in the blob
//!   (an object's blob, a multipart object's part, an uploaded part in an upload's record);
//! - `blob_id 0x00 0x02 paxos_key` for each Paxos value accepted and not committed yet
//!   that refers to the blob: a later round may still commit it.
//!
//! Blob ids never contain 0x00, so one blob's entries are contiguous.
//!
//! Invariants: the version entries are exactly the blob ids of the stored versions (kept by
//! [`super::versions::merge`], which every version change goes through), and the Paxos
//! entries exactly those of the accepted values the Paxos table holds (kept by
//! [`super::paxos`]). A blob with no entry is referred to by nothing this node stores.

use std::collections::BTreeSet;

use redb::{ReadableTable, Table, TableDefinition};

use super::{Change, RecordStore, Reply};
use crate::error::Error;
use crate::proto::{Data, ObjectRecord, Version, VersionState};

pub(super) const REFS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blob_refs");

type Bytes<'t> = Table<'t, &'static [u8], &'static [u8]>;

const VERSION: u8 = 1;
const PAXOS: u8 = 2;

/// The blobs a version's data lives in.
pub(crate) fn blobs_of(v: &Version) -> BTreeSet<&str> {
    match &v.state {
        VersionState::Object(meta) => match &meta.data {
            Data::Blob { id } => BTreeSet::from([id.as_str()]),
            Data::Parts { parts } => parts.iter().map(|p| p.blob.as_str()).collect(),
            Data::Inline { .. } | Data::InlineOmitted => BTreeSet::new(),
        },
        VersionState::DeleteMarker | VersionState::Purged => BTreeSet::new(),
    }
}

fn blobs_of_record(r: &ObjectRecord) -> BTreeSet<&str> {
    r.versions.iter().flat_map(blobs_of).collect()
}

pub(super) fn entry(blob: &str, kind: u8, owner: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(blob.len() + 2 + owner.len());
    k.extend_from_slice(blob.as_bytes());
    k.push(0);
    k.push(kind);
    k.extend_from_slice(owner);
    k
}

fn update(
    refs: &mut Bytes<'_>,
    kind: u8,
    owner: &[u8],
    old: BTreeSet<&str>,
    new: BTreeSet<&str>,
) -> Result<(), Error> {
    for gone in old.difference(&new) {
        refs.remove(entry(gone, kind, owner).as_slice())
            .map_err(Error::db("remove blob reference"))?;
    }
    for added in new.difference(&old) {
        refs.insert(entry(added, kind, owner).as_slice(), [].as_slice())
            .map_err(Error::db("write blob reference"))?;
    }
    Ok(())
}

/// The version stored at `version_key` changed from `old` to `new` (`None`: absent).
pub(super) fn version_changed(
    refs: &mut Bytes<'_>,
    version_key: &[u8],
    old: Option<&Version>,
    new: Option<&Version>,
) -> Result<(), Error> {
    let old = old.map(blobs_of).unwrap_or_default();
    let new = new.map(blobs_of).unwrap_or_default();
    update(refs, VERSION, version_key, old, new)
}

/// The accepted, uncommitted value of the key whose Paxos key is `paxos_key` changed.
pub(super) fn accepted_changed(
    refs: &mut Bytes<'_>,
    paxos_key: &[u8],
    old: Option<&ObjectRecord>,
    new: Option<&ObjectRecord>,
) -> Result<(), Error> {
    let old = old.map(blobs_of_record).unwrap_or_default();
    let new = new.map(blobs_of_record).unwrap_or_default();
    update(refs, PAXOS, paxos_key, old, new)
}

/// Whether anything stored here refers to blob `id`.
pub(super) fn referenced(
    refs: &impl ReadableTable<&'static [u8], &'static [u8]>,
    id: &str,
) -> Result<bool, Error> {
    let mut start = id.as_bytes().to_vec();
    start.push(0);
    let mut end = id.as_bytes().to_vec();
    end.push(1);
    let mut range = refs
        .range::<&[u8]>(start.as_slice()..end.as_slice())
        .map_err(Error::db("read blob references"))?;
    Ok(range.next().is_some())
}

/// Removes one unreferenced blob's files; the bytes it freed.
pub(crate) type Remover = Box<dyn Fn(&str) -> Result<u64, Error> + Send + Sync>;

impl RecordStore {
    /// Which of `ids` a stored version or an accepted value here refers to.
    pub(crate) async fn referenced(&self, ids: Vec<String>) -> Result<Vec<String>, Error> {
        self.read(move |txn| {
            let refs = txn
                .open_table(REFS)
                .map_err(Error::db("open blob references"))?;
            let mut out = Vec::new();
            for id in ids {
                if referenced(&refs, &id)? {
                    out.push(id);
                }
            }
            Ok(out)
        })
        .await
    }

    /// Has `remove` delete each of `ids` that nothing here refers to, checked inside the
    /// record writer, so no record change comes between the check and the delete. Returns
    /// each blob `remove` freed bytes of, with the bytes. Runs on a full disk too: it is
    /// what frees it.
    pub(crate) async fn collect(
        &self,
        ids: Vec<String>,
        remove: Remover,
    ) -> Result<Vec<(String, u64)>, Error> {
        match self.write(Change::Collect { ids, remove }).await? {
            Reply::Collected(freed) => Ok(freed),
            _ => Err(Error::Corrupt(
                "record writer answered a collection oddly".into(),
            )),
        }
    }
}

/// [`RecordStore::collect`] inside the writer's transaction.
pub(super) fn collect(
    refs: &impl ReadableTable<&'static [u8], &'static [u8]>,
    ids: &[String],
    remove: &Remover,
) -> Result<Vec<(String, u64)>, Error> {
    let mut freed = Vec::new();
    for id in ids {
        if referenced(refs, id)? {
            continue;
        }
        let bytes = remove(id)?;
        if bytes > 0 {
            freed.push((id.clone(), bytes));
        }
    }
    Ok(freed)
}
