//! A node whose disk fills up. With a reserve, writes are refused before anything is
//! written and the node reports itself unhealthy at once; without one, the record database
//! hits ENOSPC for real, the node reports the fault at once, and in both cases it is
//! healthy and writable again, without a restart, once space is freed. Acknowledged writes
//! stay intact throughout, and no half-written blob or record is left behind.
//!
//! The full disk is a small tmpfs mounted over one node's data directory (CI runs as
//! root; where mounting is refused the tests say so and skip).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;

use crate::harness::*;
use crate::{BUCKET, HEAL, options, put_all, start_opts};

/// The node whose disk fills up.
const FULL: usize = 2;

/// A tmpfs mounted for the test; unmounted (lazily, so even while in use) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, mib: u64) -> Result<Tmpfs, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Moves node `FULL` onto a fresh `mib` MiB tmpfs (anti-entropy refills it); `None` when
/// this machine does not let the test mount one.
async fn onto_tmpfs(cluster: &mut Cluster, mib: u64) -> Option<Tmpfs> {
    cluster.kill_node(FULL);
    cluster.wipe_node(FULL);
    let tmpfs = match Tmpfs::mount(cluster.node_data_dir(FULL), mib) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("SKIPPED: cannot mount a tmpfs here ({e})");
            return None;
        }
    };
    cluster.restart_node(FULL).await;
    Some(tmpfs)
}

/// Fills the file system at `dir` with a file, then gives `leave` bytes back.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let path = dir.join("filler");
    let mut file = fs::File::create(&path).expect("create filler");
    let chunk = vec![0x5a; 1 << 20];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(_) => break,
        }
    }
    let _ = file.flush();
    file.set_len(written.saturating_sub(leave))
        .expect("shrink filler");
    path
}

async fn node_health(cluster: &Cluster, i: usize) -> (u16, String) {
    let resp = cluster
        .node_request(i, Method::GET, "/health", Bytes::new())
        .await;
    (resp.status, resp.text())
}

/// Polls until node `i`'s `/health` answers `status` with a text containing `says`.
async fn wait_health(cluster: &Cluster, i: usize, status: u16, says: &str) {
    eventually(
        &format!("node{i} /health answers {status} ({says})"),
        Duration::from_secs(15),
        || async move {
            match node_health(cluster, i).await {
                (s, text) if s == status && text.contains(says) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

/// What node `i` holds of `objects`: every record it has refers to bytes it has.
async fn assert_nothing_half_written(cluster: &Cluster, i: usize, objects: &[(String, Vec<u8>)]) {
    let tmp: Vec<_> = fs::read_dir(cluster.node_data_dir(i).join("tmp"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "node{i} left temp files: {tmp:?}");
    for (key, data) in objects {
        if cluster.node_record(i, BUCKET, key).await.is_some() {
            let got = cluster.node_object_bytes(i, BUCKET, key).await;
            assert_eq!(
                got.as_deref(),
                Some(data.as_slice()),
                "node{i} has a record of {key} without its bytes"
            );
        }
    }
}

fn objects(tag: &str, n: usize, size: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| (format!("{tag}/{i:03}"), pattern(size, 900 + i as u64)))
        .collect()
}

#[tokio::test]
async fn a_disk_short_of_its_reserve_refuses_writes_cleanly_and_recovers_without_a_restart() {
    let mut cluster = start_opts(options(true).node_arg("--disk-reserve-mib", 8)).await;
    let s3 = cluster.client();
    let Some(tmpfs) = onto_tmpfs(&mut cluster, 48).await else {
        return;
    };
    let before = objects("before", 4, 200_000);
    put_all(&s3, &before).await;
    cluster.assert_converged(BUCKET, &before).await;

    let filler = fill(&tmpfs.0, 4 << 20);
    wait_health(&cluster, FULL, 503, "disk full").await;
    let free = metric_sum(&cluster.node_metrics(FULL).await, "node_disk_free_bytes");
    assert!(
        free.is_some_and(|f| f < (8 << 20) as f64),
        "node_disk_free_bytes = {free:?}"
    );
    let series = format!("node_up{{node=\"{}\"}}", cluster.node_url(FULL));
    let cluster_ref = &cluster;
    let series_ref = &series;
    eventually("the gateway sees the full node down", HEAL, || async move {
        match metric_sum(&cluster_ref.gateway_metrics().await, series_ref) {
            Some(0.0) => Ok(()),
            v => Err(format!("{series_ref} = {v:?}")),
        }
    })
    .await;

    // Writes go on with the two other nodes; none is half-written on the full one.
    let during = [
        objects("during-blob", 4, 300_000),
        objects("during-small", 8, 2000),
    ]
    .concat();
    put_all(&s3, &during).await;
    assert_nothing_half_written(&cluster, FULL, &during).await;

    // With another node down the cluster cannot write; it can again as soon as space is
    // freed on the full node, which needs no restart.
    cluster.kill_node(0);
    let refused = s3
        .put_object()
        .bucket(BUCKET)
        .key("refused")
        .body(pattern(1000, 1).into())
        .send()
        .await;
    assert_s3_status(refused, 503);
    fs::remove_file(&filler).expect("free the disk");
    wait_health(&cluster, FULL, 200, "ok").await;
    let after = objects("after", 3, 100_000);
    eventually("writes succeed with node0 down", HEAL, || async {
        for (key, data) in &after {
            let put = s3
                .put_object()
                .bucket(BUCKET)
                .key(key)
                .body(data.clone().into())
                .send()
                .await;
            if let Err(e) = put {
                return Err(format!("PUT {key}: {e:?}"));
            }
        }
        Ok(())
    })
    .await;
    cluster.restart_node(0).await;
    let all = [before, during, after].concat();
    cluster.assert_converged(BUCKET, &all).await;
}

#[tokio::test]
async fn a_record_database_that_hits_enospc_reports_it_at_once_and_reopens_when_space_is_back() {
    let mut cluster = start_opts(options(true).node_arg("--disk-reserve-mib", 0)).await;
    let s3 = cluster.client();
    let Some(tmpfs) = onto_tmpfs(&mut cluster, 32).await else {
        return;
    };
    let filler = fill(&tmpfs.0, 0);
    // Small bodies live in the records: enough of them make the database grow, which the
    // full disk refuses.
    let mut written = Vec::new();
    let cluster_ref = &cluster;
    for batch in 0..40 {
        let more = objects(&format!("fill-{batch:02}"), 8, 60_000);
        put_all(&s3, &more).await;
        written.extend(more);
        let (status, text) = node_health(cluster_ref, FULL).await;
        if status == 503 {
            assert!(text.contains("record database failed"), "{text}");
            break;
        }
    }
    let (status, text) = node_health(&cluster, FULL).await;
    assert_eq!(
        status, 503,
        "the full disk never failed the record database: {text}"
    );

    // The database reopens (to its last commit) as soon as there is room for it.
    fs::remove_file(&filler).expect("free the disk");
    wait_health(&cluster, FULL, 200, "ok").await;
    assert_nothing_half_written(&cluster, FULL, &written).await;
    let after = objects("after", 4, 60_000);
    put_all(&s3, &after).await;
    written.extend(after);
    cluster.assert_converged(BUCKET, &written).await;
}
