//! The write path of the blob store: a body streamed from the network into a temp file on a
//! blocking thread (block CRC32Cs, and MD5 unless the sender's trailers stand in for it,
//! computed on the way), checked, made durable and renamed into place.
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
use crate::proto::{BLOB_BLOCK_SIZE, BlobPutReply, BlockCrcs, table_digest};

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
    #[cfg(test)]
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
        let pieces = body.map(|item| item.map(Piece::Data));
        self.put_pieces(id, pieces, Verify::Md5(expected_md5)).await
    }

    /// Like [`BlobStore::put`], checked as `verify` says. With [`Verify::Trailer`] the
    /// body must end with a [`Piece::Trailer`]: the blob is kept only if its block table
    /// matches the sender's, and the sender's MD5 becomes the blob's (no MD5 pass here).
    pub(crate) async fn put_pieces<S, E>(
        &self,
        id: &str,
        body: S,
        verify: Verify,
    ) -> Result<BlobPutReply, Error>
    where
        S: Stream<Item = Result<Piece, E>> + Send,
        E: std::fmt::Display,
    {
        check_id(id)?;
        let (expected_md5, trailer_check) = match verify {
            Verify::Md5(expected) => (expected, false),
            Verify::Trailer => (None, true),
        };
        let job = WriteJob {
            store: self.clone(),
            id: id.to_string(),
            tmp_path: self
                .inner
                .tmp_dir
                .join(format!("{id}.{}.tmp", uuid::Uuid::new_v4().simple())),
            expected_md5: expected_md5.map(|m| m.to_ascii_lowercase()),
            trailer_check,
        };
        let (tx, rx) = mpsc::channel(FEED_DEPTH);
        // MD5 and file writes are CPU and blocking work: they run on a blocking thread fed
        // through a bounded channel, so the runtime threads only move bytes.
        let writer = tokio::task::spawn_blocking(move || job.run(rx));

        let mut body = std::pin::pin!(body);
        let mut aborted = None;
        while let Some(item) = body.next().await {
            match item {
                Ok(Piece::Data(chunk)) if chunk.is_empty() => {}
                // A closed channel means the writer failed; its result says why.
                Ok(Piece::Data(chunk)) => {
                    if tx.send(Feed::Chunk(chunk)).await.is_err() {
                        break;
                    }
                }
                Ok(Piece::Trailer(trailer)) => {
                    if tx.send(Feed::Trailer(trailer)).await.is_err() {
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

/// How a blob upload is checked.
pub(crate) enum Verify {
    /// The node hashes the body with MD5 and, given a hex MD5, refuses a body that differs.
    Md5(Option<String>),
    /// The body ends with a [`Piece::Trailer`] (see `proto::CHECK_HEADER`).
    Trailer,
}

/// One piece of an upload body.
pub(crate) enum Piece {
    Data(Bytes),
    /// The sender's checksums, after the data.
    Trailer(Trailer),
}

/// The checksum trailers of a `crc32c`-checked upload, as received (checked by the writer).
#[derive(Debug, Default)]
pub(crate) struct Trailer {
    /// Hex MD5 of the body.
    pub(crate) md5: Option<String>,
    /// `proto::table_digest` of the sender's block table.
    pub(crate) block_crcs: Option<String>,
}

/// What the network side hands to the blob writer.
enum Feed {
    Chunk(Bytes),
    Trailer(Trailer),
    /// The body ended cleanly; anything else closing the channel is an abort.
    End,
}

/// One upload, run on a blocking thread.
struct WriteJob {
    store: BlobStore,
    id: String,
    tmp_path: PathBuf,
    expected_md5: Option<String>,
    /// Check against a trailer instead of hashing MD5.
    trailer_check: bool,
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
        let mut md5 = (!self.trailer_check).then(Md5::new);
        let mut crcs = BlockCrcs::default();
        let mut trailer = None;
        let mut size = 0u64;
        loop {
            match rx.blocking_recv() {
                Some(Feed::Chunk(chunk)) => {
                    out.write_all(&chunk)
                        .map_err(Error::io("write temp blob file"))?;
                    if let Some(md5) = &mut md5 {
                        md5.update(&chunk);
                    }
                    crcs.update(&chunk);
                    size += chunk.len() as u64;
                }
                Some(Feed::Trailer(t)) => trailer = Some(t),
                Some(Feed::End) => break,
                None => {
                    return Err(Error::BodyAborted(
                        "request body ended before completion".into(),
                    ));
                }
            }
        }
        let table = crcs.finish();
        let (digest, block_crcs) = match md5 {
            Some(md5) => {
                let digest: [u8; 16] = md5.finalize().into();
                (digest, None)
            }
            None => {
                let own = table_digest(&table);
                (trailer_digest(trailer, &own)?, Some(own))
            }
        };
        let actual = hex::encode(digest);
        // Checked before any fsync: a rejected body should cost no disk flush.
        if let Some(expected) = self.expected_md5
            && expected != actual
        {
            return Err(Error::DigestMismatch { expected, actual });
        }
        for crc in table {
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
        Ok(BlobPutReply {
            md5: actual,
            size,
            block_crcs,
        })
    }
}

/// The MD5 a trailer-checked upload stores, once its trailer proved the node's block table
/// (`own`, a table digest) equals the sender's.
fn trailer_digest(trailer: Option<Trailer>, own: &str) -> Result<[u8; 16], Error> {
    let missing = |what: &str| Error::BadRequest(format!("blob upload ended without {what}"));
    let trailer = trailer.ok_or_else(|| missing("its checksum trailers"))?;
    let sent = trailer
        .block_crcs
        .ok_or_else(|| missing("a block checksum trailer"))?;
    if !sent.eq_ignore_ascii_case(own) {
        return Err(Error::DigestMismatch {
            expected: sent,
            actual: own.to_owned(),
        });
    }
    let md5 = trailer.md5.ok_or_else(|| missing("an MD5 trailer"))?;
    let mut digest = [0u8; 16];
    hex::decode_to_slice(&md5, &mut digest)
        .map_err(|_| Error::BadRequest(format!("MD5 trailer {md5:?} is not 32 hex digits")))?;
    Ok(digest)
}
