//! What garbage collection needs of the blob files: a shard's blobs with their ages, the
//! removal of quarantined copies a rewrite made useless, and the removal of one blob (and
//! its quarantined copy) once it is old enough. Whether anything refers to a blob is the
//! record store's to say (see `records::refs`); nothing here decides it.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{BlobStore, stat};
use crate::error::Error;
use crate::proto;

/// One blob file of a shard, or a quarantined copy whose blob is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShardFile {
    pub id: String,
    pub len: u64,
    /// Since the file was last written (zero when its time lies ahead of the clock).
    pub age: Duration,
    pub quarantined: bool,
}

/// A shard's files, and how many quarantined copies were removed because their blob was
/// written again.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    pub files: Vec<ShardFile>,
    pub quarantine_cleared: u64,
}

fn age_of(meta: &std::fs::Metadata, now: SystemTime) -> Duration {
    meta.modified()
        .ok()
        .and_then(|m| now.duration_since(m).ok())
        .unwrap_or(Duration::ZERO)
}

fn ids_in(dir: &Path, prefix: &str) -> Result<Vec<(String, std::fs::Metadata)>, Error> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::io("list blob directory"))? {
        let entry = entry.map_err(Error::io("list blob directory"))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !proto::is_valid_blob_id(&name) || !name.starts_with(prefix) {
            continue;
        }
        // Gone between the listing and the stat: removed meanwhile.
        if let Ok(meta) = entry.metadata()
            && meta.is_file()
        {
            out.push((name, meta));
        }
    }
    Ok(out)
}

impl BlobStore {
    /// The blob files of shard directory `shard`, and the quarantined copies of blobs of
    /// that shard that have no blob file; quarantined copies whose blob was written again
    /// are removed on the way. Sorted by id. Blocking.
    pub(crate) fn gc_shard(&self, shard: u8) -> Result<Shard, Error> {
        let prefix = format!("{shard:02x}");
        let now = SystemTime::now();
        let mut out = Shard::default();
        for (id, meta) in ids_in(&self.inner.blobs_dir.join(&prefix), &prefix)? {
            out.files.push(ShardFile {
                id,
                len: meta.len(),
                age: age_of(&meta, now),
                quarantined: false,
            });
        }
        for (id, meta) in ids_in(&self.inner.quarantine_dir, &prefix)? {
            let _placing = self.lock();
            if stat(&self.path(&id)).is_some() {
                match std::fs::remove_file(self.inner.quarantine_dir.join(&id)) {
                    Ok(()) => out.quarantine_cleared += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("remove quarantined copy")(e)),
                }
                continue;
            }
            out.files.push(ShardFile {
                id,
                len: meta.len(),
                age: age_of(&meta, now),
                quarantined: true,
            });
        }
        out.files.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Removes blob `id` and its quarantined copy, each only if its file is at least
    /// `grace` old; the bytes removed. The caller has made sure nothing refers to the
    /// blob. Blocking.
    pub(crate) fn remove_if_older(&self, id: &str, grace: Duration) -> Result<u64, Error> {
        if !proto::is_valid_blob_id(id) {
            return Ok(0);
        }
        let now = SystemTime::now();
        let _placing = self.lock();
        let mut freed = 0u64;
        let path = self.path(id);
        if let Some(meta) = stat(&path)
            && age_of(&meta, now) >= grace
        {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    self.forget(&meta);
                    freed += meta.len();
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("delete blob")(e)),
            }
        }
        let quarantined = self.inner.quarantine_dir.join(id);
        if let Some(meta) = stat(&quarantined)
            && age_of(&meta, now) >= grace
        {
            match std::fs::remove_file(&quarantined) {
                Ok(()) => freed += meta.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("delete quarantined copy")(e)),
            }
        }
        Ok(freed)
    }
}
