//! The node's HTTP API: authentication, the router over (method, path segments) and one
//! handler per route of the table in [`crate::proto`].
//!
//! Invariants: every route but `GET /health` and `GET /metrics` is refused with 401 before
//! anything else is looked at (the body is never read); path segments are percent-decoded
//! here and nowhere else; JSON bodies are buffered up to [`proto::MAX_RECORD_BODY`], blob
//! bodies are streamed both ways. Errors become responses only through
//! [`crate::error::status_and_body`]. Every answered request is counted once, under the
//! fixed label of its [`Route`]. Every answer carries the committed layout version in
//! [`proto::layout::LAYOUT_HEADER`]; a fenced route is refused before its handler runs
//! when the request was placed with an older version, and is handled inside the fence
//! (see [`crate::layout`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, BodyStream, Full, LengthLimitError, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::{Authenticator, SignedBody, check_body};
use crate::blobs::{BlobStore, Piece, Trailer, Verify};
use crate::disk::Disk;
use crate::error::{Error, status_and_body};
use crate::layout::LayoutStore;
use crate::lease::Leases;
use crate::metrics::Metrics;
use crate::proto::{self, MAX_RECORD_BODY};
use crate::records::RecordStore;

mod collect;
mod layout;
mod params;
mod records;

use params::ByteRange;

/// Body of every node response: small JSON, or a blob streamed from disk.
pub(crate) type ResponseBody = UnsyncBoxBody<Bytes, Error>;

/// What every request handler shares; built once in [`crate::serve`].
pub(crate) struct State {
    pub(crate) auth: Authenticator,
    pub(crate) node_id: String,
    pub(crate) blobs: BlobStore,
    pub(crate) records: RecordStore,
    pub(crate) disk: Arc<Disk>,
    pub(crate) leases: Leases,
    pub(crate) layout: LayoutStore,
    pub(crate) metrics: Metrics,
}

/// A request's route, with its path segments still percent-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Health,
    Info,
    Metrics,
    PutBlob(&'a str),
    GetBlob(&'a str),
    GetRecord(&'a str, &'a str),
    MergeRecord(&'a str, &'a str),
    List(&'a str),
    ListBuckets,
    GetBucket(&'a str),
    MergeBucket(&'a str),
    ListKeys,
    MergeKey(&'a str),
    RaiseHints,
    GetHints,
    ClearHints,
    Lease(&'a str),
    AgreedKeys,
    PaxosPrepare(&'a str, &'a str),
    PaxosAccept(&'a str, &'a str),
    PaxosCommit(&'a str, &'a str),
    GcScan(&'a str),
    GcReferenced,
    GcCollect,
    GcTombstones,
    GcDrop,
    LayoutGet,
    LayoutPrepare,
    LayoutAccept,
    LayoutCommit,
    LayoutRelease(&'a str, &'a str),
    /// A known path, another method.
    WrongMethod,
    Unknown,
}

impl<'a> Route<'a> {
    fn parse(method: &Method, path: &'a str) -> Route<'a> {
        let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
        match (method.as_str(), segments.as_slice()) {
            ("GET", ["health"]) => Route::Health,
            ("GET", ["info"]) => Route::Info,
            ("GET", ["metrics"]) => Route::Metrics,
            ("PUT", ["blobs", id]) => Route::PutBlob(id),
            ("GET", ["blobs", id]) => Route::GetBlob(id),
            ("GET", ["records", bucket, key]) => Route::GetRecord(bucket, key),
            ("POST", ["records", bucket, key]) => Route::MergeRecord(bucket, key),
            ("GET", ["list", bucket]) => Route::List(bucket),
            ("GET", ["buckets"]) => Route::ListBuckets,
            ("GET", ["buckets", name]) => Route::GetBucket(name),
            ("POST", ["buckets", name]) => Route::MergeBucket(name),
            ("GET", ["keys"]) => Route::ListKeys,
            ("POST", ["keys", id]) => Route::MergeKey(id),
            ("POST", ["hints"]) => Route::RaiseHints,
            ("GET", ["hints"]) => Route::GetHints,
            ("POST", ["hints", "delete"]) => Route::ClearHints,
            ("POST", ["lease", name]) => Route::Lease(name),
            ("GET", ["paxos"]) => Route::AgreedKeys,
            ("POST", ["paxos", bucket, key, "prepare"]) => Route::PaxosPrepare(bucket, key),
            ("POST", ["paxos", bucket, key, "accept"]) => Route::PaxosAccept(bucket, key),
            ("POST", ["paxos", bucket, key, "commit"]) => Route::PaxosCommit(bucket, key),
            ("POST", ["gc", "scan", shard]) => Route::GcScan(shard),
            ("POST", ["gc", "referenced"]) => Route::GcReferenced,
            ("POST", ["gc", "collect"]) => Route::GcCollect,
            ("GET", ["gc", "tombstones"]) => Route::GcTombstones,
            ("POST", ["gc", "drop"]) => Route::GcDrop,
            ("GET", ["layout"]) => Route::LayoutGet,
            ("POST", ["layout", "prepare"]) => Route::LayoutPrepare,
            ("POST", ["layout", "accept"]) => Route::LayoutAccept,
            ("POST", ["layout", "commit"]) => Route::LayoutCommit,
            ("POST", ["layout", "release", bucket, key]) => Route::LayoutRelease(bucket, key),
            (
                _,
                ["health"]
                | ["info"]
                | ["metrics"]
                | ["blobs", _]
                | ["records", _, _]
                | ["list", _]
                | ["buckets"]
                | ["buckets", _]
                | ["keys"]
                | ["keys", _]
                | ["hints"]
                | ["hints", "delete"]
                | ["lease", _]
                | ["paxos"]
                | ["paxos", _, _, "prepare" | "accept" | "commit"]
                | ["gc", "scan", _]
                | ["gc", "referenced" | "collect" | "tombstones" | "drop"]
                | ["layout"]
                | ["layout", "prepare" | "accept" | "commit"]
                | ["layout", "release", _, _],
            ) => Route::WrongMethod,
            _ => Route::Unknown,
        }
    }

    /// The route's `route` label in the request metrics: fixed, whatever the path holds.
    fn label(self) -> &'static str {
        match self {
            Route::Health => "health",
            Route::Info => "info",
            Route::Metrics => "metrics",
            Route::PutBlob(_) => "put_blob",
            Route::GetBlob(_) => "get_blob",
            Route::GetRecord(..) => "get_record",
            Route::MergeRecord(..) => "merge_record",
            Route::List(_) => "list",
            Route::ListBuckets => "list_buckets",
            Route::GetBucket(_) => "get_bucket",
            Route::MergeBucket(_) => "merge_bucket",
            Route::ListKeys => "list_keys",
            Route::MergeKey(_) => "merge_key",
            Route::RaiseHints => "put_hints",
            Route::GetHints => "get_hints",
            Route::ClearHints => "delete_hints",
            Route::Lease(_) => "lease",
            Route::AgreedKeys => "paxos_keys",
            Route::PaxosPrepare(..) => "paxos_prepare",
            Route::PaxosAccept(..) => "paxos_accept",
            Route::PaxosCommit(..) => "paxos_commit",
            Route::GcScan(_) => "gc_scan",
            Route::GcReferenced => "gc_referenced",
            Route::GcCollect => "gc_collect",
            Route::GcTombstones => "gc_tombstones",
            Route::GcDrop => "gc_drop",
            Route::LayoutGet => "layout_get",
            Route::LayoutPrepare => "layout_prepare",
            Route::LayoutAccept => "layout_accept",
            Route::LayoutCommit => "layout_commit",
            Route::LayoutRelease(..) => "layout_release",
            Route::WrongMethod | Route::Unknown => "other",
        }
    }

    /// Health checks and Prometheus scrapers carry no secret; neither route reveals data.
    fn is_open(self) -> bool {
        matches!(self, Route::Health | Route::Metrics)
    }

    /// Whether a request placed with an older layout is refused here. Not fenced: what
    /// holds no placed data (health, info, metrics, leases), the layout register itself,
    /// and the blobs: they are immutable and addressed by random ids, and only records say
    /// which blobs matter, so a blob written or read under an old layout harms nothing.
    /// Streaming a blob inside the fence would also hold up a layout commit for as long.
    fn is_fenced(self) -> bool {
        !matches!(
            self,
            Route::Health
                | Route::Info
                | Route::Metrics
                | Route::LayoutGet
                | Route::LayoutPrepare
                | Route::LayoutAccept
                | Route::LayoutCommit
                | Route::Lease(_)
                | Route::PutBlob(_)
                | Route::GetBlob(_)
                | Route::WrongMethod
                | Route::Unknown
        )
    }
}

/// Answers one request. Never fails: errors are turned into error responses here.
pub(crate) async fn handle(
    state: &State,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = Route::parse(&method, &path);
    let mut response = dispatch(state, route, req).await.unwrap_or_else(|e| {
        tracing::debug!(%method, %path, error = %e, "request refused");
        error_response(&e)
    });
    // Read after the handler, so a commit answers with the version it installed.
    response.headers_mut().insert(
        proto::layout::LAYOUT_HEADER,
        HeaderValue::from(state.layout.version()),
    );
    state
        .metrics
        .observe_request(route.label(), response.status(), started.elapsed());
    Ok(response)
}

async fn dispatch(
    state: &State,
    route: Route<'_>,
    mut req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Error> {
    if !route.is_open() {
        let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let signed = state
            .auth
            .check(req.method().as_str(), path_and_query, req.headers())?;
        req.extensions_mut().insert(signed);
    }
    // Held until the handler returns; blob routes, which stream, are never fenced.
    let _fence = if route.is_fenced() {
        let sent = layout::sent_version(req.headers())?;
        Some(state.layout.enter(sent).await?)
    } else {
        None
    };
    let query = req.uri().query();
    match route {
        Route::Health => Ok(health(state)),
        Route::Info => json(&proto::NodeInfo {
            node_id: state.node_id.clone(),
        }),
        Route::Metrics => metrics(state),
        Route::PutBlob(id) => put_blob(state, id, req).await,
        Route::GetBlob(id) => get_blob(state, id, req.headers()).await,
        Route::GetRecord(bucket, key) => records::get_record(state, bucket, key, &req).await,
        Route::MergeRecord(bucket, key) => records::merge_record(state, bucket, key, req).await,
        Route::List(bucket) => records::list(state, bucket, query).await,
        Route::ListBuckets => json(&state.records.list_buckets().await?),
        Route::GetBucket(name) => records::get_bucket(state, name).await,
        Route::MergeBucket(name) => records::merge_bucket(state, name, req).await,
        Route::ListKeys => json(&state.records.list_keys().await?),
        Route::MergeKey(id) => records::merge_key(state, id, req).await,
        Route::RaiseHints => records::raise_hints(state, req).await,
        Route::GetHints => records::get_hints(state, query).await,
        Route::ClearHints => records::clear_hints(state, req).await,
        Route::Lease(name) => records::lease(state, name, req).await,
        Route::AgreedKeys => records::agreed_keys(state, query).await,
        Route::PaxosPrepare(bucket, key) => records::paxos_prepare(state, bucket, key, req).await,
        Route::PaxosAccept(bucket, key) => records::paxos_accept(state, bucket, key, req).await,
        Route::PaxosCommit(bucket, key) => records::paxos_commit(state, bucket, key, req).await,
        Route::GcScan(shard) => collect::scan(state, shard, query).await,
        Route::GcReferenced => collect::referenced(state, req).await,
        Route::GcCollect => collect::collect(state, req).await,
        Route::GcTombstones => collect::tombstones(state, query).await,
        Route::GcDrop => collect::drop(state, req).await,
        Route::LayoutGet => layout::get(state),
        Route::LayoutPrepare => layout::prepare(state, req).await,
        Route::LayoutAccept => layout::accept(state, req).await,
        Route::LayoutCommit => layout::commit(state, req).await,
        Route::LayoutRelease(bucket, key) => layout::release(state, bucket, key).await,
        Route::WrongMethod => Err(Error::MethodNotAllowed),
        Route::Unknown => Err(Error::NoRoute),
    }
}

/// `GET /health`. A full disk or a failed record database: gateways must stop choosing
/// this node.
fn health(state: &State) -> Response<ResponseBody> {
    match state.disk.health() {
        Ok(()) => full(StatusCode::OK, "text/plain", Bytes::from_static(b"ok")),
        Err(why) => full(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            Bytes::from(format!("unhealthy: {why}\n")),
        ),
    }
}

/// `GET /metrics`, with the free disk space measured now.
fn metrics(state: &State) -> Result<Response<ResponseBody>, Error> {
    state.disk.free_bytes();
    let text = state.metrics.render()?;
    Ok(full(
        StatusCode::OK,
        prometheus::TEXT_FORMAT,
        Bytes::from(text),
    ))
}

fn decode(segment: &str) -> Result<String, Error> {
    proto::decode_segment(segment)
        .ok_or_else(|| Error::BadRequest(format!("path segment {segment:?} is not UTF-8")))
}

async fn put_blob(
    state: &State,
    id: &str,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Error> {
    // Nothing is written to a disk already short of its reserve.
    state.disk.check_room()?;
    let headers = req.headers();
    let expected_md5 = match headers.get(proto::EXPECTED_MD5_HEADER) {
        None => None,
        Some(v) => Some(parse_md5(v)?),
    };
    let verify = match headers.get(proto::CHECK_HEADER).map(HeaderValue::as_bytes) {
        None => Verify::Md5(expected_md5),
        Some(b"crc32c") if expected_md5.is_none() => Verify::Trailer,
        Some(other) => {
            return Err(Error::BadRequest(format!(
                "unsupported {} {:?} (with {}: {})",
                proto::CHECK_HEADER,
                String::from_utf8_lossy(other),
                proto::EXPECTED_MD5_HEADER,
                expected_md5.is_some()
            )));
        }
    };
    let body = BodyStream::new(req.into_body()).try_filter_map(|frame| {
        let piece = match frame.into_data() {
            Ok(data) => Some(Piece::Data(data)),
            Err(frame) => frame.into_trailers().ok().map(|t| {
                let text = |name| {
                    t.get(name)
                        .and_then(|v: &HeaderValue| v.to_str().ok())
                        .map(|v| v.trim().to_ascii_lowercase())
                };
                Piece::Trailer(Trailer {
                    md5: text(proto::EXPECTED_MD5_HEADER),
                    block_crcs: text(proto::BLOCK_CRCS_TRAILER),
                })
            }),
        };
        futures::future::ready(Ok(piece))
    });
    let reply = state.blobs.put_pieces(id, body, verify).await?;
    json(&reply)
}

fn parse_md5(value: &HeaderValue) -> Result<String, Error> {
    let text = value.to_str().unwrap_or_default().to_ascii_lowercase();
    if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text)
    } else {
        Err(Error::BadRequest(format!(
            "{} is not 32 hex characters",
            proto::EXPECTED_MD5_HEADER
        )))
    }
}

async fn get_blob(
    state: &State,
    id: &str,
    headers: &HeaderMap,
) -> Result<Response<ResponseBody>, Error> {
    let requested = match headers.get(RANGE) {
        None => None,
        Some(v) => Some(ByteRange::parse(v)?),
    };
    let blob = state.blobs.open_blob(id).await?;
    let size = blob.size();
    let range = requested.map(|r| r.resolve(size)).transpose()?;
    let mut stream = blob.read(range)?;
    // Wait for the first verified piece before choosing a status: corruption in the first
    // block becomes a clean 500, later corruption can only cut the body short.
    let first = stream.next().await.transpose()?;
    let body = futures::stream::iter(first.map(Ok))
        .chain(stream)
        .then(|piece| async move {
            if piece.is_err() {
                // One pending poll lets hyper flush the verified bytes already queued, so
                // the client sees a short body rather than a connection closed before any
                // response (hyper drops unflushed output when a body fails).
                tokio::task::yield_now().await;
            }
            piece
        })
        .map_ok(Frame::data);
    let (start, end) = range.unwrap_or((0, size));
    let mut response = Response::new(StreamBody::new(body).boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(end - start));
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1)) {
            response.headers_mut().insert(CONTENT_RANGE, v);
        }
    }
    Ok(response)
}

/// Buffers a JSON request body of at most [`MAX_RECORD_BODY`] bytes and decodes it.
async fn read_json<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, Error> {
    let too_large = Error::TooLarge {
        limit: MAX_RECORD_BODY,
    };
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Refuse before reading a byte when the sender already says it is too large.
    if announced.is_some_and(|len| len > MAX_RECORD_BODY as u64) {
        return Err(too_large);
    }
    let signed = req.extensions().get::<SignedBody>().cloned();
    let collected = Limited::new(req.into_body(), MAX_RECORD_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                Error::TooLarge {
                    limit: MAX_RECORD_BODY,
                }
            } else {
                Error::BodyAborted(e.to_string())
            }
        })?;
    let bytes = collected.to_bytes();
    check_body(signed.as_ref(), &bytes)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::BadRequest(format!("invalid JSON body: {e}")))
}

fn full(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(
        Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json<T: Serialize>(value: &T) -> Result<Response<ResponseBody>, Error> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| Error::Corrupt(format!("cannot encode response: {e}")))?;
    Ok(full(StatusCode::OK, "application/json", Bytes::from(bytes)))
}

fn no_content() -> Response<ResponseBody> {
    let mut response = Response::new(UnsyncBoxBody::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

fn error_response(err: &Error) -> Response<ResponseBody> {
    let (status, body) = status_and_body(err);
    // ErrorBody holds two strings and a stamp; encoding it cannot fail, but never panic on it.
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = full(status, "application/json", Bytes::from(bytes));
    if let Error::RangeNotSatisfiable { size } = err
        && let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}"))
    {
        response.headers_mut().insert(CONTENT_RANGE, v);
    }
    response
}

#[cfg(test)]
mod tests;
