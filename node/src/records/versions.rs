//! Object versions, one stored value per (bucket, key, version), so that the cost of a write,
//! of a read of the current version or of a read of one version by id does not grow with
//! the number of versions the key has.
//!
//! Layout (all values JSON):
//! - `versions`: `bucket 0x00 esc(key) 0x00 0x01 ts(u64 BE) id` → one [`Version`];
//! - `heads`: `bucket 0x00 esc(key)` → the key's [`Head`] (its null version's stamp); every
//!   key with a stored version has one, so listings walk `heads`, one entry per key;
//! - `version_ids`: `bucket 0x00 esc(key) 0x00 id` → `ts` (u64 BE), to find a version by the
//!   id S3 clients name it by.
//!
//! `esc` doubles every 0x00 of the key as 0x00 0xFF. So the entries of one key are
//! contiguous and apart from every other key's (no key's range holds another's), escaped
//! keys sort like the keys, and an escaped prefix selects exactly the keys with that prefix.
//!
//! Invariants: the versions stored for a key are exactly what [`ObjectRecord::merge`] makes
//! of every version ever merged in, in any order and grouping (property-tested against the
//! whole-record merge); `version_ids` holds exactly the stored versions; [`window`] holds
//! every version from the current one (the newest not purged) up, and the null version, so
//! the merge of the windows of any replicas has the right current version.

use redb::{ReadableTable, Table, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{decode, get_decoded as get, refs, tombstones};
use crate::error::Error;
use crate::proto::gc::TombstoneRef;
use crate::proto::{MAX_PAGE_BYTES, ObjectRecord, Select, Stamp, Version, Versioned};

pub(super) const VERSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("versions");
pub(super) const HEADS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("heads");
pub(super) const IDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("version_ids");

type Bytes<'t> = Table<'t, &'static [u8], &'static [u8]>;

/// The tables of a write transaction that object versions live in, opened together: the
/// three above, the blob references of [`super::refs`] and the tombstone times of
/// [`super::tombstones`].
pub(super) struct Tables<'t> {
    pub versions: Bytes<'t>,
    pub heads: Bytes<'t>,
    pub ids: Bytes<'t>,
    pub refs: Bytes<'t>,
    pub tombstones: Bytes<'t>,
}

impl<'t> Tables<'t> {
    /// [`ReadTables::select`], inside a write transaction.
    pub(super) fn select(&self, hk: &[u8], select: &Select) -> Result<Option<ObjectRecord>, Error> {
        select_in(&self.versions, &self.heads, &self.ids, hk, select)
    }

    pub(super) fn open(txn: &'t redb::WriteTransaction) -> Result<Tables<'t>, Error> {
        Ok(Tables {
            versions: txn
                .open_table(VERSIONS)
                .map_err(Error::db("open versions"))?,
            heads: txn.open_table(HEADS).map_err(Error::db("open heads"))?,
            ids: txn.open_table(IDS).map_err(Error::db("open version ids"))?,
            refs: txn
                .open_table(refs::REFS)
                .map_err(Error::db("open blob references"))?,
            tombstones: txn
                .open_table(tombstones::TOMBSTONES)
                .map_err(Error::db("open tombstones"))?,
        })
    }
}

/// The three tables of a read transaction.
pub(super) struct ReadTables {
    versions: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    heads: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    ids: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl ReadTables {
    pub(super) fn open(txn: &redb::ReadTransaction) -> Result<ReadTables, Error> {
        Ok(ReadTables {
            versions: txn
                .open_table(VERSIONS)
                .map_err(Error::db("open versions"))?,
            heads: txn.open_table(HEADS).map_err(Error::db("open heads"))?,
            ids: txn.open_table(IDS).map_err(Error::db("open version ids"))?,
        })
    }

    /// The versions `select` names of the key whose head key is `hk`; `None` when it has
    /// none.
    pub(super) fn select(&self, hk: &[u8], select: &Select) -> Result<Option<ObjectRecord>, Error> {
        select_in(&self.versions, &self.heads, &self.ids, hk, select)
    }

    /// The versions of the key whose head key is `hk`, decoded as `V`: its window with
    /// `current_only`, else every version, or the oldest `limit` when it has more (then
    /// the second value is true).
    pub(super) fn versions_of<V: DeserializeOwned + Versioned>(
        &self,
        hk: &[u8],
        current_only: bool,
        limit: Option<usize>,
    ) -> Result<(Vec<V>, bool), Error> {
        if current_only {
            let head = head(&self.heads, hk)?;
            return Ok((window(&self.versions, head.as_ref(), hk)?, false));
        }
        let mut found = load_first(&self.versions, hk, limit.map(|n| n + 1))?;
        let partial = limit.is_some_and(|n| found.len() > n);
        if let Some(n) = limit {
            found.truncate(n);
        }
        Ok((found, partial))
    }

    /// The heads table, for listings.
    pub(super) fn heads(&self) -> &redb::ReadOnlyTable<&'static [u8], &'static [u8]> {
        &self.heads
    }
}

fn select_in(
    versions: &impl ReadableTable<&'static [u8], &'static [u8]>,
    heads: &impl ReadableTable<&'static [u8], &'static [u8]>,
    ids: &impl ReadableTable<&'static [u8], &'static [u8]>,
    hk: &[u8],
    select: &Select,
) -> Result<Option<ObjectRecord>, Error> {
    let found = match select {
        Select::All => load(versions, hk)?,
        Select::Current {
            with,
            stamps,
            since,
        } => {
            let head = head(heads, hk)?;
            let mut top: Vec<Version> = window(versions, head.as_ref(), hk)?;
            let mut add = |v: Version| {
                if let Err(at) = top.binary_search_by(|x| x.stamp.cmp(&v.stamp)) {
                    top.insert(at, v);
                }
            };
            if let Some(id) = with
                && let Some(v) = find(versions, ids, head.as_ref(), hk, id)?
            {
                add(v);
            }
            for stamp in stamps {
                if let Some(v) = get::<Version>(versions, &version_key(hk, stamp))? {
                    add(v);
                }
            }
            if let Some(since) = since {
                let (_, end) = versions_range(hk);
                let from = version_key(hk, since);
                for item in versions
                    .range::<&[u8]>(from.as_slice()..end.as_slice())
                    .map_err(Error::db("range versions"))?
                {
                    let (_, v) = item.map_err(Error::db("read version"))?;
                    add(decode(v.value())?);
                }
            }
            top
        }
        Select::Page { after, limit } => {
            let (start, end) = versions_range(hk);
            let lower = match after {
                Some(stamp) => std::ops::Bound::Excluded(version_key(hk, stamp)),
                None => std::ops::Bound::Included(start),
            };
            let mut page = Vec::new();
            let mut bytes = 0;
            for item in versions
                .range::<&[u8]>((
                    lower.as_ref().map(Vec::as_slice),
                    std::ops::Bound::Excluded(end.as_slice()),
                ))
                .map_err(Error::db("range versions"))?
                .take(*limit)
            {
                let (_, v) = item.map_err(Error::db("read version"))?;
                page.push(decode(v.value())?);
                bytes += v.value().len();
                if bytes >= MAX_PAGE_BYTES {
                    break;
                }
            }
            page
        }
    };
    Ok((!found.is_empty()).then_some(ObjectRecord { versions: found }))
}

/// What a key keeps besides its versions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Head {
    /// The stamp of the key's null version, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null: Option<Stamp>,
}

/// `bucket 0x00 esc(key)`: the key in `heads`, and the start of its other entries.
pub(super) fn head_key(bucket: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(bucket.len() + key.len() + 2);
    out.extend_from_slice(bucket.as_bytes());
    out.push(0);
    escape_into(&mut out, key);
    out
}

/// Appends `esc(key)`.
pub(super) fn escape_into(out: &mut Vec<u8>, key: &str) {
    for &b in key.as_bytes() {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
}

/// The key of an escaped key (the part of a head key after `bucket 0x00`).
pub(super) fn unescape(escaped: &[u8]) -> Result<String, Error> {
    let mut out = Vec::with_capacity(escaped.len());
    let mut bytes = escaped.iter();
    while let Some(&b) = bytes.next() {
        out.push(b);
        if b == 0 && bytes.next() != Some(&0xFF) {
            return Err(Error::Corrupt("stored object key is badly escaped".into()));
        }
    }
    String::from_utf8(out).map_err(|_| Error::Corrupt("stored object key is not UTF-8".into()))
}

/// Removes version `stamp` of the key whose head key is `hk` if it is a purge tombstone,
/// and the key's head when no version is left; true when it did.
pub(super) fn drop_tombstone(t: &mut Tables<'_>, hk: &[u8], stamp: &Stamp) -> Result<bool, Error> {
    let stored: Option<Version> = get(&t.versions, &version_key(hk, stamp))?;
    if !stored.as_ref().is_some_and(Version::is_purged) {
        return Ok(false);
    }
    remove(t, hk, stamp)?;
    let (start, end) = versions_range(hk);
    let left = t
        .versions
        .range::<&[u8]>(start.as_slice()..end.as_slice())
        .map_err(Error::db("range versions"))?
        .next()
        .is_some();
    if !left {
        t.heads.remove(hk).map_err(Error::db("remove head"))?;
    }
    Ok(true)
}

/// The (bucket, key, stamp) a version key names.
pub(super) fn parse_version_key(vk: &[u8]) -> Result<TombstoneRef, Error> {
    let bad = || Error::Corrupt("badly formed version key".into());
    let split = vk.iter().position(|&b| b == 0).ok_or_else(bad)?;
    let bucket = std::str::from_utf8(&vk[..split])
        .map_err(|_| bad())?
        .to_owned();
    let rest = &vk[split + 1..];
    let mut i = 0;
    let end = loop {
        match (rest.get(i), rest.get(i + 1)) {
            (Some(0), Some(0xFF)) => i += 2,
            (Some(0), Some(1)) => break i,
            (Some(_), _) => i += 1,
            (None, _) => return Err(bad()),
        }
    };
    let key = unescape(&rest[..end])?;
    let stamp = &rest[end + 2..];
    if stamp.len() < 8 {
        return Err(bad());
    }
    let (ts, id) = stamp.split_at(8);
    Ok(TombstoneRef {
        bucket,
        key,
        stamp: Stamp {
            ts: u64::from_be_bytes(ts.try_into().map_err(|_| bad())?),
            id: std::str::from_utf8(id).map_err(|_| bad())?.to_owned(),
        },
    })
}

/// The range of the versions of the key whose head key is `head`.
fn versions_range(head: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut start = head.to_vec();
    start.extend_from_slice(&[0, 1]);
    let mut end = head.to_vec();
    end.extend_from_slice(&[0, 2]);
    (start, end)
}

fn version_key(head: &[u8], stamp: &Stamp) -> Vec<u8> {
    let (mut k, _) = versions_range(head);
    k.extend_from_slice(&stamp.ts.to_be_bytes());
    k.extend_from_slice(stamp.id.as_bytes());
    k
}

fn id_key(head: &[u8], id: &str) -> Vec<u8> {
    let mut k = head.to_vec();
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::Corrupt(format!("cannot encode record: {e}")))
}

/// The key's head, if it has any version.
pub(super) fn head(
    heads: &impl ReadableTable<&'static [u8], &'static [u8]>,
    hk: &[u8],
) -> Result<Option<Head>, Error> {
    get(heads, hk)
}

/// Removes version `stamp` of the key whose head key is `hk`, with its id, blob references
/// and tombstone time (the head is the caller's).
pub(super) fn remove(t: &mut Tables<'_>, hk: &[u8], stamp: &Stamp) -> Result<(), Error> {
    let vk = version_key(hk, stamp);
    let old: Option<Version> = get(&t.versions, &vk)?;
    refs::version_changed(&mut t.refs, &vk, old.as_ref(), None)?;
    if old.as_ref().is_some_and(Version::is_purged) {
        tombstones::forget(&mut t.tombstones, &vk)?;
    }
    t.versions
        .remove(vk.as_slice())
        .map_err(Error::db("remove version"))?;
    t.ids
        .remove(id_key(hk, &stamp.id).as_slice())
        .map_err(Error::db("remove version id"))?;
    Ok(())
}

/// Merges every version of `incoming` into the stored versions of the key whose head key is
/// `hk`; true when anything stored changed. Costs one lookup and a few writes per incoming
/// version, whatever the number of versions the key has.
pub(super) fn merge(t: &mut Tables<'_>, hk: &[u8], incoming: &ObjectRecord) -> Result<bool, Error> {
    let stored_head: Option<Head> = get(&t.heads, hk)?;
    let mut head = stored_head.clone().unwrap_or_default();
    let mut changed = false;
    for v in &incoming.versions {
        if v.null {
            match &head.null {
                // An older null version is replaced by the newer one: nothing to keep.
                Some(n) if *n > v.stamp => continue,
                Some(n) if *n < v.stamp => {
                    let old = n.clone();
                    remove(t, hk, &old)?;
                    head.null = Some(v.stamp.clone());
                    changed = true;
                }
                Some(_) => {}
                None => head.null = Some(v.stamp.clone()),
            }
        }
        let vk = version_key(hk, &v.stamp);
        let existing: Option<Version> = get(&t.versions, &vk)?;
        // The whole-record merge of the two copies: one law for both layouts.
        let mut joined = ObjectRecord::default();
        if let Some(e) = &existing {
            joined.merge(&ObjectRecord::single(e.clone()));
        }
        joined.merge(&ObjectRecord::single(v.clone()));
        let Some(merged) = joined.versions.pop() else {
            continue;
        };
        if existing.as_ref() == Some(&merged) {
            continue;
        }
        t.versions
            .insert(vk.as_slice(), encode(&merged)?.as_slice())
            .map_err(Error::db("write version"))?;
        refs::version_changed(&mut t.refs, &vk, existing.as_ref(), Some(&merged))?;
        if merged.is_purged() && !existing.as_ref().is_some_and(Version::is_purged) {
            tombstones::arrived(&mut t.tombstones, &vk)?;
        }
        if existing.is_none() {
            t.ids
                .insert(
                    id_key(hk, &v.stamp.id).as_slice(),
                    v.stamp.ts.to_be_bytes().as_slice(),
                )
                .map_err(Error::db("write version id"))?;
        }
        changed = true;
    }
    if stored_head.as_ref() != Some(&head) && (stored_head.is_some() || changed) {
        t.heads
            .insert(hk, encode(&head)?.as_slice())
            .map_err(Error::db("write head"))?;
        changed = true;
    }
    Ok(changed)
}

/// Whether a merge of `v` would add a version the key does not have (a version already
/// stored, or a null version older than the key's, adds nothing).
pub(super) fn would_add(
    versions: &impl ReadableTable<&'static [u8], &'static [u8]>,
    head: Option<&Head>,
    hk: &[u8],
    v: &Version,
) -> Result<bool, Error> {
    if v.null
        && let Some(n) = head.and_then(|h| h.null.as_ref())
        && *n > v.stamp
    {
        return Ok(false);
    }
    let stored = versions
        .get(version_key(hk, &v.stamp).as_slice())
        .map_err(Error::db("read version"))?;
    Ok(stored.is_none())
}

/// Every stored version of a key, oldest first, decoded as `V` (a [`Version`] or a summary
/// of one).
pub(super) fn load<V: DeserializeOwned>(
    versions: &impl ReadableTable<&'static [u8], &'static [u8]>,
    hk: &[u8],
) -> Result<Vec<V>, Error> {
    load_first(versions, hk, None)
}

/// The oldest `limit` (all without one) stored versions of a key.
fn load_first<V: DeserializeOwned>(
    versions: &impl ReadableTable<&'static [u8], &'static [u8]>,
    hk: &[u8],
    limit: Option<usize>,
) -> Result<Vec<V>, Error> {
    let (start, end) = versions_range(hk);
    let mut out = Vec::new();
    for item in versions
        .range(start.as_slice()..end.as_slice())
        .map_err(Error::db("range versions"))?
        .take(limit.unwrap_or(usize::MAX))
    {
        let (_, v) = item.map_err(Error::db("read version"))?;
        out.push(decode(v.value())?);
    }
    Ok(out)
}

/// The versions a reader of the key's current state needs: from the newest version not
/// purged up (the tombstones above it included), and the null version. Reads from the
/// newest down, so it costs what it returns, not what the key holds.
pub(super) fn window<V: DeserializeOwned + Versioned>(
    versions: &impl ReadableTable<&'static [u8], &'static [u8]>,
    head: Option<&Head>,
    hk: &[u8],
) -> Result<Vec<V>, Error> {
    let (start, end) = versions_range(hk);
    let mut top: Vec<V> = Vec::new();
    for item in versions
        .range(start.as_slice()..end.as_slice())
        .map_err(Error::db("range versions"))?
        .rev()
    {
        let (_, v) = item.map_err(Error::db("read version"))?;
        let v: V = decode(v.value())?;
        let current = !v.is_purged();
        top.push(v);
        if current {
            break;
        }
    }
    top.reverse();
    if let Some(null) = head.and_then(|h| h.null.as_ref())
        && !top.iter().any(|v| v.stamp() == null)
        && let Some(v) = get::<V>(versions, &version_key(hk, null))?
    {
        top.insert(0, v);
    }
    Ok(top)
}

/// The version S3 clients name `s3_id` (`null` for the null version), if stored.
pub(super) fn find(
    versions: &impl ReadableTable<&'static [u8], &'static [u8]>,
    ids: &impl ReadableTable<&'static [u8], &'static [u8]>,
    head: Option<&Head>,
    hk: &[u8],
    s3_id: &str,
) -> Result<Option<Version>, Error> {
    let stamp = if s3_id == "null" {
        match head.and_then(|h| h.null.clone()) {
            Some(s) => s,
            None => return Ok(None),
        }
    } else {
        let ts = ids
            .get(id_key(hk, s3_id).as_slice())
            .map_err(Error::db("read version id"))?;
        let Some(ts) = ts else {
            return Ok(None);
        };
        let ts: [u8; 8] = ts
            .value()
            .try_into()
            .map_err(|_| Error::Corrupt("stored version id entry".into()))?;
        Stamp {
            ts: u64::from_be_bytes(ts),
            id: s3_id.to_owned(),
        }
    };
    let found: Option<Version> = get(versions, &version_key(hk, &stamp))?;
    // A null version's id is its stamp's, but S3 clients only ever name it `null`.
    Ok(found.filter(|v| s3_id == "null" || !v.null))
}

#[cfg(test)]
mod tests;
