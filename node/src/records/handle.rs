//! The record database handle, and reopening it after an I/O error.
//!
//! redb marks its file failed at the first I/O error (a full disk, a failing sector) and
//! then refuses every read and write ("Previous I/O error occurred") for the life of that
//! `Database`. So the writer reopens it ([`super::Writer`]): the slot is emptied (reads
//! answer `Unavailable` meanwhile), the old handle is closed once the reads holding it have
//! finished (redb locks its file: it must be closed before it is opened again), and the
//! file is opened again, which recovers it to its last commit. The node's [`Disk`] reports
//! it unhealthy from the failure until a reopen succeeds.
//!
//! [`Disk`]: crate::disk::Disk

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redb::Database;

use super::lazy_file::{FlushStop, Flusher, LazyFile};
use super::{BUCKETS, CACHE_SIZE, KEYS, format, hints, paxos, versions};
use crate::error::Error;

/// How long a reopen waits for the reads still holding the failed handle.
const READS_DRAIN: Duration = Duration::from_secs(5);

/// Where readers and the writer find the open database.
pub(super) struct DbSlot(RwLock<Option<Arc<Database>>>);

impl DbSlot {
    pub(super) fn new(db: Database) -> DbSlot {
        DbSlot(RwLock::new(Some(Arc::new(db))))
    }

    /// The open database; `Unavailable` while it is being reopened.
    pub(super) fn get(&self) -> Result<Arc<Database>, Error> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(Error::Unavailable(
                "record database reopening after an I/O error",
            ))
    }

    /// Closes the database (waiting, bounded, for the reads that hold it) and opens it
    /// again. On failure the slot stays empty; the next call tries again.
    pub(super) fn reopen(&self, path: &Path, fsync: bool) -> Result<Opened, Error> {
        let old = self.0.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(old) = old {
            let started = Instant::now();
            while Arc::strong_count(&old) > 1 && started.elapsed() < READS_DRAIN {
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(old);
        }
        let opened = open(path, fsync)?;
        Ok(opened)
    }

    pub(super) fn put(&self, db: Database) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(db));
    }
}

/// A freshly opened database, with what fsync-off mode runs beside it.
pub(super) struct Opened {
    pub db: Database,
    /// With fsync off: the thread that makes commits durable.
    pub flusher: Option<(Flusher, FlushStop)>,
    /// With fsync off: a handle on the file to fdatasync before Paxos answers.
    pub paxos_sync: Option<File>,
}

/// Opens (creating if needed) the database at `path`, with every table, converted to the
/// current format. Blocking.
pub(super) fn open(path: &Path, fsync: bool) -> Result<Opened, Error> {
    let mut builder = Database::builder();
    builder.set_cache_size(CACHE_SIZE);
    // With fsync off, commits never wait for the disk; see `lazy_file`.
    let opened = if fsync {
        let db = builder
            .create(path)
            .map_err(Error::db("open record database"))?;
        Opened {
            db,
            flusher: None,
            paxos_sync: None,
        }
    } else {
        let file = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(Error::io("open record database"))
        };
        let backend = LazyFile::new(file()?).map_err(Error::db("open record database"))?;
        let db = builder
            .create_with_backend(backend)
            .map_err(Error::db("open record database"))?;
        let flusher = Flusher::start(file()?).map_err(Error::io("spawn record flusher"))?;
        Opened {
            db,
            flusher: Some(flusher),
            paxos_sync: Some(file()?),
        }
    };
    // Tables must exist before the first read transaction opens them.
    let txn = opened.db.begin_write().map_err(Error::db("begin write"))?;
    txn.open_table(versions::VERSIONS)
        .map_err(Error::db("create versions table"))?;
    txn.open_table(versions::HEADS)
        .map_err(Error::db("create heads table"))?;
    txn.open_table(versions::IDS)
        .map_err(Error::db("create version ids table"))?;
    txn.open_table(BUCKETS)
        .map_err(Error::db("create buckets table"))?;
    txn.open_table(KEYS)
        .map_err(Error::db("create access keys table"))?;
    txn.open_table(hints::HINTS)
        .map_err(Error::db("create hints table"))?;
    txn.open_table(paxos::PAXOS)
        .map_err(Error::db("create paxos table"))?;
    txn.commit().map_err(Error::db("commit"))?;
    format::upgrade(&opened.db)?;
    Ok(opened)
}

/// Where the writer reopens the database from.
pub(super) struct Location {
    pub path: PathBuf,
    pub fsync: bool,
}
