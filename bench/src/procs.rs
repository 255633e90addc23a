//! Server-side cost from `/proc`: CPU time and peak resident memory of named processes.
//!
//! CPU time is `utime + stime` from `/proc/PID/stat` (all threads of the process, in clock
//! ticks), sampled before and after a workload. Peak RSS is `VmHWM` from `/proc/PID/status`;
//! before each workload the high-water mark is reset by writing `5` to `/proc/PID/clear_refs`
//! (allowed for our own processes), so each workload reports its own peak. When the reset is
//! refused the value is the peak since the process started, and the result says so.

use std::collections::BTreeMap;
use std::fs;

/// Clock ticks per second of `/proc/PID/stat` times (`USER_HZ`, 100 on every Linux ABI).
const TICKS_PER_SEC: f64 = 100.0;

/// A process whose cost is measured, under a display name (`node1`, `gateway`, `s3bench`).
#[derive(Debug, Clone)]
pub struct Proc {
    /// Display name.
    pub name: String,
    /// Process id.
    pub pid: u32,
}

impl Proc {
    /// Parses `name=PID`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (name, pid) = s
            .split_once('=')
            .ok_or_else(|| format!("server pid {s:?}: expected NAME=PID"))?;
        let pid = pid
            .trim()
            .parse()
            .map_err(|_| format!("server pid {s:?}: PID is not a number"))?;
        Ok(Self {
            name: name.trim().to_string(),
            pid,
        })
    }

    /// This load generator.
    pub fn me() -> Self {
        Self {
            name: "s3bench".to_string(),
            pid: std::process::id(),
        }
    }
}

/// CPU seconds (user + system) the process has used so far.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime = field 14, stime = field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SEC)
}

/// Peak resident set size (`VmHWM`) in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmHWM:")
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// Resets the peak-RSS mark of a process; false if the kernel refused.
pub fn reset_peak_rss(pid: u32) -> bool {
    fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// A set of processes measured around one workload.
#[derive(Debug, Clone)]
pub struct Watch {
    servers: Vec<Proc>,
    me: Proc,
}

/// CPU readings at the start of a workload.
#[derive(Debug)]
pub struct Mark {
    cpu: Vec<Option<f64>>,
    me_cpu: Option<f64>,
    /// Whether every peak-RSS reset succeeded.
    pub rss_reset: bool,
}

/// Cost of one workload, per process.
#[derive(Debug, Default, Clone)]
pub struct Cost {
    /// CPU seconds used by each server process (missing if unreadable).
    pub server_cpu_secs: BTreeMap<String, f64>,
    /// CPU seconds used by the load generator.
    pub client_cpu_secs: f64,
    /// Peak RSS of each process in MiB, the generator included (`s3bench`).
    pub peak_rss_mib: BTreeMap<String, f64>,
    /// Whether the peaks cover this workload only (reset worked) or the process lifetime.
    pub rss_reset: bool,
}

impl Cost {
    /// Total CPU seconds of the server processes, if any were watched.
    pub fn server_cpu_total(&self) -> Option<f64> {
        if self.server_cpu_secs.is_empty() {
            None
        } else {
            Some(self.server_cpu_secs.values().sum())
        }
    }
}

impl Watch {
    /// Watches `servers` and this process.
    pub fn new(servers: Vec<Proc>) -> Self {
        Self {
            servers,
            me: Proc::me(),
        }
    }

    /// Whether any server process is watched.
    pub fn has_servers(&self) -> bool {
        !self.servers.is_empty()
    }

    /// Settles the machine, resets the peaks and reads the CPU counters.
    ///
    /// With servers on this machine, dirty pages are written back first (`sync`): a system
    /// with fsync off leaves what a PUT workload wrote (gigabytes) in the page cache, and
    /// the kernel's writeback would otherwise run during, and be billed to, the next one.
    pub fn start(&self) -> Mark {
        if self.has_servers()
            && let Err(e) = std::process::Command::new("sync").status()
        {
            eprintln!("s3bench: sync before the workload failed: {e}");
        }
        let mut rss_reset = reset_peak_rss(self.me.pid);
        for p in &self.servers {
            rss_reset &= reset_peak_rss(p.pid);
        }
        Mark {
            cpu: self.servers.iter().map(|p| cpu_secs(p.pid)).collect(),
            me_cpu: cpu_secs(self.me.pid),
            rss_reset,
        }
    }

    /// Reads the counters again and returns what the workload cost.
    pub fn finish(&self, mark: &Mark) -> Cost {
        let mut cost = Cost {
            rss_reset: mark.rss_reset,
            ..Cost::default()
        };
        for (p, before) in self.servers.iter().zip(&mark.cpu) {
            if let (Some(b), Some(a)) = (before, cpu_secs(p.pid)) {
                cost.server_cpu_secs.insert(p.name.clone(), a - b);
            }
            if let Some(kib) = peak_rss_kib(p.pid) {
                cost.peak_rss_mib
                    .insert(p.name.clone(), kib as f64 / 1024.0);
            }
        }
        if let (Some(b), Some(a)) = (mark.me_cpu, cpu_secs(self.me.pid)) {
            cost.client_cpu_secs = a - b;
        }
        if let Some(kib) = peak_rss_kib(self.me.pid) {
            cost.peak_rss_mib
                .insert(self.me.name.clone(), kib as f64 / 1024.0);
        }
        cost
    }

    /// Processes that no longer exist (a crashed server must not go unnoticed).
    pub fn dead(&self) -> Vec<String> {
        self.servers
            .iter()
            .filter(|p| fs::metadata(format!("/proc/{}", p.pid)).is_err())
            .map(|p| format!("{} (pid {})", p.name, p.pid))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(cpu_secs(me).is_some());
        assert!(peak_rss_kib(me).unwrap() > 0);
        let p = Proc::parse("node1=42").unwrap();
        assert_eq!((p.name.as_str(), p.pid), ("node1", 42));
        assert!(Proc::parse("x").is_err());
    }
}
