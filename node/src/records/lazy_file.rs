//! The record database's file when fsync is off: redb's commit flushes become no-ops, and a
//! background thread makes the file durable once a [`FLUSH_INTERVAL`] instead.
//!
//! Why: with fsync off the writer used to commit with `Durability::None` and make one
//! durable commit a second (redb only reclaims pages on durable commits). That commit's two
//! fsyncs ran inside the writer, stalling every write queued behind it (the 150–300 ms p99
//! of small PUTs). Now every commit is a full redb commit, which writes its pages and commit
//! slot to the OS and frees pages, but no fsync runs on the write path; the flusher's
//! `fdatasync` on its own handle of the same file runs beside the writer.
//!
//! What this gives up (as fsync off always did): after a power loss or kernel crash, the
//! last interval of commits may be lost, and since the kernel may write pages out of order
//! between flushes, the newest commit may be torn; redb then falls back to the previous
//! commit slot on open. A process crash loses nothing (the OS has every write).

use std::fs::File;
use std::io;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use redb::StorageBackend;
use redb::backends::FileBackend;

/// How often the flusher makes the record file durable.
pub(super) const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// redb's file backend without flushes.
#[derive(Debug)]
pub(super) struct LazyFile(FileBackend);

impl LazyFile {
    pub(super) fn new(file: File) -> Result<LazyFile, redb::DatabaseError> {
        Ok(LazyFile(FileBackend::new(file)?))
    }
}

impl StorageBackend for LazyFile {
    fn len(&self) -> Result<u64, io::Error> {
        self.0.len()
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, io::Error> {
        self.0.read(offset, len)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.0.set_len(len)
    }

    fn sync_data(&self, _eventual: bool) -> Result<(), io::Error> {
        // The flusher does it, off the write path.
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.0.write(offset, data)
    }
}

/// The background flusher; stops (after one last flush) when its [`FlushStop`] is dropped.
pub(super) struct Flusher(JoinHandle<()>);

/// Dropping it stops the flusher.
pub(super) struct FlushStop(#[allow(dead_code)] mpsc::Sender<()>);

impl Flusher {
    /// Starts flushing `file` (a second handle of the database file) every
    /// [`FLUSH_INTERVAL`].
    pub(super) fn start(file: File) -> io::Result<(Flusher, FlushStop)> {
        let (stop, stopped) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("record-flusher".into())
            .spawn(move || {
                loop {
                    let last = matches!(
                        stopped.recv_timeout(FLUSH_INTERVAL),
                        Err(mpsc::RecvTimeoutError::Disconnected)
                    );
                    if let Err(e) = file.sync_data() {
                        tracing::error!(error = %e, "flushing the record database failed");
                    }
                    if last {
                        break;
                    }
                }
            })?;
        Ok((Flusher(handle), FlushStop(stop)))
    }

    /// Waits for the last flush.
    pub(super) fn join(self) {
        if self.0.join().is_err() {
            tracing::error!("record flusher thread panicked");
        }
    }
}
