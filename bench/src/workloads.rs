//! The workloads of the matrix: PUT, GET, HEAD and DELETE of one object size, and LIST of a
//! populated prefix (the mixed run is in `mixed`).
//!
//! A workload runs `concurrency` workers, each with its own keep-alive connection opened
//! before the clock starts, until the duration has elapsed (operations in flight finish and
//! count) or, for DELETE, until every key written by the PUT run is gone. Server CPU time and
//! peak RSS are taken around it (see `procs`). Keys live under a per-run prefix, so runs
//! against a shared endpoint never see each other's objects, and bodies differ per object and
//! per run (see `body`).

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::time::timeout;

use crate::body::{Pattern, Rng};
use crate::client::{Conn, Target};
use crate::ops;
use crate::procs::Watch;
use crate::stats::{Recorder, RunInfo, WorkloadResult};

/// Everything the workloads share.
#[derive(Debug)]
pub struct Ctx {
    /// Endpoint, bucket, credentials.
    pub target: Arc<Target>,
    /// Body pattern.
    pub pattern: Arc<Pattern>,
    /// Key prefix of this run (`s3bench-<nonce>`).
    pub prefix: String,
    /// Per-run value mixed into every body seed.
    pub nonce: u64,
    /// How long each timed workload runs.
    pub duration: Duration,
    /// Deadline of one small/medium operation.
    pub op_timeout: Duration,
    /// Check the content of every Nth GET per worker (0: lengths only).
    pub verify_every: u64,
    /// Processes whose CPU and memory are measured.
    pub watch: Watch,
    /// Copied into every result.
    pub run: RunInfo,
    /// Operations of untimed setup and cleanup steps; their errors are reported too.
    pub setup: Mutex<Recorder>,
}

impl Ctx {
    /// Records a failed setup or cleanup operation.
    pub fn setup_error(&self, msg: String) {
        eprintln!("s3bench: setup/cleanup: {msg}");
        self.setup.lock().expect("setup lock").error(msg);
    }

    /// Counts a successful setup or cleanup operation.
    pub fn setup_ok(&self) {
        self.setup.lock().expect("setup lock").ops += 1;
    }
}

/// `4k`, `1m`, `64m`, `5g`: the size in a workload name.
pub fn size_label(size: u64) -> String {
    const K: u64 = 1024;
    match size {
        s if s >= K * K * K && s % (K * K * K) == 0 => format!("{}g", s / (K * K * K)),
        s if s >= K * K && s % (K * K) == 0 => format!("{}m", s / (K * K)),
        s if s >= K && s % K == 0 => format!("{}k", s / K),
        s => format!("{s}b"),
    }
}

/// The keys one PUT run wrote, so that GET, HEAD and DELETE runs address existing objects.
#[derive(Debug)]
pub struct KeySet {
    class: String,
    class_id: u64,
    /// Object size.
    pub size: u64,
    next: AtomicU64,
    deleted: AtomicU64,
    failed: Mutex<HashSet<u64>>,
}

impl KeySet {
    /// An empty set of objects of `size` bytes under `<prefix>/<class>/`.
    pub fn new(class: &str, class_id: u64, size: u64) -> Arc<Self> {
        Arc::new(Self {
            class: class.to_string(),
            class_id,
            size,
            next: AtomicU64::new(0),
            deleted: AtomicU64::new(0),
            failed: Mutex::new(HashSet::new()),
        })
    }

    pub(crate) fn key(&self, ctx: &Ctx, idx: u64) -> String {
        format!("{}/{}/{idx:08}", ctx.prefix, self.class)
    }

    pub(crate) fn seed(&self, ctx: &Ctx, idx: u64) -> u64 {
        ctx.nonce ^ (self.class_id << 56) ^ idx
    }

    pub(crate) fn written(&self) -> u64 {
        self.next.load(Relaxed)
    }

    pub(crate) fn failed(&self, idx: u64) -> bool {
        self.failed.lock().expect("failed lock").contains(&idx)
    }

    fn fail(&self, idx: u64) {
        self.failed.lock().expect("failed lock").insert(idx);
    }

    /// A random key that was written successfully (None if there is none).
    fn pick(&self, rng: &mut Rng) -> Option<u64> {
        let n = self.written();
        (0..64)
            .map(|_| rng.below(n.max(1)))
            .find(|&i| i < n && !self.failed(i))
    }
}

/// Runs `f(worker, connection, deadline)` on `concurrency` workers. Connections are opened
/// first; the clock starts when all are open. Returns the merged recorder and the wall time.
pub(crate) async fn run_workers<F, Fut>(
    ctx: &Ctx,
    concurrency: usize,
    limit: Option<Duration>,
    f: F,
) -> (Recorder, Duration)
where
    F: Fn(usize, Conn, Instant) -> Fut,
    Fut: Future<Output = Recorder> + Send + 'static,
{
    let mut rec = Recorder::new();
    let mut conns = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let mut c = Conn::new(ctx.target.clone());
        if let Err(e) = c.connect().await {
            rec.error(e);
        }
        conns.push(c);
    }
    let start = Instant::now();
    let deadline = start + limit.unwrap_or(Duration::from_secs(30 * 24 * 3600));
    let handles: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, c)| tokio::spawn(f(i, c, deadline)))
        .collect();
    for h in handles {
        match h.await {
            Ok(r) => rec.merge(r),
            Err(e) => rec.error(format!("worker panicked: {e}")),
        }
    }
    (rec, start.elapsed())
}

/// Runs a workload for the run's duration and turns it into a result (with CPU and memory
/// of the servers).
async fn measure<F, Fut>(
    ctx: &Ctx,
    name: &str,
    size: u64,
    concurrency: usize,
    f: F,
) -> WorkloadResult
where
    F: Fn(usize, Conn, Instant) -> Fut,
    Fut: Future<Output = Recorder> + Send + 'static,
{
    measure_for(ctx, name, size, concurrency, Some(ctx.duration), f).await
}

/// [`measure`] for `limit` (None: until the workers stop by themselves).
pub(crate) async fn measure_for<F, Fut>(
    ctx: &Ctx,
    name: &str,
    size: u64,
    concurrency: usize,
    limit: Option<Duration>,
    f: F,
) -> WorkloadResult
where
    F: Fn(usize, Conn, Instant) -> Fut,
    Fut: Future<Output = Recorder> + Send + 'static,
{
    let mark = ctx.watch.start();
    let (mut rec, wall) = run_workers(ctx, concurrency, limit, f).await;
    let cost = ctx.watch.finish(&mark);
    for d in ctx.watch.dead() {
        rec.error(format!("server process {d} is gone"));
    }
    let r = WorkloadResult::new(&ctx.run, name, size, concurrency, wall, &rec, &cost);
    eprintln!(
        "s3bench: {:<10} {:>8} ops {:>9.1} ops/s {:>8.1} MiB/s  errors {}",
        r.workload, r.ops, r.ops_per_s, r.mib_per_s, r.errors
    );
    r
}

/// Writes objects `0..count` of `ks` untimed (setup of LIST and mixed runs).
pub(crate) async fn fill(ctx: &Arc<Ctx>, ks: &Arc<KeySet>, count: u64, concurrency: usize) {
    let (c, k) = (ctx.clone(), ks.clone());
    run_workers(ctx, concurrency, None, move |_, mut conn, _| {
        let (ctx, ks) = (c.clone(), k.clone());
        async move {
            loop {
                let idx = ks.next.fetch_add(1, Relaxed);
                if idx >= count {
                    ks.next.fetch_min(count, Relaxed);
                    break;
                }
                let path = ctx.target.object_path(&ks.key(&ctx, idx));
                let seed = ks.seed(&ctx, idx);
                let r = timeout(
                    ctx.op_timeout,
                    ops::put(&mut conn, &ctx.pattern, &path, seed, 0, ks.size),
                )
                .await;
                match ops::settle(&mut conn, ctx.op_timeout, r) {
                    Ok(_) => ctx.setup_ok(),
                    Err(e) => {
                        ks.fail(idx);
                        ctx.setup_error(e);
                    }
                }
            }
            Recorder::new()
        }
    })
    .await;
}

/// Deletes every object of `ks` not yet deleted, untimed.
pub async fn cleanup(ctx: &Arc<Ctx>, ks: &Arc<KeySet>) {
    let (c, k) = (ctx.clone(), ks.clone());
    run_workers(ctx, 16, None, move |_, mut conn, _| {
        let (ctx, ks) = (c.clone(), k.clone());
        async move {
            let n = ks.written();
            loop {
                let idx = ks.deleted.fetch_add(1, Relaxed);
                if idx >= n {
                    break;
                }
                let r = timeout(ctx.op_timeout, ops::delete(&mut conn, &ks.key(&ctx, idx))).await;
                match ops::settle(&mut conn, ctx.op_timeout, r) {
                    Ok(_) => ctx.setup_ok(),
                    Err(e) => ctx.setup_error(e),
                }
            }
            Recorder::new()
        }
    })
    .await;
}

/// PUT new objects of `ks.size` for the duration.
pub async fn put(ctx: &Arc<Ctx>, ks: &Arc<KeySet>, concurrency: usize) -> WorkloadResult {
    let (c, k) = (ctx.clone(), ks.clone());
    let name = format!("put-{}", size_label(ks.size));
    measure(
        ctx,
        &name,
        ks.size,
        concurrency,
        move |_, mut conn, deadline| {
            let (ctx, ks) = (c.clone(), k.clone());
            async move {
                let mut rec = Recorder::new();
                while Instant::now() < deadline {
                    let idx = ks.next.fetch_add(1, Relaxed);
                    let path = ctx.target.object_path(&ks.key(&ctx, idx));
                    let seed = ks.seed(&ctx, idx);
                    let r = timeout(
                        ctx.op_timeout,
                        ops::put(&mut conn, &ctx.pattern, &path, seed, 0, ks.size),
                    )
                    .await;
                    match ops::settle(&mut conn, ctx.op_timeout, r) {
                        Ok((d, _etag)) => rec.ok(d.lat, d.bytes),
                        Err(e) => {
                            ks.fail(idx);
                            rec.error(e);
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

/// GET (`head == false`) or HEAD random objects written by the PUT run, for the duration.
pub async fn read(
    ctx: &Arc<Ctx>,
    ks: &Arc<KeySet>,
    concurrency: usize,
    head: bool,
) -> WorkloadResult {
    let (c, k) = (ctx.clone(), ks.clone());
    let op = if head { "head" } else { "get" };
    let name = format!("{op}-{}", size_label(ks.size));
    measure(
        ctx,
        &name,
        ks.size,
        concurrency,
        move |w, mut conn, deadline| {
            let (ctx, ks) = (c.clone(), k.clone());
            async move {
                let mut rec = Recorder::new();
                let mut rng = Rng::new(ctx.nonce ^ w as u64 ^ 0x6e7);
                let mut scratch = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let Some(idx) = ks.pick(&mut rng) else {
                        rec.error(format!("{op}: no object was written by the PUT run"));
                        break;
                    };
                    let key = ks.key(&ctx, idx);
                    let verify = ctx.verify_every > 0 && n.is_multiple_of(ctx.verify_every);
                    n += 1;
                    let r = if head {
                        timeout(ctx.op_timeout, ops::head(&mut conn, &key, ks.size)).await
                    } else {
                        let seed = ks.seed(&ctx, idx);
                        let get = ops::get(
                            &mut conn,
                            &ctx.pattern,
                            &key,
                            seed,
                            ks.size,
                            verify,
                            &mut scratch,
                        );
                        timeout(ctx.op_timeout, get).await
                    };
                    match ops::settle(&mut conn, ctx.op_timeout, r) {
                        Ok(d) => {
                            rec.ok(d.lat, d.bytes);
                            if let Some(t) = d.ttfb {
                                rec.first_byte(t);
                            }
                        }
                        Err(e) => rec.error(e),
                    }
                }
                rec.reconnects = conn.reconnects;
                rec
            }
        },
    )
    .await
}

/// DELETE the objects written by the PUT run, until all are gone or the duration is over.
pub async fn delete(ctx: &Arc<Ctx>, ks: &Arc<KeySet>, concurrency: usize) -> WorkloadResult {
    let (c, k) = (ctx.clone(), ks.clone());
    let name = format!("delete-{}", size_label(ks.size));
    measure(
        ctx,
        &name,
        ks.size,
        concurrency,
        move |_, mut conn, deadline| {
            let (ctx, ks) = (c.clone(), k.clone());
            async move {
                let mut rec = Recorder::new();
                let n = ks.written();
                while Instant::now() < deadline {
                    let idx = ks.deleted.fetch_add(1, Relaxed);
                    if idx >= n {
                        ks.deleted.fetch_min(n, Relaxed);
                        break;
                    }
                    if ks.failed(idx) {
                        continue;
                    }
                    let r =
                        timeout(ctx.op_timeout, ops::delete(&mut conn, &ks.key(&ctx, idx))).await;
                    match ops::settle(&mut conn, ctx.op_timeout, r) {
                        Ok(d) => rec.ok(d.lat, 0),
                        Err(e) => rec.error(e),
                    }
                }
                rec.reconnects = conn.reconnects;
                rec
            }
        },
    )
    .await
}

/// LIST: writes `keys` small objects under one prefix, then lists them completely
/// (ListObjectsV2, 1000 keys per page, continuation tokens) for the duration, checking every
/// listing returns exactly the keys written, in order. Ops are pages; keys/s is reported.
pub async fn list(ctx: &Arc<Ctx>, keys: u64, concurrency: usize) -> WorkloadResult {
    let ks = KeySet::new("list", 0x11, 16);
    fill(ctx, &ks, keys, 32).await;
    let expected: Arc<Vec<String>> = Arc::new(
        (0..ks.written())
            .filter(|&i| !ks.failed(i))
            .map(|i| ks.key(ctx, i))
            .collect(),
    );
    let prefix = format!("{}/list/", ctx.prefix);
    let (c, exp) = (ctx.clone(), expected.clone());
    let result = measure(ctx, "list", 0, concurrency, move |_, mut conn, deadline| {
        let (ctx, expected, prefix) = (c.clone(), exp.clone(), prefix.clone());
        async move {
            let mut rec = Recorder::new();
            'listing: while Instant::now() < deadline {
                let mut token: Option<String> = None;
                let mut pos = 0usize;
                loop {
                    let page = ops::list_page(&mut conn, &prefix, 1000, token.as_deref());
                    let r = timeout(ctx.op_timeout, page).await;
                    let page = match ops::settle(&mut conn, ctx.op_timeout, r) {
                        Ok(p) => p,
                        Err(e) => {
                            rec.error(e);
                            continue 'listing;
                        }
                    };
                    let want = &expected[pos.min(expected.len())..];
                    if let Some(i) = (0..page.keys.len())
                        .find(|&i| want.get(i).is_none_or(|w| *w != page.keys[i]))
                    {
                        rec.error(format!(
                            "LIST {prefix}: key #{} is {:?}, expected {:?}",
                            pos + i,
                            page.keys[i],
                            want.get(i)
                        ));
                        continue 'listing;
                    }
                    pos += page.keys.len();
                    rec.keys += page.keys.len() as u64;
                    rec.ok(page.done.lat, page.done.bytes);
                    match page.next {
                        Some(t) => token = Some(t),
                        None if pos == expected.len() => break,
                        None => {
                            rec.error(format!(
                                "LIST {prefix}: listing ended after {pos} keys, {} were written",
                                expected.len()
                            ));
                            break;
                        }
                    }
                }
            }
            rec.reconnects = conn.reconnects;
            rec
        }
    })
    .await;
    cleanup(ctx, &ks).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_labels() {
        assert_eq!(size_label(4096), "4k");
        assert_eq!(size_label(1 << 20), "1m");
        assert_eq!(size_label(64 << 20), "64m");
        assert_eq!(size_label(5 << 30), "5g");
        assert_eq!(size_label(256 << 20), "256m");
        assert_eq!(size_label(100), "100b");
    }
}
