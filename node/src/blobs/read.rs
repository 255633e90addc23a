//! The read path of the blob store: opening a blob (footer and length checked), streaming a
//! verified range of it, and the complete check the scrubber runs.
//!
//! Invariant: no byte of a block is handed out before that block matched its CRC32C, and
//! every mismatch found here (footer, length, CRC32C, whole-data MD5) quarantines the file
//! through [`BlobStore::quarantine`] before the error is returned.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;
use md5::{Digest, Md5};

use super::{BlobStore, BlobStream, FOOTER_LEN, MAGIC};
use crate::error::Error;

/// Blocks read (and verified) per blocking read call.
const READ_BLOCKS: u64 = 4;
/// Refuse absurd block sizes from a damaged footer before allocating buffers for them.
const MAX_BLOCK_SIZE: u64 = 64 * 1024 * 1024;

/// An opened blob whose footer and length were checked; read it with [`BlobFile::read`].
#[derive(Debug)]
pub(crate) struct BlobFile {
    store: BlobStore,
    id: Arc<str>,
    file: File,
    size: u64,
    block_size: u64,
    /// MD5 of the data, from the footer.
    md5: [u8; 16],
}

impl BlobFile {
    /// Opens blob `id` at `path` (blocking). `NotFound` if there is no such file, `Quarantined`
    /// if this node quarantined it before, `Corrupt` (and quarantined) if its layout is damaged.
    pub(super) fn open(store: BlobStore, id: Arc<str>) -> Result<BlobFile, Error> {
        let path = store.path(&id);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            // Quarantined: this node found bad bytes there, which a reader should know
            // from a blob it never had (or is still being written).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(if store.inner.quarantine_dir.join(&*id).exists() {
                    Error::Quarantined
                } else {
                    Error::NotFound
                });
            }
            Err(e) => return Err(Error::io("open blob file")(e)),
        };
        let len = file.metadata().map_err(Error::io("stat blob file"))?.len();
        let corrupt = |file: &File, why: &str| {
            let why = format!("{why} (file of {len} bytes)");
            store.quarantine(&id, file, &why);
            Error::Corrupt(format!("blob {id}: {why}"))
        };
        if len < FOOTER_LEN {
            return Err(corrupt(&file, "file shorter than its footer"));
        }
        let mut footer = [0u8; FOOTER_LEN as usize];
        file.seek(SeekFrom::Start(len - FOOTER_LEN))
            .and_then(|_| file.read_exact(&mut footer))
            .map_err(Error::io("read blob footer"))?;
        if &footer[28..] != MAGIC {
            return Err(corrupt(&file, "bad footer magic"));
        }
        let size = u64::from_le_bytes(le_bytes(&footer[..8]));
        let md5 = le_bytes(&footer[8..24]);
        let block_size = u64::from(u32::from_le_bytes(le_bytes(&footer[24..28])));
        if block_size == 0 || block_size > MAX_BLOCK_SIZE {
            return Err(corrupt(&file, "bad block size in footer"));
        }
        let expected_len = size
            .div_ceil(block_size)
            .checked_mul(4)
            .and_then(|table| table.checked_add(size))
            .and_then(|n| n.checked_add(FOOTER_LEN));
        if expected_len != Some(len) {
            return Err(corrupt(&file, "file length disagrees with its footer"));
        }
        Ok(BlobFile {
            store,
            id,
            file,
            size,
            block_size,
            md5,
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

    /// Starts a complete check of this blob, run step by step with [`FullCheck::step`].
    pub(crate) fn full_check(self) -> FullCheck {
        FullCheck {
            blob: self,
            pos: 0,
            md5: Some(Md5::new()),
        }
    }

    /// Reads up to [`READ_BLOCKS`] blocks covering `pos..end`, checks each against its
    /// CRC32C and returns the verified part of the range, plus the corruption that stopped
    /// it early, if any (the file is quarantined by then).
    fn read_verified(&mut self, pos: u64, end: u64) -> Result<(Bytes, Option<Error>), Error> {
        let bs = self.block_size;
        let first = pos / bs;
        let last = end.div_ceil(bs).min(first + READ_BLOCKS);
        let data_start = first * bs;
        let data_end = (last * bs).min(self.size);
        let mut data = Vec::new();
        let mut table = Vec::new();
        self.file
            .seek(SeekFrom::Start(data_start))
            .and_then(|_| read_exactly(&mut self.file, &mut data, data_end - data_start))
            .and_then(|_| self.file.seek(SeekFrom::Start(self.size + first * 4)))
            .and_then(|_| read_exactly(&mut self.file, &mut table, (last - first) * 4))
            .map_err(Error::io("read blob file"))?;
        let mut verified_end = data_start;
        let mut corrupt = None;
        for (i, (block, crc)) in data.chunks(bs as usize).zip(table.chunks(4)).enumerate() {
            let index = first + i as u64;
            if crc32c::crc32c(block) != u32::from_le_bytes(le_bytes(crc)) {
                let why = format!("block {index} fails its CRC32C");
                self.store.quarantine(&self.id, &self.file, &why);
                corrupt = Some(Error::Corrupt(format!("blob {}: {why}", self.id)));
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

/// Reads exactly `len` bytes into `buf` (empty) without zeroing it first: up to a MiB per
/// call on the GET path, where clearing the buffer cost as much as checking it.
fn read_exactly(file: &mut File, buf: &mut Vec<u8>, len: u64) -> std::io::Result<()> {
    buf.reserve_exact(len as usize);
    let got = file.by_ref().take(len).read_to_end(buf)?;
    if (got as u64) < len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
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
            Err(e) => return Some((Err(Error::task("blob read task")(e)), self)),
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

/// A complete check of one blob in progress: every block against its CRC32C, then the MD5
/// of all the data against the footer's (which catches what block checksums cannot, such
/// as a checksum table rewritten to match damaged data).
pub(crate) struct FullCheck {
    blob: BlobFile,
    pos: u64,
    /// Running MD5 of the data verified so far; `None` once the blob was found sound.
    md5: Option<Md5>,
}

/// Outcome of one [`FullCheck::step`] that found nothing wrong.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Checked {
    /// This many data bytes were read and verified; more remain.
    More(u64),
    /// The whole blob is sound.
    Sound,
}

impl FullCheck {
    /// Verifies the next few blocks (blocking). `Corrupt` when the blob is damaged (it is
    /// quarantined by then); `Io` when the file cannot be read.
    pub(crate) fn step(&mut self) -> Result<Checked, Error> {
        let blob = &mut self.blob;
        let Some(md5) = &mut self.md5 else {
            return Ok(Checked::Sound);
        };
        if self.pos < blob.size {
            let (bytes, corrupt) = blob.read_verified(self.pos, blob.size)?;
            if let Some(err) = corrupt {
                return Err(err);
            }
            if bytes.is_empty() {
                return Err(Error::Corrupt(format!("blob {}: empty read", blob.id)));
            }
            md5.update(&bytes);
            self.pos += bytes.len() as u64;
            return Ok(Checked::More(bytes.len() as u64));
        }
        let actual: [u8; 16] = md5.clone().finalize().into();
        self.md5 = None;
        if actual != blob.md5 {
            let why = "data does not match the MD5 in its footer";
            blob.store.quarantine(&blob.id, &blob.file, why);
            return Err(Error::Corrupt(format!("blob {}: {why}", blob.id)));
        }
        Ok(Checked::Sound)
    }
}
