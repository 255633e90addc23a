//! SigV4 header signing for requests the SDK will not send: damaged documents, broken
//! aws-chunked framing, bodies that stall. Written from the AWS specification (canonical
//! request, string to sign, derived key), so a test controls every byte on the wire.

use std::fmt::Write as _;
use std::io::Write as _;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use hyper::Method;
use sha2::{Digest, Sha256};

use super::{Cluster, RawResponse, raw_request};

const REGION: &str = "us-east-1";

/// Whom a signature is for, and how it is dated.
struct Scope<'a> {
    service: &'a str,
    by_date_header: bool,
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Hex SHA-256 of `data` (the signed payload hash).
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `path?query` split into the canonical URI and the canonical query string. Callers pass
/// paths and query values already percent-encoded, as they go on the wire.
fn canonical(path_and_query: &str) -> (String, String) {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (p.to_owned(), String::new()),
        })
        .collect();
    pairs.sort();
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    (path.to_owned(), query)
}

impl Cluster {
    /// The headers of `method path_and_query` on the S3 port signed with the cluster's
    /// keys: `headers` plus `host`, `x-amz-date`, `x-amz-content-sha256` (`payload_hash`:
    /// a hex SHA-256, `UNSIGNED-PAYLOAD` or a `STREAMING-…` value) and `authorization`.
    pub fn sign(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        payload_hash: &str,
    ) -> Vec<(String, String)> {
        self.sign_for("s3", method, path_and_query, headers, payload_hash)
    }

    /// [`Cluster::sign`] with the credential scope of `service`.
    pub fn sign_for(
        &self,
        service: &str,
        method: &Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        payload_hash: &str,
    ) -> Vec<(String, String)> {
        let scope = Scope {
            service,
            by_date_header: false,
        };
        self.sign_as(scope, method, path_and_query, headers, payload_hash)
    }

    /// [`Cluster::sign`] dated by a signed `Date` header instead of `x-amz-date`, as SigV4
    /// allows (and curl or older signers do).
    pub fn sign_by_date_header(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        payload_hash: &str,
    ) -> Vec<(String, String)> {
        let scope = Scope {
            service: "s3",
            by_date_header: true,
        };
        self.sign_as(scope, method, path_and_query, headers, payload_hash)
    }

    fn sign_as(
        &self,
        Scope {
            service,
            by_date_header,
        }: Scope<'_>,
        method: &Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        payload_hash: &str,
    ) -> Vec<(String, String)> {
        let now = time::OffsetDateTime::now_utc();
        let date = format!(
            "{:04}{:02}{:02}",
            now.year(),
            u8::from(now.month()),
            now.day()
        );
        let stamp = format!(
            "{date}T{:02}{:02}{:02}Z",
            now.hour(),
            now.minute(),
            now.second()
        );
        let host = self
            .s3_url()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let mut all: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        all.push(("host".into(), host));
        if by_date_header {
            let http_date = format!(
                "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
                &now.weekday().to_string()[..3],
                now.day(),
                &now.month().to_string()[..3],
                now.year(),
                now.hour(),
                now.minute(),
                now.second()
            );
            all.push(("date".into(), http_date));
        } else {
            all.push(("x-amz-date".into(), stamp.clone()));
        }
        all.push(("x-amz-content-sha256".into(), payload_hash.to_owned()));
        all.sort();
        let signed_names = all
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(";");
        let canonical_headers: String = all.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let (uri, query) = canonical(path_and_query);
        let request = format!(
            "{method}\n{uri}\n{query}\n{canonical_headers}\n{signed_names}\n{payload_hash}"
        );
        let scope = format!("{date}/{REGION}/{service}/aws4_request");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            sha256_hex(request.as_bytes())
        );
        let key = [REGION, service, "aws4_request"].iter().fold(
            hmac(format!("AWS4{}", self.secret_key).as_bytes(), &date),
            |k, part| hmac(&k, part),
        );
        let signature = hex(&hmac(&key, &to_sign));
        all.push((
            "authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_names}, \
                 Signature={signature}",
                self.access_key
            ),
        ));
        all
    }

    /// Sends a request signed over `body` (its SHA-256 is the payload hash).
    pub async fn signed_request(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> RawResponse {
        let hash = sha256_hex(&body);
        self.signed_request_with_hash(method, path_and_query, headers, &hash, body)
            .await
    }

    /// Sends a request signed with `payload_hash` whatever `body` is.
    pub async fn signed_request_with_hash(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        payload_hash: &str,
        body: Bytes,
    ) -> RawResponse {
        let signed = self.sign(&method, path_and_query, headers, payload_hash);
        let signed: Vec<(&str, &str)> = signed
            .iter()
            .filter(|(k, _)| k != "host")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let url = format!("{}{path_and_query}", self.s3_url().trim_end_matches('/'));
        raw_request(method, &url, &signed, body).await
    }

    /// The head of a signed HTTP/1.1 request (through the blank line), to write to a
    /// socket by hand.
    pub fn signed_head(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        payload_hash: &str,
    ) -> Vec<u8> {
        let mut head = Vec::new();
        let _ = write!(head, "{method} {path_and_query} HTTP/1.1\r\n");
        for (k, v) in self.sign(method, path_and_query, headers, payload_hash) {
            let _ = write!(head, "{k}: {v}\r\n");
        }
        head.extend_from_slice(b"\r\n");
        head
    }
}
