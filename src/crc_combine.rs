//! Combining CRCs of consecutive byte runs without reading the bytes again: the
//! FULL_OBJECT checksum of a multipart upload is the CRC of the whole object, computed from
//! each part's CRC and length.
//!
//! For a reflected CRC whose initial value and final XOR are all ones (CRC32, CRC32C and
//! CRC64NVME all are), `crc(A ++ B) = shift(crc(A), 8·len(B)) ⊕ crc(B)`, where `shift`
//! multiplies by x^(8·len(B)) modulo the polynomial: a linear map over GF(2), applied here
//! by repeated squaring of the one-zero-bit operator (so combining costs O(log len)
//! matrix squarings, not O(len)).

/// A reflected CRC of `width` bits (≤ 64) with the given reflected polynomial.
#[derive(Debug, Clone, Copy)]
pub struct Crc {
    pub width: u32,
    pub poly: u64,
}

pub const CRC32: Crc = Crc {
    width: 32,
    poly: 0xEDB8_8320,
};
pub const CRC32C: Crc = Crc {
    width: 32,
    poly: 0x82F6_3B78,
};
pub const CRC64NVME: Crc = Crc {
    width: 64,
    poly: 0x9A6C_9329_AC4B_C9B5,
};

impl Crc {
    /// The CRC of `A ++ B` from `crc_a`, `crc_b` and the length of `B` in bytes.
    pub fn combine(self, crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
        if len_b == 0 {
            return crc_a;
        }
        let w = self.width as usize;
        // The operator for one zero bit: shift right, folding in the polynomial.
        let mut odd = [0u64; 64];
        odd[0] = self.poly;
        for (n, row) in odd.iter_mut().enumerate().take(w).skip(1) {
            *row = 1 << (n - 1);
        }
        let mut even = [0u64; 64];
        square(&mut even, &odd, w); // two zero bits
        square(&mut odd, &even, w); // four zero bits
        let mut crc = crc_a;
        let mut len = len_b;
        // Each step squares the operator (8, 16, 32... zero bits: one byte, two bytes, ...)
        // and applies it where `len` has a one bit.
        loop {
            square(&mut even, &odd, w);
            if len & 1 == 1 {
                crc = times(&even, crc);
            }
            len >>= 1;
            if len == 0 {
                break;
            }
            square(&mut odd, &even, w);
            if len & 1 == 1 {
                crc = times(&odd, crc);
            }
            len >>= 1;
            if len == 0 {
                break;
            }
        }
        crc ^ crc_b
    }
}

fn times(matrix: &[u64; 64], mut vector: u64) -> u64 {
    let mut sum = 0;
    let mut i = 0;
    while vector != 0 {
        if vector & 1 == 1 {
            sum ^= matrix[i];
        }
        vector >>= 1;
        i += 1;
    }
    sum
}

fn square(out: &mut [u64; 64], matrix: &[u64; 64], width: usize) {
    for n in 0..width {
        out[n] = times(matrix, matrix[n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use s3s::checksum::ChecksumHasher;

    /// The CRCs of `data` as s3s computes them for uploads: (crc32, crc32c, crc64nvme).
    fn reference(data: &[u8]) -> (u64, u64, u64) {
        let mut h = ChecksumHasher {
            crc32: Some(Default::default()),
            crc32c: Some(Default::default()),
            crc64nvme: Some(Default::default()),
            ..Default::default()
        };
        h.update(data);
        let c = h.finalize();
        let num = |b64: Option<String>| {
            let raw = STANDARD.decode(b64.expect("computed")).expect("base64");
            raw.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
        };
        (
            num(c.checksum_crc32),
            num(c.checksum_crc32c),
            num(c.checksum_crc64nvme),
        )
    }

    #[test]
    fn combining_parts_equals_the_crc_of_the_whole() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        for split in [0, 1, 7, 4096, 65_537, 99_999, 100_000] {
            let (a, b) = data.split_at(split);
            let (wa, wb, whole) = (reference(a), reference(b), reference(&data));
            let len_b = b.len() as u64;
            assert_eq!(
                CRC32.combine(wa.0, wb.0, len_b),
                whole.0,
                "crc32 at {split}"
            );
            assert_eq!(
                CRC32C.combine(wa.1, wb.1, len_b),
                whole.1,
                "crc32c at {split}"
            );
            assert_eq!(
                CRC64NVME.combine(wa.2, wb.2, len_b),
                whole.2,
                "crc64nvme at {split}"
            );
        }
    }

    #[test]
    fn combining_many_parts_in_order() {
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
        let mut acc = reference(&[]);
        for part in data.chunks(3_333) {
            let p = reference(part);
            let n = part.len() as u64;
            acc = (
                CRC32.combine(acc.0, p.0, n),
                CRC32C.combine(acc.1, p.1, n),
                CRC64NVME.combine(acc.2, p.2, n),
            );
        }
        assert_eq!(acc, reference(&data));
    }
}
