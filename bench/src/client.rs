//! A minimal S3 client for load generation.
//!
//! Each worker owns one [`Conn`]: a single keep-alive HTTP/1.1 connection (hyper 1,
//! `client::conn::http1`, over TLS for `https://` endpoints when built with the `tls`
//! feature), reopened only when the server closes it. Requests use path-style
//! URLs (`/bucket/key`) and SigV4 header authentication from the `aws-sigv4` crate
//! (`x-amz-content-sha256` is the body's SHA-256 for small bodies, `UNSIGNED-PAYLOAD` for
//! streamed ones). Content-Length is always set. Response bodies are streamed: counted,
//! optionally compared with the expected pattern, never held whole.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HOST};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;

use crate::body::{Pattern, ReqBody};
use crate::tls;

/// Where requests go and how they are signed.
#[derive(Debug)]
pub struct Target {
    /// `host[:port]` as given in the endpoint: the `Host` header.
    pub authority: String,
    /// Host name alone (TLS server name).
    host: String,
    /// `host:port` to connect to (the scheme's default port when none is given).
    connect_addr: String,
    /// TLS configuration for `https://` endpoints.
    tls: Option<tls::Tls>,
    /// Bucket every request addresses.
    pub bucket: String,
    /// Signing region (`us-east-1`, or `garage` for a default Garage).
    pub region: String,
    identity: Identity,
}

impl Target {
    /// Parses `http://host[:port]` (or `https://`, with the `tls` feature) and keeps the
    /// credentials for signing.
    pub fn new(
        endpoint: &str,
        bucket: &str,
        region: &str,
        access_key: &str,
        secret_key: &str,
    ) -> Result<Self, String> {
        let (rest, tls, default_port) = if let Some(rest) = endpoint.strip_prefix("http://") {
            (rest, None, 80)
        } else if let Some(rest) = endpoint.strip_prefix("https://") {
            (rest, Some(tls::config()?), 443)
        } else {
            return Err(format!(
                "endpoint {endpoint:?}: expected http://HOST[:PORT] or https://HOST[:PORT]"
            ));
        };
        let authority = rest.trim_end_matches('/').to_string();
        if authority.is_empty() || authority.contains('/') {
            return Err(format!(
                "endpoint {endpoint:?}: expected a scheme and HOST[:PORT], no path"
            ));
        }
        let (host, connect_addr) = match authority.rsplit_once(':') {
            Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                (h.to_string(), authority.clone())
            }
            _ => (authority.clone(), format!("{authority}:{default_port}")),
        };
        let identity = Credentials::new(access_key, secret_key, None, None, "s3bench").into();
        Ok(Self {
            authority,
            host,
            connect_addr,
            tls,
            bucket: bucket.to_string(),
            region: region.to_string(),
            identity,
        })
    }

    /// Path of an object: `/bucket/key` (keys used by the bench need no escaping).
    pub fn object_path(&self, key: &str) -> String {
        format!("/{}/{}", self.bucket, key)
    }
}

/// How the payload is declared in `x-amz-content-sha256`.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// Hex SHA-256 of the body, computed by the caller.
    Sha256(&'a str),
    /// `UNSIGNED-PAYLOAD`: streamed bodies, no pre-hashing pass.
    Unsigned,
}

/// Hex SHA-256 of a buffer.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Hex SHA-256 of the empty body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// One keep-alive connection to the target.
#[derive(Debug)]
pub struct Conn {
    target: Arc<Target>,
    sender: Option<SendRequest<ReqBody>>,
    /// Connections opened after the first one (the server closed the previous one).
    pub reconnects: u64,
    opened: u64,
}

impl Conn {
    /// A connection that opens lazily (or on [`Conn::connect`]).
    pub fn new(target: Arc<Target>) -> Self {
        Self {
            target,
            sender: None,
            reconnects: 0,
            opened: 0,
        }
    }

    /// Drops the connection (after a timeout its state is unknown); the next request reopens.
    pub fn reset(&mut self) {
        self.sender = None;
    }

    /// The target this connection talks to.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Opens the connection now if it is not open (so the first timed request does not pay it).
    pub async fn connect(&mut self) -> Result<(), String> {
        if let Some(s) = self.sender.as_mut()
            && s.ready().await.is_ok()
        {
            return Ok(());
        }
        let t = &self.target;
        let stream = TcpStream::connect(&t.connect_addr)
            .await
            .map_err(|e| format!("connect {}: {e}", t.connect_addr))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("set_nodelay: {e}"))?;
        let sender = match &t.tls {
            None => handshake(stream, &t.connect_addr).await?,
            Some(config) => {
                let stream = tls::connect(config, &t.host, stream).await?;
                handshake(stream, &t.connect_addr).await?
            }
        };
        self.sender = Some(sender);
        if self.opened > 0 {
            self.reconnects += 1;
        }
        self.opened += 1;
        Ok(())
    }

    /// Signs and sends one request. `path_and_query` must already be URI-encoded. Returns the
    /// response (body not yet read) and the instant the request was handed to the connection,
    /// after signing: latencies measure the server and the wire, not the signer.
    pub async fn send(
        &mut self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: ReqBody,
        payload: Payload<'_>,
    ) -> Result<(Response<Incoming>, Instant), String> {
        self.connect().await?;
        let len = body.len().to_string();
        let scheme = if self.target.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let url = format!("{scheme}://{}{}", self.target.authority, path_and_query);
        let mut signed_headers: Vec<(&str, &str)> = Vec::with_capacity(headers.len() + 2);
        signed_headers.push(("host", &self.target.authority));
        signed_headers.push(("content-length", &len));
        signed_headers.extend_from_slice(headers);
        let signable_body = match payload {
            Payload::Sha256(h) => SignableBody::Precomputed(h.to_string()),
            Payload::Unsigned => SignableBody::UnsignedPayload,
        };
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&self.target.identity)
            .region(&self.target.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| format!("signing params: {e}"))?
            .into();
        let signable = SignableRequest::new(
            method.as_str(),
            url.as_str(),
            signed_headers.iter().copied(),
            signable_body,
        )
        .map_err(|e| format!("signable request: {e}"))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| format!("sign: {e}"))?
            .into_parts();
        let mut builder = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(HOST, &self.target.authority)
            .header(CONTENT_LENGTH, &len);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let mut req = builder
            .body(body)
            .map_err(|e| format!("build request: {e}"))?;
        instructions.apply_to_request_http1x(&mut req);
        let sender = self.sender.as_mut().ok_or("connection vanished")?;
        let start = Instant::now();
        match sender.send_request(req).await {
            Ok(resp) => Ok((resp, start)),
            Err(e) => {
                self.sender = None;
                Err(format!("{path_and_query}: transport: {e}"))
            }
        }
    }
}

/// HTTP/1.1 handshake over an open stream; the connection task is spawned.
async fn handshake<I>(io: I, addr: &str) -> Result<SendRequest<ReqBody>, String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("handshake {addr}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// What streaming a response body found.
#[derive(Debug, Default)]
pub struct Drained {
    /// Body bytes received.
    pub bytes: u64,
    /// Time from sending the request to the first body byte (or to the end, if empty).
    pub ttfb: Duration,
    /// Whether the checked content matched the expected pattern (true if not checked).
    pub content_ok: bool,
}

/// Reads a response body to the end, counting bytes and, with `verify = Some((pattern, seed,
/// offset))`, comparing every chunk with the expected bytes of that object.
pub async fn drain(
    body: Incoming,
    start: Instant,
    verify: Option<(&Pattern, u64, u64)>,
    scratch: &mut Vec<u8>,
) -> Result<Drained, String> {
    let mut body = body;
    let mut out = Drained {
        content_ok: true,
        ..Drained::default()
    };
    let mut first = true;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("reading body: {e}"))?;
        if let Ok(data) = frame.into_data() {
            if first && !data.is_empty() {
                out.ttfb = start.elapsed();
                first = false;
            }
            if let Some((pattern, seed, offset)) = verify
                && out.content_ok
                && !pattern.matches(seed, offset + out.bytes, &data, scratch)
            {
                out.content_ok = false;
            }
            out.bytes += data.len() as u64;
        }
    }
    if first {
        out.ttfb = start.elapsed();
    }
    Ok(out)
}

/// Reads a small response body whole (XML answers, error documents).
pub async fn collect(body: Incoming) -> Result<Bytes, String> {
    body.collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| format!("reading body: {e}"))
}

/// Describes an unexpected response: status, S3 error code and message when there is one.
pub fn status_error(what: &str, status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let code = xml_value(&text, "Code").unwrap_or_default();
    let message = xml_value(&text, "Message").unwrap_or_default();
    if code.is_empty() {
        format!("{what}: HTTP {status}")
    } else {
        format!("{what}: HTTP {status} {code}: {message}")
    }
}

/// First value of `<tag>…</tag>` in an XML document, entities decoded.
pub fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(xml_unescape(&xml[start..end]))
}

/// Decodes the five predefined XML entities.
pub fn xml_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#34;", "\"")
        .replace("&amp;", "&")
}

/// Percent-encodes a query value (everything except the RFC 3986 unreserved characters).
pub fn encode_query(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_helpers() {
        let doc = "<Error><Code>NoSuchKey</Code><Message>a &amp; b</Message></Error>";
        assert_eq!(xml_value(doc, "Code").as_deref(), Some("NoSuchKey"));
        assert_eq!(xml_value(doc, "Message").as_deref(), Some("a & b"));
        assert_eq!(xml_value(doc, "Key"), None);
        assert_eq!(encode_query("a/b+c=="), "a%2Fb%2Bc%3D%3D");
        assert_eq!(sha256_hex(b""), EMPTY_SHA256);
    }

    #[test]
    fn endpoint_parsing() {
        let t = Target::new("http://127.0.0.1:9000/", "b", "us-east-1", "k", "s").unwrap();
        assert_eq!(t.authority, "127.0.0.1:9000");
        assert_eq!(t.object_path("x/y"), "/b/x/y");
        assert_eq!(t.connect_addr, "127.0.0.1:9000");
        let t = Target::new("http://minio.local", "b", "r", "k", "s").unwrap();
        assert_eq!(
            (t.host.as_str(), t.connect_addr.as_str()),
            ("minio.local", "minio.local:80")
        );
        assert!(Target::new("ftp://x", "b", "r", "k", "s").is_err());
        assert!(Target::new("http://x/path", "b", "r", "k", "s").is_err());
    }
}
