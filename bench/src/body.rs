//! Object bodies generated on the fly from a cheap deterministic pattern.
//!
//! Every object is identified by a 64-bit `seed`. Its bytes are a sequence of 4 KiB blocks; block
//! `b` is a 4 KiB window of a shared 1 MiB pool of pseudo-random bytes, chosen by hashing
//! `(seed, b)`, whose first 16 bytes are overwritten with `seed` and `b`. So:
//!
//! - any byte range of any object can be produced (or checked) without holding the object:
//!   uploads of 64 MiB parts and 5 GiB downloads stream in bounded memory;
//! - the data does not compress and no two blocks of any two objects are equal, so a store
//!   that deduplicates blocks (Garage does, by block hash) or compresses them gains nothing;
//! - producing a block costs one `memcpy`, which keeps the generator off the servers' CPUs.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Size of one pattern block (and of the stamp period).
pub const BLOCK: usize = 4096;
/// Size of the shared pool of pseudo-random bytes.
const POOL: usize = 1 << 20;
/// Size of the chunks a streamed request body is cut into.
pub const CHUNK: usize = 256 * 1024;
/// Bytes at the start of every block replaced by `seed` and the block number.
const STAMP: usize = 16;

/// The shared pseudo-random pool every object body is cut from.
#[derive(Debug)]
pub struct Pattern {
    pool: Vec<u8>,
}

impl Pattern {
    /// Builds the pool from a fixed seed, so every run generates the same bytes for a seed.
    pub fn new() -> Self {
        let mut rng = Rng::new(0x5eed_5eed_5eed_5eed);
        let mut pool = Vec::with_capacity(POOL);
        while pool.len() < POOL {
            pool.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
        Self { pool }
    }

    /// Appends bytes `[offset, offset + len)` of object `seed` to `out`.
    pub fn append(&self, seed: u64, offset: u64, len: usize, out: &mut Vec<u8>) {
        out.reserve(len);
        let mut pos = offset;
        let end = offset + len as u64;
        while pos < end {
            let block = pos / BLOCK as u64;
            let within = (pos % BLOCK as u64) as usize;
            let stop = (BLOCK as u64 - within as u64).min(end - pos) as usize + within;
            let start = self.block_start(seed, block);
            let mut from = within;
            if from < STAMP {
                let mut stamp = [0u8; STAMP];
                stamp[..8].copy_from_slice(&seed.to_le_bytes());
                stamp[8..].copy_from_slice(&block.to_le_bytes());
                let upto = stop.min(STAMP);
                out.extend_from_slice(&stamp[from..upto]);
                from = upto;
            }
            if from < stop {
                out.extend_from_slice(&self.pool[start + from..start + stop]);
            }
            pos += (stop - within) as u64;
        }
    }

    /// A whole (small) object as one buffer.
    #[cfg(test)]
    pub fn bytes(&self, seed: u64, len: usize) -> Bytes {
        let mut out = Vec::with_capacity(len);
        self.append(seed, 0, len, &mut out);
        Bytes::from(out)
    }

    /// Whether `data` equals bytes `[offset, offset + data.len())` of object `seed`.
    /// `scratch` is reused between calls to avoid an allocation per chunk.
    pub fn matches(&self, seed: u64, offset: u64, data: &[u8], scratch: &mut Vec<u8>) -> bool {
        scratch.clear();
        self.append(seed, offset, data.len(), scratch);
        scratch.as_slice() == data
    }

    fn block_start(&self, seed: u64, block: u64) -> usize {
        let h = splitmix64(seed ^ splitmix64(block.wrapping_add(0x9e37_79b9_7f4a_7c15)));
        (h % (POOL - BLOCK) as u64) as usize
    }
}

impl Default for Pattern {
    fn default() -> Self {
        Self::new()
    }
}

/// splitmix64 finaliser: a cheap, well-mixing 64-bit hash.
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small xorshift64* generator for key choice and operation mix (no `rand` needed).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        Self(splitmix64(seed) | 1)
    }

    /// Next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-enough value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A request body: nothing, one buffer, or a pattern range streamed in [`CHUNK`]-sized pieces.
#[derive(Debug)]
pub enum ReqBody {
    /// No body (GET, HEAD, DELETE, ...).
    Empty,
    /// A buffer sent as one frame.
    Full(Option<Bytes>),
    /// Bytes `[offset, offset + len)` of object `seed`, generated as they are sent.
    Pattern {
        /// The shared pool.
        pattern: Arc<Pattern>,
        /// Object identity.
        seed: u64,
        /// Next object offset to send.
        offset: u64,
        /// Bytes left to send.
        remaining: u64,
    },
}

impl ReqBody {
    /// Body length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            ReqBody::Empty => 0,
            ReqBody::Full(b) => b.as_ref().map_or(0, |b| b.len() as u64),
            ReqBody::Pattern { remaining, .. } => *remaining,
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        match this {
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ReqBody::Pattern {
                pattern,
                seed,
                offset,
                remaining,
            } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let n = (*remaining).min(CHUNK as u64) as usize;
                let mut buf = Vec::with_capacity(n);
                pattern.append(*seed, *offset, n, &mut buf);
                *offset += n as u64;
                *remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty => true,
            ReqBody::Full(b) => b.is_none(),
            ReqBody::Pattern { remaining, .. } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_agree_with_whole_object() {
        let p = Pattern::new();
        let whole = p.bytes(7, 3 * BLOCK + 123);
        for (off, len) in [(0, 5), (10, 30), (4090, 20), (BLOCK, BLOCK), (5000, 7000)] {
            let mut part = Vec::new();
            p.append(7, off as u64, len, &mut part);
            assert_eq!(&part[..], &whole[off..off + len]);
        }
        let mut scratch = Vec::new();
        assert!(p.matches(7, 100, &whole[100..9000], &mut scratch));
        assert!(!p.matches(8, 100, &whole[100..9000], &mut scratch));
    }

    #[test]
    fn blocks_are_unique() {
        let p = Pattern::new();
        let a = p.bytes(1, 2 * BLOCK);
        let b = p.bytes(2, 2 * BLOCK);
        assert_ne!(a[..BLOCK], a[BLOCK..]);
        assert_ne!(a[..BLOCK], b[..BLOCK]);
        assert_eq!(a, p.bytes(1, 2 * BLOCK));
    }
}
