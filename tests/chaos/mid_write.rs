//! Processes killed in the middle of a stream of concurrent writes: what was acknowledged
//! is there, what was not is absent or whole, never torn.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

use crate::harness::*;
use crate::{BUCKET, INLINE_MAX, start};

/// Writers running at once.
const TASKS: usize = 8;
/// PUTs per writer, one after the other.
const PUTS_PER_TASK: usize = 6;
/// Acknowledged PUTs before the kill: the writers are in full flow by then.
const ACKS_BEFORE_KILL: usize = 10;
/// Body sizes, 1 KiB to 3 MiB; each writer goes through all of them.
const SIZES: [usize; PUTS_PER_TASK] = [
    1024,
    3 * 1024 * 1024,
    100 * 1024,
    INLINE_MAX + 1,
    700 * 1024,
    10 * 1024,
];

/// One PUT and how it ended.
struct Outcome {
    key: String,
    data: Vec<u8>,
    /// The PUT began after the kill (the process was dead and reaped by then).
    after_kill: bool,
    result: Result<(), String>,
}

/// A stream of concurrent PUTs from `TASKS` writers, each with its own client.
struct Writers {
    acked: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    killed: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Outcome>>>,
    started: Instant,
}

impl Writers {
    fn start(cluster: &Cluster) -> Writers {
        let acked = Arc::new(AtomicUsize::new(0));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let killed = Arc::new(AtomicBool::new(false));
        let tasks = (0..TASKS)
            .map(|t| {
                let s3 = cluster.client();
                let (acked, in_flight, killed) = (acked.clone(), in_flight.clone(), killed.clone());
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    for j in 0..PUTS_PER_TASK {
                        let key = format!("w{t}/{j}");
                        let data = pattern(SIZES[(t + j) % SIZES.len()], (t * 100 + j) as u64);
                        let after_kill = killed.load(Ordering::SeqCst);
                        in_flight.fetch_add(1, Ordering::SeqCst);
                        let result = put(&s3, &key, &data).await;
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        if result.is_ok() {
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                        outcomes.push(Outcome {
                            key,
                            data,
                            after_kill,
                            result,
                        });
                    }
                    outcomes
                })
            })
            .collect();
        Writers {
            acked,
            in_flight,
            killed,
            tasks,
            started: Instant::now(),
        }
    }

    /// Waits until `ACKS_BEFORE_KILL` PUTs were acknowledged; returns how many are in flight.
    async fn wait_for_flow(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.acked.load(Ordering::SeqCst) < ACKS_BEFORE_KILL {
            assert!(
                Instant::now() < deadline,
                "only {} PUTs acknowledged in 120 s",
                self.acked.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Marks every PUT that starts from now on as started after the kill.
    fn killed(&self) {
        self.killed.store(true, Ordering::SeqCst);
    }

    async fn finish(self, what: &str, busy: usize) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        for task in self.tasks {
            outcomes.extend(task.await.expect("a writer panicked"));
        }
        let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
        eprintln!(
            "{what}: {busy} PUTs in flight at the kill, {} of {} acknowledged, {failed} failed, in {:?}",
            outcomes.len() - failed,
            outcomes.len(),
            self.started.elapsed()
        );
        outcomes
    }
}

/// One PUT; an acknowledgement must carry the body's ETag.
async fn put(s3: &Client, key: &str, data: &[u8]) -> Result<(), String> {
    let sent = s3
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await;
    match sent {
        Ok(out) if out.e_tag() == Some(etag_of(data).as_str()) => Ok(()),
        Ok(out) => panic!("PUT {key}: ETag {:?}, want {}", out.e_tag(), etag_of(data)),
        Err(e) => Err(format!("{e:?}")),
    }
}

/// Every acknowledged PUT reads back whole; every failed one reads as NoSuchKey or whole.
async fn check_outcomes(s3: &Client, outcomes: &[Outcome], when: &str) {
    for o in outcomes {
        let what = format!("{when}: GET {} ({} bytes)", o.key, o.data.len());
        match (
            &o.result,
            s3.get_object().bucket(BUCKET).key(&o.key).send().await,
        ) {
            (_, Ok(out)) => {
                let etag = out.e_tag().map(str::to_owned);
                let body = out
                    .body
                    .collect()
                    .await
                    .unwrap_or_else(|e| panic!("{what}: body: {e:?}"))
                    .into_bytes();
                assert_same_bytes(&body, &o.data, &what);
                assert_eq!(etag, Some(etag_of(&o.data)), "{what}: ETag");
            }
            (Ok(()), Err(e)) => panic!("{what}: acknowledged, but {e:?}"),
            (Err(_), Err(e)) => assert_s3_error::<(), _>(Err(e), 404, "NoSuchKey"),
        }
    }
}

fn acknowledged(outcomes: &[Outcome]) -> Vec<(String, Vec<u8>)> {
    outcomes
        .iter()
        .filter(|o| o.result.is_ok())
        .map(|o| (o.key.clone(), o.data.clone()))
        .collect()
}

/// Test 2.
#[tokio::test]
async fn a_node_killed_mid_write_loses_no_acknowledged_write_and_tears_none() {
    let mut cluster = start(true).await;
    let writers = Writers::start(&cluster);
    let busy = writers.wait_for_flow().await;
    cluster.kill_node(1);
    writers.killed();
    let outcomes = writers.finish("node killed mid-write", busy).await;
    // Two replicas of three are enough: a PUT that starts with node1 dead must succeed.
    for o in outcomes.iter().filter(|o| o.after_kill) {
        if let Err(e) = &o.result {
            panic!(
                "PUT {} ({} bytes), started after the kill, failed: {e}",
                o.key,
                o.data.len()
            );
        }
    }

    let s3 = cluster.client();
    check_outcomes(&s3, &outcomes, "node1 still down").await;
    cluster.restart_node(1).await;
    check_outcomes(&s3, &outcomes, "node1 back").await;
    let took = cluster
        .assert_converged(BUCKET, &acknowledged(&outcomes))
        .await;
    eprintln!("node killed mid-write: converged {took:?} after node1 came back");
}

/// Test 2, gateway variant: `kill -9` of the gateway cuts every PUT in flight (the
/// client sees them fail) at any point of the write: body half sent, blobs stored but no
/// record, records on some replicas only. None may ever be visible partially, and the
/// next gateway must finish or ignore each of them consistently.
#[tokio::test]
async fn a_gateway_killed_mid_write_tears_no_object() {
    let mut cluster = start(true).await;
    let writers = Writers::start(&cluster);
    let busy = writers.wait_for_flow().await;
    cluster.kill_gateway();
    writers.killed();
    cluster.start_gateway().await;
    let outcomes = writers.finish("gateway killed mid-write", busy).await;
    assert!(
        outcomes.iter().any(|o| o.result.is_err()),
        "no PUT failed although the gateway was killed with {busy} in flight"
    );

    let s3 = cluster.client();
    check_outcomes(&s3, &outcomes, "new gateway").await;
    let took = cluster
        .assert_converged(BUCKET, &acknowledged(&outcomes))
        .await;
    // Converged means settled: each failed PUT is now either everywhere or nowhere.
    check_outcomes(&s3, &outcomes, "converged").await;
    eprintln!("gateway killed mid-write: converged {took:?} after the new gateway started");
}
