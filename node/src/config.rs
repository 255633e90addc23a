//! Node configuration: where the node keeps its data, the secret every caller must present,
//! and whether writes are fsynced before they are acknowledged.
//!
//! The node never reads the environment or files itself; the binary builds a [`Config`] and
//! passes it to [`crate::serve`], which calls [`Config::validate`] before touching the disk.

use std::fmt;
use std::path::PathBuf;

use crate::error::Error;

/// Configuration of one data node.
#[derive(Clone)]
pub struct Config {
    /// Directory holding `blobs/`, `tmp/` and `records.redb`. Created if missing; one node
    /// process per directory (the record database holds an exclusive lock on its file).
    pub data_dir: PathBuf,
    /// Shared secret that every gateway → node request carries in
    /// [`crate::proto::SECRET_HEADER`]. Must be usable as an HTTP header value.
    pub cluster_secret: String,
    /// Fsync blob files, their directories and record commits before answering a write.
    /// Default true. Turning it off trades durability for speed: after a power loss or kernel
    /// crash, writes acknowledged in roughly the last second may be lost (a process crash
    /// alone loses nothing already written to the page cache, except records committed since
    /// the last durable commit).
    pub fsync: bool,
}

impl Config {
    /// A configuration with the defaults: fsync on.
    pub fn new(data_dir: impl Into<PathBuf>, cluster_secret: impl Into<String>) -> Self {
        Config {
            data_dir: data_dir.into(),
            cluster_secret: cluster_secret.into(),
            fsync: true,
        }
    }

    /// Refuses settings the node cannot run with, before anything starts.
    pub fn validate(&self) -> Result<(), Error> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(Error::Config("data_dir is empty".into()));
        }
        if self.cluster_secret.is_empty() {
            return Err(Error::Config("cluster_secret is empty".into()));
        }
        // The gateway sends the secret as a header value: only visible ASCII survives that
        // unchanged, and leading or trailing spaces would be trimmed by HTTP parsers.
        if !self.cluster_secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Config(
                "cluster_secret must be printable ASCII without spaces".into(),
            ));
        }
        Ok(())
    }
}

// Written by hand so the secret never reaches a log line through `{:?}`.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("cluster_secret", &"<redacted>")
            .field("fsync", &self.fsync)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_fsync_and_accepts_a_plain_secret() {
        let config = Config::new("/tmp/x", "s3cr3t-token");
        assert!(config.fsync);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn refuses_empty_or_unsendable_secret_and_empty_dir() {
        assert!(Config::new("/tmp/x", "").validate().is_err());
        assert!(Config::new("/tmp/x", "has space").validate().is_err());
        assert!(Config::new("/tmp/x", "new\nline").validate().is_err());
        assert!(Config::new("", "secret").validate().is_err());
    }

    #[test]
    fn debug_does_not_print_the_secret() {
        let shown = format!("{:?}", Config::new("/tmp/x", "topsecret"));
        assert!(!shown.contains("topsecret"));
    }
}
