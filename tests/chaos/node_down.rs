//! Whole nodes lost: writes a dead node missed reach it through hints (also when the
//! gateway crashes with the work pending), a node restarted with an empty disk is refilled
//! by anti-entropy, and two nodes down stop writes with 503 without harming anything.

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use serde_json::json;

use crate::harness::*;
use crate::{BUCKET, HEAL, assert_readable, objects, put_all, start};

/// Polls the gateway until `replication_lag` is exactly `n`; panics if it ever goes above.
async fn wait_lag_exactly(cluster: &Cluster, n: usize) {
    eventually(
        &format!("replication_lag rises to {n}"),
        Duration::from_secs(15),
        || async move {
            let lag = cluster.gateway_metric("replication_lag").await;
            assert!(
                lag <= n as f64,
                "replication_lag = {lag}, more than the {n} objects written"
            );
            if lag == n as f64 {
                Ok(())
            } else {
                Err(format!("replication_lag = {lag}"))
            }
        },
    )
    .await;
}

/// Polls until `replication_lag` is 0; returns how long that took.
async fn wait_lag_zero(cluster: &Cluster) -> Duration {
    let started = Instant::now();
    eventually("replication_lag falls back to 0", HEAL, || async move {
        match cluster.gateway_metric("replication_lag").await {
            0.0 => Ok(()),
            lag => Err(format!("replication_lag = {lag}")),
        }
    })
    .await;
    started.elapsed()
}

/// Polls until node `i` holds every object with the right bytes; returns how long it took.
async fn wait_node_holds(cluster: &Cluster, i: usize, objects: &[(String, Vec<u8>)]) -> Duration {
    let started = Instant::now();
    eventually(
        &format!("node{i} holds every object"),
        HEAL,
        || async move {
            let mut missing = Vec::new();
            for (key, data) in objects {
                match cluster.node_object_bytes(i, BUCKET, key).await {
                    Some(got) if got == *data => {}
                    Some(got) => missing.push(format!("{key} (md5 {})", md5_hex(&got))),
                    None => missing.push(key.clone()),
                }
            }
            match missing.len() {
                0 => Ok(()),
                n => Err(format!("{n} of {} missing: {missing:?}", objects.len())),
            }
        },
    )
    .await;
    started.elapsed()
}

/// Node ids as the gateway's `/status` shows them (`None` for a node it has not identified).
async fn status_ids(cluster: &Cluster) -> Vec<Option<String>> {
    let status = cluster.gateway_status().await;
    let id = |n: &serde_json::Value| n["id"].as_str().map(str::to_owned);
    status["nodes"]
        .as_array()
        .map(|nodes| nodes.iter().map(id).collect())
        .unwrap_or_default()
}

/// The node ids the gateway's `/status` shows, once it shows one for every node (and for
/// node `i` one other than `old`, with `changed = Some((i, old))`).
async fn node_ids(cluster: &Cluster, changed: Option<(usize, &String)>) -> Vec<String> {
    let ready = |known: &[Option<String>]| {
        known.len() == cluster.node_count()
            && known.iter().all(Option::is_some)
            && changed.is_none_or(|(i, old)| known[i].as_ref() != Some(old))
    };
    eventually("the gateway knows every node's id", HEAL, || async {
        let known = status_ids(cluster).await;
        match ready(&known) {
            true => Ok(()),
            false => Err(format!("status shows ids {known:?}")),
        }
    })
    .await;
    // Ids only ever get learnt, so the state the wait saw still holds.
    status_ids(cluster).await.into_iter().flatten().collect()
}

/// Test 1. Anti-entropy is off: only the hints can bring node2 up to date.
#[tokio::test]
async fn writes_a_dead_node_missed_reach_it_through_hints_after_restart() {
    const N: usize = 20;
    let mut cluster = start(false).await;
    let s3 = cluster.client();
    cluster.kill_node(2);
    let written = objects("hinted", N, 1);
    put_all(&s3, &written).await;
    wait_lag_exactly(&cluster, N).await;

    cluster.restart_node(2).await;
    let healed = wait_lag_zero(&cluster).await;
    wait_node_holds(&cluster, 2, &written).await;
    let repaired = cluster.gateway_metric("repairs_total{result=\"ok\"}").await;
    assert!(
        repaired >= N as f64,
        "repairs_total{{result=\"ok\"}} = {repaired} after healing {N} objects"
    );
    eprintln!("hints: {N} objects healed {healed:?} after node2 came back ({repaired} repairs)");

    // node0 gone: everything is still served, by node1 and the refilled node2.
    cluster.kill_node(0);
    assert_readable(&s3, &written, "node0 down after node2 was healed").await;
    cluster.restart_node(0).await;
    cluster.assert_converged(BUCKET, &written).await;
}

/// Test 4. The repair work lives in hints on the nodes, not in the gateway's memory.
#[tokio::test]
async fn repair_work_pending_when_the_gateway_crashes_is_done_by_the_next_gateway() {
    const N: usize = 12;
    let mut cluster = start(false).await;
    let s3 = cluster.client();
    cluster.kill_node(2);
    let written = objects("pending", N, 2);
    put_all(&s3, &written).await;
    wait_lag_exactly(&cluster, N).await;

    cluster.kill_gateway();
    cluster.restart_node(2).await;
    // No gateway runs: nothing can have repaired node2 yet.
    for (key, _) in &written {
        assert!(
            cluster.node_record(2, BUCKET, key).await.is_none(),
            "node2 has {key} although no gateway ran since it came back"
        );
    }
    cluster.start_gateway().await;
    let healed = wait_node_holds(&cluster, 2, &written).await;
    wait_lag_zero(&cluster).await;
    let repaired = cluster.gateway_metric("repairs_total{result=\"ok\"}").await;
    assert!(
        repaired >= N as f64,
        "the new gateway counts {repaired} repairs, want >= {N}"
    );
    eprintln!("gateway restart: {N} pending repairs done {healed:?} after the new gateway started");
    cluster.assert_converged(BUCKET, &written).await;
}

/// Test 6. A node that lost its disk comes back empty; anti-entropy refills it.
#[tokio::test]
async fn a_node_restarted_with_a_wiped_data_dir_is_refilled_by_anti_entropy() {
    let mut cluster = start(true).await;
    let s3 = cluster.client();
    let written = objects("wiped", 18, 3);
    put_all(&s3, &written).await;
    cluster.assert_converged(BUCKET, &written).await;
    let before = node_ids(&cluster, None).await;
    let distinct: std::collections::BTreeSet<&String> = before.iter().collect();
    assert_eq!(distinct.len(), before.len(), "node ids {before:?}");

    cluster.kill_node(0);
    cluster.wipe_node(0);
    cluster.restart_node(0).await;
    // A wiped disk is a new node: the gateway sees a new id at that address, and the
    // others keep theirs.
    let after = node_ids(&cluster, Some((0, &before[0]))).await;
    assert_eq!(after[1..], before[1..], "ids of the untouched nodes");
    let refilled = wait_node_holds(&cluster, 0, &written).await;
    eprintln!(
        "wiped node: {} objects refilled {refilled:?} after node0 came back",
        written.len()
    );
    cluster.assert_converged(BUCKET, &written).await;

    // The refilled node serves: with node1 gone, node0 and node2 answer every read.
    cluster.kill_node(1);
    assert_readable(&s3, &written, "node1 down after node0 was refilled").await;
    cluster.restart_node(1).await;
    cluster.assert_converged(BUCKET, &written).await;
}

/// Test 6, continued: every node's disk replaced in turn, each time after the previous
/// one was refilled. At no moment were two replicas lost, so nothing may be lost.
#[tokio::test]
async fn replacing_every_disk_in_turn_loses_nothing() {
    let mut cluster = start(true).await;
    let s3 = cluster.client();
    let written = objects("rolling", 6, 9);
    put_all(&s3, &written).await;
    cluster.assert_converged(BUCKET, &written).await;
    // An access key and its grant live in tables every node holds whole.
    let (reader, secret) = cluster.create_key("rolling-reader", json!({})).await;
    let read = Grant {
        read: true,
        ..Grant::default()
    };
    cluster.allow(BUCKET, &reader, read).await;

    for i in 0..cluster.node_count() {
        cluster.kill_node(i);
        cluster.wipe_node(i);
        cluster.restart_node(i).await;
        // No client reads meanwhile: refilling is anti-entropy's job.
        let refilled = wait_node_holds(&cluster, i, &written).await;
        let (cluster, reader) = (&cluster, &reader);
        eventually(
            &format!("node{i} holds the access key"),
            HEAL,
            || async move {
                let ids = cluster.node_key_ids(i).await;
                match ids.contains(reader) {
                    true => Ok(()),
                    false => Err(format!("node{i} holds keys {ids:?}")),
                }
            },
        )
        .await;
        eprintln!("rolling disk replacement: node{i} refilled in {refilled:?}");
        assert_readable(&s3, &written, &format!("node{i}'s disk replaced")).await;
    }
    // A new gateway knows only what the nodes hold.
    cluster.restart_gateway().await;
    assert_readable(&s3, &written, "every disk replaced, new gateway").await;
    let as_reader = cluster.client_with_keys(&reader, &secret);
    assert_readable(
        &as_reader,
        &written,
        "every disk replaced, the reader's key",
    )
    .await;
    // The bucket itself survived too: it lists and takes writes.
    let listed = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap_or_else(|e| panic!("LIST after every disk was replaced: {e:?}"));
    assert_eq!(listed.key_count(), Some(written.len() as i32), "LIST");
    let mut all = written.clone();
    all.extend(objects("after-rolling", 2, 10));
    put_all(&s3, &all[written.len()..]).await;
    cluster.assert_converged(BUCKET, &all).await;
}

/// Test 7. One node of three cannot make a quorum: 503, and nothing written before is hurt.
#[tokio::test]
async fn with_two_nodes_down_writes_get_503_and_earlier_objects_stay_intact() {
    let mut cluster = start(true).await;
    let s3 = cluster.client();
    let before = objects("before", 6, 4);
    put_all(&s3, &before).await;
    cluster.assert_converged(BUCKET, &before).await;

    cluster.kill_node(0);
    cluster.kill_node(2);
    // New keys, and overwrites of existing ones (keys of `before`, other bytes).
    let fresh = objects("fresh", 6, 5);
    let overwrites = objects("before", 6, 6);
    for (key, data) in fresh.iter().chain(&overwrites) {
        let started = Instant::now();
        let f = failure(
            s3.put_object()
                .bucket(BUCKET)
                .key(key)
                .body(ByteStream::from(data.clone()))
                .send()
                .await,
        );
        assert_eq!(
            (f.status, f.code.as_deref()),
            (Some(503), Some("ServiceUnavailable")),
            "PUT {key} ({} bytes) with two nodes of three down: {}",
            data.len(),
            f.debug
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "PUT {key} took {:?} to fail with two nodes down",
            started.elapsed()
        );
    }
    let f = failure(
        s3.get_object()
            .bucket(BUCKET)
            .key(&before[0].0)
            .send()
            .await,
    );
    assert_eq!(f.status, Some(503), "GET with two nodes down: {}", f.debug);

    // node0 back: reads see node1, which alone may hold refused writes.
    cluster.restart_node(0).await;
    // A refused write may still surface later (it may have reached node1), but only whole.
    for ((key, old), (_, new)) in before.iter().zip(&overwrites) {
        let got = get_bytes(&s3, BUCKET, key).await;
        assert!(
            got == *old || got == *new,
            "{key}: {} bytes (md5 {}), neither the old {} nor the refused {} bytes",
            got.len(),
            md5_hex(&got),
            old.len(),
            new.len()
        );
    }
    let mut surfaced = Vec::new();
    for (key, data) in &fresh {
        match s3.get_object().bucket(BUCKET).key(key).send().await {
            Ok(out) => {
                let got = out.body.collect().await.unwrap().into_bytes();
                assert_same_bytes(&got, data, &format!("{key} (refused, then surfaced)"));
                surfaced.push((key.clone(), data.clone()));
            }
            Err(e) => assert_s3_error::<(), _>(Err(e), 404, "NoSuchKey"),
        }
    }
    let seen: Vec<(String, Vec<u8>)> = before
        .iter()
        .map(|(key, _)| key.clone())
        .zip(futures::future::join_all(before.iter().map(|(k, _)| get_bytes(&s3, BUCKET, k))).await)
        .chain(surfaced.iter().cloned())
        .collect();
    // A value a read returned never disappears, even if the node that alone held the
    // refused write (node1) is lost right after.
    cluster.kill_node(1);
    cluster.restart_node(2).await;
    assert_readable(&s3, &seen, "node1 down after reads returned refused writes").await;
    cluster.restart_node(1).await;
    eprintln!(
        "two nodes down: {} of {} refused new keys surfaced; every value read stayed",
        surfaced.len(),
        fresh.len()
    );
    // `before` keys may hold the surfaced overwrite: check them for wholeness only.
    cluster.assert_converged(BUCKET, &[]).await;
    // And the cluster takes writes again.
    put_all(&s3, &overwrites).await;
    cluster.assert_converged(BUCKET, &overwrites).await;
}
