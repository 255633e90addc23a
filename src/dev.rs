//! `s3quorum dev`: three data nodes and a gateway in one process, on local directories.
//!
//! The keys (S3 access/secret and the cluster secret) are generated on first start and kept
//! in `DATA_DIR/credentials`, so data and keys survive restarts. Nodes listen on loopback
//! ports chosen by the OS; the gateway is the only thing a user talks to.

use std::path::Path;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, DevArgs, secret_from};

const NODES: usize = 3;

struct Credentials {
    access_key: String,
    secret_key: String,
    cluster_secret: String,
    admin_token: String,
}

fn random_token(len: usize) -> String {
    let mut s = String::new();
    while s.len() < len {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(len);
    s
}

/// Writes the credentials file, readable by its owner only.
fn keep(path: &Path, creds: &Credentials) -> Result<(), String> {
    let text = format!(
        "access_key={}\nsecret_key={}\ncluster_secret={}\nadmin_token={}\n",
        creds.access_key, creds.secret_key, creds.cluster_secret, creds.admin_token
    );
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let owner_only = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(path, owner_only)
            .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Loads the kept credentials, or makes and keeps new ones. Flags override the stored keys.
fn credentials(dir: &Path, args: &DevArgs) -> Result<Credentials, String> {
    let path = dir.join("credentials");
    let mut creds = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let get = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}=")))
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{} lacks {name}", path.display()))
            };
            let creds = Credentials {
                access_key: get("access_key")?,
                secret_key: get("secret_key")?,
                cluster_secret: get("cluster_secret")?,
                // Data directories from before the admin API get a token now.
                admin_token: get("admin_token").unwrap_or_else(|_| random_token(40)),
            };
            if get("admin_token").is_err() {
                keep(&path, &creds)?;
            }
            creds
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let creds = Credentials {
                access_key: format!("S3Q{}", random_token(17).to_uppercase()),
                secret_key: random_token(40),
                cluster_secret: random_token(40),
                admin_token: random_token(40),
            };
            keep(&path, &creds)?;
            creds
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    if let Some(t) = secret_from(
        args.s3.admin_token.as_deref(),
        args.s3.admin_token_file.as_deref(),
    )? {
        creds.admin_token = t;
    }
    if let Some(k) = &args.access_key {
        creds.access_key.clone_from(k);
    }
    if let Some(k) = &args.secret_key {
        creds.secret_key.clone_from(k);
    }
    Ok(creds)
}

/// Runs the dev cluster until `shutdown` resolves.
pub async fn run(
    args: DevArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", args.data_dir.display()))?;
    let creds = credentials(&args.data_dir, &args)?;
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut node_urls = Vec::new();
    let mut node_tasks = Vec::new();
    for i in 1..=NODES {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("cannot bind a node port: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        node_urls.push(format!("http://{addr}"));
        let config = args.disk.node_config(
            args.data_dir.join(format!("node{i}")),
            &creds.cluster_secret,
            !args.no_fsync,
        );
        let mut stop = stop_rx.clone();
        node_tasks.push(tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = node::serve(config, listener, stopped).await {
                tracing::error!(node = i, "node stopped: {e}");
            }
        }));
    }

    let config = Config {
        nodes: node_urls,
        access_key: creds.access_key.clone(),
        secret_key: creds.secret_key.clone(),
        cluster_secret: creds.cluster_secret.clone(),
        replicas: args.s3.replicas,
        write_quorum: args.s3.write_quorum,
        read_quorum: args.s3.read_quorum,
        node_timeout: std::time::Duration::from_millis(args.s3.node_timeout_ms),
        body_idle_timeout: std::time::Duration::from_millis(args.s3.body_idle_timeout_ms),
        repair_interval: std::time::Duration::from_millis(args.s3.repair_interval_ms),
        scan_interval: crate::config::scan_interval(args.s3.scan_interval_ms),
        upload_expiry: crate::config::upload_expiry(args.s3.upload_expiry_secs),
        gc_grace: std::time::Duration::from_secs(args.s3.gc_grace_secs),
        tombstone_grace: std::time::Duration::from_secs(args.s3.tombstone_grace_secs),
        gc_interval: std::time::Duration::from_millis(args.s3.gc_interval_ms),
        rebalance_rate: args.s3.rebalance_rate_mib.saturating_mul(1 << 20),
        domains: crate::config::domains(&args.s3.domains),
        admin_token: Some(creds.admin_token.clone()),
        tls_cert: args.s3.tls_cert.clone(),
        tls_key: args.s3.tls_key.clone(),
        node_ca: None,
    };
    config.validate()?;
    let s3 = TcpListener::bind(args.s3.s3_addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.s3.s3_addr))?;
    let admin = TcpListener::bind(args.s3.admin_addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.s3.admin_addr))?;
    let scheme = config.scheme();
    let s3_addr = s3.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = admin.local_addr().map_err(|e| e.to_string())?;
    println!("listening s3 {scheme}://{s3_addr}");
    println!("listening admin {scheme}://{admin_addr}");
    println!();
    println!(
        "s3quorum dev: 3 nodes + gateway, data in {}",
        args.data_dir.display()
    );
    println!("  S3 endpoint:    {scheme}://{s3_addr}");
    println!("  admin endpoint: {scheme}://{admin_addr} (/health /ready /metrics, /v1 API)");
    println!("  access key:     {}", creds.access_key);
    println!("  secret key:     {}", creds.secret_key);
    println!("  admin token:    {}", creds.admin_token);
    println!();
    println!(
        "  export AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_DEFAULT_REGION=us-east-1",
        creds.access_key, creds.secret_key
    );
    println!("  aws --endpoint-url {scheme}://{s3_addr} s3 mb s3://my-bucket");

    let mut gateway_stop = stop_rx.clone();
    let gateway = tokio::spawn(crate::run_gateway(config, s3, admin, async move {
        let _ = gateway_stop.wait_for(|s| *s).await;
    }));
    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let result = gateway
        .await
        .map_err(|e| format!("gateway task failed: {e}"))?;
    for t in node_tasks {
        let _ = t.await;
    }
    result
}
