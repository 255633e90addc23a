//! One async function per data-node endpoint (see `node::proto` for the route table).
//!
//! Nodes at `https://` URLs are reached over TLS ([`new_pool`]), the others in plain HTTP.
//! Every call is signed with the cluster secret (`node::proto::auth`: the secret itself
//! never goes on the wire) and has a deadline; streamed bodies have an idle deadline per
//! chunk instead. Connections are pooled and kept alive (one pool for all
//! nodes). Failures become a [`NodeError`] that says what went wrong; the caller adds which
//! node and which operation.
//!
//! Layout: a client made for a layout snapshot ([`NodeClient::stamped`]) sends that
//! layout's version in `x-s3q-layout` on every request, so a node that committed a newer
//! one refuses it (`StaleLayout`) instead of serving a request placed by the old owners.
//! Every answer carries the node's committed version; the newest one seen goes to the
//! shared [`LayoutSeen`], which wakes the gateway's layout follower.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited, StreamBody};
use hyper::body::Frame;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use node::proto::access::KeyRecord;
use node::proto::auth;
use node::proto::gc::{Dropped, GcCollected, GcScan, TombstonePage, TombstoneRef};
use node::proto::layout::{LAYOUT_HEADER, STALE_LAYOUT_CODE};
use node::proto::paxos::{AcceptReply, AgreedKeys, Ballot, Prepare, Promise, Proposal};
use node::proto::{
    self, BlobPutReply, Bodies, BucketRecord, CHECK_HEADER, EXPECTED_MD5_HEADER, ErrorBody, Hint,
    LeaseReply, LeaseRequest, ListPage, NodeInfo, ObjectRecord, STALE_CODE, Select, Stamp,
    SummaryPage, encode_segment,
};
use serde::de::DeserializeOwned;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

mod layout;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ReqBody = BoxBody<Bytes, BoxError>;

/// Why a node call failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("answered {status} {code}: {message}")]
    Status {
        status: StatusCode,
        code: String,
        message: String,
    },
    /// The node found bad bytes (and quarantined them).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A streamed body broke off: the node stopped it (it may have found a bad block) or
    /// the connection failed. Which of the two, only the node can say.
    #[error("stream broke: {0}")]
    Broken(String),
    #[error("stored MD5 {got} differs from the gateway's {want}")]
    DigestMismatch { want: String, got: String },
    #[error("bad reply: {0}")]
    BadReply(String),
    #[error("aborted")]
    Aborted,
    /// A plain record write refused because it would add a version stamped below the
    /// ballot the node promised for the key (`proto::STALE_CODE`).
    #[error("stamp below the promised ballot {0:?}")]
    Stale(Stamp),
    /// The request was placed with layout `sent`, older than the node's committed one.
    #[error("placed with layout version {sent}, {FENCED}")]
    StaleLayout { sent: u64 },
}

/// How a [`NodeError::StaleLayout`] reads in a quorum failure's reasons (see
/// [`crate::error::Error::fenced`]).
pub const FENCED: &str = "the node has a newer layout";

/// The newest layout version nodes reported, shared by every client of one gateway.
#[derive(Debug, Default)]
pub struct LayoutSeen {
    newest: AtomicU64,
    changed: tokio::sync::Notify,
}

impl LayoutSeen {
    pub fn newest(&self) -> u64 {
        self.newest.load(Ordering::Acquire)
    }

    fn observe(&self, version: u64) {
        if self.newest.fetch_max(version, Ordering::AcqRel) < version {
            self.changed.notify_waiters();
        }
    }

    /// Returns once a newer version than any seen before this call was reported.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// A pooled HTTP client for one data node.
#[derive(Clone)]
pub struct NodeClient {
    base: String,
    client: Pool,
    secret: std::sync::Arc<[u8]>,
    timeout: Duration,
    /// The layout version requests are placed with; 0: unplaced (no header).
    layout: u64,
    seen: Arc<LayoutSeen>,
}

/// A request body and the digest its signature names.
struct Payload {
    body: ReqBody,
    digest: String,
}

impl Payload {
    /// A body that is streamed, not buffered: signed as [`auth::UNSIGNED_BODY`].
    fn streamed(body: ReqBody) -> Payload {
        Payload {
            body,
            digest: auth::UNSIGNED_BODY.to_owned(),
        }
    }
}

/// The body digest a request's signature names, kept in its extensions until it is sent.
#[derive(Clone)]
struct BodyDigest(String);

/// The connection pool every [`NodeClient`] of a gateway shares: plain HTTP for `http://`
/// node URLs, TLS for `https://` ones.
pub type Pool = Client<HttpsConnector<HttpConnector>, ReqBody>;

/// A pool shared by every [`NodeClient`] of a gateway; `https://` nodes must present a
/// certificate `ca` (a PEM file of roots) vouches for, or the system's roots without one.
pub fn new_pool(ca: Option<&Path>) -> Result<Pool, String> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    connector.set_connect_timeout(Some(Duration::from_secs(3)));
    // The TLS layer above decides the scheme; this one only opens TCP connections.
    connector.enforce_http(false);
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(client_tls(ca)?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build(https))
}

/// The TLS client configuration trusting `ca`'s certificates, or the system's roots.
fn client_tls(ca: Option<&Path>) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("{} holds no certificate", path.display()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
            }
        }
        None => {
            // Unreadable system roots only matter once an https:// node is used; then the
            // handshake fails and says so.
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    // The provider is named, not taken from the process default: which crypto backends
    // the dependency graph enables differs between builds.
    Ok(
        ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

impl NodeClient {
    pub fn new(base: String, pool: Pool, secret: &str, timeout: Duration) -> Result<Self, String> {
        if secret.is_empty() || !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("cluster secret must be printable ASCII".to_owned());
        }
        let secret = secret.as_bytes().into();
        Ok(NodeClient {
            base,
            client: pool,
            secret,
            timeout,
            layout: 0,
            seen: Arc::default(),
        })
    }

    /// A client like this one for the node at `url`.
    pub fn at(&self, url: &str) -> Self {
        NodeClient {
            base: url.to_owned(),
            ..self.clone()
        }
    }

    /// This client reporting the layout versions it sees to `seen`.
    pub fn reporting_to(mut self, seen: Arc<LayoutSeen>) -> Self {
        self.seen = seen;
        self
    }

    /// This client placing its requests with layout `version`.
    pub fn stamped(&self, version: u64) -> Self {
        NodeClient {
            layout: version,
            ..self.clone()
        }
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn request(&self, method: Method, path: &str, payload: Payload) -> Request<ReqBody> {
        let mut req = Request::new(payload.body);
        *req.method_mut() = method;
        *req.uri_mut() = format!("{}{}", self.base, path)
            .parse()
            .unwrap_or_else(|_| http::Uri::from_static("http://invalid./"));
        req.extensions_mut().insert(BodyDigest(payload.digest));
        if self.layout > 0 {
            req.headers_mut()
                .insert(LAYOUT_HEADER, HeaderValue::from(self.layout));
        }
        req
    }

    /// Signs `req` as it leaves: a fresh time and nonce per send.
    fn sign(&self, req: &mut Request<ReqBody>) {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        };
        let target = auth::Target {
            method: req.method().as_str(),
            path_and_query: req.uri().path_and_query().map_or("/", |p| p.as_str()),
            expected_md5: header(EXPECTED_MD5_HEADER),
            check: header(CHECK_HEADER),
        };
        let digest = req.extensions().get::<BodyDigest>();
        let digest = digest.map_or(auth::UNSIGNED_BODY, |d| d.0.as_str());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let value = auth::header_value(&self.secret, &target, now, &nonce, digest);
        if let Ok(v) = HeaderValue::from_str(&value) {
            req.headers_mut().insert(auth::AUTH_HEADER, v);
        }
    }

    async fn send(
        &self,
        mut req: Request<ReqBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, NodeError> {
        self.sign(&mut req);
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| NodeError::Unreachable(error_chain(&e)))?;
        let reported = resp
            .headers()
            .get(LAYOUT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(v) = reported {
            self.seen.observe(v);
        }
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = Limited::new(resp.into_body(), 64 * 1024)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let parsed: Option<ErrorBody> = serde_json::from_slice(&body).ok();
        let (code, message) = match parsed {
            Some(ErrorBody {
                code,
                promised: Some(promised),
                ..
            }) if code == STALE_CODE => return Err(NodeError::Stale(promised)),
            Some(e) if e.code == STALE_LAYOUT_CODE => {
                return Err(NodeError::StaleLayout { sent: self.layout });
            }
            Some(e) => (e.code, e.message),
            None => (
                status.canonical_reason().unwrap_or("").to_owned(),
                String::from_utf8_lossy(&body).into_owned(),
            ),
        };
        if code == "Corrupt" || code == node::proto::QUARANTINED_CODE {
            return Err(NodeError::Corrupt(message));
        }
        Err(NodeError::Status {
            status,
            code,
            message,
        })
    }

    /// A JSON call with the whole exchange under one deadline.
    async fn call_json<T: DeserializeOwned>(
        &self,
        req: Request<ReqBody>,
    ) -> Result<Option<T>, NodeError> {
        let fut = async {
            let resp = match self.send(req).await {
                Err(NodeError::Status { status, .. }) if status == StatusCode::NOT_FOUND => {
                    return Ok(None);
                }
                other => other?,
            };
            if resp.status() == StatusCode::NO_CONTENT {
                return Ok(None);
            }
            let body = Limited::new(resp.into_body(), proto::MAX_RECORD_BODY)
                .collect()
                .await
                .map_err(|e| NodeError::BadReply(e.to_string()))?
                .to_bytes();
            serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| NodeError::BadReply(e.to_string()))
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| NodeError::Timeout(self.timeout))?
    }

    fn json_body<T: serde::Serialize>(value: &T) -> Payload {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        Payload {
            digest: auth::body_digest(&bytes),
            body: Full::new(Bytes::from(bytes))
                .map_err(|never| match never {})
                .boxed(),
        }
    }

    fn empty() -> Payload {
        Payload {
            digest: auth::body_digest(&[]),
            body: Empty::new().map_err(|never| match never {}).boxed(),
        }
    }

    /// Stores a blob streamed from `chunks`. An `Err` item aborts the upload on the node,
    /// which then keeps nothing. Waiting for the answer after the body ends is the
    /// caller's deadline to set; this function has none because the body's pace is the
    /// client's.
    pub async fn put_blob(
        &self,
        id: &str,
        chunks: impl Stream<Item = Result<Bytes, BoxError>> + Send + Sync + 'static,
        expected_md5: Option<&str>,
    ) -> Result<BlobPutReply, NodeError> {
        let body = BodyExt::boxed(StreamBody::new(chunks.map(|c| c.map(Frame::data))));
        let path = format!("/blobs/{id}");
        let mut req = self.request(Method::PUT, &path, Payload::streamed(body));
        if let Some(md5) = expected_md5.and_then(|m| HeaderValue::from_str(m).ok()) {
            req.headers_mut().insert(EXPECTED_MD5_HEADER, md5);
        }
        let resp = self.send(req).await?;
        let body = Limited::new(resp.into_body(), 64 * 1024)
            .collect()
            .await
            .map_err(|e| NodeError::BadReply(e.to_string()))?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| NodeError::BadReply(e.to_string()))
    }

    /// Stores a blob streamed as `frames`: data, then trailers with the sender's MD5 and
    /// block table digest (the `crc32c` check of [`proto::CHECK_HEADER`]: the node does not
    /// hash MD5 and refuses a body whose table differs). An `Err` item aborts the upload.
    pub async fn put_blob_checked(
        &self,
        id: &str,
        frames: impl Stream<Item = Result<Frame<Bytes>, BoxError>> + Send + Sync + 'static,
    ) -> Result<BlobPutReply, NodeError> {
        let body = BodyExt::boxed(StreamBody::new(frames));
        let path = format!("/blobs/{id}");
        let mut req = self.request(Method::PUT, &path, Payload::streamed(body));
        let headers = req.headers_mut();
        headers.insert(CHECK_HEADER, HeaderValue::from_static("crc32c"));
        // hyper sends only the trailers the request declared.
        headers.insert(
            header::TRAILER,
            HeaderValue::from_static("x-s3q-expected-md5, x-s3q-block-crcs"),
        );
        let resp = self.send(req).await?;
        let body = Limited::new(resp.into_body(), 64 * 1024)
            .collect()
            .await
            .map_err(|e| NodeError::BadReply(e.to_string()))?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| NodeError::BadReply(e.to_string()))
    }

    /// Opens a blob for reading, `range` being `start..end` (exclusive). The answer's
    /// headers arrive under the call deadline; each chunk after that under the same idle
    /// deadline.
    pub async fn get_blob(
        &self,
        id: &str,
        range: Option<(u64, u64)>,
    ) -> Result<impl Stream<Item = Result<Bytes, NodeError>> + Send + use<>, NodeError> {
        let mut req = self.request(Method::GET, &format!("/blobs/{id}"), Self::empty());
        if let Some((start, end)) = range {
            let value = format!("bytes={}-{}", start, end.saturating_sub(1));
            if let Ok(v) = HeaderValue::from_str(&value) {
                req.headers_mut().insert(header::RANGE, v);
            }
        }
        let timeout = self.timeout;
        let resp = tokio::time::timeout(timeout, self.send(req))
            .await
            .map_err(|_| NodeError::Timeout(timeout))??;
        let body = resp.into_body().into_data_stream();
        // After an error or a timeout the stream ends: the caller fails over.
        Ok(futures::stream::unfold(
            Some(body),
            move |state| async move {
                let mut body = state?;
                match tokio::time::timeout(timeout, body.next()).await {
                    Err(_) => Some((Err(NodeError::Timeout(timeout)), None)),
                    Ok(None) => None,
                    Ok(Some(Ok(b))) => Some((Ok(b), Some(body))),
                    Ok(Some(Err(e))) => Some((
                        Err(NodeError::Broken(format!(
                            "blob stream: {}",
                            error_chain(&e)
                        ))),
                        None,
                    )),
                }
            },
        ))
    }

    /// True when the node answers `/health` within the deadline.
    pub async fn health(&self) -> bool {
        let req = self.request(Method::GET, "/health", Self::empty());
        matches!(
            tokio::time::timeout(self.timeout, self.send(req)).await,
            Ok(Ok(_))
        )
    }

    /// The blobs of shard `shard` nothing on the node refers to (see `node::proto::gc`).
    pub async fn gc_scan(&self, shard: u8, grace: Duration) -> Result<GcScan, NodeError> {
        let path = format!("/gc/scan/{shard:02x}?grace_secs={}", grace.as_secs());
        self.call_json(self.request(Method::POST, &path, Self::empty()))
            .await?
            .ok_or_else(|| NodeError::BadReply("empty scan answer".into()))
    }

    /// Which of `ids` something on the node refers to, by which keys.
    pub async fn gc_referenced(
        &self,
        ids: &[String],
    ) -> Result<Vec<node::proto::gc::Referenced>, NodeError> {
        let req = self.request(Method::POST, "/gc/referenced", Self::json_body(&ids));
        self.call_json(req)
            .await?
            .ok_or_else(|| NodeError::BadReply("empty referenced answer".into()))
    }

    /// Has the node delete each of `ids` that, checked again, nothing on it refers to and
    /// that is older than `grace`.
    pub async fn gc_collect(
        &self,
        ids: &[String],
        grace: Duration,
    ) -> Result<GcCollected, NodeError> {
        let path = format!("/gc/collect?grace_secs={}", grace.as_secs());
        let req = self.request(Method::POST, &path, Self::json_body(&ids));
        self.call_json(req)
            .await?
            .ok_or_else(|| NodeError::BadReply("empty collect answer".into()))
    }

    /// Tombstones the node has held for longer than `grace`, a page after `after`.
    pub async fn gc_tombstones(
        &self,
        grace: Duration,
        after: Option<&str>,
    ) -> Result<TombstonePage, NodeError> {
        let mut path = format!("/gc/tombstones?grace_secs={}", grace.as_secs());
        if let Some(cursor) = after {
            path.push_str("&after=");
            path.push_str(&encode_segment(cursor));
        }
        self.call_json(self.request(Method::GET, &path, Self::empty()))
            .await?
            .ok_or_else(|| NodeError::BadReply("empty tombstone page".into()))
    }

    /// Has the node drop those of `tombstones` that are still tombstones there.
    pub async fn gc_drop(&self, tombstones: &[TombstoneRef]) -> Result<Dropped, NodeError> {
        let req = self.request(Method::POST, "/gc/drop", Self::json_body(&tombstones));
        self.call_json(req)
            .await?
            .ok_or_else(|| NodeError::BadReply("empty drop answer".into()))
    }

    /// The versions `select` names of `(bucket, key)`, with the inline bodies `bodies`
    /// asks for.
    pub async fn get_record(
        &self,
        bucket: &str,
        key: &str,
        bodies: &Bodies,
        select: &Select,
    ) -> Result<Option<ObjectRecord>, NodeError> {
        let mut path = format!(
            "/records/{}/{}",
            encode_segment(bucket),
            encode_segment(key)
        );
        let query: Vec<String> = [bodies.to_query(), select.to_query()]
            .into_iter()
            .flatten()
            .collect();
        if !query.is_empty() {
            path.push('?');
            path.push_str(&query.join("&"));
        }
        self.call_json(self.request(Method::GET, &path, Self::empty()))
            .await
    }

    pub async fn put_record(
        &self,
        bucket: &str,
        key: &str,
        record: &ObjectRecord,
    ) -> Result<(), NodeError> {
        let path = format!(
            "/records/{}/{}",
            encode_segment(bucket),
            encode_segment(key)
        );
        let req = self.request(Method::POST, &path, Self::json_body(record));
        self.call_json::<serde_json::Value>(req).await.map(|_| ())
    }

    /// A page of records, every version of each key without its inline body (a key's
    /// history of inline bodies may be far larger than a page may be); with `check_blobs`
    /// each entry names the blobs its record refers to that the node does not have.
    pub async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        after: &str,
        limit: usize,
        check_blobs: bool,
    ) -> Result<ListPage, NodeError> {
        let path = format!(
            "/list/{}?prefix={}&after={}&limit={}&bodies=none{}",
            encode_segment(bucket),
            encode_segment(prefix),
            encode_segment(after),
            limit,
            if check_blobs { "&check_blobs=1" } else { "" }
        );
        self.call_json(self.request(Method::GET, &path, Self::empty()))
            .await
            .map(Option::unwrap_or_default)
    }

    /// A page of summarised records (no bodies or metadata): what listings need; with
    /// `current_only` each key's window only (see [`Select`]).
    pub async fn list_summaries(
        &self,
        bucket: &str,
        prefix: &str,
        after: &str,
        limit: usize,
        current_only: bool,
    ) -> Result<SummaryPage, NodeError> {
        let path = format!(
            "/list/{}?prefix={}&after={}&limit={}&summary=1{}",
            encode_segment(bucket),
            encode_segment(prefix),
            encode_segment(after),
            limit,
            if current_only { "&select=current" } else { "" },
        );
        self.call_json(self.request(Method::GET, &path, Self::empty()))
            .await
            .map(Option::unwrap_or_default)
    }

    pub async fn get_bucket(&self, bucket: &str) -> Result<Option<BucketRecord>, NodeError> {
        let path = format!("/buckets/{}", encode_segment(bucket));
        self.call_json(self.request(Method::GET, &path, Self::empty()))
            .await
    }

    pub async fn put_bucket(&self, record: &BucketRecord) -> Result<(), NodeError> {
        let path = format!("/buckets/{}", encode_segment(&record.name));
        let req = self.request(Method::POST, &path, Self::json_body(record));
        self.call_json::<serde_json::Value>(req).await.map(|_| ())
    }

    /// Who the node is (`GET /info`).
    pub async fn info(&self) -> Result<NodeInfo, NodeError> {
        self.call_json(self.request(Method::GET, "/info", Self::empty()))
            .await?
            .ok_or_else(|| NodeError::BadReply("no node info".into()))
    }

    /// Every access key record the node holds, deleted keys included.
    pub async fn list_keys(&self) -> Result<Vec<KeyRecord>, NodeError> {
        self.call_json(self.request(Method::GET, "/keys", Self::empty()))
            .await
            .map(Option::unwrap_or_default)
    }

    pub async fn put_key(&self, record: &KeyRecord) -> Result<(), NodeError> {
        let path = format!("/keys/{}", encode_segment(&record.id));
        let req = self.request(Method::POST, &path, Self::json_body(record));
        self.call_json::<serde_json::Value>(req).await.map(|_| ())
    }

    pub async fn post_hints(&self, hints: &[Hint]) -> Result<(), NodeError> {
        let req = self.request(Method::POST, "/hints", Self::json_body(&hints));
        self.call_json::<serde_json::Value>(req).await.map(|_| ())
    }

    pub async fn get_hints(&self, limit: usize) -> Result<Vec<Hint>, NodeError> {
        let path = format!("/hints?limit={limit}");
        self.call_json(self.request(Method::GET, &path, Self::empty()))
            .await
            .map(Option::unwrap_or_default)
    }

    /// Removes hints, each only if it was not raised again since the given `since`.
    pub async fn delete_hints(&self, hints: &[Hint]) -> Result<(), NodeError> {
        let req = self.request(Method::POST, "/hints/delete", Self::json_body(&hints));
        self.call_json::<serde_json::Value>(req).await.map(|_| ())
    }

    pub async fn lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<LeaseReply, NodeError> {
        let body = LeaseRequest {
            holder: holder.to_owned(),
            ttl_ms: ttl.as_millis() as u64,
        };
        let path = format!("/lease/{}", encode_segment(name));
        let req = self.request(Method::POST, &path, Self::json_body(&body));
        self.call_json(req)
            .await?
            .ok_or_else(|| NodeError::BadReply("empty lease answer".into()))
    }

    /// `POST /paxos/{bucket}/{key}/{step}` with a JSON body and a JSON answer.
    async fn paxos<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        bucket: &str,
        key: &str,
        step: &str,
        body: &B,
    ) -> Result<Option<T>, NodeError> {
        let path = format!(
            "/paxos/{}/{}/{step}",
            encode_segment(bucket),
            encode_segment(key)
        );
        let req = self.request(Method::POST, &path, Self::json_body(body));
        self.call_json(req).await
    }

    /// A page of the keys the node holds agreement state for, after `after` (an
    /// [`node::proto::paxos::AgreedKey::cursor`]).
    pub async fn agreed_keys(&self, after: Option<&str>) -> Result<AgreedKeys, NodeError> {
        let mut path = "/paxos".to_owned();
        if let Some(cursor) = after {
            path.push_str("?after=");
            path.push_str(&encode_segment(cursor));
        }
        self.call_json(self.request(Method::GET, &path, Self::empty()))
            .await?
            .ok_or_else(|| NodeError::BadReply("empty agreed keys page".into()))
    }

    pub async fn paxos_prepare(
        &self,
        bucket: &str,
        key: &str,
        ballot: &Ballot,
        select: &Select,
    ) -> Result<Promise, NodeError> {
        let body = Prepare {
            ballot: ballot.clone(),
            select: select.to_query(),
        };
        self.paxos(bucket, key, "prepare", &body)
            .await?
            .ok_or_else(|| NodeError::BadReply("empty promise".into()))
    }

    pub async fn paxos_accept(
        &self,
        bucket: &str,
        key: &str,
        proposal: &Proposal,
    ) -> Result<AcceptReply, NodeError> {
        self.paxos(bucket, key, "accept", proposal)
            .await?
            .ok_or_else(|| NodeError::BadReply("empty accept answer".into()))
    }

    pub async fn paxos_commit(
        &self,
        bucket: &str,
        key: &str,
        proposal: &Proposal,
    ) -> Result<(), NodeError> {
        self.paxos::<_, serde_json::Value>(bucket, key, "commit", proposal)
            .await
            .map(drop)
    }

    pub async fn list_buckets(&self) -> Result<Vec<BucketRecord>, NodeError> {
        self.call_json(self.request(Method::GET, "/buckets", Self::empty()))
            .await
            .map(Option::unwrap_or_default)
    }
}

/// The error and its sources on one line: hyper's top-level messages alone
/// ("client error (Connect)") do not say what happened.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        s.push_str(": ");
        s.push_str(&src.to_string());
        cur = src.source();
    }
    s
}
