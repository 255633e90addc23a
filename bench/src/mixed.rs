//! The mixed run: 45% GET / 30% HEAD / 15% PUT / 10% DELETE over a keyspace written first.
//!
//! No two workers touch the same key at once, so every answer is predictable: GET and HEAD of
//! a present key must succeed with the newest body (every Nth GET's bytes are compared),
//! DELETE answers 204. A failed PUT or DELETE leaves its key unknown, and it is not used again.
//!
//! With a signal directory the run has a second phase for a caller that changes the system
//! under load (`bench/rebalance.sh` grows the cluster): after the timed phase it creates
//! `DIR/timed`, goes on with the same keys and state, and stops when `DIR/stop` appears. That
//! phase is reported as `mixed-<size>-during`, so the two latency distributions come from one
//! keyspace and one set of connections' worth of warm-up.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{
    AtomicBool, AtomicU8, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::time::{Duration, Instant};

use tokio::time::timeout;

use crate::body::Rng;
use crate::ops;
use crate::stats::{Recorder, WorkloadResult};
use crate::workloads::{Ctx, KeySet, cleanup, fill, measure_for, size_label};

const ABSENT: u8 = 0;
const PRESENT: u8 = 1;
const BUSY: u8 = 2;
const UNKNOWN: u8 = 3;

/// What the mixed run does.
#[derive(Debug, Clone)]
pub struct Mixed {
    /// Object size.
    pub size: u64,
    /// Objects written before the clock starts.
    pub keys: u64,
    pub concurrency: usize,
    /// Leave the objects in the bucket afterwards.
    pub keep_objects: bool,
    /// Run the signalled second phase (see the module docs).
    pub signal_dir: Option<PathBuf>,
}

/// The keyspace and what each key holds now.
struct Keys {
    ks: Arc<KeySet>,
    state: Vec<AtomicU8>,
    version: Vec<AtomicU64>,
}

/// Runs the mixed workload; one result, or two with a signal directory.
pub async fn run(ctx: &Arc<Ctx>, m: &Mixed) -> Vec<WorkloadResult> {
    let ks = KeySet::new("mixed", 0x22, m.size);
    fill(ctx, &ks, m.keys, 32).await;
    let n = ks.written();
    let keys = Arc::new(Keys {
        state: (0..n)
            .map(|i| AtomicU8::new(if ks.failed(i) { UNKNOWN } else { PRESENT }))
            .collect(),
        version: (0..n).map(|_| AtomicU64::new(0)).collect(),
        ks: ks.clone(),
    });
    let name = format!("mixed-{}", size_label(m.size));
    let never = Arc::new(AtomicBool::new(false));
    let mut results = vec![phase(ctx, &keys, &name, m, Some(ctx.duration), never).await];
    if let Some(dir) = &m.signal_dir {
        match signalled(ctx, &keys, &name, m, dir).await {
            Ok(r) => results.push(r),
            Err(e) => ctx.setup_error(e),
        }
    }
    if !m.keep_objects {
        cleanup(ctx, &ks).await;
    }
    results
}

/// The second phase: from `DIR/timed` until `DIR/stop`.
async fn signalled(
    ctx: &Arc<Ctx>,
    keys: &Arc<Keys>,
    name: &str,
    m: &Mixed,
    dir: &std::path::Path,
) -> Result<WorkloadResult, String> {
    let stop_file = dir.join("stop");
    let _ = std::fs::remove_file(&stop_file);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let poller = tokio::spawn(async move {
        while !stop_file.exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        flag.store(true, Relaxed);
    });
    let timed = dir.join("timed");
    std::fs::write(&timed, b"").map_err(|e| format!("{}: {e}", timed.display()))?;
    eprintln!(
        "s3bench: {} created; running until {}/stop",
        timed.display(),
        dir.display()
    );
    let r = phase(ctx, keys, &format!("{name}-during"), m, None, stop).await;
    poller.abort();
    Ok(r)
}

/// One timed phase over `keys`, for `limit` or until `stop` is set.
async fn phase(
    ctx: &Arc<Ctx>,
    keys: &Arc<Keys>,
    name: &str,
    m: &Mixed,
    limit: Option<Duration>,
    stop: Arc<AtomicBool>,
) -> WorkloadResult {
    let (c, k) = (ctx.clone(), keys.clone());
    measure_for(
        ctx,
        name,
        m.size,
        m.concurrency,
        limit,
        move |w, mut conn, deadline| {
            let (ctx, keys, stop) = (c.clone(), k.clone(), stop.clone());
            async move {
                let mut rec = Recorder::new();
                let mut rng = Rng::new(ctx.nonce ^ 0x3141 ^ w as u64);
                let mut scratch = Vec::new();
                let mut gets = 0u64;
                let (ks, size) = (&keys.ks, keys.ks.size);
                let n = keys.state.len() as u64;
                while Instant::now() < deadline && !stop.load(Relaxed) && n > 0 {
                    let kind = match rng.below(100) {
                        0..45 => "get",
                        45..75 => "head",
                        75..90 => "put",
                        _ => "delete",
                    };
                    let wanted: &[u8] = if kind == "put" {
                        &[PRESENT, ABSENT]
                    } else {
                        &[PRESENT]
                    };
                    let Some((idx, was)) = (0..32).find_map(|_| {
                        let i = rng.below(n) as usize;
                        wanted.iter().find_map(|&s| {
                            keys.state[i]
                                .compare_exchange(s, BUSY, Acquire, Relaxed)
                                .ok()
                                .map(|_| (i, s))
                        })
                    }) else {
                        tokio::task::yield_now().await;
                        continue;
                    };
                    let key = ks.key(&ctx, idx as u64);
                    let ver = keys.version[idx].load(Relaxed);
                    let seed = ks.seed(&ctx, idx as u64) ^ (ver << 32);
                    let limit = ctx.op_timeout;
                    let (r, after) = match kind {
                        "get" => {
                            let verify =
                                ctx.verify_every > 0 && gets.is_multiple_of(ctx.verify_every);
                            gets += 1;
                            let op = ops::get(
                                &mut conn,
                                &ctx.pattern,
                                &key,
                                seed,
                                size,
                                verify,
                                &mut scratch,
                            );
                            (timeout(limit, op).await, PRESENT)
                        }
                        "head" => (
                            timeout(limit, ops::head(&mut conn, &key, size)).await,
                            PRESENT,
                        ),
                        "put" => {
                            let seed = ks.seed(&ctx, idx as u64) ^ ((ver + 1) << 32);
                            let path = ctx.target.object_path(&key);
                            let op = ops::put(&mut conn, &ctx.pattern, &path, seed, 0, size);
                            let r = timeout(limit, op).await.map(|r| r.map(|(d, _)| d));
                            if matches!(r, Ok(Ok(_))) {
                                keys.version[idx].store(ver + 1, Relaxed);
                            }
                            (r, PRESENT)
                        }
                        _ => (timeout(limit, ops::delete(&mut conn, &key)).await, ABSENT),
                    };
                    match ops::settle(&mut conn, limit, r) {
                        Ok(d) => {
                            rec.ok(d.lat, d.bytes);
                            if let Some(t) = d.ttfb {
                                rec.first_byte(t);
                            }
                            rec.kind(kind);
                            keys.state[idx].store(after, Release);
                        }
                        Err(e) => {
                            rec.error(format!("{kind} {key}: {e}"));
                            let keep = if matches!(kind, "put" | "delete") {
                                UNKNOWN
                            } else {
                                was
                            };
                            keys.state[idx].store(keep, Release);
                        }
                    }
                }
                rec.reconnects = conn.reconnects;
                rec
            }
        },
    )
    .await
}
