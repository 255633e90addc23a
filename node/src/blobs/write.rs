//! The write path of the blob store: a body streamed from the network into a temp file on a
//! blocking thread (MD5 and block CRC32Cs computed on the way), checked, made durable and
//! renamed into place.
//!
//! Invariant: a blob path only ever receives a complete, checked file; every failure and
//! every abort removes the temp file, and nothing of it becomes visible.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use tokio::sync::mpsc;

use super::{BlobStore, FOOTER_LEN, MAGIC, check_id, sync_dir};
use crate::error::Error;
use crate::proto::{BLOB_BLOCK_SIZE, BlobPutReply};

/// Size of the writer's reusable buffer: large enough that small body chunks become few
/// large `write` calls.
const WRITE_BUFFER: usize = 256 * 1024;
/// Body chunks queued between the network and the file writer; bounds memory per upload
/// while letting the network run ahead of the disk a little.
const FEED_DEPTH: usize = 8;

impl BlobStore {
    /// Stores `body` under `id` and returns its MD5 and size. Nothing is stored (and no temp
    /// file remains) if the body stream fails, the MD5 differs from `expected_md5` (hex), or
    /// the disk fails. Writing an id again replaces the blob atomically (a quarantined blob
    /// of the same id does not stand in the way: it no longer occupies the blob path).
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
            store: self.clone(),
            id: id.to_string(),
            tmp_path: self
                .inner
                .tmp_dir
                .join(format!("{id}.{}.tmp", uuid::Uuid::new_v4().simple())),
            expected_md5: expected_md5.map(|m| m.to_ascii_lowercase()),
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
        let written = writer.await.map_err(Error::task("blob writer task"))?;
        match aborted {
            Some(reason) => Err(Error::BodyAborted(reason)),
            None => written,
        }
    }
}

/// What the network side hands to the blob writer.
enum Feed {
    Chunk(Bytes),
    /// The body ended cleanly; anything else closing the channel is an abort.
    End,
}

/// One upload, run on a blocking thread.
struct WriteJob {
    store: BlobStore,
    id: String,
    tmp_path: PathBuf,
    expected_md5: Option<String>,
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
        let fsync = self.store.inner.fsync;
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
        if fsync {
            file.sync_data().map_err(Error::io("fsync blob file"))?;
        }
        drop(file);
        let final_path = self.store.place(&self.tmp_path, &self.id, size)?;
        temp.keep = true;
        if fsync && let Some(shard) = final_path.parent() {
            // Makes the rename itself durable: without it a crash could forget the blob
            // after the node acknowledged it.
            sync_dir(shard)?;
        }
        tracing::debug!(id = %self.id, size, "blob stored");
        Ok(BlobPutReply { md5: actual, size })
    }
}
