//! Single S3 operations with their response checks.
//!
//! Each function sends one request on a worker's connection and returns what a successful
//! operation measured, or a message describing why it failed: a transport error, a status
//! other than the expected one, a PUT without an ETag, a GET body of the wrong length or with
//! the wrong bytes, a listing that does not return exactly the keys written. Every failure
//! counts as an error of the workload; nothing is retried.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::body::{Pattern, ReqBody};
use crate::client::{self, Conn, EMPTY_SHA256, Payload};

/// What a successful operation measured.
#[derive(Debug)]
pub struct Done {
    /// Request latency (sent → body fully read).
    pub lat: Duration,
    /// Payload bytes moved.
    pub bytes: u64,
    /// Time to first body byte (reads).
    pub ttfb: Option<Duration>,
}

/// Largest body sent with its SHA-256 in `x-amz-content-sha256`; larger ones are streamed
/// with `UNSIGNED-PAYLOAD`.
pub const SIGNED_BODY_MAX: u64 = 64 * 1024;

/// Fails the operation unless the status is one of `expected`, reading the error document.
async fn expect(
    what: &str,
    resp: http::Response<hyper::body::Incoming>,
    expected: &[StatusCode],
) -> Result<http::Response<hyper::body::Incoming>, String> {
    if expected.contains(&resp.status()) {
        return Ok(resp);
    }
    let status = resp.status();
    let body = client::collect(resp.into_body()).await.unwrap_or_default();
    Err(client::status_error(what, status, &body))
}

/// The request body and payload hash for bytes `[offset, offset + len)` of object `seed`.
pub fn object_body(
    pattern: &std::sync::Arc<Pattern>,
    seed: u64,
    offset: u64,
    len: u64,
) -> (ReqBody, Option<String>) {
    if len <= SIGNED_BODY_MAX {
        let mut buf = Vec::with_capacity(len as usize);
        pattern.append(seed, offset, len as usize, &mut buf);
        let hash = client::sha256_hex(&buf);
        (ReqBody::Full(Some(Bytes::from(buf))), Some(hash))
    } else {
        (
            ReqBody::Pattern {
                pattern: pattern.clone(),
                seed,
                offset,
                remaining: len,
            },
            None,
        )
    }
}

/// PUT `path` (path + query) with bytes `[offset, offset + len)` of object `seed`; the
/// answer must be 200 with an ETag, which is returned.
pub async fn put(
    conn: &mut Conn,
    pattern: &std::sync::Arc<Pattern>,
    path: &str,
    seed: u64,
    offset: u64,
    len: u64,
) -> Result<(Done, String), String> {
    let (body, hash) = object_body(pattern, seed, offset, len);
    let payload = hash.as_deref().map_or(Payload::Unsigned, Payload::Sha256);
    let (resp, start) = conn.send(Method::PUT, path, &[], body, payload).await?;
    let what = format!("PUT {path}");
    let resp = expect(&what, resp, &[StatusCode::OK]).await?;
    let etag = resp
        .headers()
        .get(http::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    client::collect(resp.into_body()).await?;
    let lat = start.elapsed();
    if etag.is_empty() {
        return Err(format!("{what}: 200 without an ETag"));
    }
    Ok((
        Done {
            lat,
            bytes: len,
            ttfb: None,
        },
        etag,
    ))
}

/// GET an object that must be `len` bytes of object `seed`; with `verify` every byte is
/// compared, otherwise only the length.
pub async fn get(
    conn: &mut Conn,
    pattern: &Pattern,
    key: &str,
    seed: u64,
    len: u64,
    verify: bool,
    scratch: &mut Vec<u8>,
) -> Result<Done, String> {
    let path = conn.target().object_path(key);
    let (resp, start) = conn
        .send(
            Method::GET,
            &path,
            &[],
            ReqBody::Empty,
            Payload::Sha256(EMPTY_SHA256),
        )
        .await?;
    let what = format!("GET {path}");
    let resp = expect(&what, resp, &[StatusCode::OK]).await?;
    let check = verify.then_some((pattern, seed, 0));
    let d = client::drain(resp.into_body(), start, check, scratch).await?;
    let lat = start.elapsed();
    if d.bytes != len {
        return Err(format!("{what}: body of {} bytes, expected {len}", d.bytes));
    }
    if !d.content_ok {
        return Err(format!("{what}: body bytes differ from what was written"));
    }
    Ok(Done {
        lat,
        bytes: len,
        ttfb: Some(d.ttfb),
    })
}

/// HEAD an object that must exist with Content-Length `len`.
pub async fn head(conn: &mut Conn, key: &str, len: u64) -> Result<Done, String> {
    let path = conn.target().object_path(key);
    let (resp, start) = conn
        .send(
            Method::HEAD,
            &path,
            &[],
            ReqBody::Empty,
            Payload::Sha256(EMPTY_SHA256),
        )
        .await?;
    let what = format!("HEAD {path}");
    let resp = expect(&what, resp, &[StatusCode::OK]).await?;
    let got = resp
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    client::collect(resp.into_body()).await?;
    let lat = start.elapsed();
    if got != Some(len) {
        return Err(format!("{what}: Content-Length {got:?}, expected {len}"));
    }
    Ok(Done {
        lat,
        bytes: 0,
        ttfb: None,
    })
}

/// DELETE an object (204, or 200 from servers that answer so).
pub async fn delete(conn: &mut Conn, key: &str) -> Result<Done, String> {
    let path = conn.target().object_path(key);
    let (resp, start) = conn
        .send(
            Method::DELETE,
            &path,
            &[],
            ReqBody::Empty,
            Payload::Sha256(EMPTY_SHA256),
        )
        .await?;
    let what = format!("DELETE {path}");
    let resp = expect(&what, resp, &[StatusCode::NO_CONTENT, StatusCode::OK]).await?;
    client::collect(resp.into_body()).await?;
    Ok(Done {
        lat: start.elapsed(),
        bytes: 0,
        ttfb: None,
    })
}

/// One ListObjectsV2 page.
#[derive(Debug)]
pub struct Page {
    /// Keys in the page, in order.
    pub keys: Vec<String>,
    /// Continuation token of the next page, if the listing is truncated.
    pub next: Option<String>,
    /// Request latency and response size.
    pub done: Done,
}

/// GET one ListObjectsV2 page of up to `max_keys` keys under `prefix`.
pub async fn list_page(
    conn: &mut Conn,
    prefix: &str,
    max_keys: u32,
    token: Option<&str>,
) -> Result<Page, String> {
    let mut path = format!(
        "/{}?list-type=2&max-keys={max_keys}&prefix={}",
        conn.target().bucket,
        client::encode_query(prefix)
    );
    if let Some(t) = token {
        path.push_str("&continuation-token=");
        path.push_str(&client::encode_query(t));
    }
    let (resp, start) = conn
        .send(
            Method::GET,
            &path,
            &[],
            ReqBody::Empty,
            Payload::Sha256(EMPTY_SHA256),
        )
        .await?;
    let what = format!("LIST {path}");
    let resp = expect(&what, resp, &[StatusCode::OK]).await?;
    let body = client::collect(resp.into_body()).await?;
    let lat = start.elapsed();
    let xml = std::str::from_utf8(&body).map_err(|_| format!("{what}: body is not UTF-8"))?;
    let keys = xml
        .split("<Key>")
        .skip(1)
        .map(|s| client::xml_unescape(s.split("</Key>").next().unwrap_or_default()))
        .collect();
    let truncated = client::xml_value(xml, "IsTruncated").as_deref() == Some("true");
    let next = client::xml_value(xml, "NextContinuationToken");
    if truncated && next.as_deref().is_none_or(str::is_empty) {
        return Err(format!(
            "{what}: IsTruncated without a NextContinuationToken"
        ));
    }
    Ok(Page {
        keys,
        next: if truncated { next } else { None },
        done: Done {
            lat,
            bytes: body.len() as u64,
            ttfb: None,
        },
    })
}

/// PUT /bucket: 200, or 409 BucketAlreadyOwnedByYou (or any 409 when the bucket answers
/// HEAD with 200: it exists and is ours, e.g. made by `garage-cluster`).
pub async fn create_bucket(conn: &mut Conn) -> Result<(), String> {
    let path = format!("/{}", conn.target().bucket);
    let (resp, _) = conn
        .send(
            Method::PUT,
            &path,
            &[],
            ReqBody::Empty,
            Payload::Sha256(EMPTY_SHA256),
        )
        .await?;
    let status = resp.status();
    let body = client::collect(resp.into_body()).await?;
    if status == StatusCode::OK {
        return Ok(());
    }
    let err = client::status_error(&format!("PUT {path}"), status, &body);
    if status != StatusCode::CONFLICT {
        return Err(err);
    }
    if err.contains("BucketAlreadyOwnedByYou") {
        return Ok(());
    }
    let (resp, _) = conn
        .send(
            Method::HEAD,
            &path,
            &[],
            ReqBody::Empty,
            Payload::Sha256(EMPTY_SHA256),
        )
        .await?;
    let head = resp.status();
    client::collect(resp.into_body()).await?;
    if head == StatusCode::OK {
        Ok(())
    } else {
        Err(format!("{err}; HEAD {path}: HTTP {head}"))
    }
}

/// Settles an operation run under `tokio::time::timeout(limit, ..)`: on timeout the
/// connection is dropped (its state is unknown) and the operation fails.
pub fn settle<T>(
    conn: &mut Conn,
    limit: Duration,
    r: Result<Result<T, String>, tokio::time::error::Elapsed>,
) -> Result<T, String> {
    r.unwrap_or_else(|_| {
        conn.reset();
        Err(format!("no answer within {} s", limit.as_secs()))
    })
}
