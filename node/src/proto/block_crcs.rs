//! The block checksum table of a blob: the CRC32C of each [`BLOB_BLOCK_SIZE`] block of the
//! data (the last block may be shorter; empty data has none). Nodes store it in the blob
//! file and check every read against it; on write, gateway and node each compute it and
//! compare its digest (hex MD5 of the table as u32 LE values), so the node need not hash
//! the data with MD5 a second time (see [`super::CHECK_HEADER`]).

use md5::{Digest, Md5};

use super::BLOB_BLOCK_SIZE;

/// Running CRC32C of each block, fed with chunks of any size. Pure computation.
#[derive(Debug, Clone, Default)]
pub struct BlockCrcs {
    done: Vec<u32>,
    current: u32,
    in_block: u64,
}

impl BlockCrcs {
    pub fn update(&mut self, mut data: &[u8]) {
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

    /// The table: one CRC32C per block.
    pub fn finish(mut self) -> Vec<u32> {
        if self.in_block > 0 {
            self.done.push(self.current);
        }
        self.done
    }
}

/// The digest of a table that gateway and node compare: hex MD5 of the u32 LE values.
pub fn table_digest(table: &[u32]) -> String {
    let mut md5 = Md5::new();
    for crc in table {
        md5.update(crc.to_le_bytes());
    }
    hex::encode(md5.finalize())
}
