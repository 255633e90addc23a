//! The record database's layout version (table `meta`, entry `format`), and the conversion
//! of older layouts when a node opens one.
//!
//! - Format 1 (s3quorum 0.1, no `meta` table): table `objects` held one JSON record per
//!   key, `bucket ++ 0x00 ++ key` → every version of the key.
//! - Format 2: one entry per version (see [`super::versions`]).
//! - Format 3: format 2, the blob references of [`super::refs`] and the tombstone times of
//!   [`super::tombstones`] (a tombstone of a converted database counts from the
//!   conversion), built from the stored versions and accepted Paxos values when a format-2
//!   database is opened.
//!
//! Invariants: the conversion moves records in batches, each batch one transaction that
//! merges the records into the new tables and removes them from the old one, so a node
//! killed half-way resumes where it stopped and no version is lost or doubled (merging is
//! idempotent). A record that does not decode is not dropped: it moves to
//! `unreadable_records` for an operator. The format number is written only once nothing is
//! left to convert. A database of a newer format than this node knows is refused. Building
//! the blob references only inserts entries (idempotent): a node killed half-way starts
//! it again.

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, TableError};

use super::versions::{self, Tables};
use super::{decode, paxos, refs, tombstones};
use crate::error::Error;
use crate::proto::paxos::PaxosState;
use crate::proto::{ObjectRecord, Version};

/// The layout this node writes.
pub(crate) const FORMAT: u64 = 3;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Format 1's records.
const OBJECTS_V1: TableDefinition<&[u8], &[u8]> = TableDefinition::new("objects");
const UNREADABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("unreadable_records");

/// Records converted per transaction.
const BATCH: usize = 512;

/// The database's format; `None` for format 1, which did not say.
fn stored_format(db: &Database) -> Result<Option<u64>, Error> {
    let txn = db.begin_read().map_err(Error::db("begin read"))?;
    let meta = match txn.open_table(META) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(Error::db("open meta")(e)),
    };
    let format = meta.get("format").map_err(Error::db("read format"))?;
    Ok(format.map(|v| v.value()))
}

/// Brings the database at hand to [`FORMAT`], converting what an older release wrote.
/// Blocking; runs before the node serves anything.
pub(super) fn upgrade(db: &Database) -> Result<(), Error> {
    match stored_format(db)? {
        Some(FORMAT) => return Ok(()),
        Some(newer) if newer > FORMAT => {
            return Err(Error::Corrupt(format!(
                "the record database has format {newer}, written by a newer release; this \
                 node reads format {FORMAT} and older"
            )));
        }
        _ => {}
    }
    if stored_format(db)?.is_none() {
        from_format_1(db)?;
    }
    index_versions(db)?;
    let txn = db.begin_write().map_err(Error::db("begin write"))?;
    set_format(&txn, FORMAT)?;
    txn.commit().map_err(Error::db("commit"))?;
    Ok(())
}

fn set_format(txn: &redb::WriteTransaction, format: u64) -> Result<(), Error> {
    txn.open_table(META)
        .map_err(Error::db("open meta"))?
        .insert("format", format)
        .map_err(Error::db("write format"))?;
    Ok(())
}

/// Format 1 to format 2.
fn from_format_1(db: &Database) -> Result<(), Error> {
    let mut converted = 0u64;
    loop {
        let txn = db.begin_write().map_err(Error::db("begin write"))?;
        let moved = convert_batch(&txn)?;
        if moved == 0 {
            txn.delete_table(OBJECTS_V1)
                .map_err(Error::db("drop format 1 table"))?;
            set_format(&txn, 2)?;
            txn.commit().map_err(Error::db("commit"))?;
            if converted > 0 {
                tracing::info!(records = converted, "record database converted to format 2");
            }
            return Ok(());
        }
        txn.commit().map_err(Error::db("commit"))?;
        converted += moved as u64;
    }
}

/// Format 2 to format 3: a blob reference for every stored version and accepted value,
/// [`BATCH`] versions per transaction.
fn index_versions(db: &Database) -> Result<(), Error> {
    let mut after: Option<Vec<u8>> = None;
    let mut indexed = 0u64;
    loop {
        let txn = db.begin_write().map_err(Error::db("begin write"))?;
        let mut last = None;
        {
            let stored = txn
                .open_table(versions::VERSIONS)
                .map_err(Error::db("open versions"))?;
            let mut table = txn
                .open_table(refs::REFS)
                .map_err(Error::db("open blob references"))?;
            let mut purged = txn
                .open_table(tombstones::TOMBSTONES)
                .map_err(Error::db("open tombstones"))?;
            let lower = match &after {
                Some(k) => std::ops::Bound::Excluded(k.as_slice()),
                None => std::ops::Bound::Unbounded,
            };
            let range = stored
                .range::<&[u8]>((lower, std::ops::Bound::Unbounded))
                .map_err(Error::db("read versions"))?;
            for item in range.take(BATCH) {
                let (k, v) = item.map_err(Error::db("read versions"))?;
                let version: Version = decode(v.value())?;
                refs::version_changed(&mut table, k.value(), None, Some(&version))?;
                if version.is_purged() {
                    tombstones::arrived(&mut purged, k.value())?;
                }
                last = Some(k.value().to_vec());
                indexed += 1;
            }
        }
        let done = last.is_none();
        if done {
            index_accepted(&txn)?;
        }
        txn.commit().map_err(Error::db("commit"))?;
        if done {
            if indexed > 0 {
                tracing::info!(versions = indexed, "blob references built (format 3)");
            }
            return Ok(());
        }
        after = last;
    }
}

fn index_accepted(txn: &redb::WriteTransaction) -> Result<(), Error> {
    let states = txn
        .open_table(paxos::PAXOS)
        .map_err(Error::db("open paxos"))?;
    let mut table = txn
        .open_table(refs::REFS)
        .map_err(Error::db("open blob references"))?;
    for item in states.iter().map_err(Error::db("read paxos"))? {
        let (k, v) = item.map_err(Error::db("read paxos"))?;
        let state: PaxosState = decode(v.value())?;
        let value = state.accepted.as_ref().and_then(|a| a.value.as_ref());
        refs::accepted_changed(&mut table, k.value(), None, value)?;
    }
    Ok(())
}

/// Moves up to [`BATCH`] format-1 records into the per-version tables; how many it moved.
fn convert_batch(txn: &redb::WriteTransaction) -> Result<usize, Error> {
    let mut old = txn
        .open_table(OBJECTS_V1)
        .map_err(Error::db("open format 1 table"))?;
    if old.is_empty().map_err(Error::db("read format 1 table"))? {
        return Ok(0);
    }
    let mut batch = Vec::with_capacity(BATCH);
    for item in old.iter().map_err(Error::db("read format 1 table"))? {
        let (k, v) = item.map_err(Error::db("read format 1 table"))?;
        batch.push((k.value().to_vec(), v.value().to_vec()));
        if batch.len() == BATCH {
            break;
        }
    }
    let mut tables = Tables::open(txn)?;
    let mut unreadable = txn
        .open_table(UNREADABLE)
        .map_err(Error::db("open unreadable records"))?;
    for (k, v) in &batch {
        match v1_record(k, v) {
            Ok((bucket, key, record)) => {
                versions::merge(&mut tables, &versions::head_key(bucket, key), &record)?;
            }
            Err(why) => {
                tracing::error!(why, "format 1 record kept aside in unreadable_records");
                unreadable
                    .insert(k.as_slice(), v.as_slice())
                    .map_err(Error::db("keep unreadable record"))?;
            }
        }
        old.remove(k.as_slice())
            .map_err(Error::db("remove format 1 record"))?;
    }
    Ok(batch.len())
}

fn v1_record<'a>(k: &'a [u8], v: &[u8]) -> Result<(&'a str, &'a str, ObjectRecord), String> {
    let split = k
        .iter()
        .position(|&b| b == 0)
        .ok_or("key without a bucket")?;
    let bucket = std::str::from_utf8(&k[..split]).map_err(|_| "bucket not UTF-8")?;
    let key = std::str::from_utf8(&k[split + 1..]).map_err(|_| "key not UTF-8")?;
    let record = serde_json::from_slice(v).map_err(|e| format!("record: {e}"))?;
    Ok((bucket, key, record))
}
