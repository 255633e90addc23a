//! Checksums of multipart uploads, as S3 defines them.
//!
//! An upload created with `x-amz-checksum-algorithm` has every part checksummed with that
//! algorithm (computed by the gateway whether or not the client sent a value, verified when
//! it did). On completion the object's checksum is derived from the parts without reading
//! a byte again:
//! - `COMPOSITE`: the algorithm applied to the concatenated binary part checksums, with
//!   `-N` appended (N parts). Any algorithm but CRC64NVME.
//! - `FULL_OBJECT`: the checksum of the whole body, which for the CRCs (CRC32, CRC32C,
//!   CRC64NVME) follows from the part CRCs and sizes (`crate::crc_combine`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use node::proto::ObjectMeta;
use s3s::checksum::ChecksumHasher;
use s3s::dto::{ChecksumAlgorithm, ChecksumType};
use s3s::{S3Result, s3_error};

use crate::crc_combine::{CRC32, CRC32C, CRC64NVME, Crc};

pub(super) const COMPOSITE: &str = "COMPOSITE";
pub(super) const FULL_OBJECT: &str = "FULL_OBJECT";

/// The checksum an upload was created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct UploadChecksum {
    /// `CRC32`, `CRC32C`, `CRC64NVME`, `SHA1` or `SHA256`.
    pub algorithm: &'static str,
    /// [`COMPOSITE`] or [`FULL_OBJECT`].
    pub kind: &'static str,
}

fn known_algorithm(name: &str) -> Option<&'static str> {
    ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]
        .into_iter()
        .find(|n| n.eq_ignore_ascii_case(name))
}

fn crc_of(algorithm: &str) -> Option<Crc> {
    match algorithm {
        "CRC32" => Some(CRC32),
        "CRC32C" => Some(CRC32C),
        "CRC64NVME" => Some(CRC64NVME),
        _ => None,
    }
}

impl UploadChecksum {
    /// From CreateMultipartUpload's `x-amz-checksum-algorithm` and `x-amz-checksum-type`.
    /// Without a type, CRC64NVME is FULL_OBJECT and the others COMPOSITE, as in S3.
    pub fn from_create(
        algorithm: Option<&ChecksumAlgorithm>,
        kind: Option<&ChecksumType>,
    ) -> S3Result<Option<Self>> {
        let Some(algorithm) = algorithm else {
            if kind.is_some() {
                return Err(s3_error!(
                    InvalidRequest,
                    "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header."
                ));
            }
            return Ok(None);
        };
        let algorithm = known_algorithm(algorithm.as_str()).ok_or_else(|| {
            s3_error!(
                InvalidRequest,
                "Checksum algorithm {} is not supported",
                algorithm.as_str()
            )
        })?;
        let kind = match kind.map(|k| k.as_str().to_ascii_uppercase()) {
            None if algorithm == "CRC64NVME" => FULL_OBJECT,
            None => COMPOSITE,
            Some(k) if k == COMPOSITE => COMPOSITE,
            Some(k) if k == FULL_OBJECT => FULL_OBJECT,
            Some(k) => {
                return Err(s3_error!(InvalidRequest, "Unknown checksum type {k}"));
            }
        };
        let valid = match kind {
            FULL_OBJECT => crc_of(algorithm).is_some(),
            _ => algorithm != "CRC64NVME",
        };
        if !valid {
            return Err(s3_error!(
                InvalidRequest,
                "The {kind} checksum type cannot be used with the {algorithm} checksum algorithm."
            ));
        }
        Ok(Some(UploadChecksum { algorithm, kind }))
    }

    /// What an upload's initial entry recorded.
    pub fn of_upload(init: &ObjectMeta) -> Option<Self> {
        let algorithm = known_algorithm(init.checksum_algorithm.as_deref()?)?;
        let kind = match init.checksum_type.as_deref() {
            Some(FULL_OBJECT) => FULL_OBJECT,
            _ => COMPOSITE,
        };
        Some(UploadChecksum { algorithm, kind })
    }

    /// The object's checksum from its parts, in order: `(size, base64 part checksum)`.
    pub fn of_parts(&self, parts: &[(u64, &str)]) -> S3Result<String> {
        let raw: Vec<Vec<u8>> = parts
            .iter()
            .map(|(_, b64)| STANDARD.decode(b64))
            .collect::<Result<_, _>>()
            .map_err(|_| s3_error!(InternalError, "stored part checksum is not base64"))?;
        if self.kind == COMPOSITE {
            let mut hasher = hasher_for(self.algorithm);
            for r in &raw {
                hasher.update(r);
            }
            let value = digest_of(hasher, self.algorithm)
                .ok_or_else(|| s3_error!(InternalError, "no composite checksum computed"))?;
            return Ok(format!("{value}-{}", parts.len()));
        }
        let crc = crc_of(self.algorithm)
            .ok_or_else(|| s3_error!(InternalError, "FULL_OBJECT needs a CRC algorithm"))?;
        let bytes = (crc.width / 8) as usize;
        let mut acc: Option<u64> = None;
        for ((size, _), r) in parts.iter().zip(&raw) {
            if r.len() != bytes {
                return Err(s3_error!(
                    InternalError,
                    "stored part CRC has the wrong width"
                ));
            }
            let value = r.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
            acc = Some(match acc {
                None => value,
                Some(a) => crc.combine(a, value, *size),
            });
        }
        let whole = acc.unwrap_or(0);
        Ok(STANDARD.encode(&whole.to_be_bytes()[8 - bytes..]))
    }
}

fn hasher_for(algorithm: &str) -> ChecksumHasher {
    let mut h = ChecksumHasher::default();
    match algorithm {
        "CRC32" => h.crc32 = Some(Default::default()),
        "CRC32C" => h.crc32c = Some(Default::default()),
        "CRC64NVME" => h.crc64nvme = Some(Default::default()),
        "SHA1" => h.sha1 = Some(Default::default()),
        _ => h.sha256 = Some(Default::default()),
    }
    h
}

fn digest_of(hasher: ChecksumHasher, algorithm: &str) -> Option<String> {
    let c = hasher.finalize();
    match algorithm {
        "CRC32" => c.checksum_crc32,
        "CRC32C" => c.checksum_crc32c,
        "CRC64NVME" => c.checksum_crc64nvme,
        "SHA1" => c.checksum_sha1,
        _ => c.checksum_sha256,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checksum(algorithm: &str, data: &[u8]) -> String {
        let mut h = hasher_for(algorithm);
        h.update(data);
        digest_of(h, algorithm).unwrap()
    }

    #[test]
    fn full_object_crc_of_parts_is_the_crc_of_the_body() {
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
        let chunks: Vec<&[u8]> = body.chunks(120_000).collect();
        for algorithm in ["CRC32", "CRC32C", "CRC64NVME"] {
            let sums: Vec<String> = chunks.iter().map(|c| checksum(algorithm, c)).collect();
            let parts: Vec<(u64, &str)> = chunks
                .iter()
                .zip(&sums)
                .map(|(c, s)| (c.len() as u64, s.as_str()))
                .collect();
            let spec = UploadChecksum {
                algorithm: known_algorithm(algorithm).unwrap(),
                kind: FULL_OBJECT,
            };
            assert_eq!(
                spec.of_parts(&parts).unwrap(),
                checksum(algorithm, &body),
                "{algorithm}"
            );
        }
    }

    #[test]
    fn composite_is_the_checksum_of_the_part_checksums_with_the_count() {
        let parts_data = [b"first part".as_slice(), b"second", b"third and last"];
        for algorithm in ["CRC32", "CRC32C", "SHA1", "SHA256"] {
            let sums: Vec<String> = parts_data.iter().map(|p| checksum(algorithm, p)).collect();
            let mut concatenated = Vec::new();
            for s in &sums {
                concatenated.extend(STANDARD.decode(s).unwrap());
            }
            let parts: Vec<(u64, &str)> = sums.iter().map(|s| (0, s.as_str())).collect();
            let spec = UploadChecksum {
                algorithm: known_algorithm(algorithm).unwrap(),
                kind: COMPOSITE,
            };
            assert_eq!(
                spec.of_parts(&parts).unwrap(),
                format!("{}-3", checksum(algorithm, &concatenated))
            );
        }
    }

    #[test]
    fn create_defaults_and_refusals() {
        let alg = |s: &str| ChecksumAlgorithm::from(s.to_owned());
        let kind = |s: &str| ChecksumType::from(s.to_owned());
        let spec = UploadChecksum::from_create(Some(&alg("CRC64NVME")), None).unwrap();
        assert_eq!(spec.unwrap().kind, FULL_OBJECT);
        let spec = UploadChecksum::from_create(Some(&alg("SHA256")), None).unwrap();
        assert_eq!(spec.unwrap().kind, COMPOSITE);
        assert!(
            UploadChecksum::from_create(Some(&alg("SHA256")), Some(&kind("FULL_OBJECT"))).is_err()
        );
        assert!(
            UploadChecksum::from_create(Some(&alg("CRC64NVME")), Some(&kind("COMPOSITE"))).is_err()
        );
        assert!(UploadChecksum::from_create(None, Some(&kind("COMPOSITE"))).is_err());
        assert_eq!(UploadChecksum::from_create(None, None).unwrap(), None);
    }
}
