//! What the gateway adjusts on the wire around s3s: requests before s3s verifies their
//! signature, and error answers after a handler (or s3s itself) produced them.
//!
//! - Repeated `Content-Encoding` headers are folded into one (aws-sdk-s3 sends
//!   `aws-chunked` beside the user's encoding, and s3s refuses repeated headers).
//! - A SigV4 request dated by `Date` alone gets the equivalent `x-amz-date`: SigV4 defines
//!   the signing time as `x-amz-date` when present, else `Date`, and s3s reads only the
//!   former. The added header is not among the signed ones, so the signature is unchanged.
//! - S3 error bodies name the request (`RequestId`, the `x-amz-request-id` header, and
//!   `HostId`) and what it addressed (`Resource`, and `BucketName` or `Key` where S3 sends
//!   them); s3s writes only `Code` and `Message`.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response};
use s3s::Body;

use crate::host::Domains;

/// aws-sdk-s3 sends `Content-Encoding: aws-chunked` as a second header beside the user's
/// own encoding, and s3s refuses repeated headers. Folding them into one comma-separated
/// value is what HTTP defines them to mean, and it is also exactly the form SigV4 uses
/// for repeated headers in the canonical request, so signatures still verify.
pub fn fold_content_encoding(headers: &mut HeaderMap) {
    let name = http::header::CONTENT_ENCODING;
    if headers.get_all(&name).iter().count() < 2 {
        return;
    }
    let values: Vec<&str> = headers
        .get_all(&name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .collect();
    if let Ok(v) = HeaderValue::from_str(&values.join(",")) {
        headers.insert(name, v);
    }
}

/// Gives a header-signed SigV4 request that carries `Date` but no `x-amz-date` the
/// `x-amz-date` the signer used. Left alone when `Date` is not an IMF-fixdate.
pub fn date_sigv4_by_date_header(headers: &mut HeaderMap) {
    let sigv4 = headers
        .get(http::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes().starts_with(b"AWS4-HMAC-SHA256 "));
    if !sigv4 || headers.contains_key("x-amz-date") {
        return;
    }
    let amz = headers
        .get(http::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(amz_date);
    if let Some(v) = amz.and_then(|d| HeaderValue::from_str(&d).ok()) {
        headers.insert("x-amz-date", v);
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110's IMF-fixdate) as SigV4's `19941106T084937Z`.
fn amz_date(http_date: &str) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut fields = http_date.split_ascii_whitespace();
    let (_weekday, day, month, year, time, zone) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    if fields.next().is_some() || zone != "GMT" {
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == month)? + 1;
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let hms: Vec<&str> = time.split(':').collect();
    if !digits(day, 2) || !digits(year, 4) || hms.len() != 3 || !hms.iter().all(|p| digits(p, 2)) {
        return None;
    }
    Some(format!(
        "{year}{month:02}{day}T{}{}{}Z",
        hms[0], hms[1], hms[2]
    ))
}

/// What an error answer is about, for its body.
pub struct ErrorContext<'a> {
    pub request_id: &'a str,
    pub host_id: &'a str,
    /// The request path: S3's `Resource`.
    pub path: &'a str,
    pub bucket: Option<String>,
    pub key: Option<String>,
}

/// Adds `Resource`, `RequestId`, `HostId` and, for the codes S3 sends them with,
/// `BucketName` or `Key` to an S3 XML error body that lacks them.
pub fn complete_error_body(resp: &mut Response<Body>, cx: &ErrorContext<'_>) {
    if resp.status().is_success() {
        return;
    }
    let Some(body) = resp.body().bytes() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return;
    };
    let Some(end) = text.rfind("</Error>") else {
        return;
    };
    if text.contains("<RequestId>") {
        return;
    }
    let code = between(text, "<Code>", "</Code>").unwrap_or_default();
    let mut extra = String::new();
    let mut add = |name: &str, value: &str| {
        extra.push_str(&format!("<{name}>{}</{name}>", escape(value)));
    };
    match (code, &cx.bucket, &cx.key) {
        ("NoSuchKey", _, Some(key)) => add("Key", key),
        (
            "NoSuchBucket"
            | "BucketNotEmpty"
            | "BucketAlreadyOwnedByYou"
            | "BucketAlreadyExists"
            | "NoSuchTagSet"
            | "NoSuchCORSConfiguration"
            | "NoSuchBucketPolicy",
            Some(bucket),
            _,
        ) => add("BucketName", bucket),
        _ => {}
    }
    add("Resource", cx.path);
    add("RequestId", cx.request_id);
    add("HostId", cx.host_id);
    let completed = format!("{}{extra}{}", &text[..end], &text[end..]);
    let len = completed.len();
    *resp.body_mut() = Body::from(Bytes::from(completed));
    if let Ok(v) = HeaderValue::from_str(&len.to_string()) {
        resp.headers_mut().insert(http::header::CONTENT_LENGTH, v);
    }
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

/// `s` as XML text; control characters as character references, as S3 writes them (see
/// `xml_escape`).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n') => {
                out.push_str(&format!("&#x{:02X};", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// The bucket and key a request path (and `Host`) addresses, percent-decoded.
pub fn addressed(
    domains: &Domains,
    host: Option<&str>,
    path: &str,
) -> (Option<String>, Option<String>) {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .ok()
            .map(|d| d.into_owned())
            .filter(|d| !d.is_empty())
    };
    let path = path.trim_start_matches('/');
    if let Some((bucket, _)) = host.and_then(|h| domains.bucket_in_host(h)) {
        return (Some(bucket.to_owned()), decode(path));
    }
    match path.split_once('/') {
        Some((bucket, key)) => (decode(bucket), decode(key)),
        None => (decode(path), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_become_amz_dates_and_anything_else_is_left() {
        assert_eq!(
            amz_date("Sun, 06 Nov 1994 08:49:37 GMT").as_deref(),
            Some("19941106T084937Z")
        );
        assert_eq!(
            amz_date("Wed, 02 Dec 2026 23:05:09 GMT").as_deref(),
            Some("20261202T230509Z")
        );
        for bad in [
            "",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
        ] {
            assert_eq!(amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn error_bodies_gain_what_s3_sends() {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code>\
                   <Message>gone</Message></Error>";
        let mut resp = Response::new(Body::from(Bytes::from(xml)));
        *resp.status_mut() = http::StatusCode::NOT_FOUND;
        let cx = ErrorContext {
            request_id: "RID",
            host_id: "HID",
            path: "/b/a&b",
            bucket: Some("b".into()),
            key: Some("a&b\u{1}".into()),
        };
        complete_error_body(&mut resp, &cx);
        let body = String::from_utf8(resp.body().bytes().unwrap().to_vec()).unwrap();
        assert!(body.ends_with(
            "<Key>a&amp;b&#x01;</Key><Resource>/b/a&amp;b</Resource><RequestId>RID</RequestId>\
             <HostId>HID</HostId></Error>"
        ));
        assert_eq!(
            resp.headers()[http::header::CONTENT_LENGTH],
            body.len().to_string().as_str()
        );
    }

    #[test]
    fn addresses_are_read_path_style_or_from_the_host() {
        let none = Domains::default();
        assert_eq!(
            addressed(&none, Some("127.0.0.1"), "/b/k%20x/y"),
            (Some("b".into()), Some("k x/y".into()))
        );
        assert_eq!(addressed(&none, None, "/b"), (Some("b".into()), None));
        assert_eq!(addressed(&none, None, "/"), (None, None));
        let domains = Domains::new(vec!["s3.local".into()]);
        assert_eq!(
            addressed(&domains, Some("b.s3.local:9000"), "/k"),
            (Some("b".into()), Some("k".into()))
        );
    }
}
