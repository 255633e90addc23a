//! When each purge tombstone reached this node (table `tombstones`: version key → first
//! seen, µs since the epoch, u64 BE), so that old ones can be listed and dropped once every
//! replica holds them (the gateway's garbage collection decides that).
//!
//! Invariant: the table has an entry for exactly the stored versions that are purged
//! (kept by [`super::versions::merge`] and [`drop`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{ReadableTable, Table, TableDefinition};

use super::versions::{self, Tables};
use super::{Change, RecordStore, Reply};
use crate::error::Error;
use crate::proto::gc::{TombstonePage, TombstoneRef};

pub(super) const TOMBSTONES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("tombstones");

type Bytes<'t> = Table<'t, &'static [u8], &'static [u8]>;

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The version at `version_key` became a tombstone here (now, unless it already was).
pub(super) fn arrived(table: &mut Bytes<'_>, version_key: &[u8]) -> Result<(), Error> {
    if table
        .get(version_key)
        .map_err(Error::db("read tombstone"))?
        .is_none()
    {
        table
            .insert(version_key, now_us().to_be_bytes().as_slice())
            .map_err(Error::db("write tombstone"))?;
    }
    Ok(())
}

pub(super) fn forget(table: &mut Bytes<'_>, version_key: &[u8]) -> Result<(), Error> {
    table
        .remove(version_key)
        .map_err(Error::db("remove tombstone"))?;
    Ok(())
}

impl RecordStore {
    /// Up to `limit` tombstones held for at least `grace`, after version key `after`.
    pub(crate) async fn old_tombstones(
        &self,
        grace: Duration,
        after: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<TombstonePage, Error> {
        self.read(move |txn| {
            let table = txn
                .open_table(TOMBSTONES)
                .map_err(Error::db("open tombstones"))?;
            let lower = match &after {
                Some(k) => std::ops::Bound::Excluded(k.as_slice()),
                None => std::ops::Bound::Unbounded,
            };
            let cutoff = now_us().saturating_sub(grace.as_micros() as u64);
            let mut page = TombstonePage::default();
            let mut last = None;
            let mut seen = 0;
            for item in table
                .range::<&[u8]>((lower, std::ops::Bound::Unbounded))
                .map_err(Error::db("read tombstones"))?
            {
                let (k, v) = item.map_err(Error::db("read tombstones"))?;
                seen += 1;
                last = Some(k.value().to_vec());
                let since = v
                    .value()
                    .try_into()
                    .map(u64::from_be_bytes)
                    .map_err(|_| Error::Corrupt("bad tombstone time".into()))?;
                if since <= cutoff {
                    page.tombstones
                        .push(versions::parse_version_key(k.value())?);
                }
                if seen == limit {
                    break;
                }
            }
            if seen == limit {
                page.next = last.map(|k| hex(&k));
            }
            Ok(page)
        })
        .await
    }

    /// Drops each of `tombstones` that is still a purge tombstone here.
    pub(crate) async fn drop_tombstones(
        &self,
        tombstones: Vec<TombstoneRef>,
    ) -> Result<u64, Error> {
        for t in &tombstones {
            super::ObjectKeys::new(&t.bucket, &t.key)?;
        }
        match self.write(Change::DropTombstones(tombstones)).await? {
            Reply::Dropped(n) => Ok(n),
            _ => Err(Error::Corrupt("record writer answered a drop oddly".into())),
        }
    }
}

/// [`RecordStore::drop_tombstones`] inside the writer's transaction.
pub(super) fn drop(t: &mut Tables<'_>, tombstones: &[TombstoneRef]) -> Result<u64, Error> {
    let mut dropped = 0;
    for r in tombstones {
        let hk = versions::head_key(&r.bucket, &r.key);
        if versions::drop_tombstone(t, &hk, &r.stamp)? {
            dropped += 1;
        }
    }
    Ok(dropped)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The version key of an `after=` cursor.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
