//! Blob files: the bodies of objects and parts, one file per blob id.
//!
//! Layout: `<data_dir>/blobs/<id[0..2]>/<id>`, written first to `<data_dir>/tmp/` and renamed
//! into place only once complete, MD5-checked and (with fsync on) durable, so a blob path
//! either holds a complete blob or nothing. A file is the data bytes, then the CRC32C
//! (u32 LE) of each block of [`proto::BLOB_BLOCK_SIZE`] bytes of data (the last block may be
//! shorter; empty data has no entries), then a 32-byte footer: data size (u64 LE), MD5 of the
//! data (16 bytes), block size (u32 LE), magic `S3QB`. A blob found corrupt is moved to
//! `<data_dir>/quarantine/<id>` (kept for inspection, never served; operators remove it).
//!
//! Invariants: no byte of a block leaves the store before that block matched its CRC32C;
//! MD5 stays the end-to-end check on write (and in the scrubber), CRC32C (hardware-assisted)
//! the cheap check on every read. A blob that fails any check is quarantined at once, so the
//! node answers `NotFound` for it until a repair writes it again. Every change of the file a
//! blob path names (rename into place, removal, quarantine) happens under one lock together
//! with the update of the `node_blobs` / `node_blob_bytes` gauges, so they count exactly
//! what the node stored. Blob ids are validated here too, since they become file names.

use std::fs::{File, Metadata};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use futures::Stream;
use prometheus::{IntCounter, IntGauge};

use crate::error::Error;
use crate::metrics::{Metrics, gauge_value};
use crate::proto::{self, BLOB_BLOCK_SIZE};

mod gc;
mod read;
mod write;

pub(crate) use read::{BlobFile, Checked, FullCheck};
pub(crate) use write::{Piece, Trailer, Verify};

const FOOTER_LEN: u64 = 32;
const MAGIC: &[u8; 4] = b"S3QB";

/// A stream of verified blob bytes; an `Err` item ends it.
pub(crate) type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>>;

/// The blob files of one node. Cheap to clone (clones share one store); holds no open files.
#[derive(Debug, Clone)]
pub(crate) struct BlobStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    blobs_dir: PathBuf,
    tmp_dir: PathBuf,
    quarantine_dir: PathBuf,
    fsync: bool,
    /// Held while a blob path changes the file it names, together with the gauge update
    /// that goes with the change. Only ever held on blocking threads, around a stat and a
    /// rename or unlink: never across an `.await`.
    placing: Mutex<()>,
    blobs: IntGauge,
    bytes: IntGauge,
    corruptions: IntCounter,
}

impl BlobStore {
    /// Creates the directories (the 256 shard directories up front, so a put never creates
    /// a directory that would need its own fsync), removes temp files left by a crash and
    /// counts the stored blobs into the gauges of `metrics`. Blocking; call before serving.
    /// The caller guarantees one node per data dir.
    pub(crate) fn open(data_dir: &Path, fsync: bool, metrics: &Metrics) -> Result<Self, Error> {
        let blobs_dir = data_dir.join("blobs");
        let tmp_dir = data_dir.join("tmp");
        let quarantine_dir = data_dir.join("quarantine");
        for shard in 0..=255u8 {
            std::fs::create_dir_all(blobs_dir.join(format!("{shard:02x}")))
                .map_err(Error::io("create blob shard directory"))?;
        }
        std::fs::create_dir_all(&tmp_dir).map_err(Error::io("create temp directory"))?;
        std::fs::create_dir_all(&quarantine_dir)
            .map_err(Error::io("create quarantine directory"))?;
        for entry in std::fs::read_dir(&tmp_dir).map_err(Error::io("list temp directory"))? {
            let entry = entry.map_err(Error::io("list temp directory"))?;
            // Leftovers of uploads interrupted by a crash: never acknowledged, never visible.
            if let Err(e) = std::fs::remove_file(entry.path()) {
                tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove stale temp file");
            }
        }
        if fsync {
            sync_dir(data_dir)?;
            sync_dir(&blobs_dir)?;
        }
        let store = BlobStore {
            inner: Arc::new(Inner {
                blobs_dir,
                tmp_dir,
                quarantine_dir,
                fsync,
                placing: Mutex::new(()),
                blobs: metrics.blobs.clone(),
                bytes: metrics.blob_bytes.clone(),
                corruptions: metrics.blob_corruptions.clone(),
            }),
        };
        // A stat per blob, no reads: fast enough at startup, and exact from then on.
        let (mut count, mut bytes) = (0u64, 0u64);
        for shard in 0..=255u8 {
            for (_, file_len) in store.list_shard(shard)? {
                count += 1;
                bytes = bytes.saturating_add(data_size(file_len));
            }
        }
        store.inner.blobs.set(gauge_value(count));
        store.inner.bytes.set(gauge_value(bytes));
        tracing::debug!(blobs = count, bytes, "blob store opened");
        Ok(store)
    }

    fn path(&self, id: &str) -> PathBuf {
        self.inner.blobs_dir.join(&id[..2]).join(id)
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic while it was held leaves nothing inconsistent.
        self.inner
            .placing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens blob `id`, checking its footer and length. `NotFound` if it does not exist,
    /// `Corrupt` (and quarantined) if its layout is damaged.
    pub(crate) async fn open_blob(&self, id: &str) -> Result<BlobFile, Error> {
        check_id(id)?;
        let store = self.clone();
        let id: Arc<str> = Arc::from(id);
        tokio::task::spawn_blocking(move || BlobFile::open(store, id))
            .await
            .map_err(Error::task("blob open task"))?
    }

    /// The blob's total size and a stream of the bytes in `range` (start, end exclusive;
    /// the whole blob when `None`).
    #[cfg(test)]
    pub(crate) async fn get(
        &self,
        id: &str,
        range: Option<(u64, u64)>,
    ) -> Result<(u64, BlobStream), Error> {
        let blob = self.open_blob(id).await?;
        let size = blob.size();
        Ok((size, blob.read(range)?))
    }

    /// Which of `ids` (blobs missing here) this node quarantined as corrupt: bad bytes it
    /// found, as opposed to a blob it never got or that is still being written.
    pub(crate) async fn quarantined(&self, ids: &[String]) -> Vec<String> {
        let store = self.clone();
        let ids: Vec<String> = ids
            .iter()
            .filter(|id| proto::is_valid_blob_id(id))
            .cloned()
            .collect();
        if ids.is_empty() {
            return ids;
        }
        tokio::task::spawn_blocking(move || {
            ids.into_iter()
                .filter(|id| store.inner.quarantine_dir.join(id).exists())
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    /// For each list of ids, the ids without a blob file here, in their order. A stat each,
    /// never a read. Malformed ids are left out: no request could have stored them, so no
    /// repair could bring them either.
    pub(crate) async fn missing(&self, lists: Vec<Vec<String>>) -> Result<Vec<Vec<String>>, Error> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::with_capacity(lists.len());
            for ids in lists {
                let mut missing = Vec::new();
                for id in ids {
                    if !proto::is_valid_blob_id(&id) {
                        continue;
                    }
                    match std::fs::metadata(store.path(&id)) {
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(id),
                        Err(e) => return Err(Error::io("stat blob file")(e)),
                    }
                }
                out.push(missing);
            }
            Ok(out)
        })
        .await
        .map_err(Error::task("blob stat task"))?
    }

    /// The blob ids in shard directory `shard`, sorted, each with its file length.
    /// Blocking. Files whose names are not blob ids are skipped.
    pub(crate) fn list_shard(&self, shard: u8) -> Result<Vec<(String, u64)>, Error> {
        let dir = self.inner.blobs_dir.join(format!("{shard:02x}"));
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(Error::io("list blob shard"))? {
            let entry = entry.map_err(Error::io("list blob shard"))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !proto::is_valid_blob_id(&name) {
                continue;
            }
            // Gone between the listing and the stat: deleted meanwhile, not ours to count.
            if let Ok(meta) = entry.metadata()
                && meta.is_file()
            {
                out.push((name, meta.len()));
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Renames the complete temp file `tmp` into place as blob `id` of `size` data bytes and
    /// counts it. Blocking. Returns the blob's path.
    fn place(&self, tmp: &Path, id: &str, size: u64) -> Result<PathBuf, Error> {
        let path = self.path(id);
        let _placing = self.lock();
        let replaced = stat(&path);
        std::fs::rename(tmp, &path).map_err(Error::io("rename blob into place"))?;
        if let Some(old) = &replaced {
            self.forget(old);
        }
        self.inner.blobs.inc();
        self.inner.bytes.add(gauge_value(size));
        Ok(path)
    }

    /// Takes a blob file that is leaving the blob path out of the gauges. Called with the
    /// lock held.
    fn forget(&self, meta: &Metadata) {
        self.inner.blobs.dec();
        self.inner.bytes.sub(gauge_value(data_size(meta.len())));
    }

    /// Moves blob `id` to the quarantine directory because `file`, an open handle on it,
    /// failed a check (`why`): from then on the node answers `NotFound` for it, until a
    /// repair writes the id again. Blocking; never fails (a failure is logged, and the read
    /// that found the damage fails anyway).
    ///
    /// Nothing happens when the blob path no longer names `file`: another reader
    /// quarantined it first, or a repair replaced it with a new file that must not be
    /// thrown away. The move is not fsynced: if a crash forgets it, the damaged file is back
    /// in place and the next read or scrub quarantines it again.
    fn quarantine(&self, id: &str, file: &File, why: &str) {
        let path = self.path(id);
        let _placing = self.lock();
        let (Ok(opened), Some(current)) = (file.metadata(), stat(&path)) else {
            tracing::debug!(blob = %id, "corrupt blob already gone from its path");
            return;
        };
        if !same_file(&opened, &current) {
            tracing::debug!(blob = %id, "corrupt blob already replaced");
            return;
        }
        let target = self.inner.quarantine_dir.join(id);
        // The directory is made at open; made again here in case an operator removed it.
        let moved = std::fs::create_dir_all(&self.inner.quarantine_dir)
            .and_then(|()| std::fs::rename(&path, &target));
        if let Err(e) = moved {
            tracing::error!(blob = %id, reason = why, error = %e, "cannot quarantine corrupt blob");
            return;
        }
        self.forget(&current);
        self.inner.corruptions.inc();
        tracing::warn!(
            blob = %id,
            reason = why,
            to = %target.display(),
            "corrupt blob quarantined"
        );
    }
}

fn check_id(id: &str) -> Result<(), Error> {
    if proto::is_valid_blob_id(id) {
        Ok(())
    } else {
        Err(Error::BadRequest(format!("invalid blob id {id:?}")))
    }
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("fsync directory"))
}

/// Metadata of the file at `path`, `None` when there is none (or it cannot be read, which
/// for the gauges amounts to the same).
fn stat(path: &Path) -> Option<Metadata> {
    std::fs::metadata(path).ok()
}

/// Data size of a blob file of `file_len` bytes with the standard block size: the layout
/// solved for the data size, so the byte gauge needs a stat and no read. A file written by
/// this node yields its exact size.
fn data_size(file_len: u64) -> u64 {
    let rest = file_len.saturating_sub(FOOTER_LEN);
    // Each block adds 4 bytes of checksum, the last one possibly shorter.
    let blocks = rest.div_ceil(BLOB_BLOCK_SIZE + 4);
    rest.saturating_sub(blocks * 4)
}

/// Whether two metadata describe the same file (not merely the same path).
#[cfg(unix)]
fn same_file(a: &Metadata, b: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(a: &Metadata, b: &Metadata) -> bool {
    a.len() == b.len() && a.modified().ok() == b.modified().ok()
}

#[cfg(test)]
mod tests;
