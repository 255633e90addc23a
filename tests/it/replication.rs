//! Replication and quorums, seen from outside: availability with one node down, refusal
//! (503) without a write quorum, durability across a node restart, repair of what a dead
//! node missed, and placement of every key on exactly RF nodes of a larger cluster.
//! Nodes are inspected directly through their HTTP API where a test must know what is
//! stored where.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt;
use hyper::Method;

use crate::harness::*;

/// How long background replication and repair may take in these tests.
const CONVERGE: Duration = Duration::from_secs(60);

/// Objects of both storage paths: small (likely inline) and 1 MiB (blob).
fn samples(tag: &str, seed: u64) -> Vec<(String, Vec<u8>)> {
    vec![
        (format!("{tag}/small"), pattern(1024, seed)),
        (format!("{tag}/large"), pattern(1024 * 1024, seed + 1)),
    ]
}

/// Waits until every node in `nodes` holds `data` as the current version of each key.
async fn wait_replicated(
    cluster: &Cluster,
    nodes: &[usize],
    bucket: &str,
    objects: &[(String, Vec<u8>)],
) {
    eventually(
        "every replica holds every object",
        CONVERGE,
        || async move {
            for &i in nodes {
                for (key, data) in objects {
                    match cluster.node_object_bytes(i, bucket, key).await {
                        Some(got) if got == *data => {}
                        Some(got) => {
                            return Err(format!(
                                "node{i} {key}: md5 {} != {}",
                                md5_hex(&got),
                                md5_hex(data)
                            ));
                        }
                        None => return Err(format!("node{i} has no current {key}")),
                    }
                }
            }
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn with_one_node_down_writes_and_reads_still_succeed() {
    let mut cluster = Cluster::start(3).await;
    create_bucket(&cluster.client(), "avail").await;
    let before = samples("before", 1);
    for (key, data) in &before {
        put_bytes(&cluster.client(), "avail", key, data).await;
    }
    for down in 0..3 {
        cluster.kill_node(down);
        for (label, s3) in cluster.clients() {
            let objects = samples(&format!("down{down}/{label}"), 10 + down as u64);
            for (key, data) in &objects {
                put_bytes(&s3, "avail", key, data).await;
            }
            for (key, data) in objects.iter().chain(&before) {
                let got = get_bytes(&s3, "avail", key).await;
                assert_same_bytes(&got, data, &format!("node{down} down, {label} {key}"));
            }
            let listed = s3
                .list_objects_v2()
                .bucket("avail")
                .prefix(format!("down{down}/{label}/"))
                .send()
                .await
                .unwrap();
            assert_eq!(
                listed.key_count(),
                Some(2),
                "node{down} down: list-after-write"
            );
        }
        cluster.restart_node(down).await;
    }
}

#[tokio::test]
async fn without_a_write_quorum_puts_fail_with_503_and_never_corrupt_objects() {
    let mut cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "quorum").await;
    let old = samples("over", 1);
    for (key, data) in &old {
        put_bytes(&s3, "quorum", key, data).await;
    }
    wait_replicated(&cluster, &[0, 1, 2], "quorum", &old).await;

    cluster.kill_node(1);
    cluster.kill_node(2);
    let new = samples("over", 100);
    let fresh = samples("fresh", 200);
    for (key, data) in new.iter().chain(&fresh) {
        let f = failure(
            s3.put_object()
                .bucket("quorum")
                .key(key)
                .body(ByteStream::from(data.clone()))
                .send()
                .await,
        );
        assert_eq!(
            (f.status, f.code.as_deref()),
            (Some(503), Some("ServiceUnavailable")),
            "PUT {key} with one node of three: {}",
            f.debug
        );
    }
    // One replica cannot answer a read quorum of two either.
    let f = failure(
        s3.get_object()
            .bucket("quorum")
            .key("over/small")
            .send()
            .await,
    );
    assert_eq!(
        f.status,
        Some(503),
        "GET with one node of three: {}",
        f.debug
    );

    cluster.restart_node(1).await;
    cluster.restart_node(2).await;

    // An unacknowledged write may or may not surface later (it may have reached the one
    // live replica), but a read returns one whole version with its own ETag, never a mix.
    for ((key, old_data), (_, new_data)) in old.iter().zip(&new) {
        let got = s3
            .get_object()
            .bucket("quorum")
            .key(key)
            .send()
            .await
            .unwrap();
        let etag = got.e_tag().map(str::to_owned);
        let body = got.body.collect().await.unwrap().into_bytes().to_vec();
        assert!(
            body == *old_data || body == *new_data,
            "{key}: {} bytes, md5 {}, neither the old nor the new version",
            body.len(),
            md5_hex(&body)
        );
        assert_eq!(
            etag,
            Some(etag_of(&body)),
            "{key}: ETag does not match the body"
        );
    }
    for (key, data) in &fresh {
        match s3.get_object().bucket("quorum").key(key).send().await {
            Ok(got) => {
                let body = got.body.collect().await.unwrap().into_bytes();
                assert_same_bytes(&body, data, &format!("{key} (unacknowledged)"));
            }
            Err(e) => assert_s3_error::<(), _>(Err(e), 404, "NoSuchKey"),
        }
    }
    // And the cluster takes writes again.
    for (key, data) in &new {
        put_bytes(&s3, "quorum", key, data).await;
        assert_eq!(get_bytes(&s3, "quorum", key).await, *data);
    }
}

#[tokio::test]
async fn a_restarted_node_still_holds_what_it_stored_before_the_kill() {
    let mut cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "durable").await;
    let mut objects = samples("a", 1);
    objects.extend(samples("b", 3));
    objects.push(("empty".to_string(), Vec::new()));
    for (key, data) in &objects {
        put_bytes(&s3, "durable", key, data).await;
    }
    wait_replicated(&cluster, &[0, 1, 2], "durable", &objects).await;

    cluster.kill_node(1);
    cluster.restart_node(1).await;
    for (key, data) in &objects {
        let got = cluster
            .node_object_bytes(1, "durable", key)
            .await
            .unwrap_or_else(|| panic!("node1 lost {key} across a restart"));
        assert_same_bytes(&got, data, &format!("node1 {key} after restart"));
    }
    let mut listed = cluster.node_keys(1, "durable").await;
    listed.sort();
    let mut want: Vec<String> = objects.iter().map(|(k, _)| k.clone()).collect();
    want.sort();
    assert_eq!(listed, want);
    assert!(
        cluster
            .node_bucket(1, "durable")
            .await
            .is_some_and(|b| b.exists.value),
        "node1 lost the bucket record"
    );
}

/// Bucket records live on every node; a bucket write that missed one raises a hint like an
/// object write, so the node gets the record back without waiting for an anti-entropy pass
/// (switched off here).
#[tokio::test]
async fn a_bucket_created_while_a_node_was_down_reaches_it_after_restart() {
    let mut cluster =
        Cluster::start_opts(ClusterOptions::new(3).gateway_arg("--scan-interval-ms", 0)).await;
    let s3 = cluster.client();
    cluster.kill_node(2);
    create_bucket(&s3, "late").await;
    let cluster_ref = &cluster;
    eventually(
        "the missed bucket write counts as lag",
        CONVERGE,
        || async move {
            match cluster_ref.gateway_metric("replication_lag").await {
                1.0 => Ok(()),
                v => Err(format!("replication_lag = {v}")),
            }
        },
    )
    .await;
    cluster.restart_node(2).await;
    let cluster_ref = &cluster;
    eventually("node2 holds the bucket record", CONVERGE, || async move {
        match cluster_ref.node_bucket(2, "late").await {
            Some(b) if b.exists.value => Ok(()),
            other => Err(format!("node2 has {other:?}")),
        }
    })
    .await;
    eventually("replication_lag falls back to 0", CONVERGE, || async move {
        match cluster_ref.gateway_metric("replication_lag").await {
            0.0 => Ok(()),
            v => Err(format!("replication_lag = {v}")),
        }
    })
    .await;
}

#[tokio::test]
async fn objects_written_while_a_node_was_down_reach_it_after_restart() {
    let mut cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "repair").await;
    cluster.kill_node(2);
    let missed = samples("missed", 5);
    for (key, data) in &missed {
        put_bytes(&s3, "repair", key, data).await;
    }
    cluster.restart_node(2).await;

    // Repair is the cluster's job: no read touches these keys until node2 has them.
    wait_replicated(&cluster, &[2], "repair", &missed).await;
    let metrics_url = &format!("{}/metrics", cluster.admin_url());
    eventually("replication_lag falls back to 0", CONVERGE, || async move {
        let resp = raw_request(Method::GET, metrics_url, &[], Default::default()).await;
        match metric_sum(&resp.text(), "replication_lag") {
            Some(0.0) => Ok(()),
            Some(v) => Err(format!("replication_lag = {v}")),
            None => Err("no replication_lag metric".to_string()),
        }
    })
    .await;
}

#[tokio::test]
async fn five_nodes_with_three_replicas_place_every_key_on_exactly_three_nodes() {
    let cluster = Cluster::start_with(5, 3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "spread").await;
    let objects: Vec<(String, Vec<u8>)> = (0..50)
        .map(|i| {
            // Every fifth object is blob-sized.
            let size = if i % 5 == 0 { 100_000 } else { 100 + i };
            (format!("key-{i:02}"), pattern(size, i as u64))
        })
        .collect();
    futures::stream::iter(objects.iter())
        .map(|(key, data)| {
            let s3 = s3.clone();
            async move { put_bytes(&s3, "spread", key, data).await }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;

    // List-after-write: every acknowledged key is listed at once, whichever nodes hold it.
    let listed = s3.list_objects_v2().bucket("spread").send().await.unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    let want: Vec<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, want);
    for (key, data) in &objects {
        assert_eq!(get_bytes(&s3, "spread", key).await, *data, "{key}");
    }

    // The third replica of each key is written in the background.
    let (cluster, objects) = (&cluster, &objects);
    eventually(
        "every key on exactly 3 of 5 nodes",
        CONVERGE,
        || async move {
            let holders = holders_of(cluster, "spread").await;
            for (key, _) in objects {
                let on = holders.get(key).map(Vec::len).unwrap_or(0);
                if on != 3 {
                    return Err(format!("{key} is on {on} nodes: {:?}", holders.get(key)));
                }
            }
            if holders.len() != objects.len() {
                return Err(format!("unexpected keys on nodes: {:?}", holders.keys()));
            }
            Ok(())
        },
    )
    .await;
    let holders = holders_of(cluster, "spread").await;

    // Each holder has the right bytes; every node takes a share; buckets are everywhere.
    for (key, data) in objects {
        for &i in &holders[key] {
            let got = cluster.node_object_bytes(i, "spread", key).await;
            assert_eq!(got.as_ref(), Some(data), "node{i} {key}");
        }
    }
    for i in 0..cluster.node_count() {
        let share = holders.values().filter(|on| on.contains(&i)).count();
        assert!(
            share > 0,
            "node{i} holds none of 50 keys: placement is skewed"
        );
    }
    eventually(
        "every node holds the bucket record",
        CONVERGE,
        || async move {
            for i in 0..cluster.node_count() {
                if !cluster
                    .node_bucket(i, "spread")
                    .await
                    .is_some_and(|b| b.exists.value)
                {
                    return Err(format!("node{i} lacks the bucket record"));
                }
            }
            Ok(())
        },
    )
    .await;
}

/// Which nodes hold a record for each key of `bucket`.
async fn holders_of(cluster: &Cluster, bucket: &str) -> BTreeMap<String, Vec<usize>> {
    let mut holders: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for i in 0..cluster.node_count() {
        for key in cluster.node_keys(i, bucket).await {
            holders.entry(key).or_default().push(i);
        }
    }
    holders
}
