//! The gateway's two listeners: S3 (through s3s) and admin (`/health`, `/ready`,
//! `/metrics`), with graceful shutdown.
//!
//! Every S3 response gets `x-amz-request-id`, `x-amz-id-2` and `Server`, and is counted by
//! operation and status. The operation name comes from s3s through the access check, which
//! stores it in a slot the request carries. CORS preflight (`OPTIONS`) is answered here,
//! before s3s, and responses to requests with an `Origin` get their CORS headers here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{Body, S3Result, s3_error};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::access::{Access, PublicOnly};
use crate::admin::AdminApi;
use crate::config::Config;
use crate::cors::Cors;
use crate::guard::{BodyFacts, GuardedBody, OpSlot, Verdict};
use crate::host::Domains;
use crate::layout::Membership;
use crate::metrics::Metrics;
use crate::quorum::Cluster;
use crate::repair::{self, RepairConfig, SharedStatus};
use crate::s3::Gateway;
use crate::store::Store;
use crate::wire::{self, ErrorContext};
use crate::xml_escape::Escapes;
use node::tls::Tls;

/// How long in-flight requests may run after shutdown was asked for.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the gateway until `shutdown` resolves, then drains in-flight requests.
pub async fn run_gateway(
    config: Config,
    s3_listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    config.validate()?;
    let metrics = Metrics::new();
    let cluster = Cluster::new(&config, metrics.clone())?;
    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    // Nothing is placed before the committed layout is known: a provisional one could put
    // keys on nodes that do not own them.
    let membership = Membership::new(&cluster, config.nodes.clone(), config.replicas);
    if !membership.join(&mut stop_rx).await {
        return Ok(());
    }
    tokio::spawn(membership.clone().follow(stop_rx.clone()));
    let access = Access::new(cluster.clone(), &config.access_key, &config.secret_key);
    // Keys made before this start are honoured from the first request when nodes answer.
    if let Err(e) = access.refresh().await {
        tracing::warn!("access keys not read yet: {e}");
    }
    let store = Store::new(cluster.clone());
    let mut builder = S3ServiceBuilder::new(Gateway::new(store.clone(), access.clone()));
    builder.set_auth(Keys(access.clone()));
    builder.set_access(Authorize(access.clone()));
    // `x-amz-date` may arrive unsigned when `wire` derived it from a signed `Date` header;
    // it is the signing time of the string to sign, so changing it breaks the signature
    // whether or not it is among the signed headers.
    let mut s3_config = s3s::config::S3Config::default();
    s3_config.unsigned_amz_header_allowlist = vec!["x-amz-date".to_owned()];
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        s3_config,
    ))));
    let domains = Domains::new(config.domains.clone());
    if !domains.is_empty() {
        builder.set_host(domains.clone());
    }
    let s3 = builder.build();
    let cors = Cors {
        cluster: cluster.clone(),
        domains,
    };

    tokio::spawn(access.clone().run_refresher(stop_rx.clone()));
    let admin_api = AdminApi {
        access: access.clone(),
        store: store.clone(),
        token: config.admin_token.clone(),
        membership: membership.clone(),
    };
    let status = SharedStatus::default();
    let worker = tokio::spawn(repair::run(
        cluster.clone(),
        membership,
        RepairConfig {
            interval: config.repair_interval,
            scan_interval: config.scan_interval,
            upload_expiry: config.upload_expiry,
            gc_grace: crate::gc::Graces {
                blobs: config.gc_grace,
                tombstones: config.tombstone_grace,
            },
            gc_interval: config.gc_interval,
            rebalance_rate: config.rebalance_rate,
        },
        status.clone(),
        stop_rx.clone(),
    ));

    let s3_metrics = metrics.clone();
    let body_idle = config.body_idle_timeout;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = Tls::new(cert, key)?;
            tls.reload_on_sighup();
            Some(tls)
        }
        _ => None,
    };
    let s3_server = serve(s3_listener, tls.clone(), stop_rx.clone(), move |req| {
        handle_s3(s3.clone(), cors.clone(), s3_metrics.clone(), body_idle, req)
    });
    let admin_server = serve(admin_listener, tls, stop_rx, move |req| {
        handle_admin(
            admin_api.clone(),
            cluster.clone(),
            metrics.clone(),
            status.clone(),
            req,
        )
    });
    let _ = tokio::join!(s3_server, admin_server, worker);
    Ok(())
}

/// Longest a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections on `listener` (over TLS with `tls`) until `stop` turns true, then
/// waits (bounded) for open connections to finish.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    tls: Option<Tls>,
    mut stop: watch::Receiver<bool>,
    handler: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Body>, s3s::HttpError>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut conn_builder = ConnBuilder::new(TokioExecutor::new());
    conn_builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .keep_alive(true);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of file descriptors, usually: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let handler = handler.clone();
        let service = service_fn(move |req| handler.clone()(req));
        let Some(acceptor) = tls.as_ref().map(Tls::acceptor) else {
            let conn = conn_builder
                .serve_connection(TokioIo::new(tcp), service)
                .into_owned();
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("connection ended: {e}");
                }
            });
            continue;
        };
        // The handshake runs in the connection's own task: a slow client never holds up
        // the accept loop.
        let (watcher, builder) = (graceful.watcher(), conn_builder.clone());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!("TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake timed out");
                    return;
                }
            };
            let conn = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after {DRAIN_TIMEOUT:?}");
    }
}

/// The root key and the cluster's keys; an unknown, deleted or expired access key is
/// `InvalidAccessKeyId`, as in S3.
struct Keys(Access);

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        self.0
            .secret_of(access_key)
            .map(SecretKey::from)
            .ok_or_else(|| {
                s3_error!(
                    InvalidAccessKeyId,
                    "The AWS Access Key Id you provided does not exist in our records."
                )
            })
    }
}

/// Names the operation for the metrics and the body guard, refuses what S3 refuses before
/// reading a body, and what the caller's grants do not allow (`access`).
struct Authorize(Access);

#[async_trait::async_trait]
impl S3Access for Authorize {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let name = operation_name(cx.s3_op().name());
        if let Some(slot) = cx.extensions_mut().get::<OpSlot>() {
            slot.set(name);
        }
        // A corrupted key list must not delete the wrong objects: S3 requires a digest.
        if name == "DeleteObjects" && !announces_digest(cx.headers()) {
            return Err(s3_error!(
                InvalidRequest,
                "Missing required header for this request: Content-MD5"
            ));
        }
        let caller = self
            .0
            .caller(cx.credentials().map(|c| c.access_key.as_str()));
        let path = cx.s3_path();
        let target = (path.get_bucket_name(), path.get_object_key());
        let copy_source = cx
            .headers()
            .get("x-amz-copy-source")
            .and_then(|v| v.to_str().ok());
        let public_only = self.0.check(&caller, name, target, copy_source).await?;
        if public_only != PublicOnly::default() {
            cx.extensions_mut().insert(public_only);
        }
        Ok(())
    }
}

/// Whether the request carries `Content-MD5` or an `x-amz-checksum-*` (as a header or
/// announced as a trailer).
fn announces_digest(headers: &http::HeaderMap) -> bool {
    headers.contains_key("content-md5")
        || headers.contains_key("x-amz-trailer")
        || headers
            .keys()
            .any(|k| k.as_str().starts_with("x-amz-checksum-") && k != "x-amz-checksum-type")
}

/// Interns operation names so metric labels stay `'static` and bounded.
fn operation_name(name: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "CreateBucket",
        "HeadBucket",
        "DeleteBucket",
        "ListBuckets",
        "GetBucketLocation",
        "PutObject",
        "GetObject",
        "HeadObject",
        "DeleteObject",
        "DeleteObjects",
        "CopyObject",
        "ListObjects",
        "ListObjectsV2",
        "ListObjectVersions",
        "PutBucketVersioning",
        "GetBucketVersioning",
        "CreateMultipartUpload",
        "UploadPart",
        "CompleteMultipartUpload",
        "AbortMultipartUpload",
        "ListParts",
        "ListMultipartUploads",
        "UploadPartCopy",
        "GetBucketAcl",
        "PutBucketAcl",
        "GetObjectAcl",
        "PutObjectAcl",
        "GetBucketPolicy",
        "PutBucketPolicy",
        "DeleteBucketPolicy",
        "GetBucketPolicyStatus",
        "GetPublicAccessBlock",
        "PutPublicAccessBlock",
        "DeletePublicAccessBlock",
        "PutObjectTagging",
        "GetObjectTagging",
        "DeleteObjectTagging",
        "PutBucketTagging",
        "GetBucketTagging",
        "DeleteBucketTagging",
        "PutBucketCors",
        "GetBucketCors",
        "DeleteBucketCors",
        "PreflightRequest",
    ];
    KNOWN
        .iter()
        .find(|k| **k == name)
        .copied()
        .unwrap_or("Other")
}

async fn handle_s3(
    s3: S3Service,
    cors: Cors,
    metrics: Metrics,
    body_idle: Duration,
    req: Request<Incoming>,
) -> Result<Response<Body>, s3s::HttpError> {
    let started = Instant::now();
    let slot = OpSlot::default();
    let verdict = Verdict::default();
    let (mut parts, body) = req.into_parts();
    wire::fold_content_encoding(&mut parts.headers);
    wire::date_sigv4_by_date_header(&mut parts.headers);
    let empty_body = body.is_end_stream();
    let expects_continue = parts
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let consumed = Arc::new(AtomicBool::new(empty_body));
    let request_id = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
    // For the body of an error answer: what the request addressed.
    let path = parts.uri.path().to_owned();
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let domains = cors.domains.clone();
    let mut resp = if let Err(e) = crate::scope::check(&parts) {
        e.to_http_response()
            .map_err(|e| s3s::HttpError::from_std_error(Box::new(e)))?
    } else if parts.method == Method::OPTIONS {
        slot.set("PreflightRequest");
        cors.preflight(&parts).await
    } else {
        // The bucket's CORS rules are read while s3s handles the request.
        let cors_headers = parts
            .headers
            .get(http::header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .map(|origin| {
                let host = parts
                    .headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned);
                let (path, origin) = (parts.uri.path().to_owned(), origin.to_owned());
                let method = parts.method.as_str().to_owned();
                tokio::spawn(async move {
                    cors.response_headers(host.as_deref(), &path, &origin, &method)
                        .await
                })
            });
        let body = GuardedBody::new(
            body,
            BodyFacts::from_headers(&parts.headers),
            slot.clone(),
            verdict.clone(),
            consumed.clone(),
            body_idle,
        );
        let mut req = Request::from_parts(parts, Body::http_body(body));
        req.extensions_mut().insert(slot.clone());
        let escapes = Escapes::default();
        req.extensions_mut().insert(escapes.clone());
        let mut resp = s3.call(req).await?;
        escapes.finish(&mut resp);
        // Whatever s3s or a handler made of a body the guard refused, the client gets the
        // reason (s3s reports a failed document read as a 500).
        if !resp.status().is_success()
            && let Some(e) = verdict.take()
            && let Ok(refusal) = e.to_http_response()
        {
            resp = refusal;
        }
        if let Some(task) = cors_headers
            && let Ok(Some(extra)) = task.await
        {
            resp.headers_mut().extend(extra);
        }
        resp
    };
    if !resp.status().is_success() {
        let (bucket, key) = wire::addressed(&domains, host.as_deref(), &path);
        let cx = ErrorContext {
            request_id: &request_id[..16],
            host_id: &request_id,
            path: &path,
            bucket,
            key,
        };
        wire::complete_error_body(&mut resp, &cx);
    }
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id[..16]) {
        headers.insert("x-amz-request-id", v.clone());
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amz-id-2", v);
    }
    headers.insert(http::header::SERVER, HeaderValue::from_static("s3quorum"));
    // An answer given before the request body was read (a refused upload) leaves unread
    // bytes on the connection: say it closes, so the client does not reuse it.
    // botocore (aws-cli, boto3) also sends `Expect: 100-continue` with empty bodies, where
    // hyper rightly sends no 100 Continue; botocore then parses the next response on that
    // connection with this one's status line and loses its headers (boto/botocore#3755:
    // `aws s3 sync` of a tree with an empty file fails with KeyError 'ETag'). Closing the
    // connection resets botocore's state.
    if !consumed.load(Ordering::Acquire) || (expects_continue && empty_body) {
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    let op = slot.get().unwrap_or("Unauthenticated");
    metrics
        .requests
        .with_label_values(&[op, resp.status().as_str()])
        .inc();
    metrics
        .request_duration
        .with_label_values(&[op])
        .observe(started.elapsed().as_secs_f64());
    Ok(resp)
}

async fn handle_admin(
    api: AdminApi,
    cluster: Cluster,
    metrics: Metrics,
    status: SharedStatus,
    req: Request<Incoming>,
) -> Result<Response<Body>, s3s::HttpError> {
    if req.uri().path().starts_with("/v1/") {
        return Ok(api.handle(req).await);
    }
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/health") => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        (&Method::GET, "/ready") => {
            let (up, needed) = cluster.current().reachable_nodes().await;
            if up >= needed {
                (
                    StatusCode::OK,
                    "text/plain",
                    format!("ready: {up} nodes up\n"),
                )
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("not ready: {up} nodes up, {needed} needed\n"),
                )
            }
        }
        (&Method::GET, "/status") => {
            let snapshot = status.lock().map(|s| s.clone()).unwrap_or_default();
            let json = serde_json::to_string_pretty(&snapshot).unwrap_or_default();
            (StatusCode::OK, "application/json", json + "\n")
        }
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics.render(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    };
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    Ok(resp)
}

/// `s3quorum admin status`: the gateway's `/status` document.
pub async fn fetch_status(admin_url: &str) -> Result<String, String> {
    use http_body_util::{BodyExt, Empty};
    let url = format!("{}/status", admin_url.trim_end_matches('/'));
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("bad admin URL {url}: {e}"))?;
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.get(uri))
        .await
        .map_err(|_| format!("{url}: no answer within 10 s"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    if status.is_success() {
        Ok(text)
    } else {
        Err(format!("{url} answered {status}: {text}"))
    }
}
