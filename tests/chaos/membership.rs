//! Membership changes under load: a cluster grows from 3 to 5 nodes, loses one of its
//! original nodes and has another replaced by a fresh node at a new address, one layout
//! change at a time, while writers and readers keep going. Nothing acknowledged may be
//! lost, no read of an acknowledged object may fail at any moment, every key ends on
//! exactly the owners the final layout names, each member ends holding exactly the blob
//! files its own records refer to (garbage collection frees what the moves left on old
//! owners), and the nodes that left hold nothing the cluster needs (it serves everything
//! with them dead).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use hyper::Method;
use node::proto::layout::{Layout, owners};
use serde_json::{Value, json};

use crate::harness::*;
use crate::{BUCKET, options, start_opts};

/// How long one migration of this test's data may take.
const MIGRATION: Duration = Duration::from_secs(120);
/// The blob grace: far above any write's gap between its blob and its record here.
const GC_GRACE_SECS: u64 = 8;

/// Acknowledged writes: key → MD5 of its only body (every key is written once).
type Acked = Arc<Mutex<Vec<(String, String)>>>;

struct Load {
    stop: Arc<AtomicBool>,
    acked: Acked,
    /// Failed GETs of acknowledged keys: each a message.
    bad_reads: Arc<Mutex<Vec<String>>>,
    reads: Arc<AtomicU64>,
    failed_puts: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(client: &Client, writers: usize, readers: usize) -> Load {
        let load = Load {
            stop: Arc::new(AtomicBool::new(false)),
            acked: Arc::default(),
            bad_reads: Arc::default(),
            reads: Arc::default(),
            failed_puts: Arc::default(),
            tasks: Vec::new(),
        };
        let mut tasks = Vec::new();
        for w in 0..writers {
            let (client, stop, acked) = (client.clone(), load.stop.clone(), load.acked.clone());
            let failed = load.failed_puts.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let key = format!("load/{w}/{n}");
                    // Mostly inline records, every fifth a blob.
                    let size = if n.is_multiple_of(5) {
                        80 * 1024
                    } else {
                        2 * 1024
                    };
                    let body = pattern(size, (w as u64) << 32 | n);
                    let put = client
                        .put_object()
                        .bucket(BUCKET)
                        .key(&key)
                        .body(ByteStream::from(body.clone()))
                        .send()
                        .await;
                    match put {
                        Ok(_) => acked.lock().unwrap().push((key, md5_hex(&body))),
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // A steady load, not a flood: the migrations must have an end.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }));
        }
        for r in 0..readers {
            let (client, stop, acked) = (client.clone(), load.stop.clone(), load.acked.clone());
            let (bad, reads) = (load.bad_reads.clone(), load.reads.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = r;
                while !stop.load(Ordering::Relaxed) {
                    let pick = {
                        let acked = acked.lock().unwrap();
                        (!acked.is_empty()).then(|| acked[(i * 7919) % acked.len()].clone())
                    };
                    i += 1;
                    let Some((key, md5)) = pick else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    reads.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = check_object(&client, &key, &md5).await {
                        bad.lock().unwrap().push(e);
                    }
                }
            }));
        }
        Load { tasks, ..load }
    }

    async fn stop(self) -> (Vec<(String, String)>, Vec<String>, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("load task");
        }
        let acked = self.acked.lock().unwrap().clone();
        let bad = self.bad_reads.lock().unwrap().clone();
        (
            acked,
            bad,
            self.reads.load(Ordering::Relaxed),
            self.failed_puts.load(Ordering::Relaxed),
        )
    }
}

/// GETs `key` and compares its bytes with `md5`.
async fn check_object(client: &Client, key: &str, md5: &str) -> Result<(), String> {
    let out = client
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .map_err(|e| format!("GET {key}: {}", error_text(&e)))?;
    let body = out
        .body
        .collect()
        .await
        .map_err(|e| format!("GET {key} body: {e}"))?
        .into_bytes();
    if md5_hex(&body) != md5 {
        return Err(format!("GET {key}: wrong bytes"));
    }
    Ok(())
}

fn error_text<E: std::fmt::Debug>(e: &aws_sdk_s3::error::SdkError<E>) -> String {
    format!("{e:?}").chars().take(300).collect()
}

pub(crate) async fn layout(cluster: &Cluster) -> Layout {
    let v = cluster.admin(Method::GET, "/v1/layout", None).await;
    serde_json::from_value(v).expect("a layout")
}

/// Stages `change`, applies it and waits until the migration it starts has retired the
/// previous members; returns the final layout and how long the migration took.
async fn change(cluster: &Cluster, change: Value) -> (Layout, Duration) {
    let started = Instant::now();
    let done = apply(cluster, change).await;
    (retired(cluster, done).await, started.elapsed())
}

/// Stages and applies `change`; the layout version its migration retires to.
pub(crate) async fn apply(cluster: &Cluster, change: Value) -> u64 {
    let before = layout(cluster).await;
    let staged = cluster
        .admin(Method::POST, "/v1/layout/stage", Some(change))
        .await;
    assert_eq!(staged["version"], before.version, "staging moves nothing");
    let plan = cluster.admin(Method::GET, "/v1/layout/plan", None).await;
    assert!(plan["keys_scanned"].as_u64() > Some(0), "{plan}");
    let applied = cluster.admin(Method::POST, "/v1/layout/apply", None).await;
    assert_eq!(applied["version"], before.version + 1);
    assert!(
        !applied["previous"].is_null(),
        "two layouts live: {applied}"
    );
    before.version + 2
}

/// Waits until the migration has retired the previous members at layout version `done`.
pub(crate) async fn retired(cluster: &Cluster, done: u64) -> Layout {
    eventually("the migration retires", MIGRATION, || async move {
        let status = cluster.gateway_status().await;
        let rebalance = &status["rebalance"];
        if status["layout_version"] == done && rebalance["migrating_to"].is_null() {
            assert_eq!(rebalance["keys_remaining"], 0, "{status}");
            assert_eq!(rebalance["bytes_remaining"], 0, "{status}");
            Ok(())
        } else {
            Err(format!(
                "layout {} rebalance {rebalance}",
                status["layout_version"]
            ))
        }
    })
    .await;
    let after = layout(cluster).await;
    assert_eq!(after.version, done);
    assert!(after.previous.is_none());
    after
}

pub(crate) fn index_of(cluster: &Cluster, url: &str) -> usize {
    (0..cluster.node_count())
        .find(|&i| cluster.node_url(i) == url)
        .unwrap_or_else(|| panic!("no node at {url}"))
}

/// Every key is held by each of its owners under `layout` and by no other member.
async fn assert_placed(cluster: &Cluster, layout: &Layout, keys: &[(String, String)]) {
    let members: Vec<usize> = layout
        .nodes
        .iter()
        .map(|n| index_of(cluster, &n.url))
        .collect();
    let members = &members;
    eventually(
        "every key is on exactly its owners",
        MIGRATION,
        || async move {
            let mut held: Vec<BTreeSet<String>> = Vec::new();
            for &i in members {
                held.push(cluster.node_keys(i, BUCKET).await.into_iter().collect());
            }
            for (key, _) in keys {
                let own = owners(&layout.nodes, layout.replicas, BUCKET, key);
                for (j, set) in held.iter().enumerate() {
                    match (own.contains(&j), set.contains(key)) {
                        (true, false) => {
                            return Err(format!("owner {} lacks {key}", layout.nodes[j].id));
                        }
                        (false, true) => {
                            return Err(format!(
                                "non-owner {} still holds {key}",
                                layout.nodes[j].id
                            ));
                        }
                        _ => {}
                    }
                }
            }
            Ok(())
        },
    )
    .await;
}

/// Each member holds exactly the blob files its own records refer to.
async fn assert_blobs_follow_records(cluster: &Cluster, layout: &Layout) {
    let members: Vec<usize> = layout
        .nodes
        .iter()
        .map(|n| index_of(cluster, &n.url))
        .collect();
    let members = &members;
    eventually(
        "every member holds exactly the blobs its records refer to",
        MIGRATION,
        || async move {
            for &i in members {
                let referenced = cluster.referenced_blobs(i, BUCKET).await;
                let files = blob_files_under(&cluster.node_data_dir(i).join("blobs"));
                if files != referenced {
                    let extra = files.difference(&referenced).count();
                    let missing = referenced.difference(&files).count();
                    return Err(format!(
                        "node{i}: {extra} files no record of its refers to, {missing} referenced blobs missing"
                    ));
                }
            }
            Ok(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grow_shrink_and_replace_under_load_lose_nothing() {
    let options = options(true)
        .gateway_arg("--gc-interval-ms", 0)
        .gateway_arg("--gc-grace-secs", GC_GRACE_SECS);
    let mut cluster = start_opts(options).await;
    let client = cluster.client();
    for n in 0..300u64 {
        let body = pattern(if n.is_multiple_of(4) { 70 * 1024 } else { 1024 }, n);
        put_bytes(&client, BUCKET, &format!("pre/{n}"), &body).await;
    }
    let first = layout(&cluster).await;
    assert_eq!((first.version, first.nodes.len()), (1, 3));
    let load = Load::start(&client, 3, 3);

    let mut timings = Vec::new();
    for _ in 0..2 {
        let i = cluster.start_new_node().await;
        let url = cluster.node_url(i).to_owned();
        let (l, took) = change(&cluster, json!({ "op": "add", "url": url })).await;
        assert!(l.nodes.iter().any(|n| n.url == url));
        timings.push(("add", took));
    }
    let removed = first.nodes[0].clone();
    let (l, took) = change(&cluster, json!({ "op": "remove", "id": removed.id })).await;
    assert!(l.node(&removed.id).is_none());
    timings.push(("remove", took));
    let replaced = first.nodes[1].clone();
    let fresh = cluster.start_new_node().await;
    let fresh_url = cluster.node_url(fresh).to_owned();
    let replace = json!({ "op": "replace", "id": replaced.id, "url": fresh_url });
    let (last, took) = change(&cluster, replace).await;
    timings.push(("replace", took));
    assert_eq!(last.nodes.len(), 4);
    assert!(last.node(&replaced.id).is_none());
    assert!(last.nodes.iter().any(|n| n.url == fresh_url));

    let (acked, bad, reads, failed_puts) = load.stop().await;
    eprintln!(
        "membership: {} writes acknowledged ({failed_puts} failed), {reads} reads; migrations {timings:?}",
        acked.len()
    );
    assert!(
        bad.is_empty(),
        "{} failed reads, first: {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    assert!(acked.len() > 50, "the load ran: {} writes", acked.len());

    let mut all: Vec<(String, String)> = (0..300u64)
        .map(|n| {
            let body = pattern(if n.is_multiple_of(4) { 70 * 1024 } else { 1024 }, n);
            (format!("pre/{n}"), md5_hex(&body))
        })
        .collect();
    all.extend(acked);
    assert_placed(&cluster, &last, &all).await;
    assert_blobs_follow_records(&cluster, &last).await;

    // The nodes that left hold nothing needed: everything reads with them dead.
    cluster.kill_node(index_of(&cluster, &removed.url));
    cluster.kill_node(index_of(&cluster, &replaced.url));
    for (key, md5) in &all {
        check_object(&client, key, md5)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A new owner killed in the middle of the migration that brings it in: the migration
/// still retires (W owners of every key hold it), every object reads meanwhile and after,
/// writes go on, and the node, restarted, is filled to exactly its share.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_node_dying_mid_migration_does_not_hold_it() {
    // Slow enough (1 MiB/s) that the kill lands mid-way.
    let options = options(true).gateway_arg("--rebalance-rate-mib", 1);
    let mut cluster = start_opts(options).await;
    let client = cluster.client();
    let body = |n: u64| pattern(20 * 1024, n);
    let mut all = Vec::new();
    for n in 0..400u64 {
        let key = format!("pre/{n}");
        put_bytes(&client, BUCKET, &key, &body(n)).await;
        all.push((key, md5_hex(&body(n))));
    }
    let load = Load::start(&client, 2, 2);
    let fresh = cluster.start_new_node().await;
    let url = cluster.node_url(fresh).to_owned();
    let done = apply(&cluster, json!({ "op": "add", "url": url })).await;
    let cluster_ref = &cluster;
    eventually("the migration copies", MIGRATION, || async move {
        let status = cluster_ref.gateway_status().await;
        let copies = status["rebalance"]["copies_made"].as_u64().unwrap_or(0);
        if copies >= 20 && status["rebalance"]["keys_remaining"].as_u64() > Some(50) {
            Ok(())
        } else {
            Err(format!("rebalance {}", status["rebalance"]))
        }
    })
    .await;
    cluster.kill_node(fresh);
    let last = retired(&cluster, done).await;
    assert!(
        last.nodes.iter().any(|n| n.url == url),
        "the dead node stays a member"
    );
    for (key, md5) in &all {
        check_object(&client, key, md5)
            .await
            .unwrap_or_else(|e| panic!("with the new node dead: {e}"));
    }
    cluster.restart_node(fresh).await;
    let (acked, bad, reads, failed_puts) = load.stop().await;
    eprintln!(
        "new node killed mid-migration: {} writes acknowledged ({failed_puts} failed), {reads} reads",
        acked.len()
    );
    assert!(
        bad.is_empty(),
        "failed reads: {:?}",
        &bad[..bad.len().min(5)]
    );
    all.extend(acked);
    assert_placed(&cluster, &last, &all).await;
}
