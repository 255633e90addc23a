//! Which bucket a request addresses: virtual-hosted style (`bucket.DOMAIN`) for the
//! configured base domains, path style (`/bucket/key`) for everything else.
//!
//! Path style always works. A `Host` that is an IP address, a base domain itself, or not
//! under any base domain is parsed as path style; there is no CNAME fallback (a host name
//! never silently becomes a bucket name). Ports are ignored when matching.

use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

/// The configured base domains (lowercase, without ports).
#[derive(Debug, Clone, Default)]
pub struct Domains(Vec<String>);

impl Domains {
    pub fn new(domains: Vec<String>) -> Self {
        Domains(domains)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bucket named by a virtual-hosted `host`, if it is one.
    pub fn bucket_in_host<'a>(&self, host: &'a str) -> Option<(&'a str, &str)> {
        let name = strip_port(host);
        for domain in &self.0 {
            let Some(cut) = name.len().checked_sub(domain.len() + 1) else {
                continue;
            };
            let (Some(bucket), Some(rest)) = (name.get(..cut), name.get(cut..)) else {
                continue;
            };
            if !bucket.is_empty() && rest.starts_with('.') && rest[1..].eq_ignore_ascii_case(domain)
            {
                return Some((bucket, domain));
            }
        }
        None
    }

    /// The bucket a request addresses (virtual-hosted or path style), if any.
    pub fn bucket_of(&self, host: Option<&str>, path: &str) -> Option<String> {
        if let Some((bucket, _)) = host.and_then(|h| self.bucket_in_host(h)) {
            return Some(bucket.to_owned());
        }
        let first = path.trim_start_matches('/').split('/').next()?;
        let decoded = percent_encoding::percent_decode_str(first)
            .decode_utf8()
            .ok()?;
        (!decoded.is_empty()).then(|| decoded.into_owned())
    }

    /// Whether the request names an object (a key after the bucket), for error answers.
    pub fn names_object(&self, host: Option<&str>, path: &str) -> bool {
        let rest = path.trim_start_matches('/');
        match host.and_then(|h| self.bucket_in_host(h)) {
            Some(_) => !rest.is_empty(),
            None => rest.split_once('/').is_some_and(|(_, key)| !key.is_empty()),
        }
    }
}

impl S3Host for Domains {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        Ok(match self.bucket_in_host(host) {
            Some((bucket, domain)) => VirtualHost::new(domain).with_bucket(bucket),
            None => VirtualHost::new(host),
        })
    }
}

/// `host` without a trailing `:port` (IPv6 literals in brackets keep their colons).
pub fn strip_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i)
            if !host[i..].contains(']') && host[i + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &host[..i]
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains() -> Domains {
        Domains::new(vec!["s3.example.test".into(), "localhost".into()])
    }

    #[test]
    fn virtual_hosted_names_are_buckets_everything_else_is_path_style() {
        let d = domains();
        assert_eq!(
            d.bucket_in_host("photos.s3.example.test:9000"),
            Some(("photos", "s3.example.test"))
        );
        assert_eq!(
            d.bucket_in_host("my.dotted.bucket.s3.example.test"),
            Some(("my.dotted.bucket", "s3.example.test"))
        );
        assert_eq!(d.bucket_in_host("b.LOCALHOST:1"), Some(("b", "localhost")));
        for path_style in [
            "s3.example.test",
            "s3.example.test:9000",
            "127.0.0.1:9000",
            "[::1]:9000",
            "other.test",
            "xs3.example.test",
            ".s3.example.test",
            "localhost",
        ] {
            assert_eq!(d.bucket_in_host(path_style), None, "{path_style}");
        }
    }

    #[test]
    fn bucket_of_uses_host_then_path() {
        let d = domains();
        assert_eq!(
            d.bucket_of(Some("b1.s3.example.test"), "/some/key"),
            Some("b1".into())
        );
        assert_eq!(
            d.bucket_of(Some("127.0.0.1:80"), "/b2/k"),
            Some("b2".into())
        );
        assert_eq!(d.bucket_of(Some("127.0.0.1:80"), "/"), None);
        assert!(d.names_object(Some("127.0.0.1"), "/b/k"));
        assert!(!d.names_object(Some("127.0.0.1"), "/b/"));
        assert!(d.names_object(Some("b.localhost"), "/k"));
        assert!(!d.names_object(Some("b.localhost"), "/"));
    }

    #[test]
    fn ports_are_stripped_but_not_from_ipv6_literals() {
        assert_eq!(strip_port("a.test:9000"), "a.test");
        assert_eq!(strip_port("a.test"), "a.test");
        assert_eq!(strip_port("[::1]:9000"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }
}
