//! Blob files: the bodies of objects and parts, one file per blob id.
//!
//! Layout: `<data_dir>/blobs/<id[0..2]>/<id>`, written first to `<data_dir>/tmp/` and renamed
//! into place only once complete, MD5-checked and (with fsync on) durable, so a blob path
//! either holds a complete blob or nothing. A file is the data bytes, then the CRC32C
//! (u32 LE) of each block of [`proto::BLOB_BLOCK_SIZE`] bytes of data (the last block may be
//! shorter; empty data has no entries), then a 32-byte footer: data size (u64 LE), MD5 of the
//! data (16 bytes), block size (u32 LE), magic `S3QB`.
//!
//! Invariant: no byte of a block leaves [`BlobStore::get`] before that block matched its
//! CRC32C; MD5 stays the end-to-end check on write, CRC32C (hardware-assisted) the cheap
//! check on every read. Blob ids are validated here too, since they become file names.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use tokio::sync::mpsc;

use crate::error::Error;
use crate::proto::{self, BLOB_BLOCK_SIZE, BlobPutReply};

const FOOTER_LEN: u64 = 32;
const MAGIC: &[u8; 4] = b"S3QB";
/// Size of the writer's reusable buffer: large enough that small body chunks become few
/// large `write` calls.
const WRITE_BUFFER: usize = 256 * 1024;
/// Blocks read (and verified) per blocking read call on the read path.
const READ_BLOCKS: u64 = 4;
/// Body chunks queued between the network and the file writer; bounds memory per upload
/// while letting the network run ahead of the disk a little.
const FEED_DEPTH: usize = 8;
/// Refuse absurd block sizes from a damaged footer before allocating buffers for them.
const MAX_BLOCK_SIZE: u64 = 64 * 1024 * 1024;

/// A stream of verified blob bytes; an `Err` item ends it.
pub(crate) type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>>;

/// The blob files of one node. Cheap to share; holds no open files.
#[derive(Debug, Clone)]
pub(crate) struct BlobStore {
    blobs_dir: PathBuf,
    tmp_dir: PathBuf,
    fsync: bool,
}

/// An opened blob whose footer and length were checked; read it with [`BlobFile::read`].
#[derive(Debug)]
pub(crate) struct BlobFile {
    id: Arc<str>,
    file: File,
    size: u64,
    block_size: u64,
}

impl BlobStore {
    /// Creates the directories (the 256 shard directories up front, so a put never creates
    /// a directory that would need its own fsync) and removes temp files left by a crash.
    /// Blocking; call before serving. The caller guarantees one node per data dir.
    pub(crate) fn open(data_dir: &Path, fsync: bool) -> Result<BlobStore, Error> {
        let blobs_dir = data_dir.join("blobs");
        let tmp_dir = data_dir.join("tmp");
        for shard in 0..=255u8 {
            std::fs::create_dir_all(blobs_dir.join(format!("{shard:02x}")))
                .map_err(Error::io("create blob shard directory"))?;
        }
        std::fs::create_dir_all(&tmp_dir).map_err(Error::io("create temp directory"))?;
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
        Ok(BlobStore {
            blobs_dir,
            tmp_dir,
            fsync,
        })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.blobs_dir.join(&id[..2]).join(id)
    }

    /// Stores `body` under `id` and returns its MD5 and size. Nothing is stored (and no temp
    /// file remains) if the body stream fails, the MD5 differs from `expected_md5` (hex), or
    /// the disk fails. Writing an id again replaces the blob atomically.
    pub(crate) async fn put<S, E>(
        &self,
        id: &str,
        body: S,
        expected_md5: Option<String>,
    ) -> Result<BlobPutReply, Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        check_id(id)?;
        let job = WriteJob {
            id: id.to_string(),
            tmp_path: self
                .tmp_dir
                .join(format!("{id}.{}.tmp", uuid::Uuid::new_v4().simple())),
            final_path: self.path(id),
            expected_md5: expected_md5.map(|m| m.to_ascii_lowercase()),
            fsync: self.fsync,
        };
        let (tx, rx) = mpsc::channel(FEED_DEPTH);
        // MD5 and file writes are CPU and blocking work: they run on a blocking thread fed
        // through a bounded channel, so the runtime threads only move bytes.
        let writer = tokio::task::spawn_blocking(move || job.run(rx));

        let mut body = std::pin::pin!(body);
        let mut aborted = None;
        while let Some(item) = body.next().await {
            match item {
                Ok(chunk) if chunk.is_empty() => {}
                // A closed channel means the writer failed; its result says why.
                Ok(chunk) => {
                    if tx.send(Feed::Chunk(chunk)).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    aborted = Some(e.to_string());
                    break;
                }
            }
        }
        if aborted.is_none() {
            let _ = tx.send(Feed::End).await;
        }
        // Without `End`, the writer sees the channel close and discards the temp file.
        drop(tx);
        let written = writer.await.map_err(|e| Error::Io {
            op: "blob writer task",
            source: std::io::Error::other(e.to_string()),
        })?;
        match aborted {
            Some(reason) => Err(Error::BodyAborted(reason)),
            None => written,
        }
    }

    /// Opens blob `id`, checking its footer and length. `NotFound` if it does not exist,
    /// `Corrupt` if its layout is damaged.
    pub(crate) async fn open_blob(&self, id: &str) -> Result<BlobFile, Error> {
        check_id(id)?;
        let path = self.path(id);
        let id: Arc<str> = Arc::from(id);
        tokio::task::spawn_blocking(move || BlobFile::open(id, &path))
            .await
            .map_err(|e| Error::Io {
                op: "blob open task",
                source: std::io::Error::other(e.to_string()),
            })?
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

    /// Removes blob `id`. Deleting a missing blob succeeds, so deletes are retry-safe.
    pub(crate) async fn delete(&self, id: &str) -> Result<(), Error> {
        check_id(id)?;
        match tokio::fs::remove_file(self.path(id)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Io {
                op: "delete blob",
                source: e,
            }),
        }
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

/// What the network side hands to the blob writer.
enum Feed {
    Chunk(Bytes),
    /// The body ended cleanly; anything else closing the channel is an abort.
    End,
}

/// One upload, run on a blocking thread.
struct WriteJob {
    id: String,
    tmp_path: PathBuf,
    final_path: PathBuf,
    expected_md5: Option<String>,
    fsync: bool,
}

/// Removes the temp file unless the blob was renamed into place: every early return of the
/// writer, and a panic, leave nothing behind.
struct TempFile<'a> {
    path: &'a Path,
    keep: bool,
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(self.path);
        }
    }
}

/// Running CRC32C of each block of the data, fed with chunks of any size.
struct BlockCrcs {
    done: Vec<u32>,
    current: u32,
    in_block: u64,
}

impl BlockCrcs {
    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = (BLOB_BLOCK_SIZE - self.in_block) as usize;
            let take = room.min(data.len());
            self.current = crc32c::crc32c_append(self.current, &data[..take]);
            self.in_block += take as u64;
            data = &data[take..];
            if self.in_block == BLOB_BLOCK_SIZE {
                self.done.push(self.current);
                self.current = 0;
                self.in_block = 0;
            }
        }
    }

    fn finish(mut self) -> Vec<u32> {
        if self.in_block > 0 {
            self.done.push(self.current);
        }
        self.done
    }
}

impl WriteJob {
    fn run(self, mut rx: mpsc::Receiver<Feed>) -> Result<BlobPutReply, Error> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&self.tmp_path)
            .map_err(Error::io("create temp blob file"))?;
        let mut temp = TempFile {
            path: &self.tmp_path,
            keep: false,
        };
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut md5 = Md5::new();
        let mut crcs = BlockCrcs {
            done: Vec::new(),
            current: 0,
            in_block: 0,
        };
        let mut size = 0u64;
        loop {
            match rx.blocking_recv() {
                Some(Feed::Chunk(chunk)) => {
                    out.write_all(&chunk)
                        .map_err(Error::io("write temp blob file"))?;
                    md5.update(&chunk);
                    crcs.update(&chunk);
                    size += chunk.len() as u64;
                }
                Some(Feed::End) => break,
                None => {
                    return Err(Error::BodyAborted(
                        "request body ended before completion".into(),
                    ));
                }
            }
        }
        let digest: [u8; 16] = md5.finalize().into();
        let actual = hex::encode(digest);
        // Checked before any fsync: a rejected body should cost no disk flush.
        if let Some(expected) = self.expected_md5
            && expected != actual
        {
            return Err(Error::DigestMismatch { expected, actual });
        }
        for crc in crcs.finish() {
            out.write_all(&crc.to_le_bytes())
                .map_err(Error::io("write blob checksum table"))?;
        }
        let mut footer = [0u8; FOOTER_LEN as usize];
        footer[..8].copy_from_slice(&size.to_le_bytes());
        footer[8..24].copy_from_slice(&digest);
        footer[24..28].copy_from_slice(&(BLOB_BLOCK_SIZE as u32).to_le_bytes());
        footer[28..].copy_from_slice(MAGIC);
        out.write_all(&footer)
            .map_err(Error::io("write blob footer"))?;
        let file = out
            .into_inner()
            .map_err(|e| Error::io("flush temp blob file")(e.into_error()))?;
        if self.fsync {
            file.sync_data().map_err(Error::io("fsync blob file"))?;
        }
        drop(file);
        std::fs::rename(&self.tmp_path, &self.final_path)
            .map_err(Error::io("rename blob into place"))?;
        temp.keep = true;
        if self.fsync
            && let Some(shard) = self.final_path.parent()
        {
            // Makes the rename itself durable: without it a crash could forget the blob
            // after the node acknowledged it.
            sync_dir(shard)?;
        }
        tracing::debug!(id = %self.id, size, "blob stored");
        Ok(BlobPutReply { md5: actual, size })
    }
}

impl BlobFile {
    fn open(id: Arc<str>, path: &Path) -> Result<BlobFile, Error> {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound),
            Err(e) => return Err(Error::io("open blob file")(e)),
        };
        let len = file.metadata().map_err(Error::io("stat blob file"))?.len();
        let corrupt = |why: &str| {
            tracing::warn!(blob = %id, file_len = len, "corrupt blob: {why}");
            Error::Corrupt(format!("blob {id}: {why}"))
        };
        if len < FOOTER_LEN {
            return Err(corrupt("file shorter than its footer"));
        }
        let mut footer = [0u8; FOOTER_LEN as usize];
        file.seek(SeekFrom::Start(len - FOOTER_LEN))
            .and_then(|_| file.read_exact(&mut footer))
            .map_err(Error::io("read blob footer"))?;
        if &footer[28..] != MAGIC {
            return Err(corrupt("bad footer magic"));
        }
        let size = u64::from_le_bytes(le_bytes(&footer[..8]));
        let block_size = u64::from(u32::from_le_bytes(le_bytes(&footer[24..28])));
        if block_size == 0 || block_size > MAX_BLOCK_SIZE {
            return Err(corrupt("bad block size in footer"));
        }
        let expected_len = size
            .div_ceil(block_size)
            .checked_mul(4)
            .and_then(|table| table.checked_add(size))
            .and_then(|n| n.checked_add(FOOTER_LEN));
        if expected_len != Some(len) {
            return Err(corrupt("file length disagrees with its footer"));
        }
        Ok(BlobFile {
            id,
            file,
            size,
            block_size,
        })
    }

    /// Size of the blob's data in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Streams the bytes in `range` (start, end exclusive; all when `None`). An empty or
    /// out-of-bounds range is `RangeNotSatisfiable`, except `None` on an empty blob.
    pub(crate) fn read(self, range: Option<(u64, u64)>) -> Result<BlobStream, Error> {
        let (start, end) = match range {
            None => (0, self.size),
            Some((start, end)) if start < end && end <= self.size => (start, end),
            Some(_) => return Err(Error::RangeNotSatisfiable { size: self.size }),
        };
        let state = ReadState {
            blob: Some(self),
            pos: start,
            end,
            pending: None,
        };
        Ok(Box::pin(futures::stream::unfold(state, ReadState::next)))
    }
}

fn le_bytes<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[..N]);
    out
}

/// Position of a ranged read; the file moves into each blocking read and back.
struct ReadState {
    blob: Option<BlobFile>,
    pos: u64,
    end: u64,
    /// A corruption found after some verified bytes of the same read: yielded next.
    pending: Option<Error>,
}

impl ReadState {
    async fn next(mut self) -> Option<(Result<Bytes, Error>, ReadState)> {
        if let Some(err) = self.pending.take() {
            self.blob = None;
            return Some((Err(err), self));
        }
        if self.pos >= self.end {
            return None;
        }
        let mut blob = self.blob.take()?;
        let (pos, end) = (self.pos, self.end);
        let joined = tokio::task::spawn_blocking(move || {
            let outcome = blob.read_verified(pos, end);
            (blob, outcome)
        })
        .await;
        let (blob, (bytes, corrupt)) = match joined {
            Ok((blob, Ok(read))) => (blob, read),
            Ok((_, Err(e))) => return Some((Err(e), self)),
            Err(e) => {
                let err = Error::Io {
                    op: "blob read task",
                    source: std::io::Error::other(e.to_string()),
                };
                return Some((Err(err), self));
            }
        };
        self.pos += bytes.len() as u64;
        if bytes.is_empty() {
            // The first block read is already corrupt: report it now and stop.
            let err = corrupt.unwrap_or(Error::Corrupt("empty read".into()));
            return Some((Err(err), self));
        }
        self.blob = Some(blob);
        self.pending = corrupt;
        Some((Ok(bytes), self))
    }
}

impl BlobFile {
    /// Reads up to [`READ_BLOCKS`] blocks covering `pos..end`, checks each against its
    /// CRC32C and returns the verified part of the range, plus the corruption that stopped
    /// it early, if any.
    fn read_verified(&mut self, pos: u64, end: u64) -> Result<(Bytes, Option<Error>), Error> {
        let bs = self.block_size;
        let first = pos / bs;
        let last = end.div_ceil(bs).min(first + READ_BLOCKS);
        let data_start = first * bs;
        let data_end = (last * bs).min(self.size);
        let mut data = vec![0u8; (data_end - data_start) as usize];
        let mut table = vec![0u8; ((last - first) * 4) as usize];
        self.file
            .seek(SeekFrom::Start(data_start))
            .and_then(|_| self.file.read_exact(&mut data))
            .and_then(|_| self.file.seek(SeekFrom::Start(self.size + first * 4)))
            .and_then(|_| self.file.read_exact(&mut table))
            .map_err(Error::io("read blob file"))?;
        let mut verified_end = data_start;
        let mut corrupt = None;
        for (i, (block, crc)) in data.chunks(bs as usize).zip(table.chunks(4)).enumerate() {
            let index = first + i as u64;
            if crc32c::crc32c(block) != u32::from_le_bytes(le_bytes(crc)) {
                tracing::warn!(blob = %self.id, block = index, "blob block fails its CRC32C");
                corrupt = Some(Error::Corrupt(format!(
                    "blob {} block {index} fails its CRC32C",
                    self.id
                )));
                break;
            }
            verified_end += block.len() as u64;
        }
        let upto = end.min(verified_end);
        let bytes = if upto > pos {
            Bytes::from(data).slice((pos - data_start) as usize..(upto - data_start) as usize)
        } else {
            Bytes::new()
        };
        Ok((bytes, corrupt))
    }
}

#[cfg(test)]
mod tests;
