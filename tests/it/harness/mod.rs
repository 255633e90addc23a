//! A throwaway s3quorum cluster of real processes: n nodes and one gateway, each bound to
//! `127.0.0.1:0` and announcing its address on stdout, all in one temp directory.
//!
//! Invariants: every child is killed and reaped when the `Cluster` drops, also when the test
//! panics (then the tail of every log is printed). Waits are polls with deadlines, never
//! fixed sleeps. The harness knows the CLI contract of the binary and nothing of its
//! internals; `node_*` helpers speak the node's wire contract from `node::proto`.
//!
//! Faults for the chaos tests: kill and restart nodes (also on a wiped data dir) and the
//! gateway (same ports, same flags), SIGSTOP/SIGCONT a node, flip a byte of a blob file;
//! `Cluster::assert_converged` is the check every chaos test ends with. Shared by the `it`
//! and `chaos` test binaries; each uses only part of it.

#![allow(dead_code, unused_imports)]

mod admin;
mod converge;
mod http;
mod nodes;
mod sigv4;
mod util;

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use bytes::Bytes;
use hyper::Method;
use node::proto::{self, BucketRecord, ObjectRecord};
use tempfile::TempDir;

pub use admin::{ADMIN_TOKEN, Grant};
pub use converge::CONVERGE_TIMEOUT;
pub use http::{RawResponse, keep_alive_probe, raw_request, try_raw_request};
pub use nodes::{blob_files_under, sign_node_call};
pub use sigv4::sha256_hex;
pub use util::*;

/// How long a process may take to announce its address, and a node or gateway to answer
/// `/health`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of each log printed when a test fails.
const LOG_TAIL_LINES: usize = 60;
/// What a node prints on stdout once bound, before its URL.
const NODE_BANNER: &str = "listening node ";

/// One child process and where its stderr goes.
struct Proc {
    name: String,
    child: Option<Child>,
}

impl Proc {
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL: the chaos we want, and nothing survives the test.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct NodeProc {
    proc: Proc,
    data_dir: PathBuf,
    url: String,
}

/// How to start a cluster: its size, quorums and extra flags for the processes. The
/// defaults are what `Cluster::start` uses.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    nodes: usize,
    replicas: usize,
    gateway_args: Vec<String>,
    node_args: Vec<String>,
    /// The gateways' admin token; `None`: the admin API is off.
    admin_token: Option<String>,
}

impl ClusterOptions {
    /// `n` nodes with RF = min(n, 3) and majority quorums.
    pub fn new(n: usize) -> ClusterOptions {
        ClusterOptions {
            nodes: n,
            replicas: n.min(3),
            gateway_args: Vec::new(),
            node_args: Vec::new(),
            admin_token: Some(ADMIN_TOKEN.to_owned()),
        }
    }

    /// Gateways without an admin token (the admin API off).
    pub fn without_admin_token(mut self) -> ClusterOptions {
        self.admin_token = None;
        self
    }

    /// Stores every object on `replicas` of the nodes.
    pub fn replicas(mut self, replicas: usize) -> ClusterOptions {
        self.replicas = replicas;
        self
    }

    /// Passes `--flag value` to the gateway (also after a gateway restart).
    pub fn gateway_arg(mut self, flag: &str, value: impl ToString) -> ClusterOptions {
        self.gateway_args.push(flag.to_string());
        self.gateway_args.push(value.to_string());
        self
    }

    /// Passes `--flag value` to every node (also after a node restart).
    pub fn node_arg(mut self, flag: &str, value: impl ToString) -> ClusterOptions {
        self.node_args.push(flag.to_string());
        self.node_args.push(value.to_string());
        self
    }
}

/// A running cluster. Dropping it kills every process.
pub struct Cluster {
    dir: Option<TempDir>,
    nodes: Vec<NodeProc>,
    gateway: Option<Proc>,
    /// More gateways on the same nodes (`start_extra_gateway`), with their S3 URLs.
    extra_gateways: Vec<(Proc, String)>,
    options: ClusterOptions,
    s3_url: String,
    admin_url: String,
    access_key: String,
    secret_key: String,
    cluster_secret: String,
}

impl Cluster {
    /// `n` nodes and a gateway with the default quorums (RF = min(n, 3), W = R = 2).
    pub async fn start(n: usize) -> Cluster {
        Cluster::start_opts(ClusterOptions::new(n)).await
    }

    /// `n` nodes and a gateway storing every object on `replicas` of them.
    pub async fn start_with(n: usize, replicas: usize) -> Cluster {
        Cluster::start_opts(ClusterOptions::new(n).replicas(replicas)).await
    }

    /// A cluster as `options` describe it.
    pub async fn start_opts(options: ClusterOptions) -> Cluster {
        let (n, replicas) = (options.nodes, options.replicas);
        assert!(n >= 1 && replicas >= 1 && replicas <= n);
        let dir = tempfile::Builder::new()
            .prefix("s3q-it-")
            .tempdir()
            .expect("create the cluster temp dir");
        let unique = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let mut cluster = Cluster {
            dir: Some(dir),
            nodes: Vec::new(),
            gateway: None,
            extra_gateways: Vec::new(),
            options,
            s3_url: String::new(),
            admin_url: String::new(),
            access_key: "S3QTESTACCESSKEY".to_string(),
            secret_key: "s3q-test-secret-key-0123456789".to_string(),
            cluster_secret: format!("s3q-test-cluster-{unique}"),
        };
        // The cluster exists before the first spawn, so a failed start still kills and
        // reaps whatever did start (Drop runs during the panic).
        for _ in 0..n {
            cluster.spawn_node();
        }
        let (s3, admin) = cluster.spawn_gateway("127.0.0.1:0", "127.0.0.1:0");
        (cluster.s3_url, cluster.admin_url) = (s3, admin);
        for i in 0..n {
            wait_healthy(&format!("{}/health", cluster.node_url(i))).await;
        }
        wait_healthy(&format!("{}/health", cluster.admin_url)).await;
        cluster
    }

    /// Starts one more node process on a fresh data directory (not a member of anything
    /// until a layout change adds it); its index.
    fn spawn_node(&mut self) -> usize {
        let i = self.nodes.len();
        let data_dir = self.dir().join(format!("node{i}")).join("data");
        fs::create_dir_all(&data_dir).expect("create a node data dir");
        let name = format!("node{i}");
        let args = self.node_args(&data_dir, "127.0.0.1:0");
        let (child, mut urls) = spawn_announcing(self.dir(), &name, &args, &[NODE_BANNER])
            .unwrap_or_else(|e| panic!("{e}"));
        self.nodes.push(NodeProc {
            proc: Proc {
                name,
                child: Some(child),
            },
            data_dir,
            url: urls.remove(0),
        });
        i
    }

    /// [`Cluster::spawn_node`], waiting for its `/health`.
    pub async fn start_new_node(&mut self) -> usize {
        let i = self.spawn_node();
        wait_healthy(&format!("{}/health", self.node_url(i))).await;
        i
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().expect("cluster dir").path()
    }

    fn node_args(&self, data_dir: &Path, listen: &str) -> Vec<String> {
        let mut args = vec![
            "node".to_string(),
            "--data-dir".to_string(),
            data_dir.display().to_string(),
            "--listen".to_string(),
            listen.to_string(),
            "--cluster-secret".to_string(),
            self.cluster_secret.clone(),
        ];
        args.extend(self.options.node_args.iter().cloned());
        args
    }

    /// Spawns the gateway on the given addresses; returns its S3 and admin URLs.
    fn spawn_gateway(&mut self, s3_addr: &str, admin_addr: &str) -> (String, String) {
        self.try_spawn_gateway(s3_addr, admin_addr)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_spawn_gateway(
        &mut self,
        s3_addr: &str,
        admin_addr: &str,
    ) -> Result<(String, String), String> {
        let (child, urls) = self.spawn_gateway_proc("gateway", s3_addr, admin_addr)?;
        self.gateway = Some(Proc {
            name: "gateway".to_string(),
            child: Some(child),
        });
        Ok((urls[0].clone(), urls[1].clone()))
    }

    /// Starts one more gateway on the same nodes and returns a default client for it. It
    /// runs until the cluster is dropped.
    pub async fn start_extra_gateway(&mut self) -> Client {
        let name = format!("gateway{}", self.extra_gateways.len() + 2);
        let (child, urls) = self
            .spawn_gateway_proc(&name, "127.0.0.1:0", "127.0.0.1:0")
            .unwrap_or_else(|e| panic!("{e}"));
        let proc = Proc {
            name,
            child: Some(child),
        };
        self.extra_gateways.push((proc, urls[0].clone()));
        wait_healthy(&format!("{}/health", urls[1])).await;
        self.build_client_for(&urls[0], &self.access_key, &self.secret_key, false)
    }

    fn spawn_gateway_proc(
        &self,
        name: &str,
        s3_addr: &str,
        admin_addr: &str,
    ) -> Result<(Child, Vec<String>), String> {
        let nodes: Vec<&str> = self.nodes.iter().map(|n| n.url.as_str()).collect();
        let (write_quorum, read_quorum) = match self.options.replicas {
            1 => (1, 1),
            2 => (2, 1),
            rf => (rf / 2 + 1, rf / 2 + 1),
        };
        let mut args: Vec<String> = [
            "gateway",
            "--nodes",
            &nodes.join(","),
            "--s3-addr",
            s3_addr,
            "--admin-addr",
            admin_addr,
            "--access-key",
            &self.access_key,
            "--secret-key",
            &self.secret_key,
            "--cluster-secret",
            &self.cluster_secret,
            "--replicas",
            &self.options.replicas.to_string(),
            "--write-quorum",
            &write_quorum.to_string(),
            "--read-quorum",
            &read_quorum.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(self.options.gateway_args.iter().cloned());
        if let Some(token) = &self.options.admin_token {
            args.extend(["--admin-token".to_owned(), token.clone()]);
        }
        let wanted = ["listening s3 ", "listening admin "];
        spawn_announcing(self.dir(), name, &args, &wanted)
    }

    /// SIGKILLs node `i` and reaps it. Its data dir and port are kept for `restart_node`.
    pub fn kill_node(&mut self, i: usize) {
        self.nodes[i].proc.kill();
    }

    /// Starts node `i` again on its data dir and its old port, and waits for `/health`.
    pub async fn restart_node(&mut self, i: usize) {
        assert!(self.nodes[i].proc.child.is_none(), "node{i} is running");
        let old_url = self.nodes[i].url.clone();
        let listen = old_url
            .strip_prefix("http://")
            .expect("node urls are http://host:port")
            .to_string();
        let data_dir = self.nodes[i].data_dir.clone();
        let name = self.nodes[i].proc.name.clone();
        append_marker(self.dir(), &name, "restart");
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        // The old port can stay busy for a moment after the kill; retry until the deadline.
        let child = loop {
            let args = self.node_args(&data_dir, &listen);
            match spawn_announcing(self.dir(), &name, &args, &[NODE_BANNER]) {
                Ok((child, urls)) => {
                    assert_eq!(urls[0], old_url, "node{i} came back on another address");
                    break child;
                }
                Err(e) if Instant::now() < deadline => {
                    eprintln!("restart of {name} failed, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("restart of {name}: {e}"),
            }
        };
        self.nodes[i].proc.child = Some(child);
        wait_healthy(&format!("{old_url}/health")).await;
    }

    /// Empties the data directory of node `i`, which must be down: a node that lost its
    /// disk and comes back with a fresh one.
    pub fn wipe_node(&mut self, i: usize) {
        assert!(self.nodes[i].proc.child.is_none(), "node{i} is running");
        let dir = &self.nodes[i].data_dir;
        fs::remove_dir_all(dir).unwrap_or_else(|e| panic!("wipe {}: {e}", dir.display()));
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        append_marker(self.dir(), &self.nodes[i].proc.name, "data dir wiped");
    }

    /// Freezes node `i` with SIGSTOP: it keeps its sockets (connections are accepted by
    /// the kernel) but answers nothing until `continue_node`.
    pub fn stop_node(&mut self, i: usize) {
        self.signal_node(i, "-STOP");
    }

    /// Resumes node `i` after `stop_node` (SIGCONT).
    pub fn continue_node(&mut self, i: usize) {
        self.signal_node(i, "-CONT");
    }

    fn signal_node(&mut self, i: usize, signal: &str) {
        let pid = self.nodes[i]
            .proc
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("node{i} is not running"))
            .id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill {signal} {pid}: {e}"));
        assert!(status.success(), "kill {signal} {pid} (node{i}): {status}");
        let what = format!("kill {signal}");
        append_marker(self.dir(), &self.nodes[i].proc.name, &what);
    }

    /// The gateway's resident memory (`VmRSS`), bytes.
    pub fn gateway_rss(&self) -> u64 {
        let pid = self
            .gateway
            .as_ref()
            .and_then(|g| g.child.as_ref())
            .map(|c| c.id())
            .expect("the gateway is running");
        rss_of(pid)
    }

    /// Node `i`'s resident memory (`VmRSS`), bytes.
    #[allow(dead_code)] // Used by one binary only.
    pub fn node_rss(&self, i: usize) -> u64 {
        let pid = self.nodes[i]
            .proc
            .child
            .as_ref()
            .map(|c| c.id())
            .expect("the node is running");
        rss_of(pid)
    }

    /// SIGKILLs the gateway and reaps it. Clients keep its address for `start_gateway`.
    pub fn kill_gateway(&mut self) {
        if let Some(gateway) = self.gateway.as_mut() {
            gateway.kill();
        }
        self.gateway = None;
    }

    /// Starts the gateway again with the same flags on its old S3 and admin ports, and
    /// waits for `/health`.
    pub async fn start_gateway(&mut self) {
        assert!(self.gateway.is_none(), "the gateway is running");
        let s3 = self.s3_url.strip_prefix("http://").expect("http url");
        let admin = self.admin_url.strip_prefix("http://").expect("http url");
        let (s3, admin) = (s3.to_string(), admin.to_string());
        append_marker(self.dir(), "gateway", "restart");
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            match self.try_spawn_gateway(&s3, &admin) {
                Ok(urls) => {
                    assert_eq!(
                        urls,
                        (self.s3_url.clone(), self.admin_url.clone()),
                        "the gateway came back on other addresses"
                    );
                    break;
                }
                Err(e) if Instant::now() < deadline => {
                    eprintln!("restart of the gateway failed, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("restart of the gateway: {e}"),
            }
        }
        wait_healthy(&format!("{}/health", self.admin_url)).await;
    }

    /// Sets `--flag value` for the gateway's next start (replacing an earlier value).
    pub fn set_gateway_arg(&mut self, flag: &str, value: impl ToString) {
        let args = &mut self.options.gateway_args;
        match args.iter().position(|a| a == flag) {
            Some(at) => args[at + 1] = value.to_string(),
            None => {
                args.push(flag.to_string());
                args.push(value.to_string());
            }
        }
    }

    /// `kill_gateway` then `start_gateway`.
    pub async fn restart_gateway(&mut self) {
        self.kill_gateway();
        self.start_gateway().await;
    }

    /// Replicas per object (RF) the gateway was started with.
    pub fn replicas(&self) -> usize {
        self.options.replicas
    }

    /// Where node `i` keeps its data.
    pub fn node_data_dir(&self, i: usize) -> &Path {
        &self.nodes[i].data_dir
    }

    /// The file of blob `id` on node `i` (`blobs/<first two hex chars>/<id>`).
    pub fn blob_path(&self, i: usize, id: &str) -> PathBuf {
        self.nodes[i].data_dir.join("blobs").join(&id[..2]).join(id)
    }

    /// The gateway's Prometheus text (admin `/metrics`).
    pub async fn gateway_metrics(&self) -> String {
        let url = format!("{}/metrics", self.admin_url);
        let resp = raw_request(Method::GET, &url, &[], Bytes::new()).await;
        assert_eq!(resp.status, 200, "GET {url}: {}", resp.text());
        resp.text()
    }

    /// Sum of every sample of gateway metric `name` (see [`metric_sum`]); 0 when absent.
    pub async fn gateway_metric(&self, name: &str) -> f64 {
        metric_sum(&self.gateway_metrics().await, name).unwrap_or(0.0)
    }

    /// Node `i`'s Prometheus text (its `/metrics`, no secret needed).
    pub async fn node_metrics(&self, i: usize) -> String {
        let url = format!("{}/metrics", self.node_url(i));
        let resp = raw_request(Method::GET, &url, &[], Bytes::new()).await;
        assert_eq!(resp.status, 200, "GET {url}: {}", resp.text());
        resp.text()
    }

    /// The gateway's admin `/status` as JSON.
    pub async fn gateway_status(&self) -> serde_json::Value {
        let url = format!("{}/status", self.admin_url);
        let resp = raw_request(Method::GET, &url, &[], Bytes::new()).await;
        assert_eq!(resp.status, 200, "GET {url}: {}", resp.text());
        resp.json()
    }

    /// Number of nodes, running or not.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Base URL of node `i`, e.g. `http://127.0.0.1:41234`.
    pub fn node_url(&self, i: usize) -> &str {
        &self.nodes[i].url
    }

    /// The cluster secret every node call must carry.
    pub fn secret(&self) -> &str {
        &self.cluster_secret
    }

    /// Base URL of the gateway's admin port.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// Base URL of the gateway's S3 port.
    pub fn s3_url(&self) -> &str {
        &self.s3_url
    }

    /// The key pair the gateway was started with.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// An S3 client with the SDK's default checksum behaviour (CRC32 on every PUT).
    pub fn client(&self) -> Client {
        self.build_client(&self.access_key, &self.secret_key, false)
    }

    /// An S3 client that sends and validates checksums only where an API requires them.
    pub fn client_when_required(&self) -> Client {
        self.build_client(&self.access_key, &self.secret_key, true)
    }

    /// Both clients, labelled, for tests that must pass with either checksum setting.
    pub fn clients(&self) -> [(&'static str, Client); 2] {
        [
            ("default", self.client()),
            ("when-required", self.client_when_required()),
        ]
    }

    /// A default client signing with other keys.
    pub fn client_with_keys(&self, access_key: &str, secret_key: &str) -> Client {
        self.build_client(access_key, secret_key, false)
    }

    /// S3 URLs of every gateway: the first one's, then each extra gateway's.
    pub fn gateway_urls(&self) -> Vec<String> {
        std::iter::once(self.s3_url.clone())
            .chain(self.extra_gateways.iter().map(|(_, url)| url.clone()))
            .collect()
    }

    /// A client of the gateway at `url` whose calls give up after `timeout`, without
    /// retries: what a history records as one operation.
    pub fn client_with_timeout(&self, url: &str, timeout: Duration) -> Client {
        let conf = self
            .client_builder(&self.access_key, &self.secret_key)
            .endpoint_url(url)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_timeout(timeout)
                    .build(),
            );
        Client::from_conf(conf.build())
    }

    /// A client (for presigning) that addresses `endpoint` instead of the gateway's URL,
    /// path-style or virtual-hosted-style.
    pub fn client_for_endpoint(&self, endpoint: &str, path_style: bool) -> Client {
        let conf = self
            .client_builder(&self.access_key, &self.secret_key)
            .endpoint_url(endpoint)
            .force_path_style(path_style);
        Client::from_conf(conf.build())
    }

    fn build_client(&self, access_key: &str, secret_key: &str, when_required: bool) -> Client {
        self.build_client_for(&self.s3_url, access_key, secret_key, when_required)
    }

    fn build_client_for(
        &self,
        url: &str,
        access_key: &str,
        secret_key: &str,
        when_required: bool,
    ) -> Client {
        let mut conf = self
            .client_builder(access_key, secret_key)
            .endpoint_url(url);
        if when_required {
            conf = conf
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        Client::from_conf(conf.build())
    }

    fn client_builder(&self, access_key: &str, secret_key: &str) -> aws_sdk_s3::config::Builder {
        aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                access_key, secret_key, None, None, "s3q-it",
            ))
            .endpoint_url(&self.s3_url)
            .force_path_style(true)
            // Tests assert what the gateway answers first; retries would hide a flaky 5xx.
            .retry_config(RetryConfig::disabled())
            // A hang is a failure, not a stuck test run.
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(120))
                    .build(),
            )
    }

    fn print_log_tails(&self) {
        let Ok(entries) = fs::read_dir(self.dir()) else {
            return;
        };
        let mut logs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        for path in logs {
            let text = fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(LOG_TAIL_LINES);
            eprintln!(
                "----- {} (last {} of {} lines) -----",
                path.display(),
                lines.len() - from,
                lines.len()
            );
            for line in &lines[from..] {
                eprintln!("{line}");
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(gateway) = self.gateway.as_mut() {
            gateway.kill();
        }
        for (gateway, _) in &mut self.extra_gateways {
            gateway.kill();
        }
        for node in &mut self.nodes {
            node.proc.kill();
        }
        if std::thread::panicking() && self.dir.is_some() {
            self.print_log_tails();
            if std::env::var_os("S3Q_KEEP_TEST_DIRS").is_some() {
                let kept = self.dir.take().unwrap().keep();
                eprintln!("----- cluster dir kept: {} -----", kept.display());
            }
        }
    }
}

/// Spawns the binary with `args`, stderr appended to `<dir>/<name>.stderr.log`, and waits
/// until stdout has shown one line starting with each of `wanted`; returns what follows
/// each prefix, in the order of `wanted`. Stdout keeps being copied to
/// `<dir>/<name>.stdout.log` so the child never blocks on a full pipe.
fn spawn_announcing(
    dir: &Path,
    name: &str,
    args: &[String],
    wanted: &[&str],
) -> Result<(Child, Vec<String>), String> {
    let stderr_path = dir.join(format!("{name}.stderr.log"));
    let stderr = open_append(&stderr_path);
    let mut child = Command::new(env!("CARGO_BIN_EXE_s3quorum"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_string()),
        )
        .env("RUST_BACKTRACE", "1")
        .spawn()
        .map_err(|e| format!("spawn {name}: {e}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let mut stdout_log = open_append(&dir.join(format!("{name}.stdout.log")));
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(stdout_log, "{line}");
            let _ = tx.send(line);
        }
    });

    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let mut found: Vec<Option<String>> = vec![None; wanted.len()];
    while found.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                for (slot, prefix) in found.iter_mut().zip(wanted) {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        *slot = Some(rest.trim().trim_end_matches('/').to_string());
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{name} did not print {wanted:?} within {STARTUP_TIMEOUT:?}; stderr: {}",
                    tail(&stderr_path, 20)
                ));
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = child.wait();
                return Err(format!(
                    "{name} closed stdout ({status:?}) before printing {wanted:?}; stderr: {}",
                    tail(&stderr_path, 20)
                ));
            }
        }
    }
    Ok((child, found.into_iter().map(Option::unwrap).collect()))
}

fn open_append(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

fn append_marker(dir: &Path, name: &str, what: &str) {
    for stream in ["stdout", "stderr"] {
        let mut f = open_append(&dir.join(format!("{name}.{stream}.log")));
        let _ = writeln!(f, "===== s3q-it: {what} =====");
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    format!("\n{}", all[all.len().saturating_sub(lines)..].join("\n"))
}

/// Polls `url` until it answers 200, or panics after `STARTUP_TIMEOUT`.
async fn wait_healthy(url: &str) {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        let last = match http::try_raw_request(Method::GET, url, &[], Bytes::new()).await {
            Ok(resp) if resp.status == 200 => return,
            Ok(resp) => format!("status {}", resp.status),
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "{url} not healthy within {STARTUP_TIMEOUT:?}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The resident memory (`VmRSS`) of process `pid`, bytes.
fn rss_of(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}
