//! Command line and environment configuration of the `s3quorum` binary, and the checks that
//! refuse impossible settings before anything starts.
//!
//! Every flag also reads `S3QUORUM_<FLAG>` from the environment. Values are parsed once in
//! `main` and passed down; nothing deeper reads the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// s3quorum: an S3-compatible object store replicated over plain-HTTP data nodes.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Three data nodes and a gateway in one process, on local directories.
    Dev(DevArgs),
    /// The stateless S3 gateway in front of a set of data nodes.
    Gateway(GatewayArgs),
    /// One data node (blob files and metadata records on local disk).
    Node(NodeArgs),
    /// Operator commands against a running gateway.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Each node's state, replication lag and repair progress, as JSON.
    Status {
        /// The gateway's admin endpoint.
        #[arg(
            long,
            env = "S3QUORUM_ADMIN_URL",
            default_value = "http://127.0.0.1:9001"
        )]
        admin_url: String,
        /// Print JSON (the only format; accepted so scripts can say so).
        #[arg(long)]
        json: bool,
    },
    /// Access keys: create, import, list, show, delete.
    #[command(subcommand)]
    Key(KeyCommand),
    /// What each key may do in a bucket.
    #[command(subcommand)]
    Bucket(BucketCommand),
    /// The cluster layout: which nodes hold data, and changing them one at a time.
    #[command(subcommand)]
    Layout(LayoutCommand),
}

/// Where the admin API is and the token it needs.
#[derive(Debug, Clone, Args)]
pub struct AdminConn {
    /// The gateway's admin endpoint.
    #[arg(
        long,
        env = "S3QUORUM_ADMIN_URL",
        default_value = "http://127.0.0.1:9001"
    )]
    pub admin_url: String,
    /// The admin token (better from the environment or a file: a command line is visible
    /// to every local user).
    #[arg(long, env = "S3QUORUM_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// A file holding the admin token.
    #[arg(long, env = "S3QUORUM_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
}

impl AdminConn {
    /// The token, from the flag, the environment or the file.
    pub fn token(&self) -> Result<String, String> {
        secret_from(
            self.admin_token.as_deref(),
            self.admin_token_file.as_deref(),
        )?
        .ok_or_else(|| "the admin API needs a token: set S3QUORUM_ADMIN_TOKEN".into())
    }
}

/// A secret given directly or in a file (trimmed); both is an error.
pub fn secret_from(
    value: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<Option<String>, String> {
    match (value, file) {
        (Some(_), Some(f)) => Err(format!(
            "give the secret or the file {} holding it, not both",
            f.display()
        )),
        (Some(v), None) => Ok(Some(v.to_owned())),
        (None, Some(f)) => std::fs::read_to_string(f)
            .map(|s| Some(s.trim().to_owned()))
            .map_err(|e| format!("cannot read {}: {e}", f.display())),
        (None, None) => Ok(None),
    }
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Creates a key and prints its id and secret (the only time the secret is shown).
    Create {
        #[command(flatten)]
        conn: AdminConn,
        name: String,
        /// RFC 3339 date-time after which the key is refused.
        #[arg(long)]
        expires_at: Option<String>,
        /// The key may create buckets (and owns those it creates).
        #[arg(long)]
        allow_create_bucket: bool,
        #[arg(long)]
        json: bool,
    },
    /// Every key (no secrets).
    List {
        #[command(flatten)]
        conn: AdminConn,
        #[arg(long)]
        json: bool,
    },
    /// One key and its grants (no secret).
    Info {
        #[command(flatten)]
        conn: AdminConn,
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Deletes a key: refused on every gateway within seconds, never valid again.
    Delete {
        #[command(flatten)]
        conn: AdminConn,
        id: String,
    },
    /// Imports a key pair made elsewhere; SECRET `-` reads it from stdin.
    Import {
        #[command(flatten)]
        conn: AdminConn,
        id: String,
        secret: String,
        name: String,
    },
}

/// The permissions a grant command names.
#[derive(Debug, Clone, Args)]
pub struct GrantArgs {
    /// The access key id.
    #[arg(long)]
    pub key: String,
    #[arg(long)]
    pub read: bool,
    #[arg(long)]
    pub write: bool,
    #[arg(long)]
    pub owner: bool,
}

impl GrantArgs {
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "key": self.key, "read": self.read, "write": self.write, "owner": self.owner,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum BucketCommand {
    /// Gives a key permissions in a bucket.
    Allow {
        #[command(flatten)]
        conn: AdminConn,
        bucket: String,
        #[command(flatten)]
        grant: GrantArgs,
    },
    /// Takes permissions from a key in a bucket.
    Deny {
        #[command(flatten)]
        conn: AdminConn,
        bucket: String,
        #[command(flatten)]
        grant: GrantArgs,
    },
    /// A bucket and its grants.
    Info {
        #[command(flatten)]
        conn: AdminConn,
        bucket: String,
        #[arg(long)]
        json: bool,
    },
}

/// A node joining the layout: where it is and what it weighs.
#[derive(Debug, Clone, Args)]
pub struct JoiningNode {
    /// The node's URL; it is asked its id there.
    pub url: String,
    /// Failure domain: with at least RF zones, a key's replicas are in distinct ones.
    #[arg(long)]
    pub zone: Option<String>,
    /// Bytes the node should hold relative to the others (default: the average).
    #[arg(long)]
    pub capacity: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum LayoutCommand {
    /// The committed layout: version, members, the migration running, the staged change.
    Show {
        #[command(flatten)]
        conn: AdminConn,
        #[arg(long)]
        json: bool,
    },
    /// Stages a new node.
    Add {
        #[command(flatten)]
        conn: AdminConn,
        #[command(flatten)]
        node: JoiningNode,
    },
    /// Stages the removal of a node.
    Remove {
        #[command(flatten)]
        conn: AdminConn,
        node_id: String,
    },
    /// Stages the replacement of a node by a fresh one.
    Replace {
        #[command(flatten)]
        conn: AdminConn,
        node_id: String,
        #[command(flatten)]
        node: JoiningNode,
    },
    /// Keys and bytes the staged change would move, per node.
    Plan {
        #[command(flatten)]
        conn: AdminConn,
        #[arg(long)]
        json: bool,
    },
    /// Makes the staged change the placement; data moves in the background.
    Apply {
        #[command(flatten)]
        conn: AdminConn,
    },
    /// Drops the staged change.
    Revert {
        #[command(flatten)]
        conn: AdminConn,
    },
}

/// Settings shared by `gateway` and `dev`.
#[derive(Debug, Clone, Args)]
pub struct S3Args {
    /// Address of the S3 listener (port 0 picks a free port).
    #[arg(long, env = "S3QUORUM_S3_ADDR", default_value = "127.0.0.1:9000")]
    pub s3_addr: SocketAddr,
    /// Address of the admin listener: /health, /ready, /metrics.
    #[arg(long, env = "S3QUORUM_ADMIN_ADDR", default_value = "127.0.0.1:9001")]
    pub admin_addr: SocketAddr,
    /// Replicas per object (RF).
    #[arg(long, env = "S3QUORUM_REPLICAS", default_value_t = 3)]
    pub replicas: usize,
    /// Replicas that must durably store a write before it is acknowledged (W).
    #[arg(long, env = "S3QUORUM_WRITE_QUORUM", default_value_t = 2)]
    pub write_quorum: usize,
    /// Replicas consulted on every read (R); R + W must exceed RF.
    #[arg(long, env = "S3QUORUM_READ_QUORUM", default_value_t = 2)]
    pub read_quorum: usize,
    /// Deadline of one gateway → node call (a whole record call, or one idle gap in a
    /// streamed body).
    #[arg(long, env = "S3QUORUM_NODE_TIMEOUT_MS", default_value_t = 10_000)]
    pub node_timeout_ms: u64,
    /// A request body that sends nothing for this long is answered 400 RequestTimeout and
    /// everything it held is released (S3 waits about 20 s).
    #[arg(long, env = "S3QUORUM_BODY_IDLE_TIMEOUT_MS", default_value_t = 20_000)]
    pub body_idle_timeout_ms: u64,
    /// Pause between two iterations of the repair worker (health checks, hints).
    #[arg(long, env = "S3QUORUM_REPAIR_INTERVAL_MS", default_value_t = 1_000)]
    pub repair_interval_ms: u64,
    /// Pause between two anti-entropy passes comparing every replica (0 turns them off).
    #[arg(long, env = "S3QUORUM_SCAN_INTERVAL_MS", default_value_t = 600_000)]
    pub scan_interval_ms: u64,
    /// Multipart uploads neither completed nor aborted this many seconds after they were
    /// created are aborted by the anti-entropy pass (0: never).
    #[arg(long, env = "S3QUORUM_UPLOAD_EXPIRY_SECS", default_value_t = 7 * 24 * 3600)]
    pub upload_expiry_secs: u64,
    /// Garbage collection deletes a blob file no record refers to only once it is this
    /// many seconds old (a write may have stored the blob and not yet its record).
    #[arg(long, env = "S3QUORUM_GC_GRACE_SECS", default_value_t = 3600)]
    pub gc_grace_secs: u64,
    /// Least pause between the starts of two garbage-collection passes; a pass runs after
    /// an anti-entropy pass once this much time has gone by (0: after every one).
    #[arg(long, env = "S3QUORUM_GC_INTERVAL_MS", default_value_t = 600_000)]
    pub gc_interval_ms: u64,
    /// Purge tombstones (and finished upload records) are dropped once held this many
    /// seconds, when every replica of the key holds them.
    #[arg(long, env = "S3QUORUM_TOMBSTONE_GRACE_SECS", default_value_t = 86_400)]
    pub tombstone_grace_secs: u64,
    /// Most MiB per second a layout change copies to new owners (0: unthrottled).
    #[arg(long, env = "S3QUORUM_REBALANCE_RATE_MIB", default_value_t = 64)]
    pub rebalance_rate_mib: u64,
    /// Base domain for virtual-hosted-style requests (`bucket.DOMAIN`); repeat the flag or
    /// separate with commas for several. Path-style requests always work.
    #[arg(long = "domain", env = "S3QUORUM_DOMAIN", value_delimiter = ',')]
    pub domains: Vec<String>,
    /// The admin API's bearer token (`dev` generates one). Without it the admin API is off.
    #[arg(long, env = "S3QUORUM_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// A file holding the admin token.
    #[arg(long, env = "S3QUORUM_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// PEM certificate chain: serve the S3 and admin listeners over TLS (with `--tls-key`;
    /// both files are read again on SIGHUP).
    #[arg(long, env = "S3QUORUM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "S3QUORUM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// Base URLs of the data nodes, comma separated (http://host:port, or https:// for a
    /// node serving TLS); any one reachable is enough to learn the layout.
    #[arg(long, env = "S3QUORUM_NODES", value_delimiter = ',', required = true)]
    pub nodes: Vec<String>,
    /// S3 access key clients sign with.
    #[arg(long, env = "S3QUORUM_ACCESS_KEY")]
    pub access_key: String,
    /// S3 secret key of the root key (better from the environment or a file: a command
    /// line is visible to every local user).
    #[arg(long, env = "S3QUORUM_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// A file holding the root key's secret.
    #[arg(long, env = "S3QUORUM_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// Shared secret every gateway → node call is signed with (it never goes on the wire).
    #[arg(long, env = "S3QUORUM_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// A file holding the cluster secret.
    #[arg(long, env = "S3QUORUM_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// PEM file of the certificate authorities trusted for `https://` node URLs (default:
    /// the system's roots). `http://` node URLs are reached in plain HTTP.
    #[arg(long, env = "S3QUORUM_NODE_CA")]
    pub node_ca: Option<PathBuf>,
    #[command(flatten)]
    pub s3: S3Args,
}

#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// Directory holding this node's blobs and record database.
    #[arg(long, env = "S3QUORUM_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "S3QUORUM_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Shared secret gateway requests are signed with; unsigned or wrongly signed ones are refused.
    #[arg(long, env = "S3QUORUM_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// A file holding the cluster secret.
    #[arg(long, env = "S3QUORUM_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Skip fsync (faster, but an acknowledged write can be lost on power failure).
    #[arg(long, env = "S3QUORUM_NO_FSYNC")]
    pub no_fsync: bool,
    /// The node's id, kept in its data directory: the one a new directory takes (default:
    /// made at random), or the one an existing directory must have (the node refuses to
    /// start with another).
    #[arg(long, env = "S3QUORUM_NODE_ID")]
    pub node_id: Option<String>,
    /// PEM certificate chain: serve TLS instead of plain HTTP (with `--tls-key`; both files
    /// are read again on SIGHUP). Gateways then reach this node at its `https://` URL.
    #[arg(long, env = "S3QUORUM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "S3QUORUM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub disk: DiskArgs,
}

/// How a node looks after its disk: the background blob scrubber and the free space kept.
#[derive(Debug, Clone, Args)]
pub struct DiskArgs {
    /// Pause between two scrubs of every blob (0 turns the scrubber off).
    #[arg(long, env = "S3QUORUM_SCRUB_INTERVAL_MS", default_value_t = 86_400_000)]
    pub scrub_interval_ms: u64,
    /// Scrub read rate in MiB/s, so scrubbing never starves client traffic.
    #[arg(long, env = "S3QUORUM_SCRUB_RATE_MIB", default_value_t = 32)]
    pub scrub_rate_mib: u64,
    /// Free space (MiB) a node keeps on its disk: below it, writes are refused cleanly and
    /// the node reports itself unhealthy (0: fill the disk up).
    #[arg(long, env = "S3QUORUM_DISK_RESERVE_MIB", default_value_t = 64)]
    pub disk_reserve_mib: u64,
}

impl DiskArgs {
    /// The node configuration for `data_dir` with these scrub settings.
    pub fn node_config(&self, data_dir: PathBuf, secret: &str, fsync: bool) -> node::Config {
        let mut config = node::Config::new(data_dir, secret);
        config.fsync = fsync;
        config.scrub_interval =
            (self.scrub_interval_ms > 0).then(|| Duration::from_millis(self.scrub_interval_ms));
        config.scrub_rate_bytes_per_sec = self.scrub_rate_mib.saturating_mul(1024 * 1024);
        config.disk_reserve_bytes = self.disk_reserve_mib.saturating_mul(1024 * 1024);
        config
    }
}

#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// Directory for the three nodes' data and the generated keys.
    #[arg(long, env = "S3QUORUM_DATA_DIR", default_value = "./s3quorum-data")]
    pub data_dir: PathBuf,
    /// S3 access key (generated and kept in DATA_DIR when absent).
    #[arg(long, env = "S3QUORUM_ACCESS_KEY")]
    pub access_key: Option<String>,
    /// S3 secret key (generated and kept in DATA_DIR when absent).
    #[arg(long, env = "S3QUORUM_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Skip fsync on the nodes.
    #[arg(long, env = "S3QUORUM_NO_FSYNC")]
    pub no_fsync: bool,
    #[command(flatten)]
    pub disk: DiskArgs,
    #[command(flatten)]
    pub s3: S3Args,
}

/// Everything the gateway needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub nodes: Vec<String>,
    pub access_key: String,
    pub secret_key: String,
    pub cluster_secret: String,
    pub replicas: usize,
    pub write_quorum: usize,
    pub read_quorum: usize,
    pub node_timeout: Duration,
    /// How long a request body may send nothing before the request fails.
    pub body_idle_timeout: Duration,
    pub repair_interval: Duration,
    /// `None`: no anti-entropy passes.
    pub scan_interval: Option<Duration>,
    /// `None`: abandoned multipart uploads are kept forever.
    pub upload_expiry: Option<Duration>,
    /// Age an unreferenced blob file must reach before garbage collection deletes it.
    pub gc_grace: Duration,
    /// Time a node must hold a purge tombstone before garbage collection drops it.
    pub tombstone_grace: Duration,
    /// Least pause between two garbage-collection passes.
    pub gc_interval: Duration,
    /// Bytes per second a migration copies at most; 0: unthrottled.
    pub rebalance_rate: u64,
    /// Base domains of virtual-hosted-style addressing (lowercase, no port).
    pub domains: Vec<String>,
    /// The admin API's bearer token; `None`: the admin API is off.
    pub admin_token: Option<String>,
    /// TLS certificate chain and key (PEM files); `None`: plain HTTP.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Roots trusted for `https://` node URLs (PEM); `None`: the system's.
    pub node_ca: Option<PathBuf>,
}

impl Config {
    /// `https` when the listeners serve TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls_cert.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

impl Config {
    /// The configuration `args` describe; secrets are read from their files here.
    pub fn from_args(args: &GatewayArgs) -> Result<Self, String> {
        let secret = |value: &Option<String>, file: &Option<PathBuf>| {
            secret_from(value.as_deref(), file.as_deref()).map(Option::unwrap_or_default)
        };
        Ok(Config {
            nodes: args
                .nodes
                .iter()
                .map(|n| n.trim().trim_end_matches('/').to_owned())
                .filter(|n| !n.is_empty())
                .collect(),
            access_key: args.access_key.clone(),
            secret_key: secret(&args.secret_key, &args.secret_key_file)?,
            cluster_secret: secret(&args.cluster_secret, &args.cluster_secret_file)?,
            replicas: args.s3.replicas,
            write_quorum: args.s3.write_quorum,
            read_quorum: args.s3.read_quorum,
            node_timeout: Duration::from_millis(args.s3.node_timeout_ms),
            body_idle_timeout: Duration::from_millis(args.s3.body_idle_timeout_ms),
            repair_interval: Duration::from_millis(args.s3.repair_interval_ms),
            scan_interval: scan_interval(args.s3.scan_interval_ms),
            upload_expiry: upload_expiry(args.s3.upload_expiry_secs),
            gc_grace: Duration::from_secs(args.s3.gc_grace_secs),
            tombstone_grace: Duration::from_secs(args.s3.tombstone_grace_secs),
            gc_interval: Duration::from_millis(args.s3.gc_interval_ms),
            rebalance_rate: args.s3.rebalance_rate_mib.saturating_mul(1 << 20),
            domains: domains(&args.s3.domains),
            admin_token: secret_from(
                args.s3.admin_token.as_deref(),
                args.s3.admin_token_file.as_deref(),
            )?,
            tls_cert: args.s3.tls_cert.clone(),
            tls_key: args.s3.tls_key.clone(),
            node_ca: args.node_ca.clone(),
        })
    }

    /// Refuses settings under which the store could not keep its promises.
    pub fn validate(&self) -> Result<(), String> {
        let (n, rf, w, r) = (
            self.nodes.len(),
            self.replicas,
            self.write_quorum,
            self.read_quorum,
        );
        if rf == 0 || w == 0 || r == 0 {
            return Err("replicas, write quorum and read quorum must all be at least 1".into());
        }
        if n < rf {
            return Err(format!(
                "{n} node(s) given but replicas = {rf}: at least {rf} nodes are needed"
            ));
        }
        if w > rf {
            return Err(format!(
                "write quorum {w} exceeds replicas {rf}: no write could ever succeed"
            ));
        }
        if r > rf {
            return Err(format!(
                "read quorum {r} exceeds replicas {rf}: no read could ever succeed"
            ));
        }
        if r + w <= rf {
            return Err(format!(
                "read quorum {r} + write quorum {w} must exceed replicas {rf}, \
                 or a read could miss an acknowledged write"
            ));
        }
        if self.node_timeout.is_zero() {
            return Err("node timeout must be greater than zero".into());
        }
        if self.body_idle_timeout.is_zero() {
            return Err("body idle timeout must be greater than zero".into());
        }
        if self.repair_interval.is_zero() {
            return Err("repair interval must be greater than zero".into());
        }
        if self.access_key.is_empty() || self.secret_key.is_empty() {
            return Err("access key and secret key must not be empty".into());
        }
        if self.cluster_secret.is_empty() {
            return Err("cluster secret must not be empty".into());
        }
        for d in &self.domains {
            let valid = d.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
            if !valid {
                return Err(format!("domain {d:?} is not a valid DNS name"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for node in &self.nodes {
            if !(node.starts_with("http://") || node.starts_with("https://")) {
                return Err(format!(
                    "node URL {node:?} must start with http:// or https://"
                ));
            }
            if !seen.insert(node) {
                return Err(format!("node URL {node:?} is listed twice"));
            }
        }
        Ok(())
    }
}

/// Base domains as the host matcher wants them: trimmed, lowercase, without a port.
pub fn domains(given: &[String]) -> Vec<String> {
    given
        .iter()
        .map(|d| crate::host::strip_port(d.trim()).to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .collect()
}

/// `0` means off.
pub fn scan_interval(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// `0` means never.
pub fn upload_expiry(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(n: usize, rf: usize, w: usize, r: usize) -> Config {
        Config {
            nodes: (0..n)
                .map(|i| format!("http://127.0.0.1:{}", 7000 + i))
                .collect(),
            access_key: "ak".into(),
            secret_key: "sk".into(),
            cluster_secret: "cs".into(),
            replicas: rf,
            write_quorum: w,
            read_quorum: r,
            node_timeout: Duration::from_secs(1),
            body_idle_timeout: Duration::from_secs(20),
            repair_interval: Duration::from_secs(1),
            scan_interval: None,
            upload_expiry: None,
            gc_grace: Duration::from_secs(3600),
            tombstone_grace: Duration::from_secs(86_400),
            gc_interval: Duration::from_secs(600),
            rebalance_rate: 0,
            domains: Vec::new(),
            admin_token: None,
            tls_cert: None,
            tls_key: None,
            node_ca: None,
        }
    }

    #[test]
    fn accepts_the_defaults_and_larger_clusters() {
        assert_eq!(config(3, 3, 2, 2).validate(), Ok(()));
        assert_eq!(config(5, 3, 2, 2).validate(), Ok(()));
        assert_eq!(config(5, 5, 3, 3).validate(), Ok(()));
        assert_eq!(config(1, 1, 1, 1).validate(), Ok(()));
    }

    #[test]
    fn refuses_impossible_settings() {
        for (n, rf, w, r) in [
            (2, 3, 2, 2), // fewer nodes than replicas
            (3, 3, 4, 2), // W > RF
            (3, 3, 2, 4), // R > RF
            (3, 3, 1, 2), // R + W = RF
            (3, 3, 1, 1), // R + W < RF
            (3, 3, 0, 3), // zero quorum
            (3, 0, 0, 0),
        ] {
            assert!(
                config(n, rf, w, r).validate().is_err(),
                "accepted n={n} rf={rf} w={w} r={r}"
            );
        }
    }

    #[test]
    fn refuses_zero_timeout_empty_secrets_and_duplicate_nodes() {
        let mut c = config(3, 3, 2, 2);
        c.node_timeout = Duration::ZERO;
        assert!(c.validate().is_err());
        let mut c = config(3, 3, 2, 2);
        c.cluster_secret.clear();
        assert!(c.validate().is_err());
        let mut c = config(3, 3, 2, 2);
        c.nodes[2] = c.nodes[0].clone();
        assert!(c.validate().is_err());
        let mut c = config(3, 3, 2, 2);
        c.nodes[1] = "ftp://x".into();
        assert!(c.validate().is_err());
    }

    #[test]
    fn domains_may_be_repeated_or_comma_separated_and_must_be_dns_names() {
        let cli = Cli::try_parse_from([
            "s3quorum",
            "gateway",
            "--nodes",
            "http://127.0.0.1:1,http://127.0.0.1:2,http://127.0.0.1:3",
            "--access-key",
            "ak",
            "--secret-key",
            "sk",
            "--cluster-secret",
            "cs",
            "--domain",
            "s3.a.test,S3.B.test",
            "--domain",
            "c.test:9000",
        ])
        .expect("valid command line");
        let Command::Gateway(args) = cli.command else {
            panic!("not the gateway command");
        };
        let c = Config::from_args(&args).expect("secrets given");
        assert_eq!(c.domains, ["s3.a.test", "s3.b.test", "c.test"]);
        assert_eq!(c.validate(), Ok(()));
        let mut c = config(3, 3, 2, 2);
        c.domains = vec!["bad domain".into()];
        assert!(c.validate().is_err());
        c.domains = vec!["a..test".into()];
        assert!(c.validate().is_err());
    }

    #[test]
    fn secrets_come_from_a_value_or_a_file_never_both() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("secret");
        std::fs::write(&file, "  from-a-file\n").expect("write");
        assert_eq!(secret_from(Some("v"), None), Ok(Some("v".to_owned())));
        assert_eq!(
            secret_from(None, Some(&file)),
            Ok(Some("from-a-file".to_owned()))
        );
        assert_eq!(secret_from(None, None), Ok(None));
        assert!(secret_from(Some("v"), Some(&file)).is_err());
        assert!(secret_from(None, Some(&dir.path().join("missing"))).is_err());
    }
}
