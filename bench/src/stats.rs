//! Measurements: per-worker recorders (HDR histograms of latency and time to first byte),
//! the per-workload result that becomes one JSON line, and the human-readable table.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::procs::Cost;

/// Error messages kept per workload (the count is always complete).
const ERROR_SAMPLES: usize = 5;

/// What one worker (or a merge of workers) measured.
#[derive(Debug)]
pub struct Recorder {
    /// Latency of successful operations, microseconds.
    pub lat: Histogram<u64>,
    /// Time to first byte of successful reads, microseconds.
    pub ttfb: Histogram<u64>,
    /// Successful operations.
    pub ops: u64,
    /// Payload bytes moved by successful operations.
    pub bytes: u64,
    /// Keys returned by listings.
    pub keys: u64,
    /// Failed operations: transport errors, unexpected statuses, wrong bodies.
    pub errors: u64,
    /// The first few error messages.
    pub error_samples: Vec<String>,
    /// Connections reopened because the server closed one.
    pub reconnects: u64,
    /// Successful operations by kind (mixed workload).
    pub kinds: BTreeMap<String, u64>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 1 h, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self {
            lat: histogram(),
            ttfb: histogram(),
            ops: 0,
            bytes: 0,
            keys: 0,
            errors: 0,
            error_samples: Vec::new(),
            reconnects: 0,
            kinds: BTreeMap::new(),
        }
    }

    /// Records a successful operation.
    pub fn ok(&mut self, lat: Duration, bytes: u64) {
        self.ops += 1;
        self.bytes += bytes;
        self.lat.saturating_record(micros(lat));
    }

    /// Records the time to first byte of a successful read.
    pub fn first_byte(&mut self, ttfb: Duration) {
        self.ttfb.saturating_record(micros(ttfb));
    }

    /// Counts a successful operation of a kind (mixed workload).
    pub fn kind(&mut self, kind: &str) {
        *self.kinds.entry(kind.to_string()).or_default() += 1;
    }

    /// Records a failed operation.
    pub fn error(&mut self, msg: String) {
        self.errors += 1;
        if self.error_samples.len() < ERROR_SAMPLES {
            self.error_samples.push(msg);
        }
    }

    /// Adds another recorder's measurements to this one.
    pub fn merge(&mut self, other: Recorder) {
        self.lat.add(&other.lat).expect("same histogram bounds");
        self.ttfb.add(&other.ttfb).expect("same histogram bounds");
        self.ops += other.ops;
        self.bytes += other.bytes;
        self.keys += other.keys;
        self.errors += other.errors;
        self.reconnects += other.reconnects;
        for m in other.error_samples {
            if self.error_samples.len() < ERROR_SAMPLES {
                self.error_samples.push(m);
            }
        }
        for (k, n) in other.kinds {
            *self.kinds.entry(k).or_default() += n;
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Latency quantiles in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

impl Quantiles {
    fn of(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Self {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        })
    }
}

/// Who and where a run measured; copied into every result line.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RunInfo {
    /// Label of the system under test (`s3quorum`, `garage`, ...).
    pub system: String,
    /// `on`, `off` or `unknown`.
    pub fsync: String,
    /// Commit of the system under test, if known.
    pub commit: String,
    /// Short machine description (cores, memory).
    pub machine: String,
}

/// One workload's result: one JSON line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkloadResult {
    /// Run description.
    #[serde(flatten)]
    pub run: RunInfo,
    /// Workload name (`put-4k`, `get-64m`, `list`, `mixed`, `mpu-put`, ...).
    pub workload: String,
    /// Object size in bytes (0 for LIST).
    pub object_size: u64,
    /// Concurrent workers, each with one connection.
    pub concurrency: usize,
    /// Measured wall time, seconds.
    pub secs: f64,
    /// Successful operations (requests; LIST: pages).
    pub ops: u64,
    /// Operations per second.
    pub ops_per_s: f64,
    /// Payload MiB per second.
    pub mib_per_s: f64,
    /// Keys listed per second (LIST only).
    pub keys_per_s: Option<f64>,
    /// Latency quantiles, ms.
    pub lat_ms: Option<Quantiles>,
    /// Time to first byte quantiles, ms (GET only).
    pub ttfb_ms: Option<Quantiles>,
    /// Failed operations (must be 0).
    pub errors: u64,
    /// First error messages.
    pub error_samples: Vec<String>,
    /// Server CPU time (all watched server processes) per operation, µs.
    pub server_cpu_us_per_op: Option<f64>,
    /// Load generator CPU time per operation, µs.
    pub client_cpu_us_per_op: Option<f64>,
    /// CPU seconds per server process during the workload.
    pub server_cpu_secs: BTreeMap<String, f64>,
    /// Peak RSS per process, MiB (`s3bench` is the generator).
    pub peak_rss_mib: BTreeMap<String, f64>,
    /// Whether the peaks cover only this workload (false: since process start).
    pub peak_rss_per_workload: bool,
    /// Connections reopened during the workload.
    pub reconnects: u64,
    /// Operations by kind (mixed workload).
    pub ops_by_kind: BTreeMap<String, u64>,
}

impl WorkloadResult {
    /// Builds the result of a workload from its merged recorder, wall time and cost.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        run: &RunInfo,
        workload: &str,
        object_size: u64,
        concurrency: usize,
        wall: Duration,
        rec: &Recorder,
        cost: &Cost,
    ) -> Self {
        let secs = wall.as_secs_f64().max(1e-9);
        let per_op = |cpu: f64| (rec.ops > 0).then(|| cpu * 1e6 / rec.ops as f64);
        Self {
            run: run.clone(),
            workload: workload.to_string(),
            object_size,
            concurrency,
            secs,
            ops: rec.ops,
            ops_per_s: rec.ops as f64 / secs,
            mib_per_s: rec.bytes as f64 / secs / (1024.0 * 1024.0),
            keys_per_s: (rec.keys > 0).then(|| rec.keys as f64 / secs),
            lat_ms: Quantiles::of(&rec.lat),
            ttfb_ms: Quantiles::of(&rec.ttfb),
            errors: rec.errors,
            error_samples: rec.error_samples.clone(),
            server_cpu_us_per_op: cost.server_cpu_total().and_then(per_op),
            client_cpu_us_per_op: per_op(cost.client_cpu_secs),
            server_cpu_secs: cost.server_cpu_secs.clone(),
            peak_rss_mib: cost.peak_rss_mib.clone(),
            peak_rss_per_workload: cost.rss_reset,
            reconnects: rec.reconnects,
            ops_by_kind: rec.kinds.clone(),
        }
    }
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.prec$}"))
}

/// Renders the results of one run as a fixed-width table, then peak RSS per process.
pub fn table(results: &[WorkloadResult]) -> String {
    let mut s = String::new();
    let Some(first) = results.first() else {
        return "no results\n".to_string();
    };
    let _ = writeln!(
        s,
        "system={} fsync={} commit={} machine={}",
        first.run.system, first.run.fsync, first.run.commit, first.run.machine
    );
    let _ = writeln!(
        s,
        "{:<10} {:>4} {:>8} {:>9} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>6}",
        "workload",
        "conc",
        "ops",
        "ops/s",
        "MiB/s",
        "keys/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "ttfb50",
        "ttfb99",
        "srv us/op",
        "cli us/op",
        "errors"
    );
    for r in results {
        let q = |f: fn(&Quantiles) -> f64| opt(r.lat_ms.as_ref().map(f), 2);
        let t = |f: fn(&Quantiles) -> f64| opt(r.ttfb_ms.as_ref().map(f), 2);
        let _ = writeln!(
            s,
            "{:<10} {:>4} {:>8} {:>9.1} {:>8.1} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>6}",
            r.workload,
            r.concurrency,
            r.ops,
            r.ops_per_s,
            r.mib_per_s,
            opt(r.keys_per_s, 0),
            q(|q| q.p50),
            q(|q| q.p90),
            q(|q| q.p99),
            q(|q| q.max),
            t(|q| q.p50),
            t(|q| q.p99),
            opt(r.server_cpu_us_per_op, 0),
            opt(r.client_cpu_us_per_op, 0),
            r.errors
        );
    }
    let names: BTreeSet<&String> = results.iter().flat_map(|r| r.peak_rss_mib.keys()).collect();
    if !names.is_empty() {
        let _ = write!(s, "\npeak RSS (MiB) {:<10}", "workload");
        for n in &names {
            let _ = write!(s, " {n:>9}");
        }
        let _ = writeln!(s);
        for r in results {
            let _ = write!(s, "               {:<10}", r.workload);
            for n in &names {
                let _ = write!(s, " {:>9}", opt(r.peak_rss_mib.get(*n).copied(), 1));
            }
            let _ = writeln!(
                s,
                "{}",
                if r.peak_rss_per_workload {
                    ""
                } else {
                    "  (since process start)"
                }
            );
        }
    }
    for r in results.iter().filter(|r| r.errors > 0) {
        let _ = writeln!(s, "\n{}: {} errors, e.g.:", r.workload, r.errors);
        for e in &r.error_samples {
            let _ = writeln!(s, "  {e}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_merges_and_reports() {
        let mut a = Recorder::new();
        a.ok(Duration::from_millis(2), 100);
        let mut b = Recorder::new();
        b.ok(Duration::from_millis(4), 100);
        b.error("boom".into());
        a.merge(b);
        let r = WorkloadResult::new(
            &RunInfo::default(),
            "put-4k",
            4096,
            2,
            Duration::from_secs(2),
            &a,
            &Cost::default(),
        );
        assert_eq!((r.ops, r.errors), (2, 1));
        assert!((r.ops_per_s - 1.0).abs() < 1e-9);
        assert!(r.lat_ms.as_ref().unwrap().max >= 3.9);
        let line = serde_json::to_string(&r).unwrap();
        let back: WorkloadResult = serde_json::from_str(&line).unwrap();
        assert_eq!(back.workload, "put-4k");
        assert!(table(&[back]).contains("put-4k"));
    }
}
