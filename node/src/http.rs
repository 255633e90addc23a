//! The node's HTTP API: authentication, the router over (method, path segments) and one
//! handler per route of the table in [`crate::proto`].
//!
//! Invariants: every route but `GET /health` is refused with 401 before anything else is
//! looked at (the body is never read); path segments are percent-decoded here and nowhere
//! else; JSON bodies are buffered up to [`proto::MAX_RECORD_BODY`], blob bodies are streamed
//! both ways. Errors become responses only through [`crate::error::status_and_body`].

use std::convert::Infallible;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use http::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, BodyStream, Full, LengthLimitError, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::blobs::BlobStore;
use crate::error::{Error, status_and_body};
use crate::proto::{self, BucketRecord, MAX_LIST_LIMIT, MAX_RECORD_BODY, ObjectRecord};
use crate::records::RecordStore;

/// Body of every node response: small JSON, or a blob streamed from disk.
pub(crate) type ResponseBody = UnsyncBoxBody<Bytes, Error>;

/// What every request handler shares; built once in [`crate::serve`].
pub(crate) struct State {
    pub(crate) secret: Vec<u8>,
    pub(crate) blobs: BlobStore,
    pub(crate) records: RecordStore,
}

/// Answers one request. Never fails: errors are turned into error responses here.
pub(crate) async fn handle(
    state: &State,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let response = route(state, req).await.unwrap_or_else(|e| {
        tracing::debug!(%method, %path, error = %e, "request refused");
        error_response(&e)
    });
    Ok(response)
}

async fn route(state: &State, req: Request<Incoming>) -> Result<Response<ResponseBody>, Error> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(&path).split('/').collect();
    let method = req.method().as_str().to_string();
    if method == "GET" && segments == ["health"] {
        return Ok(full(
            StatusCode::OK,
            "text/plain",
            Bytes::from_static(b"ok"),
        ));
    }
    authorize(req.headers(), &state.secret)?;
    match (method.as_str(), segments.as_slice()) {
        ("PUT", ["blobs", id]) => put_blob(state, id, req).await,
        ("GET", ["blobs", id]) => get_blob(state, id, req.headers()).await,
        ("DELETE", ["blobs", id]) => {
            state.blobs.delete(id).await?;
            Ok(no_content())
        }
        ("GET", ["records", bucket, key]) => {
            let (bucket, key) = (decode(bucket)?, decode(key)?);
            let record = state.records.get_object(&bucket, &key).await?;
            json(&record.ok_or(Error::NotFound)?)
        }
        ("POST", ["records", bucket, key]) => {
            let (bucket, key) = (decode(bucket)?, decode(key)?);
            let record: ObjectRecord = read_json(req).await?;
            state.records.merge_object(&bucket, &key, record).await?;
            Ok(no_content())
        }
        ("GET", ["list", bucket]) => {
            let bucket = decode(bucket)?;
            let query = ListQuery::parse(req.uri().query())?;
            let page = state
                .records
                .list(&bucket, &query.prefix, &query.after, query.limit)
                .await?;
            json(&page)
        }
        ("GET", ["buckets"]) => json(&state.records.list_buckets().await?),
        ("GET", ["buckets", name]) => {
            let name = decode(name)?;
            json(
                &state
                    .records
                    .get_bucket(&name)
                    .await?
                    .ok_or(Error::NotFound)?,
            )
        }
        ("POST", ["buckets", name]) => {
            let name = decode(name)?;
            let record: BucketRecord = read_json(req).await?;
            if record.name != name {
                return Err(Error::BadRequest(format!(
                    "bucket record names {:?} but was sent to {name:?}",
                    record.name
                )));
            }
            state.records.merge_bucket(record).await?;
            Ok(no_content())
        }
        (
            _,
            ["health"]
            | ["blobs", _]
            | ["records", _, _]
            | ["list", _]
            | ["buckets"]
            | ["buckets", _],
        ) => Err(Error::MethodNotAllowed),
        _ => Err(Error::NoRoute),
    }
}

/// Refuses a request without the right cluster secret. The comparison takes the same time
/// wherever the first differing byte is, so response timing does not leak the secret.
fn authorize(headers: &HeaderMap, secret: &[u8]) -> Result<(), Error> {
    let given = headers
        .get(proto::SECRET_HEADER)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    let differs = given.len() != secret.len()
        || given
            .iter()
            .zip(secret)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            != 0;
    if differs {
        Err(Error::Unauthorized)
    } else {
        Ok(())
    }
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
    let expected_md5 = match req.headers().get(proto::EXPECTED_MD5_HEADER) {
        None => None,
        Some(v) => Some(parse_md5(v)?),
    };
    let body = BodyStream::new(req.into_body())
        .try_filter_map(|frame| futures::future::ready(Ok(frame.into_data().ok())));
    let reply = state.blobs.put(id, body, expected_md5).await?;
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

/// A single `Range: bytes=` spec; multiple ranges are not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteRange {
    /// `bytes=a-b`, both inclusive.
    FromTo(u64, u64),
    /// `bytes=a-`.
    From(u64),
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    fn parse(value: &HeaderValue) -> Result<ByteRange, Error> {
        let bad = || Error::BadRequest(format!("unsupported Range header {value:?}"));
        let spec = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().strip_prefix("bytes="))
            .ok_or_else(bad)?;
        let (first, last) = spec.trim().split_once('-').ok_or_else(bad)?;
        let number = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
        match (first.trim().is_empty(), last.trim().is_empty()) {
            (false, false) => {
                let (a, b) = (number(first)?, number(last)?);
                if a > b {
                    return Err(bad());
                }
                Ok(ByteRange::FromTo(a, b))
            }
            (false, true) => Ok(ByteRange::From(number(first)?)),
            (true, false) => Ok(ByteRange::Suffix(number(last)?)),
            (true, true) => Err(bad()),
        }
    }

    /// (start, end exclusive) within a blob of `size` bytes, as RFC 9110 reads the spec: an
    /// end past the blob is clipped, a start past it cannot be satisfied.
    fn resolve(self, size: u64) -> Result<(u64, u64), Error> {
        let unsatisfiable = Error::RangeNotSatisfiable { size };
        match self {
            ByteRange::FromTo(a, _) | ByteRange::From(a) if a >= size => Err(unsatisfiable),
            ByteRange::FromTo(a, b) => Ok((a, b.saturating_add(1).min(size))),
            ByteRange::From(a) => Ok((a, size)),
            ByteRange::Suffix(n) if n == 0 || size == 0 => Err(unsatisfiable),
            ByteRange::Suffix(n) => Ok((size - n.min(size), size)),
        }
    }
}

/// Query of `GET /list/{bucket}`; values are percent-encoded like path segments.
#[derive(Debug, PartialEq, Eq)]
struct ListQuery {
    prefix: String,
    after: String,
    limit: usize,
}

impl ListQuery {
    fn parse(query: Option<&str>) -> Result<ListQuery, Error> {
        let mut parsed = ListQuery {
            prefix: String::new(),
            after: String::new(),
            limit: MAX_LIST_LIMIT,
        };
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = proto::decode_segment(value)
                .ok_or_else(|| Error::BadRequest(format!("query value of {name} is not UTF-8")))?;
            match name {
                "prefix" => parsed.prefix = value,
                "after" => parsed.after = value,
                "limit" => {
                    parsed.limit = value
                        .parse()
                        .map_err(|_| Error::BadRequest(format!("bad limit {value:?}")))?;
                }
                // Unknown parameters are ignored so a newer gateway can talk to this node.
                _ => {}
            }
        }
        Ok(parsed)
    }
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
    serde_json::from_slice(&collected.to_bytes())
        .map_err(|e| Error::BadRequest(format!("invalid JSON body: {e}")))
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
    // ErrorBody holds two strings; encoding it cannot fail, but never panic on it.
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
