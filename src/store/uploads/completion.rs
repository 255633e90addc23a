//! What a completed upload leaves behind so that CompleteMultipartUpload can be retried:
//! SDKs repeat a completion whose answer was lost, and S3 answers the repeat with the first
//! result. Completing purges the upload's entries and adds one *completion* entry to the
//! upload's record, holding the result (ETag, version id, checksums) and the part list it
//! was made of; a later completion of the same upload with the same part list gets that
//! result again, with any other list `NoSuchUpload`.
//!
//! The completion entry is a version of the upload record (so it merges, repairs and
//! expires like the rest of it) that refers to no blob: its fields ride in the meta's user
//! metadata, under names no client can set there (client metadata lives on objects, never
//! in upload records).

use std::collections::BTreeMap;

use node::proto::{Data, ObjectMeta, ObjectRecord, Stamp, Version, VersionState};

use crate::checksum::{self, Checksums, Kind};

// The entry's (empty) inline body is checked like any: reads drop those whose MD5 is off.
use super::EMPTY_MD5;

/// The part list, as `number:etag` joined by commas.
const PARTS: &str = "s3q-completed-parts";
/// The version id the completion answered with, if it answered with one.
const VERSION_ID: &str = "s3q-completed-version-id";

/// The result of a completed upload.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub etag: String,
    /// `(part number, part ETag)` in request order.
    pub parts: Vec<(u32, String)>,
    pub version_id: Option<String>,
    pub checksums: Checksums,
    pub checksum_type: Option<Kind>,
}

impl Completion {
    /// The completion entry, stamped `stamp` (the completed object version's stamp: unique,
    /// and newer than every entry of the upload).
    pub fn to_version(&self, stamp: Stamp) -> Version {
        let parts = self
            .parts
            .iter()
            .map(|(n, e)| format!("{n}:{e}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut fields = BTreeMap::from([(PARTS.to_owned(), parts)]);
        if let Some(id) = &self.version_id {
            fields.insert(VERSION_ID.to_owned(), id.clone());
        }
        Version {
            stamp,
            null: false,
            state: VersionState::Object(ObjectMeta {
                size: 0,
                md5: EMPTY_MD5.to_owned(),
                etag: self.etag.clone(),
                data: Data::Inline { bytes: Vec::new() },
                headers: BTreeMap::new(),
                user_metadata: fields,
                part_number: None,
                checksums: checksum::to_stored(&self.checksums),
                checksum_type: self.checksum_type.map(|k| k.name().to_owned()),
                checksum_algorithm: None,
            }),
            tags: None,
            acl: None,
            follows: None,
        }
    }

    /// The completion recorded in an upload's record, if the upload was completed.
    pub fn find(record: &ObjectRecord) -> Option<Completion> {
        record.versions.iter().rev().find_map(|v| match &v.state {
            VersionState::Object(meta) => {
                let parts = meta.user_metadata.get(PARTS)?;
                let parts = parts
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (n, e) = p.split_once(':')?;
                        Some((n.parse().ok()?, e.to_owned()))
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(Completion {
                    etag: meta.etag.clone(),
                    parts,
                    version_id: meta.user_metadata.get(VERSION_ID).cloned(),
                    checksums: checksum::from_stored(&meta.checksums),
                    checksum_type: meta.checksum_type.as_deref().and_then(Kind::parse),
                })
            }
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_survives_its_record_form() {
        let done = Completion {
            etag: "abc-2".into(),
            parts: vec![(1, "e1".into()), (3, "e3".into())],
            version_id: Some("v9".into()),
            checksums: Checksums::from([(checksum::Algorithm::Crc32, "AAAAAA==-2".to_owned())]),
            checksum_type: Some(Kind::Composite),
        };
        let stamp = Stamp {
            ts: 7,
            id: "v9".into(),
        };
        let record = ObjectRecord::single(done.to_version(stamp));
        assert_eq!(Completion::find(&record), Some(done));
        assert_eq!(Completion::find(&ObjectRecord::default()), None);
    }
}
