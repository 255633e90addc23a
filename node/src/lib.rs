//! The s3quorum data node: blob files and merged metadata records over HTTP (plain, or TLS
//! with [`Config::tls`]). It knows
//! nothing of S3; the gateway turns S3 requests into calls on the routes in [`proto`].
//!
//! # Layout
//!
//! - `proto`: the wire contract shared with the gateway (routes, headers, bodies, record
//!   merge). Pure, public.
//! - `http`: authentication, router and one handler per route.
//! - `blobs`: blob files, written temp → MD5 check → fsync → rename, CRC32C-verified on read,
//!   quarantined when found corrupt.
//! - `scrub`: the background task that verifies every blob completely, slowly.
//! - `records`: object and bucket records and repair hints in redb, merged on write,
//!   group-committed.
//! - `disk`: free space kept on the data directory's disk, and the record database's
//!   faults, which `/health` reports.
//! - `lease`: named leases in memory (which gateway runs the repair worker).
//! - `layout`: the node's acceptor of the cluster layout register (`layout.json`) and the
//!   fence that refuses record requests placed with an older layout.
//! - `metrics`: the node's Prometheus metrics, in a registry of its own.
//! - `tls`: the reloadable TLS acceptor (the node's listener with `--tls-cert`, and the
//!   gateway's listeners).
//! - `config`, `error`: the node's [`Config`] and its one [`Error`] type with the one
//!   mapping to HTTP statuses.
//!
//! [`serve`] wires them together: it owns the listener, the connections, the scrubber and
//! shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

pub mod proto;
pub mod tls;

mod auth;
mod blobs;
mod config;
mod disk;
mod error;
mod gc;
mod http;
mod identity;
mod layout;
mod lease;
mod metrics;
mod records;
mod scrub;

pub use config::{Config, DEFAULT_SCRUB_INTERVAL, DEFAULT_SCRUB_RATE};
pub use error::Error;

/// How long in-flight requests may run on after shutdown before their connections are cut.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// A client that has not sent complete request headers by then is disconnected, so idle or
/// slow sockets cannot pile up.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A client that has not finished its TLS handshake by then is disconnected.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed `accept` (typically out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Runs a data node on `listener` until `shutdown` resolves: validates `config`, opens (and
/// creates) the stores under `config.data_dir`, serves HTTP/1.1 with keep-alive and runs the
/// blob scrubber (unless `config.scrub_interval` is `None`), then stops the scrubber at
/// once, stops accepting, lets in-flight requests finish for up to 10 s, and makes every
/// acknowledged record durable before returning. Errors only if the node cannot start.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let started_ms = auth::now_ms();
    config.validate()?;
    let data_dir = config.data_dir.clone();
    let fsync = config.fsync;
    let metrics = metrics::Metrics::new()?;
    let opening = metrics.clone();
    let reserve = config.disk_reserve_bytes;
    let wanted_id = config.node_id.clone();
    let (blobs, records, writer, disk, node_id, layout) = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&data_dir).map_err(Error::io("create data directory"))?;
        let node_id = identity::load_or_create(&data_dir, wanted_id.as_deref())?;
        let layout = layout::LayoutStore::open(&data_dir)?;
        let disk = Arc::new(disk::Disk::new(
            data_dir.clone(),
            reserve,
            opening.disk_free.clone(),
        ));
        // Records first: redb locks its file, so a second node on the same directory stops
        // here, before the blob store clears the first node's temp files.
        let (records, writer) = records::RecordStore::open(
            &data_dir.join("records.redb"),
            fsync,
            opening.record_commits.clone(),
            Arc::clone(&disk),
        )?;
        let blobs = blobs::BlobStore::open(&data_dir, fsync, &opening)?;
        Ok::<_, Error>((blobs, records, writer, disk, node_id, layout))
    })
    .await
    .map_err(Error::task("open stores"))??;
    let (stop_scrubber, scrubber_stopped) = oneshot::channel::<()>();
    let scrubber = config.scrub_interval.map(|interval| {
        let scrubber = scrub::Scrubber {
            store: blobs.clone(),
            interval,
            rate: config.scrub_rate_bytes_per_sec,
            checked: metrics.scrub_blobs_checked.clone(),
            passes: metrics.scrub_passes.clone(),
        };
        // A dropped sender stops it too, so no path out of `serve` leaves it running.
        tokio::spawn(scrubber.run(async move {
            let _ = scrubber_stopped.await;
        }))
    });
    let state = Arc::new(http::State {
        auth: auth::Authenticator::new(config.cluster_secret.into_bytes(), started_ms),
        node_id: node_id.clone(),
        blobs,
        records,
        disk,
        leases: lease::Leases::default(),
        layout,
        metrics,
    });
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, node_id, data_dir = %config.data_dir.display(), fsync, "node serving");
    }

    // The scrubber stops as soon as shutdown fires, not after the connections drained.
    let shutdown = async move {
        shutdown.await;
        drop(stop_scrubber);
    };
    accept_until(listener, state, config.tls, shutdown).await;
    if let Some(scrubber) = scrubber
        && scrubber.await.is_err()
    {
        tracing::error!("blob scrubber task failed");
    }

    // Every connection task is gone, so the last record handle is dropped: the writer
    // answers what is queued, makes lazy commits durable and stops.
    if tokio::task::spawn_blocking(move || writer.join())
        .await
        .is_err()
    {
        tracing::error!("record writer join task failed");
    }
    tracing::info!("node stopped");
    Ok(())
}

/// Accepts connections until `shutdown`, then drains them gracefully.
async fn accept_until(
    listener: TcpListener,
    state: Arc<http::State>,
    tls: Option<tls::Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    // Connection tasks live in a set so that, past the grace period, they can be aborted
    // and their handles on the stores released before the record writer is joined.
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Small JSON answers must not wait for Nagle's algorithm.
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
                    }
                    let state = Arc::clone(&state);
                    let service = service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { http::handle(&state, req).await }
                    });
                    let Some(acceptor) = tls.as_ref().map(tls::Tls::acceptor) else {
                        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                        connections.spawn(async move {
                            if let Err(e) = connection.await {
                                tracing::debug!(%peer, error = %e, "connection ended with an error");
                            }
                        });
                        continue;
                    };
                    // The handshake runs in the connection's task, so a client that never
                    // finishes it holds up nothing but itself.
                    let (watcher, builder) = (graceful.watcher(), builder.clone());
                    connections.spawn(async move {
                        let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                        let connection = watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
                        if let Err(e) = connection.await {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    drop(state);
    tracing::info!(
        connections = connections.len(),
        "shutting down: no new connections, draining"
    );
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!(connections = connections.len(), "grace period over, cutting connections");
        }
    }
    connections.shutdown().await;
}

#[cfg(test)]
mod tests;
