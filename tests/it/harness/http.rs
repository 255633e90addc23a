//! Plain HTTP/1.1 for what the SDK cannot or should not do: node calls, unsigned S3
//! requests, admin endpoints. One connection per call; every call has a deadline.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A complete answer: status, headers and the whole body.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RawResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body on failure.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends one request; panics on a transport error or after the deadline.
pub async fn raw_request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> RawResponse {
    let what = format!("{method} {url}");
    try_raw_request(method, url, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Sends one request; a transport error or the deadline is an `Err`.
pub async fn try_raw_request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<RawResponse, String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    let call = async {
        let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(RawResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, call)
        .await
        .map_err(|_| format!("no answer within {REQUEST_TIMEOUT:?}"))?
}

/// What happened on one keep-alive connection: the head of the first answer, and the
/// head of the answer to a second request sent on the same connection (`Err` when the
/// server closed the connection or sent nothing).
#[derive(Debug)]
pub struct KeepAliveProbe {
    pub first: String,
    pub second: Result<String, String>,
}

impl KeepAliveProbe {
    /// True when the first answer announced `Connection: close`.
    pub fn first_said_close(&self) -> bool {
        self.first
            .lines()
            .any(|l| l.eq_ignore_ascii_case("connection: close"))
    }
}

/// Writes `first` (a complete HTTP/1.1 request, body included) to a new connection to
/// `addr`, reads the whole answer, then sends `second` on the same connection and reads the
/// head of its answer. Write errors on `first` are ignored (a server may stop reading a
/// body it has already refused); what matters is what the client can see afterwards.
pub async fn keep_alive_probe(addr: &str, first: &[u8], second: &[u8]) -> KeepAliveProbe {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn read_answer(stream: &mut TcpStream) -> Result<String, String> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("connection closed after {} bytes", buf.len()));
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed inside the body".to_string());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok(head)
    }

    let probe = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let _ = stream.write_all(first).await;
        let first = read_answer(&mut stream)
            .await
            .unwrap_or_else(|e| panic!("no answer to the first request: {e}"));
        let second = match stream.write_all(second).await {
            Ok(()) => read_answer(&mut stream).await,
            Err(e) => Err(format!("write: {e}")),
        };
        KeepAliveProbe { first, second }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, probe)
        .await
        .expect("keep-alive probe timed out")
}
