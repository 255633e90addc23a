//! `s3bench compare`: two runs of the matrix side by side, with ratios and the targets.
//!
//! The candidate is s3quorum, the baseline Garage, measured with the same durability setting
//! on the same machine. Targets (ratio candidate / baseline):
//! 4 KiB PUT and GET ≥ 2× ops/s and candidate p99 ≤ baseline p50; 1 MiB PUT and GET and
//! 64 MiB PUT ≥ 1.5× MiB/s; 64 MiB GET ≥ 1×; LIST ≥ 1.5× keys/s; mixed ≥ 2× ops/s; the
//! multipart upload with every candidate process (generator included) under 256 MiB RSS;
//! and no errors on either side.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use crate::stats::WorkloadResult;

/// Reads one result file (JSON lines; other lines are ignored).
pub fn load(path: &Path) -> Result<Vec<WorkloadResult>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let results: Vec<WorkloadResult> = text
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if results.is_empty() {
        return Err(format!("{}: no results", path.display()));
    }
    Ok(results)
}

/// The metric a workload is judged by.
#[derive(Debug, Clone, Copy)]
enum Metric {
    OpsPerS,
    MibPerS,
    KeysPerS,
}

impl Metric {
    fn of(self, r: &WorkloadResult) -> f64 {
        match self {
            Metric::OpsPerS => r.ops_per_s,
            Metric::MibPerS => r.mib_per_s,
            Metric::KeysPerS => r.keys_per_s.unwrap_or(0.0),
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Metric::OpsPerS => "ops/s",
            Metric::MibPerS => "MiB/s",
            Metric::KeysPerS => "keys/s",
        }
    }
}

/// Headline metric of each workload, and the required ratio if the issue sets one.
fn headline(workload: &str) -> (Metric, Option<f64>) {
    match workload {
        "put-4k" | "get-4k" | "mixed-4k" => (Metric::OpsPerS, Some(2.0)),
        "head-4k" | "delete-4k" => (Metric::OpsPerS, None),
        "put-1m" | "get-1m" | "put-64m" => (Metric::MibPerS, Some(1.5)),
        "get-64m" => (Metric::MibPerS, Some(1.0)),
        "list" => (Metric::KeysPerS, Some(1.5)),
        _ => (Metric::MibPerS, None),
    }
}

fn max_rss(r: &WorkloadResult) -> (String, f64) {
    r.peak_rss_mib
        .iter()
        .map(|(n, v)| (n.clone(), *v))
        .fold(
            (String::from("-"), 0.0),
            |a, b| if b.1 > a.1 { b } else { a },
        )
}

fn p(r: &WorkloadResult, f: fn(&crate::stats::Quantiles) -> f64) -> Option<f64> {
    r.lat_ms.as_ref().map(f)
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"))
}

/// Renders the side-by-side table and the targets.
pub fn compare(candidate: &Path, baseline: &Path) -> Result<String, String> {
    let cand = load(candidate)?;
    let base = load(baseline)?;
    let (c0, b0) = (&cand[0].run, &base[0].run);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "candidate: {} fsync={} commit={}   baseline: {} fsync={}   machine: {}",
        c0.system, c0.fsync, c0.commit, b0.system, b0.fsync, c0.machine
    );
    if c0.fsync != b0.fsync {
        let _ = writeln!(s, "WARNING: the two runs have different fsync settings");
    }
    let _ = writeln!(
        s,
        "{:<10} {:>6} {:>11} {:>11} {:>7} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>9} {:>9}",
        "workload",
        "unit",
        c0.system.as_str(),
        b0.system.as_str(),
        "ratio",
        "p50 c",
        "p50 b",
        "p99 c",
        "p99 b",
        "srv us/op c",
        "srv us/op b",
        "RSS c",
        "RSS b"
    );
    for c in &cand {
        let Some(b) = base.iter().find(|b| b.workload == c.workload) else {
            continue;
        };
        let (metric, _) = headline(&c.workload);
        let (cv, bv) = (metric.of(c), metric.of(b));
        let ratio = if bv > 0.0 { cv / bv } else { f64::NAN };
        let _ = writeln!(
            s,
            "{:<10} {:>6} {:>11.1} {:>11.1} {:>6.2}x {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>9.1} {:>9.1}",
            c.workload,
            metric.unit(),
            cv,
            bv,
            ratio,
            fmt(p(c, |q| q.p50)),
            fmt(p(b, |q| q.p50)),
            fmt(p(c, |q| q.p99)),
            fmt(p(b, |q| q.p99)),
            fmt(c.server_cpu_us_per_op),
            fmt(b.server_cpu_us_per_op),
            max_rss(c).1,
            max_rss(b).1,
        );
    }
    let _ = writeln!(s, "\ntargets ({} / {}):", c0.system, b0.system);
    let mut pass = 0;
    let mut total = 0;
    let mut verdict = |s: &mut String, ok: bool, what: String| {
        total += 1;
        if ok {
            pass += 1;
        }
        let _ = writeln!(s, "  {}  {what}", if ok { "PASS" } else { "FAIL" });
    };
    for c in &cand {
        let (metric, need) = headline(&c.workload);
        let Some(need) = need else { continue };
        let Some(b) = base.iter().find(|b| b.workload == c.workload) else {
            continue;
        };
        let (cv, bv) = (metric.of(c), metric.of(b));
        let ratio = if bv > 0.0 { cv / bv } else { 0.0 };
        verdict(
            &mut s,
            ratio >= need,
            format!(
                "{:<9} {}: {cv:.1} vs {bv:.1} = {ratio:.2}x (need >= {need}x)",
                c.workload,
                metric.unit()
            ),
        );
        if matches!(c.workload.as_str(), "put-4k" | "get-4k")
            && let (Some(cp99), Some(bp50)) = (p(c, |q| q.p99), p(b, |q| q.p50))
        {
            verdict(
                &mut s,
                cp99 <= bp50,
                format!(
                    "{:<9} latency: p99 {cp99:.2} ms vs baseline p50 {bp50:.2} ms (need p99 <= p50)",
                    c.workload
                ),
            );
        }
    }
    if let Some(c) = cand.iter().find(|c| c.workload == "mpu-put") {
        let (name, mib) = max_rss(c);
        let size_gib = c.object_size as f64 / (1024.0 * 1024.0 * 1024.0);
        let ok = !c.peak_rss_mib.is_empty() && mib < 256.0 && c.errors == 0;
        verdict(
            &mut s,
            ok,
            format!(
                "mpu-put   {size_gib:.2} GiB upload: largest peak RSS {mib:.1} MiB ({name}) (need every process < 256 MiB){}",
                if c.peak_rss_per_workload {
                    ""
                } else {
                    " [peak since process start]"
                }
            ),
        );
    }
    let cerr: u64 = cand.iter().map(|r| r.errors).sum();
    let berr: u64 = base.iter().map(|r| r.errors).sum();
    verdict(
        &mut s,
        cerr == 0 && berr == 0,
        format!(
            "errors    {}: {cerr}, {}: {berr} (need 0)",
            c0.system, b0.system
        ),
    );
    let _ = writeln!(s, "{pass}/{total} targets pass");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headline_targets() {
        assert_eq!(headline("put-4k").1, Some(2.0));
        assert_eq!(headline("get-64m").1, Some(1.0));
        assert_eq!(headline("list").1, Some(1.5));
        assert_eq!(headline("head-4k").1, None);
    }
}
