//! Per-key Paxos state in the record database: table `paxos`, keyed `bucket ++ 0x00 ++
//! key`, each value the JSON [`PaxosState`].
//!
//! Invariants: a promise or an acceptance is answered only after the transaction that
//! stores it has committed (these changes run in the record writer's group commits, like
//! every other write), so a node that restarts never forgets what it promised. A commit
//! merges the value into the object record and updates the Paxos state in the same
//! transaction. A stored state that does not decode is never overwritten: the request
//! fails `Corrupt`, which the proposer counts as a missing answer. The blobs an accepted,
//! uncommitted value refers to are recorded in [`refs`], so garbage collection keeps them
//! for the round that may still commit it.

use redb::{ReadTransaction, Table, TableDefinition};

use super::versions::{self, Tables};
use super::{Change, ObjectKeys, RecordStore, Reply, get_decoded, refs};
use crate::error::Error;
use crate::proto::paxos::{
    AcceptReply, AgreedKey, AgreedKeys, Ballot, MAX_AGREED_KEYS, PaxosState, Promise, Proposal,
};
use crate::proto::{ObjectRecord, Select};

pub(super) const PAXOS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("paxos");

type Bytes<'t> = Table<'t, &'static [u8], &'static [u8]>;

impl RecordStore {
    /// Paxos `prepare` for (bucket, key); answers once the promise is durable, with the
    /// versions `select` names.
    pub(crate) async fn paxos_prepare(
        &self,
        bucket: &str,
        key: &str,
        ballot: Ballot,
        select: Select,
    ) -> Result<Promise, Error> {
        let key = ObjectKeys::new(bucket, key)?;
        match self
            .write(Change::Prepare {
                key,
                ballot,
                select,
            })
            .await?
        {
            Reply::Promise(p) => Ok(p),
            _ => Err(Error::Corrupt(
                "record writer answered prepare oddly".into(),
            )),
        }
    }

    /// Paxos `accept` for (bucket, key); answers once the acceptance is durable.
    pub(crate) async fn paxos_accept(
        &self,
        bucket: &str,
        key: &str,
        proposal: Proposal,
    ) -> Result<AcceptReply, Error> {
        let key = ObjectKeys::new(bucket, key)?.paxos;
        match self.write(Change::Accept { key, proposal }).await? {
            Reply::Accept(a) => Ok(a),
            _ => Err(Error::Corrupt("record writer answered accept oddly".into())),
        }
    }

    /// Paxos `commit` for (bucket, key): the chosen value merged into the record.
    pub(crate) async fn paxos_commit(
        &self,
        bucket: &str,
        key: &str,
        proposal: Proposal,
    ) -> Result<(), Error> {
        let key = ObjectKeys::new(bucket, key)?;
        self.write(Change::Commit { key, proposal }).await.map(drop)
    }
}

impl RecordStore {
    /// The keys with agreement state here, after `after` (`bucket ++ 0x00 ++ key`), at
    /// most `limit` (capped at [`MAX_AGREED_KEYS`]).
    pub(crate) async fn agreed_keys(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<AgreedKeys, Error> {
        self.read(move |txn| agreed_keys(txn, after.as_deref(), limit))
            .await
    }
}

fn agreed_keys(
    txn: &ReadTransaction,
    after: Option<&str>,
    limit: usize,
) -> Result<AgreedKeys, Error> {
    let table = txn.open_table(PAXOS).map_err(Error::db("open paxos"))?;
    let limit = limit.min(MAX_AGREED_KEYS);
    let after = after.unwrap_or_default().as_bytes();
    let range = table
        .range::<&[u8]>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
        .map_err(Error::db("paxos range"))?;
    let mut page = AgreedKeys::default();
    for item in range {
        let (k, _) = item.map_err(Error::db("paxos read"))?;
        if page.keys.len() == limit {
            page.truncated = true;
            break;
        }
        // Bucket names hold no 0x00, so the first one ends the bucket.
        let raw = k.value();
        let Some(split) = raw.iter().position(|&b| b == 0) else {
            continue;
        };
        let (Ok(bucket), Ok(key)) = (
            std::str::from_utf8(&raw[..split]),
            std::str::from_utf8(&raw[split + 1..]),
        ) else {
            continue;
        };
        page.keys.push(AgreedKey {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        });
    }
    Ok(page)
}

/// `prepare(ballot)` for the object at `key`. Returns the answer and whether anything
/// changed.
pub(super) fn prepare(
    paxos: &mut Bytes<'_>,
    objects: &Tables<'_>,
    key: &ObjectKeys,
    ballot: &Ballot,
    select: &Select,
) -> Result<(Promise, bool), Error> {
    let before: PaxosState = get_decoded(paxos, &key.paxos)?.unwrap_or_default();
    let mut state = before.clone();
    let promised = state.prepare(ballot);
    let changed = state != before && store(paxos, &key.paxos, &state)?;
    // What the proposer decides on: the window, and whatever else it names (a version by
    // id, every version since its own first attempt).
    let record: Option<ObjectRecord> = if promised {
        objects.select(&key.head, select)?
    } else {
        None
    };
    let promise = Promise {
        promised,
        highest: state.highest_or(ballot),
        accepted: if promised { state.accepted } else { None },
        record,
    };
    Ok((promise, changed))
}

/// `accept(ballot, value)` for the object at `key`.
pub(super) fn accept(
    paxos: &mut Bytes<'_>,
    objects: &mut Tables<'_>,
    key: &[u8],
    ballot: &Ballot,
    value: &ObjectRecord,
) -> Result<(AcceptReply, bool), Error> {
    let before: PaxosState = get_decoded(paxos, key)?.unwrap_or_default();
    let mut state = before.clone();
    let accepted = state.accept(ballot, value);
    let changed = state != before && store(paxos, key, &state)?;
    if changed {
        refs::accepted_changed(&mut objects.refs, key, pending(&before), pending(&state))?;
    }
    let reply = AcceptReply {
        accepted,
        highest: state.highest_or(ballot),
    };
    Ok((reply, changed))
}

/// `commit(ballot, value)`: merges the chosen value into the object record and marks the
/// record as standing for it. Returns whether anything changed.
pub(super) fn commit(
    paxos: &mut Bytes<'_>,
    objects: &mut Tables<'_>,
    key: &ObjectKeys,
    ballot: &Ballot,
    value: &ObjectRecord,
) -> Result<bool, Error> {
    let before: PaxosState = get_decoded(paxos, &key.paxos)?.unwrap_or_default();
    let merged = versions::merge(objects, &key.head, value)?;
    let mut state = before.clone();
    state.committed(ballot);
    let changed = state != before && store(paxos, &key.paxos, &state)?;
    if changed {
        refs::accepted_changed(
            &mut objects.refs,
            &key.paxos,
            pending(&before),
            pending(&state),
        )?;
    }
    Ok(merged || changed)
}

/// Refuses (`Stale`) a plain merge of `incoming` into the object at `key` when it would
/// add a live version stamped below the highest ballot promised for the key.
///
/// Why: a conditional write's new version is stamped with its ballot, and its condition is
/// evaluated on the records a majority of promises carried. A plain write acknowledged by
/// W replicas shares a node with that majority; on that node it was merged either before
/// the promise (so the condition saw it, and it orders before the conditional write) or
/// after, where this check lets it in only with a stamp above the ballot (so it orders
/// after the conditional write and wins over it). Either way plain and conditional writes
/// of one key are ordered, and the effect of neither is lost. Versions the node already
/// has (a tag change, a re-sent write) and purge tombstones (a purge of a version older
/// than the conditional write cannot change what its condition saw) are let in.
pub(super) fn check_fresh(
    paxos: &Bytes<'_>,
    objects: &Tables<'_>,
    key: &ObjectKeys,
    incoming: &ObjectRecord,
) -> Result<(), Error> {
    let state: Option<PaxosState> = get_decoded(paxos, &key.paxos)?;
    let Some(promised) = state.and_then(|s| s.promised) else {
        return Ok(());
    };
    let below = |v: &crate::proto::Version| !v.is_purged() && v.stamp < promised;
    if !incoming.versions.iter().any(below) {
        return Ok(());
    }
    // Only what the merge would really add counts: an old null version the node already
    // replaced by a newer one, say, changes nothing. Of several null versions sent
    // together only the newest can be added.
    let head = versions::head(&objects.heads, &key.head)?;
    let newest_null = incoming
        .versions
        .iter()
        .filter(|v| v.null)
        .map(|v| &v.stamp)
        .max();
    for v in incoming.versions.iter().filter(|v| below(v)) {
        if v.null && newest_null.is_some_and(|n| *n > v.stamp) {
            continue;
        }
        if versions::would_add(&objects.versions, head.as_ref(), &key.head, v)? {
            return Err(Error::Stale { promised });
        }
    }
    Ok(())
}

/// The accepted value a state keeps until it is committed.
pub(super) fn pending(state: &PaxosState) -> Option<&ObjectRecord> {
    state.accepted.as_ref().and_then(|a| a.value.as_ref())
}

fn store(paxos: &mut Bytes<'_>, key: &[u8], state: &PaxosState) -> Result<bool, Error> {
    let bytes = serde_json::to_vec(state)
        .map_err(|e| Error::Corrupt(format!("cannot encode paxos state: {e}")))?;
    paxos
        .insert(key, bytes.as_slice())
        .map_err(Error::db("write paxos state"))?;
    Ok(true)
}
