//! Metadata records in redb (`<data_dir>/records.redb`): object versions, one value per
//! version (see [`versions`]), bucket records keyed by name, stored as JSON, the repair
//! hints of [`hints`] and the per-key compare-and-set state of [`paxos`] (keyed `bucket ++
//! 0x00 ++ key`). The database's layout has a format number ([`format`]); a node opened on
//! an older layout converts it first.
//!
//! Invariants: stored records only ever grow by merge (`proto` merge functions), so writes
//! are idempotent and order-free. Every write goes through one writer thread that drains
//! all pending requests into ONE write transaction and commits once (group commit: one
//! fsync per batch, not per record; with fsync off no fsync on the write path at all, see
//! [`lazy_file`]), then answers each waiter; a write is acknowledged only
//! after the commit that contains it; hint writes share those transactions. Paxos changes
//! are on disk before they are answered even with fsync off: a forgotten promise could let
//! two conditional writers both win. Bucket names
//! never contain 0x00, so the keys of one bucket are contiguous and sorted by key bytes.
//! Reads run concurrently on read transactions and never wait for the writer.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
#[cfg(test)]
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread::JoinHandle;

use prometheus::IntCounter;
use redb::{ReadTransaction, ReadableTable, Table, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::disk::Disk;
use crate::error::Error;
use crate::proto::access::KeyRecord;
use crate::proto::paxos::{AcceptReply, Ballot, Promise, Proposal};
use crate::proto::{BucketRecord, Hint, ObjectRecord, Select};

pub(crate) mod format;
mod handle;
mod hints;
mod lazy_file;
mod list;
mod paxos;
mod refs;
mod release;
mod tombstones;
mod versions;
mod writer;

use handle::{DbSlot, Location, Opened};
pub(crate) use tombstones::unhex;
use writer::Writer;

const BUCKETS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("buckets");
/// Access keys by id, fully replicated like the buckets.
const KEYS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("access_keys");

/// Most writes folded into one transaction; bounds the latency of the batch's first waiter.
const MAX_BATCH: usize = 1024;
/// Page cache of the record database. Records are small; the OS page cache does the rest.
const CACHE_SIZE: usize = 128 * 1024 * 1024;

/// Handle to the record database. Cheap to clone; the writer thread stops when the last
/// handle is dropped.
#[derive(Clone)]
pub(crate) struct RecordStore {
    db: Arc<DbSlot>,
    writes: mpsc::Sender<WriteRequest>,
    disk: Arc<Disk>,
    #[cfg(test)]
    stats: Arc<WriterStats>,
}

/// The writer thread, to be joined at shutdown after every [`RecordStore`] is dropped.
pub(crate) struct RecordWriter(JoinHandle<()>);

impl RecordWriter {
    /// Waits until the writer has answered every request and made its commits durable.
    pub(crate) fn join(self) {
        if self.0.join().is_err() {
            tracing::error!("record writer thread panicked");
        }
    }
}

#[derive(Default)]
struct WriterStats {
    batches: AtomicU64,
}

enum Change {
    Object {
        key: ObjectKeys,
        record: ObjectRecord,
    },
    Bucket(Box<BucketRecord>),
    Key(KeyRecord),
    /// Hints with their table keys, each stored unless a later one is there.
    RaiseHints(Vec<(Vec<u8>, Hint)>),
    /// Hints with their table keys, each removed unless raised again since.
    ClearHints(Vec<(Vec<u8>, Hint)>),
    Prepare {
        key: ObjectKeys,
        ballot: Ballot,
        select: Select,
    },
    Accept {
        key: Vec<u8>,
        proposal: Proposal,
    },
    Commit {
        key: ObjectKeys,
        proposal: Proposal,
    },
    /// Purge tombstones to drop (garbage collection).
    DropTombstones(Vec<crate::proto::gc::TombstoneRef>),
    /// The whole record of a key to remove (a key this node gave up after a migration).
    Release {
        key: ObjectKeys,
    },
    /// Blobs to delete unless a record refers to them (garbage collection).
    Collect {
        ids: Vec<String>,
        grace: std::time::Duration,
        remove: refs::Remover,
    },
}

impl Change {
    fn is_paxos(&self) -> bool {
        matches!(
            self,
            Change::Prepare { .. } | Change::Accept { .. } | Change::Commit { .. }
        )
    }
}

/// What a committed change answers.
enum Reply {
    Done,
    Promise(Promise),
    Accept(AcceptReply),
    /// The blobs a collection deleted, with the bytes each freed.
    Collected(Vec<(String, u64)>),
    /// How many tombstones a drop removed.
    Dropped(u64),
}

struct WriteRequest {
    change: Change,
    done: oneshot::Sender<Result<Reply, Error>>,
}

/// What the store keeps: a mergeable JSON value.
trait Stored: Serialize + DeserializeOwned + PartialEq + Clone {
    /// `incoming` merged into `existing` (or normalised alone).
    fn join(existing: Option<&Self>, incoming: &Self) -> Self;
    /// True for a value not worth storing when nothing is stored yet.
    fn is_void(&self) -> bool;
}

/// Records of the fully replicated tables: joined by their own merge, never void.
macro_rules! stored_by_merge {
    ($($t:ty),*) => {$(
        impl Stored for $t {
            fn join(existing: Option<&Self>, incoming: &Self) -> Self {
                let mut merged = existing.unwrap_or(incoming).clone();
                merged.merge(incoming);
                merged
            }
            fn is_void(&self) -> bool {
                false
            }
        }
    )*};
}

stored_by_merge!(BucketRecord, KeyRecord);

impl RecordStore {
    /// Opens (creating if needed) the database at `path` and starts the writer thread.
    /// Blocking. With `fsync` every commit is durable before its writes are acknowledged.
    /// `commits` counts the write transactions committed; `disk` refuses writes when it is
    /// full and hears of the database's I/O faults.
    pub(crate) fn open(
        path: &Path,
        fsync: bool,
        commits: IntCounter,
        disk: Arc<Disk>,
    ) -> Result<(RecordStore, RecordWriter), Error> {
        let Opened {
            db,
            flusher,
            paxos_sync,
        } = handle::open(path, fsync)?;
        let db = Arc::new(DbSlot::new(db));
        let stats = Arc::new(WriterStats::default());
        let (writes, queue) = mpsc::channel();
        let writer = Writer {
            db: Arc::clone(&db),
            location: Location {
                path: path.to_path_buf(),
                fsync,
            },
            flusher,
            paxos_sync,
            disk: Arc::clone(&disk),
            faulted: false,
            stats: Arc::clone(&stats),
            commits,
        };
        let handle = std::thread::Builder::new()
            .name("record-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(Error::io("spawn record writer thread"))?;
        let store = RecordStore {
            db,
            writes,
            disk,
            #[cfg(test)]
            stats,
        };
        Ok((store, RecordWriter(handle)))
    }

    /// Merges `record` into the record of (bucket, key); returns once it is committed.
    pub(crate) async fn merge_object(
        &self,
        bucket: &str,
        key: &str,
        record: ObjectRecord,
    ) -> Result<(), Error> {
        let key = ObjectKeys::new(bucket, key)?;
        self.write(Change::Object { key, record }).await.map(drop)
    }

    /// Merges `record` into the bucket record of the same name; returns once committed.
    pub(crate) async fn merge_bucket(&self, record: BucketRecord) -> Result<(), Error> {
        check_bucket(&record.name)?;
        self.write(Change::Bucket(Box::new(record))).await.map(drop)
    }

    /// Merges `record` into the access key of the same id; returns once committed.
    pub(crate) async fn merge_key(&self, record: KeyRecord) -> Result<(), Error> {
        if !KeyRecord::valid_id(&record.id) {
            return Err(Error::BadRequest(format!(
                "invalid access key id {:?}",
                record.id
            )));
        }
        self.write(Change::Key(record)).await.map(drop)
    }

    /// Every access key record on this node (deleted keys included), by id.
    pub(crate) async fn list_keys(&self) -> Result<Vec<KeyRecord>, Error> {
        self.read(|txn| {
            let table = txn
                .open_table(KEYS)
                .map_err(Error::db("open access keys"))?;
            let mut out = Vec::new();
            for item in table.iter().map_err(Error::db("list access keys"))? {
                let (_, v) = item.map_err(Error::db("list access keys"))?;
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    /// The versions `select` names of (bucket, key), if this node has any.
    pub(crate) async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        select: Select,
    ) -> Result<Option<ObjectRecord>, Error> {
        let key = ObjectKeys::new(bucket, key)?;
        self.read(move |txn| {
            let tables = versions::ReadTables::open(txn)?;
            tables.select(&key.head, &select)
        })
        .await
    }

    /// The record of bucket `name`, if this node has one.
    pub(crate) async fn get_bucket(&self, name: &str) -> Result<Option<BucketRecord>, Error> {
        check_bucket(name)?;
        let name = name.as_bytes().to_vec();
        self.read(move |txn| {
            let table = txn.open_table(BUCKETS).map_err(Error::db("open buckets"))?;
            get_decoded(&table, &name)
        })
        .await
    }

    /// Every bucket record on this node (deleted buckets included), by name.
    pub(crate) async fn list_buckets(&self) -> Result<Vec<BucketRecord>, Error> {
        self.read(|txn| {
            let table = txn.open_table(BUCKETS).map_err(Error::db("open buckets"))?;
            let mut out = Vec::new();
            for item in table.iter().map_err(Error::db("list buckets"))? {
                let (_, v) = item.map_err(Error::db("list buckets"))?;
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    /// Stores repair hints; for each (target, bucket, key) the largest `since` is kept.
    /// Returns once committed. Refuses the whole batch if one hint is malformed.
    pub(crate) async fn raise_hints(&self, hints: Vec<Hint>) -> Result<(), Error> {
        let keyed = keyed_hints(hints)?;
        if keyed.is_empty() {
            return Ok(());
        }
        self.write(Change::RaiseHints(keyed)).await.map(drop)
    }

    /// Removes repair hints, each only if the stored `since` is not newer than the given
    /// one. Returns once committed. Refuses the whole batch if one hint is malformed.
    pub(crate) async fn clear_hints(&self, hints: Vec<Hint>) -> Result<(), Error> {
        let keyed = keyed_hints(hints)?;
        if keyed.is_empty() {
            return Ok(());
        }
        self.write(Change::ClearHints(keyed)).await.map(drop)
    }

    /// The first `limit` (at most [`crate::proto::MAX_LIST_LIMIT`]) hints, ascending by
    /// (target, bucket, key).
    pub(crate) async fn hints(&self, limit: usize) -> Result<Vec<Hint>, Error> {
        self.read(move |txn| hints::list(txn, limit)).await
    }

    /// Number of write transactions the writer has committed or aborted.
    #[cfg(test)]
    pub(crate) fn batches(&self) -> u64 {
        self.stats.batches.load(Ordering::Relaxed)
    }

    async fn write(&self, change: Change) -> Result<Reply, Error> {
        // Refused before the disk is full, so no commit ever fails half-way for lack of it;
        // a collection writes nothing to the database and frees room.
        if !matches!(change, Change::Collect { .. }) {
            self.disk.check_room()?;
        }
        let (done, answer) = oneshot::channel();
        self.writes
            .send(WriteRequest { change, done })
            .map_err(|_| Error::Unavailable("record writer stopped"))?;
        answer
            .await
            .map_err(|_| Error::Unavailable("record writer stopped"))?
    }

    async fn read<R, F>(&self, f: F) -> Result<R, Error>
    where
        R: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<R, Error> + Send + 'static,
    {
        let db = self.db.get()?;
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(Error::db("begin read"))?;
            f(&txn)
        })
        .await
        .map_err(|e| Error::Io {
            op: "record read task",
            source: std::io::Error::other(e.to_string()),
        })?
    }
}

fn check_bucket(bucket: &str) -> Result<(), Error> {
    if bucket.is_empty() || bucket.contains('\0') {
        return Err(Error::BadRequest(format!("invalid bucket name {bucket:?}")));
    }
    Ok(())
}

fn keyed_hints(hints: Vec<Hint>) -> Result<Vec<(Vec<u8>, Hint)>, Error> {
    hints
        .into_iter()
        .map(|hint| Ok((hints::hint_key(&hint)?, hint)))
        .collect()
}

/// Where an object key's entries are: its Paxos state (`bucket ++ 0x00 ++ key`) and its
/// versions (under [`versions::head_key`]).
struct ObjectKeys {
    paxos: Vec<u8>,
    head: Vec<u8>,
}

impl ObjectKeys {
    fn new(bucket: &str, key: &str) -> Result<ObjectKeys, Error> {
        check_bucket(bucket)?;
        if key.is_empty() {
            return Err(Error::BadRequest("empty object key".into()));
        }
        let mut paxos = Vec::with_capacity(bucket.len() + 1 + key.len());
        paxos.extend_from_slice(bucket.as_bytes());
        paxos.push(0);
        paxos.extend_from_slice(key.as_bytes());
        Ok(ObjectKeys {
            paxos,
            head: versions::head_key(bucket, key),
        })
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt(format!("stored record: {e}")))
}

fn get_decoded<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<Option<T>, Error> {
    match table.get(key).map_err(Error::db("read record"))? {
        Some(v) => decode(v.value()).map(Some),
        None => Ok(None),
    }
}

/// Merges `incoming` into the value at `key`; true when the stored value changed. A stored
/// value that does not decode is left alone and reported `Corrupt`: never overwrite what
/// we cannot read.
fn merge_into<T: Stored>(
    table: &mut Table<'_, &'static [u8], &'static [u8]>,
    key: &[u8],
    incoming: &T,
) -> Result<bool, Error> {
    let existing: Option<T> = get_decoded(table, key)?;
    let merged = T::join(existing.as_ref(), incoming);
    if existing.as_ref() == Some(&merged) || (existing.is_none() && merged.is_void()) {
        return Ok(false);
    }
    let bytes = serde_json::to_vec(&merged)
        .map_err(|e| Error::Corrupt(format!("cannot encode record: {e}")))?;
    table
        .insert(key, bytes.as_slice())
        .map_err(Error::db("write record"))?;
    Ok(true)
}

#[cfg(test)]
mod tests;
