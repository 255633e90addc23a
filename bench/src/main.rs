//! `s3bench`: the s3quorum load generator.
//!
//! `s3bench run` drives the benchmark matrix against one S3 endpoint (path-style URLs, SigV4,
//! one keep-alive connection per worker) and prints a table and one JSON line per workload.
//! `s3bench compare` puts two such JSON files side by side (s3quorum against Garage) with
//! ratios and the targets as PASS/FAIL. `bench/run.sh` starts the clusters and calls
//! both; see the README's "Performance" section.

mod body;
mod client;
mod compare;
mod mixed;
mod multipart;
mod ops;
mod procs;
mod stats;
mod tls;
mod workloads;

use std::fs;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};

use crate::body::{Pattern, splitmix64};
use crate::client::{Conn, Target};
use crate::procs::{Proc, Watch};
use crate::stats::{Recorder, RunInfo, WorkloadResult};
use crate::workloads::{Ctx, KeySet};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

#[derive(Parser, Debug)]
#[command(
    name = "s3bench",
    version,
    about = "S3 load generator of the s3quorum benchmark"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the matrix against one endpoint.
    Run(Box<RunArgs>),
    /// Compare two result files (JSON lines): candidate (s3quorum) against baseline (Garage).
    Compare {
        /// Results of the system under test.
        candidate: PathBuf,
        /// Results of the reference system.
        baseline: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// S3 endpoint, http://HOST[:PORT] (https:// with the `tls` feature).
    #[arg(long, env = "S3_ENDPOINT")]
    endpoint: String,
    /// Access key.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    access_key: String,
    /// Secret key.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_key: String,
    /// Bucket to use (created if missing); default $BENCH_BUCKET, else $S3_BUCKET, else `bench`.
    #[arg(long)]
    bucket: Option<String>,
    /// Signing region.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
    /// Seconds each timed workload runs (default 15, or 2 with --quick).
    #[arg(long)]
    duration_secs: Option<u64>,
    /// Smoke run: 2 s per workload, 256 MiB large object, 2,000 keys to list.
    #[arg(long)]
    quick: bool,
    /// Size of the multipart object in MiB (default 5120, or 256 with --quick).
    #[arg(long)]
    large_mib: Option<u64>,
    /// Multipart part size in MiB.
    #[arg(long, default_value_t = 64)]
    part_mib: u64,
    /// Parts uploaded concurrently.
    #[arg(long, default_value_t = 4)]
    part_concurrency: usize,
    /// Keys written and then listed (default 10000, or 2000 with --quick).
    #[arg(long)]
    list_keys: Option<u64>,
    /// Concurrent listers.
    #[arg(long, default_value_t = 4)]
    list_concurrency: usize,
    /// Keyspace of the mixed run.
    #[arg(long, default_value_t = 1024)]
    mixed_keys: u64,
    /// Object size of the mixed run, KiB.
    #[arg(long, default_value_t = 4)]
    mixed_kib: u64,
    /// Concurrent workers of the mixed run.
    #[arg(long, default_value_t = 32)]
    mixed_concurrency: usize,
    /// Leave the mixed run's objects in the bucket.
    #[arg(long)]
    keep_objects: bool,
    /// After the timed mixed run, create DIR/timed and go on until DIR/stop exists, reported
    /// as `mixed-<size>-during` (bench/rebalance.sh changes the cluster meanwhile).
    #[arg(long, value_name = "DIR")]
    signal_dir: Option<PathBuf>,
    /// Compare the bytes of every Nth GET per worker with what was written (0: lengths only).
    #[arg(long, default_value_t = 16)]
    verify_every: u64,
    /// Deadline of one operation, seconds.
    #[arg(long, default_value_t = 120)]
    op_timeout_secs: u64,
    /// Workload groups to run, comma-separated: 4k,1m,64m,list,mixed,mpu (default: all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Server processes to measure, NAME=PID (repeatable; also $BENCH_SERVER_PIDS, comma-separated).
    #[arg(long = "server-pid", value_delimiter = ',', env = "BENCH_SERVER_PIDS")]
    server_pids: Vec<String>,
    /// Name of the system under test, copied into the results.
    #[arg(long, default_value = "s3quorum")]
    system: String,
    /// Durability setting of the system under test: on, off or unknown.
    #[arg(long, default_value = "unknown")]
    fsync: String,
    /// Commit of the system under test.
    #[arg(long, env = "BENCH_COMMIT", default_value = "")]
    commit: String,
    /// Also write the JSON lines to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Generator threads (default: number of CPUs).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Compare {
            candidate,
            baseline,
        } => match compare::compare(&candidate, &baseline) {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("s3bench compare: {e}");
                ExitCode::from(2)
            }
        },
        Cmd::Run(args) => {
            let mut rt = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = args.threads {
                rt.worker_threads(n.max(1));
            }
            let rt = match rt.enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("s3bench: runtime: {e}");
                    return ExitCode::from(2);
                }
            };
            match rt.block_on(run(*args)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("s3bench: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0.0, |kib| kib as f64 / (1024.0 * 1024.0));
    format!("{cores} cores, {mem_gib:.0} GiB RAM")
}

/// Runs the matrix; Ok(true) when every operation succeeded.
async fn run(args: RunArgs) -> Result<bool, String> {
    let bucket = args
        .bucket
        .clone()
        .or_else(|| std::env::var("BENCH_BUCKET").ok())
        .or_else(|| std::env::var("S3_BUCKET").ok())
        .unwrap_or_else(|| "bench".to_string());
    let target = Arc::new(Target::new(
        &args.endpoint,
        &bucket,
        &args.region,
        &args.access_key,
        &args.secret_key,
    )?);
    let servers = args
        .server_pids
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| Proc::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let secs = args
        .duration_secs
        .unwrap_or(if args.quick { 2 } else { 15 });
    let large = args
        .large_mib
        .unwrap_or(if args.quick { 256 } else { 5120 })
        * MIB;
    let list_keys = args
        .list_keys
        .unwrap_or(if args.quick { 2000 } else { 10_000 });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?;
    let nonce = splitmix64(now.as_nanos() as u64 ^ u64::from(std::process::id()));
    let ctx = Arc::new(Ctx {
        target: target.clone(),
        pattern: Arc::new(Pattern::new()),
        prefix: format!("s3bench-{:016x}", nonce),
        nonce,
        duration: Duration::from_secs(secs),
        op_timeout: Duration::from_secs(args.op_timeout_secs),
        verify_every: args.verify_every,
        watch: Watch::new(servers),
        run: RunInfo {
            system: args.system.clone(),
            fsync: args.fsync.clone(),
            commit: args.commit.clone(),
            machine: machine(),
        },
        setup: Mutex::new(Recorder::new()),
    });
    if !ctx.watch.has_servers() {
        eprintln!("s3bench: no --server-pid given: server CPU and RSS are not measured");
    }
    eprintln!(
        "s3bench: {} bucket {} prefix {} ({} s per workload)",
        args.endpoint, bucket, ctx.prefix, secs
    );
    ops::create_bucket(&mut Conn::new(target)).await?;

    let wants = |g: &str| args.only.is_empty() || args.only.iter().any(|o| o == g);
    let mut results: Vec<WorkloadResult> = Vec::new();
    for (group, id, size, conc) in [
        ("4k", 1u64, 4 * KIB, 32usize),
        ("1m", 2, MIB, 16),
        ("64m", 3, 64 * MIB, 4),
    ] {
        if !wants(group) {
            continue;
        }
        let ks = KeySet::new(group, id, size);
        results.push(workloads::put(&ctx, &ks, conc).await);
        results.push(workloads::read(&ctx, &ks, conc, false).await);
        if group == "4k" {
            results.push(workloads::read(&ctx, &ks, conc, true).await);
            results.push(workloads::delete(&ctx, &ks, conc).await);
        }
        workloads::cleanup(&ctx, &ks).await;
    }
    if wants("list") {
        results.push(workloads::list(&ctx, list_keys, args.list_concurrency).await);
    }
    if wants("mixed") {
        let m = mixed::Mixed {
            size: args.mixed_kib.max(1) * KIB,
            keys: args.mixed_keys,
            concurrency: args.mixed_concurrency.max(1),
            keep_objects: args.keep_objects,
            signal_dir: args.signal_dir.clone(),
        };
        results.extend(mixed::run(&ctx, &m).await);
    }
    if wants("mpu") {
        let part = args.part_mib.max(5) * MIB;
        results.extend(multipart::run(&ctx, large, part, args.part_concurrency).await);
    }
    let setup = std::mem::take(&mut *ctx.setup.lock().expect("setup lock"));
    if setup.errors > 0 {
        // Untimed: only the counts matter.
        let cost = procs::Cost::default();
        let mut r = WorkloadResult::new(&ctx.run, "setup", 0, 0, Duration::ZERO, &setup, &cost);
        (r.secs, r.ops_per_s, r.mib_per_s) = (0.0, 0.0, 0.0);
        results.push(r);
    }
    println!("{}", stats::table(&results));
    let mut lines = String::new();
    for r in &results {
        lines.push_str(&serde_json::to_string(r).map_err(|e| e.to_string())?);
        lines.push('\n');
    }
    print!("{lines}");
    if let Some(path) = &args.json_out {
        let mut f = fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        f.write_all(lines.as_bytes())
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(results.iter().all(|r| r.errors == 0))
}
