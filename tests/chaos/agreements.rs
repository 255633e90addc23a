//! A layout change carries each moving key's agreement to its new owners: conditional
//! writes made while one node was frozen leave their promises on the other two only, a
//! fresh node joins, and once the previous members retire, a majority of every moved key's
//! new owners must refuse a ballot below those promises (what keeps a plain write stamped
//! below them from being acknowledged by the new owners alone).

use bytes::Bytes;
use hyper::Method;
use node::proto::encode_segment;
use node::proto::layout::owners;
use node::proto::paxos::{AgreedKeys, Prepare, Promise};
use serde_json::json;

use crate::BUCKET;
use crate::harness::*;
use crate::membership::{apply, index_of, retired};

const KEYS: usize = 60;

/// The keys node `i` holds agreement state for (one page: the test makes fewer).
async fn agreed_keys(cluster: &Cluster, i: usize) -> Vec<String> {
    let r = cluster
        .node_request(i, Method::GET, "/paxos", Bytes::new())
        .await;
    assert_eq!(
        r.status,
        200,
        "GET /paxos: {}",
        String::from_utf8_lossy(&r.body)
    );
    let page: AgreedKeys = serde_json::from_slice(&r.body).expect("an agreed keys page");
    assert!(!page.truncated);
    page.keys
        .into_iter()
        .filter(|k| k.bucket == BUCKET)
        .map(|k| k.key)
        .collect()
}

/// Whether node `i` promises the lowest possible ballot for `key`.
async fn promises_lowest(cluster: &Cluster, i: usize, key: &str) -> bool {
    let path = format!(
        "/paxos/{}/{}/prepare",
        encode_segment(BUCKET),
        encode_segment(key)
    );
    let lowest = Prepare {
        ballot: node::proto::Stamp {
            ts: 1,
            id: "0".repeat(32),
        },
        select: None,
    };
    let body = Bytes::from(serde_json::to_vec(&lowest).expect("encode"));
    let r = cluster.node_request(i, Method::POST, &path, body).await;
    assert_eq!(
        r.status,
        200,
        "prepare: {}",
        String::from_utf8_lossy(&r.body)
    );
    let promise: Promise = serde_json::from_slice(&r.body).expect("a promise");
    promise.promised
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_layout_change_carries_each_moving_keys_agreement() {
    let mut cluster = crate::start(true).await;
    let client = cluster.client();
    let keys: Vec<String> = (0..KEYS).map(|n| format!("agree/{n}")).collect();
    cluster.kill_node(2);
    for key in &keys {
        client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .if_none_match("*")
            .body(pattern(100, 1).into())
            .send()
            .await
            .unwrap_or_else(|e| panic!("conditional create of {key}: {e:?}"));
    }
    cluster.restart_node(2).await;
    let mut held = agreed_keys(&cluster, 0).await;
    held.sort();
    let mut want = keys.clone();
    want.sort();
    assert_eq!(
        held, want,
        "node0 lists the keys it holds agreement state for"
    );
    assert!(
        agreed_keys(&cluster, 2).await.is_empty(),
        "the node that was down took part in no round"
    );

    let fresh = cluster.start_new_node().await;
    let url = cluster.node_url(fresh).to_owned();
    let done = apply(&cluster, json!({ "op": "add", "url": url })).await;
    let layout = retired(&cluster, done).await;

    // The keys whose owners now include the new node in place of node0 or node1: without
    // the carried agreement only one of their owners would know the old promises.
    let mut moved = 0;
    for key in &keys {
        let own: Vec<usize> = owners(&layout.nodes, layout.replicas, BUCKET, key)
            .into_iter()
            .map(|j| index_of(&cluster, &layout.nodes[j].url))
            .collect();
        if !own.contains(&fresh) || own.contains(&0) && own.contains(&1) {
            continue;
        }
        moved += 1;
        let mut refused = 0;
        for &i in &own {
            if !promises_lowest(&cluster, i, key).await {
                refused += 1;
            }
        }
        assert!(
            refused * 2 > own.len(),
            "{key}: only {refused} of its owners {own:?} keep the promises made before the \
             change"
        );
    }
    eprintln!("agreements carried: {moved} of {KEYS} keys moved off node0 or node1");
    assert!(moved > 0, "no key moved off a node that held its promises");
}
