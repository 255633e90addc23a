//! The data directory's disk, as the node's health sees it: free space and the record
//! database's fault.
//!
//! Free space: writes (blob uploads, record writes) are refused with 507 `DiskFull` while
//! fewer than the reserve's bytes are free, *before* anything is written, so a full disk
//! never leaves a half-written blob or a failed record commit behind; the blob writer also
//! removes its temp file when the disk fills under it.
//!
//! Fault: the record writer reports an I/O error of the database here the moment it
//! happens and clears it once the database is reopened (see `records::handle`). While
//! either holds, `/health` answers 503, so gateways stop choosing the node at once, and the
//! node recovers by itself, without a restart, once the cause is gone.

use std::path::PathBuf;
use std::sync::Mutex;

use prometheus::IntGauge;

use crate::error::Error;

pub(crate) struct Disk {
    dir: PathBuf,
    reserve: u64,
    /// `node_disk_free_bytes`, refreshed on every check.
    free: IntGauge,
    fault: Mutex<Option<String>>,
}

impl Disk {
    pub(crate) fn new(dir: PathBuf, reserve: u64, free: IntGauge) -> Disk {
        let disk = Disk {
            dir,
            reserve,
            free,
            fault: Mutex::new(None),
        };
        disk.free_bytes();
        disk
    }

    /// Bytes an unprivileged writer may still use on the data directory's file system.
    pub(crate) fn free_bytes(&self) -> Option<u64> {
        match rustix::fs::statvfs(&self.dir) {
            Ok(s) => {
                let free = s.f_bavail.saturating_mul(s.f_frsize);
                self.free.set(i64::try_from(free).unwrap_or(i64::MAX));
                Some(free)
            }
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot stat the data directory's file system");
                None
            }
        }
    }

    /// `DiskFull` when less than the reserve is free (no reserve, or an unknown free space,
    /// is no reason to refuse).
    pub(crate) fn check_room(&self) -> Result<(), Error> {
        match self.free_bytes() {
            Some(free) if free < self.reserve => Err(Error::DiskFull {
                free,
                reserve: self.reserve,
            }),
            _ => Ok(()),
        }
    }

    /// Records the record database's I/O fault (`None`: it is healthy again).
    pub(crate) fn set_fault(&self, fault: Option<String>) {
        let mut slot = self.fault.lock().unwrap_or_else(|p| p.into_inner());
        match (&*slot, &fault) {
            (None, Some(why)) => {
                tracing::error!(fault = %why, "record database failed: node unhealthy")
            }
            (Some(_), None) => tracing::info!("record database reopened: node healthy again"),
            _ => {}
        }
        *slot = fault;
    }

    /// Why the node should not be chosen now, if it should not.
    pub(crate) fn health(&self) -> Result<(), String> {
        if let Some(why) = &*self.fault.lock().unwrap_or_else(|p| p.into_inner()) {
            return Err(format!("record database failed: {why}"));
        }
        self.check_room().map_err(|e| e.to_string())
    }
}
