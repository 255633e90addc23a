//! Node configuration: where the node keeps its data, the secret every caller must present,
//! whether writes are fsynced before they are acknowledged, and how the blob scrubber runs.
//!
//! The node never reads the environment or files itself; the binary builds a [`Config`] and
//! passes it to [`crate::serve`], which calls [`Config::validate`] before touching the disk.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;

/// Default pause between two scrubber passes.
pub const DEFAULT_SCRUB_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// Default scrubber read rate: 32 MiB/s.
pub const DEFAULT_SCRUB_RATE: u64 = 32 * 1024 * 1024;
/// Default free space kept on the data directory's disk: 64 MiB.
pub const DEFAULT_DISK_RESERVE: u64 = 64 * 1024 * 1024;

/// Configuration of one data node.
#[derive(Clone)]
pub struct Config {
    /// Directory holding `blobs/`, `tmp/`, `quarantine/`, `records.redb`, `node_id` and
    /// `layout.json`. Created if missing; one node process per directory (the record
    /// database holds an exclusive lock on its file).
    pub data_dir: PathBuf,
    /// Shared secret every gateway → node request is signed with ([`crate::proto::auth`]);
    /// it never travels itself. Printable ASCII.
    pub cluster_secret: String,
    /// Fsync blob files, their directories and record commits before answering a write.
    /// Default true. Turning it off trades durability for speed: after a power loss or kernel
    /// crash, writes acknowledged in roughly the last second may be lost (a process crash
    /// alone loses nothing already written to the page cache, except records committed since
    /// the last durable commit).
    pub fsync: bool,
    /// Pause before the blob scrubber's first pass and between two passes (end to start);
    /// `None` turns the scrubber off. A pass reads every blob through and verifies it
    /// completely, quarantining damaged ones. Default [`DEFAULT_SCRUB_INTERVAL`] (24 h).
    pub scrub_interval: Option<Duration>,
    /// Average rate, in bytes per second, that the scrubber reads at most, so scrubbing
    /// never starves client traffic; each blob also costs 16 KiB of this budget for its
    /// open. Must be positive. Default [`DEFAULT_SCRUB_RATE`] (32 MiB/s).
    pub scrub_rate_bytes_per_sec: u64,
    /// Free bytes the node keeps on its data directory's disk: below this, writes are
    /// refused (507 `DiskFull`) before anything is written, and `/health` reports the node
    /// unhealthy, so no blob or record is ever half-written for lack of space. Default
    /// [`DEFAULT_DISK_RESERVE`] (64 MiB); 0 lets the disk fill up completely.
    pub disk_reserve_bytes: u64,
    /// The id a new data directory takes (default: made at random); for a directory that
    /// has one, the id it must have ([`crate::proto::NodeInfo`]).
    pub node_id: Option<String>,
    /// Serve TLS instead of plain HTTP (gateways then reach the node at an `https://` URL
    /// and must trust its certificate). Default `None`.
    pub tls: Option<crate::tls::Tls>,
}

impl Config {
    /// A configuration with the defaults: fsync on, a scrub pass a day at 32 MiB/s.
    pub fn new(data_dir: impl Into<PathBuf>, cluster_secret: impl Into<String>) -> Self {
        Config {
            data_dir: data_dir.into(),
            cluster_secret: cluster_secret.into(),
            fsync: true,
            scrub_interval: Some(DEFAULT_SCRUB_INTERVAL),
            scrub_rate_bytes_per_sec: DEFAULT_SCRUB_RATE,
            disk_reserve_bytes: DEFAULT_DISK_RESERVE,
            node_id: None,
            tls: None,
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
        if self.scrub_interval.is_some_and(|i| i.is_zero()) {
            return Err(Error::Config(
                "scrub_interval must be positive (None turns the scrubber off)".into(),
            ));
        }
        if self.scrub_rate_bytes_per_sec == 0 {
            return Err(Error::Config(
                "scrub_rate_bytes_per_sec must be positive".into(),
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
            .field("scrub_interval", &self.scrub_interval)
            .field("scrub_rate_bytes_per_sec", &self.scrub_rate_bytes_per_sec)
            .field("disk_reserve_bytes", &self.disk_reserve_bytes)
            .field("node_id", &self.node_id)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_fsync_and_a_daily_scrub_and_accepts_a_plain_secret() {
        let config = Config::new("/tmp/x", "s3cr3t-token");
        assert!(config.fsync);
        assert_eq!(config.scrub_interval, Some(Duration::from_secs(86_400)));
        assert_eq!(config.scrub_rate_bytes_per_sec, 32 * 1024 * 1024);
        assert!(config.validate().is_ok());
        let off = Config {
            scrub_interval: None,
            ..config
        };
        assert!(off.validate().is_ok());
    }

    #[test]
    fn refuses_a_zero_scrub_interval_or_rate() {
        let zero_interval = Config {
            scrub_interval: Some(Duration::ZERO),
            ..Config::new("/tmp/x", "secret")
        };
        assert!(matches!(zero_interval.validate(), Err(Error::Config(_))));
        let zero_rate = Config {
            scrub_rate_bytes_per_sec: 0,
            ..Config::new("/tmp/x", "secret")
        };
        assert!(matches!(zero_rate.validate(), Err(Error::Config(_))));
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
