//! Chaos tests: real `s3quorum node` and `s3quorum gateway` processes on loopback, hurt
//! on purpose while clients use them: `kill -9` of nodes (between and in the middle of
//! writes) and of the gateway, SIGSTOP/SIGCONT, a node restarted with an empty data
//! directory, two nodes down at once, a flipped byte in a stored blob.
//!
//! Every test ends with `Cluster::assert_converged`: once the faults are over, the cluster
//! heals by itself (hints, anti-entropy, read and bitrot repair) until every replica holds
//! the same records and the bytes they promise, `replication_lag` is 0, and every object
//! reads back through S3 with its MD5.
//!
//! The gateway runs with short intervals (repair worker every 200 ms, anti-entropy every
//! 500 ms unless a test turns it off to prove the hints alone do the work, node calls
//! bounded by 1.5 s), so each test takes seconds. Waits are polls with deadlines. Figures
//! (time to heal, request latencies under a frozen node) are printed on stderr: see them
//! with `cargo test --ignore-rust-version --test chaos -- --nocapture`.

#[path = "../it/harness/mod.rs"]
mod harness;

mod agreements;
mod bitrot;
mod disk_full;
mod gc;
mod history;
mod many_versions;
mod membership;
mod mid_write;
mod node_down;
mod slow_node;

use std::time::Duration;

use aws_sdk_s3::Client;
use futures::StreamExt;

use harness::{Cluster, ClusterOptions, eventually, pattern, put_bytes};

/// Deadline of one gateway → node call in these clusters.
const NODE_TIMEOUT: Duration = Duration::from_millis(1500);
/// Pause between two iterations of the gateway's repair worker.
const REPAIR_INTERVAL_MS: u64 = 200;
/// Pause between two anti-entropy passes, when a test wants them.
const SCAN_INTERVAL_MS: u64 = 500;
/// How long a healed fault may take to be repaired completely.
const HEAL: Duration = Duration::from_secs(30);
/// The bucket every test writes to.
const BUCKET: &str = "chaos";
/// Largest body a node stores inside the record instead of a blob file.
const INLINE_MAX: usize = 64 * 1024;

/// Three nodes, RF 3, W = R = 2, short repair intervals; anti-entropy passes on or off.
fn options(anti_entropy: bool) -> ClusterOptions {
    let scan = if anti_entropy { SCAN_INTERVAL_MS } else { 0 };
    ClusterOptions::new(3)
        .gateway_arg("--node-timeout-ms", NODE_TIMEOUT.as_millis())
        .gateway_arg("--repair-interval-ms", REPAIR_INTERVAL_MS)
        .gateway_arg("--scan-interval-ms", scan)
}

/// A chaos cluster with anti-entropy passes, and its bucket.
async fn start(anti_entropy: bool) -> Cluster {
    start_opts(options(anti_entropy)).await
}

async fn start_opts(options: ClusterOptions) -> Cluster {
    let cluster = Cluster::start_opts(options).await;
    harness::create_bucket(&cluster.client(), BUCKET).await;
    // CreateBucket answers after a write quorum; a node killed before the last replica's
    // write lands would owe a bucket repair, and the tests count the repair work they cause.
    let cluster_ref = &cluster;
    eventually(
        "every node holds the bucket",
        Duration::from_secs(10),
        || async move {
            for i in 0..cluster_ref.node_count() {
                if cluster_ref.node_bucket(i, BUCKET).await.is_none() {
                    return Err(format!("node{i} lacks {BUCKET}"));
                }
            }
            Ok(())
        },
    )
    .await;
    cluster
}

/// `n` objects under `tag/`, cycling through sizes that cover both storage paths: empty,
/// small and exactly-at-the-limit bodies inline in the record, larger ones in blob files
/// (one block, several blocks, several MiB).
fn objects(tag: &str, n: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    const SIZES: [usize; 6] = [
        1024,
        300 * 1024,
        0,
        INLINE_MAX + 1,
        INLINE_MAX,
        1024 * 1024 + 17,
    ];
    (0..n)
        .map(|i| {
            let size = SIZES[i % SIZES.len()];
            (
                format!("{tag}/{i:03}"),
                pattern(size, seed * 1000 + i as u64),
            )
        })
        .collect()
}

/// PUTs every object, four at a time; panics on any failure.
async fn put_all(s3: &Client, objects: &[(String, Vec<u8>)]) {
    futures::stream::iter(objects)
        .map(|(key, data)| async move { put_bytes(s3, BUCKET, key, data).await })
        .buffer_unordered(4)
        .collect::<Vec<()>>()
        .await;
}

/// Asserts that every object reads back through the gateway with its bytes.
async fn assert_readable(s3: &Client, objects: &[(String, Vec<u8>)], when: &str) {
    for (key, data) in objects {
        let got = harness::get_bytes(s3, BUCKET, key).await;
        harness::assert_same_bytes(&got, data, &format!("{when}: GET {key}"));
    }
}
