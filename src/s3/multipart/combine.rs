//! Checksums of multipart uploads, as S3 defines them: how the parts' combine.
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

use crate::checksum::{Algorithm, Kind};

/// The checksum an upload was created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct UploadChecksum {
    pub algorithm: Algorithm,
    pub kind: Kind,
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
        let algorithm = Algorithm::parse(algorithm.as_str()).ok_or_else(|| {
            s3_error!(
                InvalidRequest,
                "Checksum algorithm {} is not supported",
                algorithm.as_str()
            )
        })?;
        let kind = match kind {
            None if algorithm == Algorithm::Crc64Nvme => Kind::FullObject,
            None => Kind::Composite,
            Some(k) => Kind::parse(k.as_str())
                .ok_or_else(|| s3_error!(InvalidRequest, "Unknown checksum type {}", k.as_str()))?,
        };
        let valid = match kind {
            Kind::FullObject => algorithm.crc().is_some(),
            Kind::Composite => algorithm != Algorithm::Crc64Nvme,
        };
        if !valid {
            return Err(s3_error!(
                InvalidRequest,
                "The {} checksum type cannot be used with the {} checksum algorithm.",
                kind.name(),
                algorithm.name()
            ));
        }
        Ok(Some(UploadChecksum { algorithm, kind }))
    }

    /// What an upload's initial entry recorded.
    pub fn of_upload(init: &ObjectMeta) -> Option<Self> {
        let algorithm = Algorithm::parse(init.checksum_algorithm.as_deref()?)?;
        let kind = init
            .checksum_type
            .as_deref()
            .and_then(Kind::parse)
            .unwrap_or(Kind::Composite);
        Some(UploadChecksum { algorithm, kind })
    }

    /// The object's checksum from its parts, in order: `(size, base64 part checksum)`.
    pub fn of_parts(&self, parts: &[(u64, &str)]) -> S3Result<String> {
        let raw: Vec<Vec<u8>> = parts
            .iter()
            .map(|(_, b64)| STANDARD.decode(b64))
            .collect::<Result<_, _>>()
            .map_err(|_| s3_error!(InternalError, "stored part checksum is not base64"))?;
        if self.kind == Kind::Composite {
            let mut hasher = ChecksumHasher::default();
            self.algorithm.enable(&mut hasher);
            for r in &raw {
                hasher.update(r);
            }
            let computed = hasher.finalize();
            let value = self
                .algorithm
                .value_in(&computed)
                .ok_or_else(|| s3_error!(InternalError, "no composite checksum computed"))?;
            return Ok(format!("{value}-{}", parts.len()));
        }
        let crc = self
            .algorithm
            .crc()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn checksum(algorithm: Algorithm, data: &[u8]) -> String {
        let mut h = ChecksumHasher::default();
        algorithm.enable(&mut h);
        h.update(data);
        algorithm.value_in(&h.finalize()).unwrap().clone()
    }

    #[test]
    fn full_object_crc_of_parts_is_the_crc_of_the_body() {
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
        let chunks: Vec<&[u8]> = body.chunks(120_000).collect();
        for algorithm in [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme] {
            let sums: Vec<String> = chunks.iter().map(|c| checksum(algorithm, c)).collect();
            let parts: Vec<(u64, &str)> = chunks
                .iter()
                .zip(&sums)
                .map(|(c, s)| (c.len() as u64, s.as_str()))
                .collect();
            let spec = UploadChecksum {
                algorithm,
                kind: Kind::FullObject,
            };
            assert_eq!(
                spec.of_parts(&parts).unwrap(),
                checksum(algorithm, &body),
                "{algorithm:?}"
            );
        }
    }

    #[test]
    fn composite_is_the_checksum_of_the_part_checksums_with_the_count() {
        let parts_data = [b"first part".as_slice(), b"second", b"third and last"];
        for algorithm in [
            Algorithm::Crc32,
            Algorithm::Crc32c,
            Algorithm::Sha1,
            Algorithm::Sha256,
        ] {
            let sums: Vec<String> = parts_data.iter().map(|p| checksum(algorithm, p)).collect();
            let mut concatenated = Vec::new();
            for s in &sums {
                concatenated.extend(STANDARD.decode(s).unwrap());
            }
            let parts: Vec<(u64, &str)> = sums.iter().map(|s| (0, s.as_str())).collect();
            let spec = UploadChecksum {
                algorithm,
                kind: Kind::Composite,
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
        assert_eq!(spec.unwrap().kind, Kind::FullObject);
        let spec = UploadChecksum::from_create(Some(&alg("SHA256")), None).unwrap();
        assert_eq!(spec.unwrap().kind, Kind::Composite);
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
