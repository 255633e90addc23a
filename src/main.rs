//! The `s3quorum` binary: parse the command line, set up logging, run a subcommand.

use std::process::ExitCode;

use clap::Parser;
use s3quorum::config::{AdminCommand, Cli, Command, Config, secret_from};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("s3quorum: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s3quorum: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Dev(args) => s3quorum::dev::run(args, ctrl_c()).await,
        Command::Gateway(args) => {
            let config = Config::from_args(&args)?;
            config.validate()?;
            let s3 = bind(args.s3.s3_addr).await?;
            let admin = bind(args.s3.admin_addr).await?;
            announce("s3", config.scheme(), &s3)?;
            announce("admin", config.scheme(), &admin)?;
            s3quorum::run_gateway(config, s3, admin, ctrl_c()).await
        }
        Command::Admin(AdminCommand::Status { admin_url, .. }) => {
            let text = s3quorum::server::fetch_status(&admin_url).await?;
            print!("{text}");
            Ok(())
        }
        Command::Admin(AdminCommand::Key(command)) => {
            print!("{}", s3quorum::admin::cli::key(command).await?);
            Ok(())
        }
        Command::Admin(AdminCommand::Layout(command)) => {
            print!("{}", s3quorum::admin::cli::layout(command).await?);
            Ok(())
        }
        Command::Admin(AdminCommand::Bucket(command)) => {
            print!("{}", s3quorum::admin::cli::bucket(command).await?);
            Ok(())
        }
        Command::Node(args) => {
            let secret = secret_from(
                args.cluster_secret.as_deref(),
                args.cluster_secret_file.as_deref(),
            )?
            .ok_or("a node needs the cluster secret (S3QUORUM_CLUSTER_SECRET or --cluster-secret-file)")?;
            let mut config = args
                .disk
                .node_config(args.data_dir, &secret, !args.no_fsync);
            config.node_id = args.node_id;
            if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
                let tls = node::tls::Tls::new(cert, key)?;
                tls.reload_on_sighup();
                config.tls = Some(tls);
            }
            config.validate().map_err(|e| e.to_string())?;
            let listener = bind(args.listen).await?;
            let scheme = if config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            announce("node", scheme, &listener)?;
            node::serve(config, listener, ctrl_c())
                .await
                .map_err(|e| e.to_string())
        }
    }
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}

/// Prints the bound address on stdout, one line, so scripts and tests can use port 0.
fn announce(role: &str, scheme: &str, listener: &TcpListener) -> Result<(), String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening {role} {scheme}://{addr}");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn ctrl_c() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
