//! The record writer thread: drains every pending write into one transaction, commits once
//! and answers each waiter (see the parent module for the group commit's invariants); after
//! an I/O error it reports the fault and reopens the database (see [`super::handle`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;

use prometheus::IntCounter;
use redb::Durability;

use super::handle::{DbSlot, Location};
use super::lazy_file::{FlushStop, Flusher};
use super::versions::{self, Tables};
use super::{
    BUCKETS, Change, KEYS, MAX_BATCH, Reply, WriteRequest, WriterStats, hints, merge_into, paxos,
    refs, release, tombstones,
};
use crate::disk::Disk;
use crate::error::Error;
use crate::proto::Hint;

/// The single writer: owns every write transaction, and reopens the database after an
/// I/O error (see [`handle`]).
pub(super) struct Writer {
    pub(super) db: Arc<DbSlot>,
    pub(super) location: Location,
    /// With fsync off: the thread that makes commits durable, stopped after the writer.
    pub(super) flusher: Option<(Flusher, FlushStop)>,
    /// With fsync off: a handle on the database file to fdatasync before Paxos answers.
    pub(super) paxos_sync: Option<std::fs::File>,
    pub(super) disk: Arc<Disk>,
    /// The database failed and is not reopened yet.
    pub(super) faulted: bool,
    pub(super) stats: Arc<WriterStats>,
    pub(super) commits: IntCounter,
}

/// Free bytes a failed database waits for before it is reopened.
const REOPEN_ROOM: u64 = 1024 * 1024;
/// How often a failed database is reopened while no write comes.
const REOPEN_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

impl Writer {
    pub(super) fn run(mut self, queue: mpsc::Receiver<WriteRequest>) {
        loop {
            let first = if self.faulted {
                match queue.recv_timeout(REOPEN_RETRY) {
                    Ok(request) => request,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.recover();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match queue.recv() {
                    Ok(request) => request,
                    Err(_) => break,
                }
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            let (changes, answers): (Vec<Change>, Vec<_>) =
                batch.into_iter().map(|r| (r.change, r.done)).unzip();
            if self.faulted {
                self.recover();
            }
            let committed = if self.faulted {
                Err(Error::Unavailable("record database failed; reopening"))
            } else {
                self.commit(&changes)
            };
            match committed {
                Ok(mut results) => {
                    self.sync_paxos(&changes, &mut results);
                    for (answer, result) in answers.into_iter().zip(results) {
                        let _ = answer.send(result);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, writes = answers.len(), "group commit failed");
                    for answer in answers {
                        let _ = answer.send(Err(e.duplicate()));
                    }
                    if matches!(e, Error::Db { .. }) && self.database_failed() {
                        self.disk.set_fault(Some(e.to_string()));
                        self.faulted = true;
                        self.recover();
                    }
                }
            }
        }
        // Every handle is gone: one last flush of what the writer committed.
        self.stop_flusher();
    }

    /// Whether the database refuses to start a write: redb's mark after an I/O error.
    fn database_failed(&self) -> bool {
        match self.db.get() {
            Ok(db) => match db.begin_write() {
                Ok(txn) => {
                    let _ = txn.abort();
                    false
                }
                Err(_) => true,
            },
            Err(_) => true,
        }
    }

    /// Reopens the failed database; clears the fault when that worked. Not before the
    /// disk has room again: a database reopened on a full disk would fail at its next
    /// commit, and the node would flap between healthy and not.
    fn recover(&mut self) {
        if self
            .disk
            .free_bytes()
            .is_some_and(|free| free < REOPEN_ROOM)
        {
            return;
        }
        self.stop_flusher();
        match self.db.reopen(&self.location.path, self.location.fsync) {
            Ok(opened) => {
                self.db.put(opened.db);
                self.flusher = opened.flusher;
                self.paxos_sync = opened.paxos_sync;
                self.faulted = false;
                self.disk.set_fault(None);
            }
            Err(e) => {
                tracing::warn!(error = %e, "record database not reopened yet");
                self.disk.set_fault(Some(e.to_string()));
            }
        }
    }

    fn stop_flusher(&mut self) {
        if let Some((flusher, stop)) = self.flusher.take() {
            drop(stop);
            flusher.join();
        }
    }

    /// With fsync off, makes a batch holding Paxos changes durable before it is answered;
    /// if that fails, those changes are answered with the error (the others keep fsync-off
    /// semantics and stand).
    fn sync_paxos(&self, changes: &[Change], results: &mut [Result<Reply, Error>]) {
        let Some(file) = &self.paxos_sync else {
            return;
        };
        if !changes.iter().any(Change::is_paxos) {
            return;
        }
        if let Err(e) = file.sync_data() {
            tracing::error!(error = %e, "flushing Paxos state failed");
            for (change, result) in changes.iter().zip(results.iter_mut()) {
                if change.is_paxos() {
                    *result = Err(Error::Io {
                        op: "flush paxos state",
                        source: std::io::Error::new(e.kind(), e.to_string()),
                    });
                }
            }
        }
    }

    /// Applies every change in one durable transaction (with fsync off the backend makes
    /// "durable" a write to the OS). Returns one result per change; `Err` when the
    /// transaction itself failed (then nothing of the batch is stored).
    fn commit(&self, changes: &[Change]) -> Result<Vec<Result<Reply, Error>>, Error> {
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        let db = self.db.get()?;
        let mut txn = db.begin_write().map_err(Error::db("begin write"))?;
        txn.set_durability(Durability::Immediate);
        let mut results = Vec::with_capacity(changes.len());
        let mut changed = false;
        {
            let mut objects = Tables::open(&txn)?;
            let mut buckets = txn.open_table(BUCKETS).map_err(Error::db("open buckets"))?;
            let mut keys = txn
                .open_table(KEYS)
                .map_err(Error::db("open access keys"))?;
            let mut hint_table = txn
                .open_table(hints::HINTS)
                .map_err(Error::db("open hints"))?;
            let mut paxos_table = txn
                .open_table(paxos::PAXOS)
                .map_err(Error::db("open paxos"))?;
            for change in changes {
                let done = |c: bool| (c, Reply::Done);
                let outcome = match change {
                    Change::Object { key, record } => {
                        paxos::check_fresh(&paxos_table, &objects, key, record)
                            .and_then(|()| versions::merge(&mut objects, &key.head, record))
                            .map(done)
                    }
                    Change::Bucket(record) => {
                        merge_into(&mut buckets, record.name.as_bytes(), &**record).map(done)
                    }
                    Change::Key(record) => {
                        merge_into(&mut keys, record.id.as_bytes(), record).map(done)
                    }
                    Change::RaiseHints(keyed) => {
                        each_hint(keyed, |key, hint| hints::raise(&mut hint_table, key, hint))
                            .map(done)
                    }
                    Change::ClearHints(keyed) => {
                        each_hint(keyed, |key, hint| hints::clear(&mut hint_table, key, hint))
                            .map(done)
                    }
                    Change::Prepare {
                        key,
                        ballot,
                        select,
                    } => paxos::prepare(&mut paxos_table, &objects, key, ballot, select)
                        .map(|(p, c)| (c, Reply::Promise(p))),
                    Change::Accept { key, proposal } => paxos::accept(
                        &mut paxos_table,
                        &mut objects,
                        key,
                        &proposal.ballot,
                        &proposal.value,
                    )
                    .map(|(a, c)| (c, Reply::Accept(a))),
                    Change::DropTombstones(refs) => {
                        tombstones::drop(&mut objects, refs).map(|n| (n > 0, Reply::Dropped(n)))
                    }
                    Change::Release { key } => {
                        release::release(&mut paxos_table, &mut objects, key).map(done)
                    }
                    Change::Collect { ids, grace, remove } => {
                        refs::collect(&mut objects.refs, ids, *grace, remove)
                            .map(|(freed, c)| (c, Reply::Collected(freed)))
                    }
                    Change::Commit { key, proposal } => paxos::commit(
                        &mut paxos_table,
                        &mut objects,
                        key,
                        &proposal.ballot,
                        &proposal.value,
                    )
                    .map(done),
                };
                match outcome {
                    Ok((c, reply)) => {
                        changed |= c;
                        results.push(Ok(reply));
                    }
                    // A failing table operation may leave the transaction unusable.
                    Err(e @ Error::Db { .. }) => return Err(e),
                    Err(e) => results.push(Err(e)),
                }
            }
        }
        if changed {
            txn.commit().map_err(Error::db("commit"))?;
            self.commits.inc();
        } else {
            // Nothing new (a re-sent or repaired record): every write in the batch is
            // already in an earlier commit, so skip the flush.
            txn.abort().map_err(Error::db("abort"))?;
        }
        Ok(results)
    }
}

/// Applies `apply` to every keyed hint in order; true when any changed the table.
fn each_hint(
    keyed: &[(Vec<u8>, Hint)],
    mut apply: impl FnMut(&[u8], &Hint) -> Result<bool, Error>,
) -> Result<bool, Error> {
    let mut changed = false;
    for (key, hint) in keyed {
        changed |= apply(key, hint)?;
    }
    Ok(changed)
}
