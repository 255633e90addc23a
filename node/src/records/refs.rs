//! Which blobs this node's records refer to (table `blob_refs`), so that garbage collection
//! tells a blob nothing here refers to with one range lookup instead of a read of every
//! record.
//!
//! Layout:
//! - `blob_id 0x00 0x00` → when the last reference to the blob went (µs, u64 BE), while
//!   nothing refers to it: a read that began before an overwrite or a purge may still be
//!   streaming the blob, so the grace counts from then, not from the file's age alone;
//! - `blob_id 0x00 0x01 version_key` for each stored version whose data lives in the blob
//!   (an object's blob, a multipart object's part, an uploaded part in an upload's record);
//! - `blob_id 0x00 0x02 paxos_key` for each Paxos value accepted and not committed yet
//!   that refers to the blob: a later round may still commit it.
//!
//! Reference entries have empty values.
//!
//! Blob ids never contain 0x00, so one blob's entries are contiguous.
//!
//! Invariants: the version entries are exactly the blob ids of the stored versions (kept by
//! [`super::versions::merge`], which every version change goes through), and the Paxos
//! entries exactly those of the accepted values the Paxos table holds (kept by
//! [`super::paxos`]). A blob with no entry is referred to by nothing this node stores.

use std::collections::BTreeSet;
use std::time::Duration;

use redb::{ReadableTable, Table, TableDefinition};

use super::{Change, RecordStore, Reply};
use crate::error::Error;
use crate::proto::gc::{KeyRef, MAX_REFERRING_KEYS};
use crate::proto::{Data, ObjectRecord, Version, VersionState};

pub(super) const REFS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blob_refs");

type Bytes<'t> = Table<'t, &'static [u8], &'static [u8]>;

const RELEASED: u8 = 0;
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
        if !referenced(refs, gone)? {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0);
            refs.insert(
                entry(gone, RELEASED, &[]).as_slice(),
                now.to_be_bytes().as_slice(),
            )
            .map_err(Error::db("write blob release"))?;
        }
    }
    for added in new.difference(&old) {
        refs.insert(entry(added, kind, owner).as_slice(), [].as_slice())
            .map_err(Error::db("write blob reference"))?;
        refs.remove(entry(added, RELEASED, &[]).as_slice())
            .map_err(Error::db("remove blob release"))?;
    }
    Ok(())
}

/// How long ago the last reference to blob `id` went, if one ever did (and it is still
/// unreferenced).
pub(super) fn released_for(
    refs: &impl ReadableTable<&'static [u8], &'static [u8]>,
    id: &str,
) -> Result<Option<Duration>, Error> {
    let Some(at) = refs
        .get(entry(id, RELEASED, &[]).as_slice())
        .map_err(Error::db("read blob release"))?
    else {
        return Ok(None);
    };
    let at: [u8; 8] = at
        .value()
        .try_into()
        .map_err(|_| Error::Corrupt("bad blob release time".into()))?;
    let at = std::time::UNIX_EPOCH + Duration::from_micros(u64::from_be_bytes(at));
    Ok(Some(
        std::time::SystemTime::now()
            .duration_since(at)
            .unwrap_or(Duration::ZERO),
    ))
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
    Ok(referrers(refs, id, 1)?.0.is_some())
}

/// The distinct record addresses whose versions or accepted values refer to blob `id`, at
/// most `most` of them, and whether there are more; `None` when nothing refers to it.
fn referrers(
    refs: &impl ReadableTable<&'static [u8], &'static [u8]>,
    id: &str,
    most: usize,
) -> Result<(Option<BTreeSet<KeyRef>>, bool), Error> {
    let start = entry(id, VERSION, &[]);
    let mut end = id.as_bytes().to_vec();
    end.push(1);
    let range = refs
        .range::<&[u8]>(start.as_slice()..end.as_slice())
        .map_err(Error::db("read blob references"))?;
    let mut keys: Option<BTreeSet<KeyRef>> = None;
    for item in range {
        let (k, _) = item.map_err(Error::db("read blob references"))?;
        let owner = &k.value()[id.len() + 1..];
        let at = owner_address(owner)?;
        let found = keys.get_or_insert_with(BTreeSet::new);
        if found.len() == most && !found.contains(&at) {
            return Ok((keys, true));
        }
        found.insert(at);
    }
    Ok((keys, false))
}

/// The record address a reference entry's `kind ++ owner` belongs to: a version key
/// (`bucket 0x00 esc(key) 0x00 0x01 stamp`) or a Paxos key (`bucket 0x00 key`).
fn owner_address(entry: &[u8]) -> Result<KeyRef, Error> {
    let bad = || Error::Corrupt("bad blob reference entry".into());
    let (&kind, owner) = entry.split_first().ok_or_else(bad)?;
    let cut = owner.iter().position(|&b| b == 0).ok_or_else(bad)?;
    let bucket = std::str::from_utf8(&owner[..cut])
        .map_err(|_| bad())?
        .to_owned();
    let rest = &owner[cut + 1..];
    let key = match kind {
        VERSION => {
            // The escaped key ends at the first NUL not followed by 0xFF.
            let mut end = 0;
            while end < rest.len() {
                match (rest[end], rest.get(end + 1)) {
                    (0, Some(0xFF)) => end += 2,
                    (0, _) => break,
                    _ => end += 1,
                }
            }
            super::versions::unescape(&rest[..end])?
        }
        PAXOS => String::from_utf8(rest.to_vec()).map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    Ok(KeyRef { bucket, key })
}

/// Removes one unreferenced blob's files; the bytes it freed.
pub(crate) type Remover = Box<dyn Fn(&str) -> Result<u64, Error> + Send + Sync>;

impl RecordStore {
    /// For each of `ids` nothing here refers to, how long ago its last reference went
    /// (`None`: never referred to, or not since this node kept track).
    pub(crate) async fn released(
        &self,
        ids: Vec<String>,
    ) -> Result<Vec<(String, Option<Duration>)>, Error> {
        self.read(move |txn| {
            let refs = txn
                .open_table(REFS)
                .map_err(Error::db("open blob references"))?;
            let mut out = Vec::new();
            for id in ids {
                if !referenced(&refs, &id)? {
                    let since = released_for(&refs, &id)?;
                    out.push((id, since));
                }
            }
            Ok(out)
        })
        .await
    }

    /// Of `ids`, each a stored version or an accepted value here refers to, with the
    /// addresses of the records that do (at most [`MAX_REFERRING_KEYS`]) and whether more do.
    pub(crate) async fn referrers(
        &self,
        ids: Vec<String>,
    ) -> Result<Vec<(String, Vec<KeyRef>, bool)>, Error> {
        self.read(move |txn| {
            let refs = txn
                .open_table(REFS)
                .map_err(Error::db("open blob references"))?;
            let mut out = Vec::new();
            for id in ids {
                if let (Some(keys), more) = referrers(&refs, &id, MAX_REFERRING_KEYS)? {
                    out.push((id, keys.into_iter().collect(), more));
                }
            }
            Ok(out)
        })
        .await
    }

    /// Has `remove` delete each of `ids` that nothing here refers to, and nothing referred
    /// to within `grace`, checked inside the record writer, so no record change comes
    /// between the check and the delete. Returns
    /// each blob `remove` freed bytes of, with the bytes. Runs on a full disk too: it is
    /// what frees it.
    pub(crate) async fn collect(
        &self,
        ids: Vec<String>,
        grace: Duration,
        remove: Remover,
    ) -> Result<Vec<(String, u64)>, Error> {
        match self.write(Change::Collect { ids, grace, remove }).await? {
            Reply::Collected(freed) => Ok(freed),
            _ => Err(Error::Corrupt(
                "record writer answered a collection oddly".into(),
            )),
        }
    }
}

/// [`RecordStore::collect`] inside the writer's transaction.
pub(super) fn collect(
    refs: &mut Bytes<'_>,
    ids: &[String],
    grace: Duration,
    remove: &Remover,
) -> Result<(Vec<(String, u64)>, bool), Error> {
    let (mut freed, mut changed) = (Vec::new(), false);
    for id in ids {
        if referenced(refs, id)? || released_for(refs, id)?.is_some_and(|ago| ago < grace) {
            continue;
        }
        let bytes = remove(id)?;
        if bytes > 0 {
            freed.push((id.clone(), bytes));
        }
        // Gone, or never here: its release time is of no use any more.
        changed |= refs
            .remove(entry(id, RELEASED, &[]).as_slice())
            .map_err(Error::db("remove blob release"))?
            .is_some();
    }
    Ok((freed, changed))
}
