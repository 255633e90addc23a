//! The checksum algorithms S3 defines and how a multipart object's checksum combines its
//! parts' (`Kind`), as types. Stored records and S3 messages spell them as strings
//! (`CRC32`, `COMPOSITE`, ...); they are parsed once at that edge, so the rest of the
//! gateway matches on enums and an unknown name cannot slip through as a typo.

use std::collections::BTreeMap;

use s3s::checksum::ChecksumHasher;
use s3s::dto::Checksum;

use crate::crc_combine::{CRC32, CRC32C, CRC64NVME, Crc};

/// A checksum algorithm S3 clients may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

/// Algorithm → base64 value, as verified or stored.
pub type Checksums = BTreeMap<Algorithm, String>;

impl Algorithm {
    pub const ALL: [Algorithm; 5] = [
        Algorithm::Crc32,
        Algorithm::Crc32c,
        Algorithm::Crc64Nvme,
        Algorithm::Sha1,
        Algorithm::Sha256,
    ];

    /// The name S3 and stored records use.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
        }
    }

    /// The algorithm named `name`, in any case.
    pub fn parse(name: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// The request and response header carrying a value.
    pub fn header(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "x-amz-checksum-crc32",
            Algorithm::Crc32c => "x-amz-checksum-crc32c",
            Algorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Algorithm::Sha1 => "x-amz-checksum-sha1",
            Algorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// The CRC whose values combine across parts, for the CRCs.
    pub fn crc(self) -> Option<Crc> {
        match self {
            Algorithm::Crc32 => Some(CRC32),
            Algorithm::Crc32c => Some(CRC32C),
            Algorithm::Crc64Nvme => Some(CRC64NVME),
            Algorithm::Sha1 | Algorithm::Sha256 => None,
        }
    }

    /// Enables this algorithm in `hasher`.
    pub fn enable(self, hasher: &mut ChecksumHasher) {
        match self {
            Algorithm::Crc32 => hasher.crc32 = Some(Default::default()),
            Algorithm::Crc32c => hasher.crc32c = Some(Default::default()),
            Algorithm::Crc64Nvme => hasher.crc64nvme = Some(Default::default()),
            Algorithm::Sha1 => hasher.sha1 = Some(Default::default()),
            Algorithm::Sha256 => hasher.sha256 = Some(Default::default()),
        }
    }

    /// This algorithm's value in a finished hasher's result.
    pub fn value_in(self, computed: &Checksum) -> Option<&String> {
        match self {
            Algorithm::Crc32 => computed.checksum_crc32.as_ref(),
            Algorithm::Crc32c => computed.checksum_crc32c.as_ref(),
            Algorithm::Crc64Nvme => computed.checksum_crc64nvme.as_ref(),
            Algorithm::Sha1 => computed.checksum_sha1.as_ref(),
            Algorithm::Sha256 => computed.checksum_sha256.as_ref(),
        }
    }
}

/// How a multipart object's checksum derives from its parts'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The algorithm over the concatenated binary part checksums, with `-N` appended.
    Composite,
    /// The checksum of the whole body.
    FullObject,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Composite => "COMPOSITE",
            Kind::FullObject => "FULL_OBJECT",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        [Kind::Composite, Kind::FullObject]
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }
}

/// Checksums as a record stores them (names to values).
pub fn to_stored(checksums: &Checksums) -> BTreeMap<String, String> {
    checksums
        .iter()
        .map(|(a, v)| (a.name().to_owned(), v.clone()))
        .collect()
}

/// Checksums a record stores; a name this gateway does not know is left out.
pub fn from_stored(stored: &BTreeMap<String, String>) -> Checksums {
    stored
        .iter()
        .filter_map(|(name, v)| Some((Algorithm::parse(name)?, v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_left_out() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::parse(a.name()), Some(a));
            assert_eq!(Algorithm::parse(&a.name().to_lowercase()), Some(a));
            assert!(a.header().ends_with(&a.name().to_lowercase()));
        }
        assert_eq!(Algorithm::parse("MD5"), None);
        for k in [Kind::Composite, Kind::FullObject] {
            assert_eq!(Kind::parse(k.name()), Some(k));
        }
        let stored = BTreeMap::from([
            ("CRC32".to_owned(), "a".to_owned()),
            ("XXH3".to_owned(), "b".to_owned()),
        ]);
        let typed = from_stored(&stored);
        assert_eq!(typed, Checksums::from([(Algorithm::Crc32, "a".to_owned())]));
        assert_eq!(to_stored(&typed).len(), 1);
    }
}
