//! Jepsen-style history tests: eight clients over two gateways run GET, PUT,
//! `PUT If-None-Match: *`, `PUT If-Match`, DELETE and `DELETE If-Match` on a few keys of an
//! unversioned and of a versioned bucket while a nemesis kills (-9), pauses (SIGSTOP) or
//! restarts nodes one at a time, kills and restarts a gateway, or changes the layout (a
//! node joins, a node leaves) with its migration running. Every operation's
//! invocation, completion and outcome is recorded, and each key's history must be
//! linearizable against a register (`checker`).
//!
//! Runs are bounded (`S3Q_HISTORY_SECS`, 30 s by default, per fault kind); a longer run on
//! demand: `S3Q_HISTORY_SECS=300 cargo test --ignore-rust-version --test chaos history --
//! --nocapture`. `S3Q_HISTORY_SEED` replays a run's choices (the seed is printed);
//! `S3Q_HISTORY_NODE_TIMEOUT_MS=10000` runs with the gateway's default node deadline.

mod checker;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};

use crate::harness::{Cluster, etag_of};
use checker::{Event, Op, Outcome, Verdict};
use hyper::Method;
use serde_json::json;

const CLIENTS: usize = 8;
const KEYS_PER_BUCKET: usize = 3;
const BUCKETS: [&str; 2] = ["hist-plain", "hist-versioned"];
/// A client gives up on one operation after this long (its outcome is then unknown).
const OP_TIMEOUT: Duration = Duration::from_secs(30);
/// Every this many values, the body is larger than a record may inline (a blob write).
const BLOB_EVERY: u32 = 8;

/// What the nemesis does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` a node, restart it on its data dir.
    KillNode,
    /// SIGSTOP a node, SIGCONT it later.
    PauseNode,
    /// `kill -9` the first gateway (its clients see resets), start it again.
    KillGateway,
    /// Change the layout through the first gateway: add a fresh node, then remove a
    /// member, and so on, each change's migration running under the load.
    ChangeLayout,
}

/// A small deterministic generator (xorshift64*), so a seed replays a run's choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo + 1))
    }
}

/// The body of value `id`: it names the value, and every `BLOB_EVERY`th one is stored as
/// a blob.
fn body(id: u32) -> Vec<u8> {
    let head = format!("value {id};");
    let len = if id.is_multiple_of(BLOB_EVERY) {
        70 * 1024
    } else {
        64
    };
    let mut b = head.into_bytes();
    while b.len() < len {
        b.push(b'a' + (b.len() as u32 % 26 + id % 7) as u8 % 26);
    }
    b
}

/// The value a GET returned, from its body; panics on bytes no write stored.
fn value_of(bytes: &[u8]) -> u32 {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(32)]);
    let id: u32 = text
        .strip_prefix("value ")
        .and_then(|t| t.split(';').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("GET returned bytes no write stored: {text:?}"));
    assert!(
        bytes == body(id).as_slice(),
        "GET of value {id} returned corrupted bytes"
    );
    id
}

/// Shared by the clients of one run.
struct Run {
    started: Instant,
    stop: AtomicBool,
    next_value: AtomicU32,
    /// Per (bucket, key): its history.
    histories: Mutex<BTreeMap<(usize, usize), Vec<Event>>>,
    /// Write answers no model outcome covers (a 400, say): the test fails on them.
    unexpected: Mutex<Vec<String>>,
}

impl Run {
    fn now(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }
    fn record(&self, key: (usize, usize), event: Event) {
        self.histories
            .lock()
            .unwrap()
            .entry(key)
            .or_default()
            .push(event);
    }
}

fn key_name(k: usize) -> String {
    format!("k{k}")
}

/// Whether the request never left the client: the connection was refused, so no gateway
/// saw it.
fn never_sent(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Maps a write's error to its outcome; `Ok(None)` when the request never reached a
/// gateway (it has no effect and tells nothing).
fn write_outcome<E: ProvideErrorMetadata + std::error::Error + 'static>(
    err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Result<Option<Outcome>, String> {
    if never_sent(err) {
        return Ok(None);
    }
    let status = err.raw_response().map(|r| r.status().as_u16());
    Ok(Some(match (status, err.code()) {
        (Some(412), _) => Outcome::PreconditionFailed,
        (Some(404), Some("NoSuchKey")) => Outcome::NoSuchKey,
        (Some(409), _) => Outcome::Conflict,
        (Some(s), _) if s >= 500 => Outcome::Unknown,
        (None, _) => Outcome::Unknown,
        (Some(s), code) => return Err(format!("status {s} {code:?}: {err:?}")),
    }))
}

/// One client: a closed loop of random operations until the run stops.
async fn client_loop(run: Arc<Run>, s3: Client, client: usize, seed: u64) {
    let mut rng = Rng(seed | 1);
    // The value this client last saw per key: what its If-Match writes expect.
    let mut known: BTreeMap<(usize, usize), u32> = BTreeMap::new();
    while !run.stop.load(Ordering::Relaxed) {
        let b = rng.below(BUCKETS.len() as u64) as usize;
        let k = rng.below(KEYS_PER_BUCKET as u64) as usize;
        let (bucket, key) = (BUCKETS[b], key_name(k));
        let roll = rng.below(100);
        let expect = known.get(&(b, k)).copied();
        let fresh = || run.next_value.fetch_add(1, Ordering::Relaxed);
        let op = match roll {
            0..35 => Op::Get,
            35..50 => Op::Put(fresh()),
            50..62 => Op::PutIfAbsent(fresh()),
            62..80 => match expect {
                Some(e) => Op::PutIfMatch {
                    expect: e,
                    value: fresh(),
                },
                None => Op::PutIfAbsent(fresh()),
            },
            80..88 => Op::Delete,
            _ => match expect {
                Some(e) => Op::DeleteIfMatch { expect: e },
                None => Op::Get,
            },
        };
        let call = run.now();
        let outcome = perform(&s3, bucket, &key, op).await;
        let ret = run.now();
        let outcome = match outcome {
            Ok(o) => o,
            Err(Some(why)) => {
                run.unexpected
                    .lock()
                    .unwrap()
                    .push(format!("client {client} {op:?} on {bucket}/{key}: {why}"));
                continue;
            }
            // A failed read says nothing, nor does a request that never left: wait for
            // the gateway to come back rather than spin.
            Err(None) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match (op, outcome) {
            (_, Outcome::Read(v)) => {
                match v {
                    Some(v) => known.insert((b, k), v),
                    None => known.remove(&(b, k)),
                };
            }
            (Op::Put(v) | Op::PutIfAbsent(v) | Op::PutIfMatch { value: v, .. }, Outcome::Ok) => {
                known.insert((b, k), v);
            }
            _ => {}
        }
        let ret = (outcome != Outcome::Unknown).then_some(ret);
        run.record(
            (b, k),
            Event {
                client,
                op,
                outcome,
                call,
                ret,
            },
        );
    }
}

/// Runs one operation. `Err(None)`: a read that failed (no information); `Err(Some)`: an
/// answer the model does not allow for any state.
async fn perform(s3: &Client, bucket: &str, key: &str, op: Op) -> Result<Outcome, Option<String>> {
    let put = |v: u32| {
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body(v)))
    };
    let done = |r: Result<(), Outcome>| Ok(r.err().unwrap_or(Outcome::Ok));
    let map = |e: Result<Option<Outcome>, String>| match e {
        Ok(Some(outcome)) => Ok(outcome),
        Ok(None) => Err(None),
        Err(why) => Err(Some(why)),
    };
    match op {
        Op::Get => match s3.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => match out.body.collect().await {
                Ok(bytes) => Ok(Outcome::Read(Some(value_of(&bytes.into_bytes())))),
                Err(_) => Err(None),
            },
            Err(e) if e.code() == Some("NoSuchKey") => Ok(Outcome::Read(None)),
            Err(_) => Err(None),
        },
        Op::Put(v) => match put(v).send().await {
            Ok(_) => done(Ok(())),
            Err(e) => map(write_outcome(&e)),
        },
        Op::PutIfAbsent(v) => match put(v).if_none_match("*").send().await {
            Ok(_) => done(Ok(())),
            Err(e) => map(write_outcome(&e)),
        },
        Op::PutIfMatch { expect, value } => {
            match put(value).if_match(etag_of(&body(expect))).send().await {
                Ok(_) => done(Ok(())),
                Err(e) => map(write_outcome(&e)),
            }
        }
        Op::Delete => match s3.delete_object().bucket(bucket).key(key).send().await {
            Ok(_) => done(Ok(())),
            Err(e) => map(write_outcome(&e)),
        },
        Op::DeleteIfMatch { expect } => {
            let req = s3
                .delete_object()
                .bucket(bucket)
                .key(key)
                .if_match(etag_of(&body(expect)));
            match req.send().await {
                Ok(_) => done(Ok(())),
                Err(e) => map(write_outcome(&e)),
            }
        }
    }
}

/// The nemesis: one fault at a time, each held for a while, until `until`. Returns how
/// many faults it injected.
async fn nemesis(cluster: &mut Cluster, fault: Fault, rng: &mut Rng, until: Instant) -> usize {
    let mut injected = 0;
    while Instant::now() + Duration::from_secs(4) < until {
        tokio::time::sleep(rng.millis(500, 2000)).await;
        let node = rng.below(cluster.node_count() as u64) as usize;
        let hold = rng.millis(1000, 3500);
        match fault {
            Fault::KillNode => {
                cluster.kill_node(node);
                tokio::time::sleep(hold).await;
                cluster.restart_node(node).await;
            }
            Fault::PauseNode => {
                cluster.stop_node(node);
                tokio::time::sleep(hold).await;
                cluster.continue_node(node);
            }
            Fault::KillGateway => {
                cluster.kill_gateway();
                tokio::time::sleep(hold).await;
                cluster.start_gateway().await;
            }
            Fault::ChangeLayout => change_layout(cluster, rng).await,
        }
        injected += 1;
    }
    injected
}

/// One layout change and its whole migration: a fresh node joins a 3-node layout, a
/// random member leaves a larger one.
async fn change_layout(cluster: &mut Cluster, rng: &mut Rng) {
    let layout = cluster.admin(Method::GET, "/v1/layout", None).await;
    let members = layout["nodes"].as_array().expect("members").clone();
    let change = if members.len() <= 3 {
        let i = cluster.start_new_node().await;
        json!({ "op": "add", "url": cluster.node_url(i) })
    } else {
        let leaving = &members[rng.below(members.len() as u64) as usize];
        json!({ "op": "remove", "id": leaving["id"] })
    };
    eprintln!("history: layout change {change}");
    cluster
        .admin(Method::POST, "/v1/layout/stage", Some(change))
        .await;
    let applied = cluster.admin(Method::POST, "/v1/layout/apply", None).await;
    let done = applied["version"].as_u64().expect("version") + 1;
    let cluster = &*cluster;
    crate::harness::eventually(
        "the migration retires",
        Duration::from_secs(60),
        || async move {
            let status = cluster.gateway_status().await;
            if status["layout_version"] == done && status["rebalance"]["migrating_to"].is_null() {
                Ok(())
            } else {
                Err(format!("{}", status["rebalance"]))
            }
        },
    )
    .await;
}

/// Reads every key until the read succeeds: the final state, once the faults are over,
/// joins the histories.
async fn final_reads(run: &Run, s3: &Client) {
    for (b, bucket) in BUCKETS.iter().enumerate() {
        for k in 0..KEYS_PER_BUCKET {
            let key = key_name(k);
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let call = run.now();
                if let Ok(outcome) = perform(s3, bucket, &key, Op::Get).await {
                    let ret = Some(run.now());
                    let (op, client) = (Op::Get, CLIENTS);
                    run.record(
                        (b, k),
                        Event {
                            client,
                            op,
                            outcome,
                            call,
                            ret,
                        },
                    );
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "final read of {bucket}/{key} kept failing"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn run_secs() -> u64 {
    std::env::var("S3Q_HISTORY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
}

/// Runs the load with `fault` for the configured time and checks every key's history.
pub async fn history_run(fault: Fault) {
    let seed = std::env::var("S3Q_HISTORY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("history {fault:?}: seed {seed} (S3Q_HISTORY_SEED={seed} replays its choices)");
    let mut rng = Rng(seed | 1);
    // `S3Q_HISTORY_NODE_TIMEOUT_MS` runs with another node deadline (the gateway's default
    // is 10 s; these runs use the chaos tier's 1.5 s so a paused node costs less time).
    let node_timeout = std::env::var("S3Q_HISTORY_NODE_TIMEOUT_MS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(crate::NODE_TIMEOUT.as_millis() as u64);
    let options = crate::harness::ClusterOptions::new(3)
        .gateway_arg("--node-timeout-ms", node_timeout)
        .gateway_arg("--repair-interval-ms", crate::REPAIR_INTERVAL_MS)
        .gateway_arg("--scan-interval-ms", crate::SCAN_INTERVAL_MS);
    let mut cluster = Cluster::start_opts(options).await;
    cluster.start_extra_gateway().await;
    let urls = cluster.gateway_urls();
    let admin = cluster.client();
    for (b, bucket) in BUCKETS.iter().enumerate() {
        crate::harness::create_bucket(&admin, bucket).await;
        if b == 1 {
            admin
                .put_bucket_versioning()
                .bucket(*bucket)
                .versioning_configuration(
                    VersioningConfiguration::builder()
                        .status(BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await
                .expect("enable versioning");
        }
    }
    let run = Arc::new(Run {
        started: Instant::now(),
        stop: AtomicBool::new(false),
        next_value: AtomicU32::new(1),
        histories: Mutex::new(BTreeMap::new()),
        unexpected: Mutex::new(Vec::new()),
    });
    let secs = run_secs();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let s3 = cluster.client_with_timeout(&urls[c % urls.len()], OP_TIMEOUT);
            let seed = rng.next();
            tokio::spawn(client_loop(run.clone(), s3, c, seed))
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(secs);
    let faults = nemesis(&mut cluster, fault, &mut rng, until).await;
    if let Some(left) = until.checked_duration_since(Instant::now()) {
        tokio::time::sleep(left).await;
    }
    run.stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client task");
    }
    final_reads(&run, &cluster.client_with_timeout(&urls[1], OP_TIMEOUT)).await;
    final_reads(&run, &cluster.client_with_timeout(&urls[0], OP_TIMEOUT)).await;

    let unexpected = run.unexpected.lock().unwrap().clone();
    assert!(
        unexpected.is_empty(),
        "answers no register allows:\n{}",
        unexpected.join("\n")
    );
    let histories = run.histories.lock().unwrap().clone();
    report_and_check(fault, faults, secs, &histories);
}

fn report_and_check(
    fault: Fault,
    faults: usize,
    secs: u64,
    histories: &BTreeMap<(usize, usize), Vec<Event>>,
) {
    let all: Vec<&Event> = histories.values().flatten().collect();
    let count = |f: &dyn Fn(&Event) -> bool| all.iter().filter(|e| f(e)).count();
    let reads = count(&|e| e.op == Op::Get);
    let unknown = count(&|e| e.outcome == Outcome::Unknown);
    let cond_ok = count(&|e| {
        e.outcome == Outcome::Ok
            && matches!(
                e.op,
                Op::PutIfAbsent(_) | Op::PutIfMatch { .. } | Op::DeleteIfMatch { .. }
            )
    });
    let refused = count(&|e| e.outcome == Outcome::PreconditionFailed);
    eprintln!(
        "history {fault:?}: {} operations in {secs} s over {} keys ({reads} reads, {cond_ok} \
         conditional writes succeeded, {refused} refused with 412, {unknown} unknown \
         outcomes), {faults} faults injected",
        all.len(),
        histories.len()
    );
    // A run that checked nothing proves nothing.
    assert!(
        faults >= secs as usize / 8,
        "only {faults} faults injected in {secs} s"
    );
    assert!(
        all.len() >= 10 * secs as usize,
        "only {} operations in {secs} s",
        all.len()
    );
    assert!(
        cond_ok > 0 && refused > 0 && reads > 0,
        "the load lacks an operation kind"
    );
    let mut failures = Vec::new();
    for ((b, k), history) in histories {
        let started = Instant::now();
        match checker::check(history) {
            Verdict::Linearizable => {}
            Verdict::Undecided { steps } => failures.push(format!(
                "{}/{}: the checker gave up after {steps} steps",
                BUCKETS[*b],
                key_name(*k)
            )),
            Verdict::Violation(v) => failures.push(format!(
                "{}/{}: not linearizable; the shortest failing cut of its history ends with \
                 the operation marked ▶, whose answer nothing before it explains (the \
                 operations around it, times in ms):\n{}",
                BUCKETS[*b],
                key_name(*k),
                describe(&v.events)
            )),
        }
        let took = started.elapsed();
        if took > Duration::from_secs(1) {
            eprintln!("checking {}/{} took {took:?}", BUCKETS[*b], key_name(*k));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The last operation of a failing prefix and every operation overlapping the time since
/// the latest one that finished before it, oldest first.
fn describe(events: &[Event]) -> String {
    let last = events.last().expect("a failing prefix is not empty");
    // Operations that ended before `last` began are its history; show the last few of
    // them and every operation still open when it was invoked.
    let mut shown: Vec<&Event> = events
        .iter()
        .filter(|e| e.ret.is_none_or(|r| r >= last.call))
        .collect();
    let mut before: Vec<&Event> = events
        .iter()
        .filter(|e| e.ret.is_some_and(|r| r < last.call))
        .collect();
    before.sort_by_key(|e| e.ret);
    let skip = before.len().saturating_sub(12);
    shown.extend(before.into_iter().skip(skip));
    shown.sort_by_key(|e| e.call);
    shown.dedup();
    shown
        .iter()
        .map(|e| {
            let ret = e
                .ret
                .map_or("never".to_owned(), |r| format!("{:.1}", r as f64 / 1e3));
            let mark = if std::ptr::eq(*e, last) { "▶" } else { " " };
            format!(
                "{mark} {:>9.1} – {:>9} client {} {:?} → {:?}",
                e.call as f64 / 1e3,
                ret,
                e.client,
                e.op,
                e.outcome
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_with_nodes_killed_is_linearizable() {
    history_run(Fault::KillNode).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_with_nodes_paused_is_linearizable() {
    history_run(Fault::PauseNode).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_with_a_gateway_killed_is_linearizable() {
    history_run(Fault::KillGateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_across_layout_changes_is_linearizable() {
    history_run(Fault::ChangeLayout).await;
}
