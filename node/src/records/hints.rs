//! Repair hints in the record database: table `hints`, keyed by
//! `target ++ 0x00 ++ bucket ++ 0x00 ++ key`, each value the JSON [`Hint`].
//!
//! Invariants: one hint per (target, bucket, key), holding the largest `since` ever raised
//! for it; a delete removes a hint only if the stored `since` is not newer than the one the
//! deleter processed, so a hint raised again after the repairer read it survives. Targets
//! and bucket names never contain 0x00, so keys sort by (target, bucket, key) bytes. A
//! stored value that does not decode is treated as absent: listing skips it (with a
//! warning), a raise replaces it and a delete removes it, so one damaged value can never
//! block the repair queue. Writes run inside the record writer's group commits.

use redb::{ReadTransaction, ReadableTable, Table, TableDefinition};

use super::{check_bucket, decode};
use crate::error::Error;
use crate::proto::{Hint, MAX_LIST_LIMIT};

pub(super) const HINTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("hints");

/// The table key of `hint`; refuses hints whose parts would make keys ambiguous.
pub(super) fn hint_key(hint: &Hint) -> Result<Vec<u8>, Error> {
    if hint.target.is_empty() || hint.target.contains('\0') {
        return Err(Error::BadRequest(format!(
            "invalid hint target {:?}",
            hint.target
        )));
    }
    // An empty key names the bucket record itself.
    check_bucket(&hint.bucket)?;
    let mut k = Vec::with_capacity(hint.target.len() + hint.bucket.len() + hint.key.len() + 2);
    k.extend_from_slice(hint.target.as_bytes());
    k.push(0);
    k.extend_from_slice(hint.bucket.as_bytes());
    k.push(0);
    k.extend_from_slice(hint.key.as_bytes());
    Ok(k)
}

/// The hint stored under `key`, `None` if there is none or it does not decode.
fn stored(
    table: &Table<'_, &'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<Option<Hint>, Error> {
    let Some(value) = table.get(key).map_err(Error::db("read hint"))? else {
        return Ok(None);
    };
    match decode::<Hint>(value.value()) {
        Ok(hint) => Ok(Some(hint)),
        Err(e) => {
            tracing::warn!(error = %e, "stored hint does not decode; treated as absent");
            Ok(None)
        }
    }
}

/// Stores `hint` under `key` unless a hint with the same or a later `since` is there.
/// True when the table changed.
pub(super) fn raise(
    table: &mut Table<'_, &'static [u8], &'static [u8]>,
    key: &[u8],
    hint: &Hint,
) -> Result<bool, Error> {
    if stored(table, key)?.is_some_and(|current| current.since >= hint.since) {
        return Ok(false);
    }
    let bytes =
        serde_json::to_vec(hint).map_err(|e| Error::Corrupt(format!("cannot encode hint: {e}")))?;
    table
        .insert(key, bytes.as_slice())
        .map_err(Error::db("write hint"))?;
    Ok(true)
}

/// Removes the hint under `key` if its `since` is at most `hint.since`. True when the
/// table changed.
pub(super) fn clear(
    table: &mut Table<'_, &'static [u8], &'static [u8]>,
    key: &[u8],
    hint: &Hint,
) -> Result<bool, Error> {
    let present = table.get(key).map_err(Error::db("read hint"))?.is_some();
    if !present || stored(table, key)?.is_some_and(|current| current.since > hint.since) {
        return Ok(false);
    }
    table.remove(key).map_err(Error::db("delete hint"))?;
    Ok(true)
}

/// The first `limit` (at most [`MAX_LIST_LIMIT`]) hints in key order.
pub(super) fn list(txn: &ReadTransaction, limit: usize) -> Result<Vec<Hint>, Error> {
    let table = txn.open_table(HINTS).map_err(Error::db("open hints"))?;
    let limit = limit.min(MAX_LIST_LIMIT);
    let mut out = Vec::new();
    for item in table.iter().map_err(Error::db("list hints"))? {
        if out.len() == limit {
            break;
        }
        let (_, v) = item.map_err(Error::db("list hints"))?;
        match decode::<Hint>(v.value()) {
            Ok(hint) => out.push(hint),
            Err(e) => tracing::warn!(error = %e, "skipping a stored hint that does not decode"),
        }
    }
    Ok(out)
}
