//! CORS in the HTTP layer: the `OPTIONS` preflight (which s3s does not route to an S3
//! operation, and which browsers send unauthenticated, as S3 accepts), and the
//! `Access-Control-*` headers of actual responses to requests that carry an `Origin`.
//!
//! Both read the bucket's rules from the bucket record on every request (no cache: a rule
//! change is visible on the next request, on every gateway). The first rule that matches
//! the origin, the method and every requested header wins, as in S3. Origins and allowed
//! headers may hold one `*` wildcard; header names compare case-insensitively.

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use node::proto::CorsRule;
use s3s::Body;

use crate::host::Domains;
use crate::quorum::Cluster;

/// Matches `value` against `pattern`, where one `*` stands for any run of characters.
fn wildcard_match(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let (p, v) = if ignore_case {
        (pattern.to_ascii_lowercase(), value.to_ascii_lowercase())
    } else {
        (pattern.to_owned(), value.to_owned())
    };
    match p.split_once('*') {
        None => p == v,
        Some((prefix, suffix)) => {
            v.len() >= prefix.len() + suffix.len() && v.starts_with(prefix) && v.ends_with(suffix)
        }
    }
}

/// The first rule allowing `origin` to use `method` with all of `headers`.
pub fn find_rule<'a>(
    rules: &'a [CorsRule],
    origin: &str,
    method: &str,
    headers: &[&str],
) -> Option<&'a CorsRule> {
    rules.iter().find(|r| {
        r.allowed_origins
            .iter()
            .any(|o| wildcard_match(o, origin, false))
            && r.allowed_methods.iter().any(|m| m == method)
            && headers
                .iter()
                .all(|h| r.allowed_headers.iter().any(|a| wildcard_match(a, h, true)))
    })
}

/// The headers every CORS answer from `rule` carries.
fn rule_headers(rule: &CorsRule, origin: &str, out: &mut HeaderMap) {
    let wildcard = rule.allowed_origins.iter().any(|o| o == "*");
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.insert(name, v);
        }
    };
    if wildcard {
        put("access-control-allow-origin", "*");
    } else {
        put("access-control-allow-origin", origin);
        put("access-control-allow-credentials", "true");
    }
    put(
        "access-control-allow-methods",
        &rule.allowed_methods.join(", "),
    );
    if !rule.expose_headers.is_empty() {
        put(
            "access-control-expose-headers",
            &rule.expose_headers.join(", "),
        );
    }
    if let Some(age) = rule.max_age_seconds {
        put("access-control-max-age", &age.to_string());
    }
}

/// The live CORS rules of `bucket`; `None` when the bucket does not exist.
async fn bucket_rules(cluster: &Cluster, bucket: &str) -> Result<Option<Vec<CorsRule>>, ()> {
    match cluster.existing_bucket(bucket).await {
        Ok(Some(b)) => Ok(Some(b.live(&b.cors).cloned().unwrap_or_default())),
        Ok(None) => Ok(None),
        Err(e) => {
            tracing::warn!(bucket, "CORS rules unavailable: {e}");
            Err(())
        }
    }
}

/// Where CORS answers get the rules from.
#[derive(Clone)]
pub struct Cors {
    pub cluster: Cluster,
    pub domains: Domains,
}

impl Cors {
    /// Answers an `OPTIONS` preflight request.
    pub async fn preflight(&self, req: &http::request::Parts) -> Response<Body> {
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
        let host = header("host").or(req.uri.host());
        let path = req.uri.path();
        let resource = if self.domains.names_object(host, path) {
            "OBJECT"
        } else {
            "BUCKET"
        };
        let method = header("access-control-request-method");
        let Some(origin) = header("origin") else {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Insufficient information. Origin request header needed.",
                None,
            );
        };
        let Some(method) = method.filter(|m| Method::from_bytes(m.as_bytes()).is_ok()) else {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Invalid Access-Control-Request-Method header",
                None,
            );
        };
        let Some(bucket) = self.domains.bucket_of(host, path) else {
            return forbidden("CORSResponse: Bucket not found", method, resource);
        };
        let rules = match bucket_rules(&self.cluster.current(), &bucket).await {
            Ok(Some(rules)) => rules,
            Ok(None) => return forbidden("CORSResponse: Bucket not found", method, resource),
            Err(()) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "Not enough storage replicas answered; please retry.",
                    None,
                );
            }
        };
        if rules.is_empty() {
            return forbidden(
                "CORSResponse: CORS is not enabled for this bucket.",
                method,
                resource,
            );
        }
        let requested = header("access-control-request-headers").unwrap_or("");
        let names: Vec<&str> = requested
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        let Some(rule) = find_rule(&rules, origin, method, &names) else {
            return forbidden(
                "CORSResponse: This CORS request is not allowed. This is usually because the \
                 evalution of Origin, request method / Access-Control-Request-Method or \
                 Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
                method,
                resource,
            );
        };
        let mut resp = Response::new(Body::empty());
        let headers = resp.headers_mut();
        rule_headers(rule, origin, headers);
        if !names.is_empty()
            && let Ok(v) = HeaderValue::from_str(&names.join(", "))
        {
            headers.insert("access-control-allow-headers", v);
        }
        headers.insert(
            http::header::VARY,
            HeaderValue::from_static(
                "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
            ),
        );
        resp
    }

    /// Looks up, for an actual request with an `Origin`, the CORS headers its answer
    /// should carry; `None` when no rule allows it.
    pub async fn response_headers(
        &self,
        host: Option<&str>,
        path: &str,
        origin: &str,
        method: &str,
    ) -> Option<HeaderMap> {
        let bucket = self.domains.bucket_of(host, path)?;
        let rules = bucket_rules(&self.cluster.current(), &bucket)
            .await
            .ok()??;
        let rule = find_rule(&rules, origin, method, &[])?;
        let mut headers = HeaderMap::new();
        rule_headers(rule, origin, &mut headers);
        headers.insert(http::header::VARY, HeaderValue::from_static("Origin"));
        Some(headers)
    }
}

fn forbidden(message: &str, method: &str, resource: &str) -> Response<Body> {
    let extra = format!(
        "<Method>{}</Method><ResourceType>{resource}</ResourceType>",
        xml_escape(method)
    );
    error(
        StatusCode::FORBIDDEN,
        "AccessForbidden",
        message,
        Some(&extra),
    )
}

fn error(status: StatusCode, code: &str, message: &str, extra: Option<&str>) -> Response<Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message>{}</Error>",
        xml_escape(message),
        extra.unwrap_or("")
    );
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    resp
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        CorsRule {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
            ..CorsRule::default()
        }
    }

    #[test]
    fn wildcards_match_one_run_of_characters() {
        assert!(wildcard_match("*", "https://a.test", false));
        assert!(wildcard_match("https://*.test", "https://a.b.test", false));
        assert!(!wildcard_match("https://*.test", "http://a.test", false));
        assert!(!wildcard_match("https://a*a", "https://a", false));
        assert!(wildcard_match("X-Amz-*", "x-amz-date", true));
        assert!(!wildcard_match("https://A.test", "https://a.test", false));
    }

    #[test]
    fn first_rule_allowing_origin_method_and_every_header_wins() {
        let rules = vec![
            rule(&["https://app.test"], &["PUT"], &["content-type"]),
            rule(&["*"], &["GET", "HEAD"], &[]),
        ];
        let put = find_rule(&rules, "https://app.test", "PUT", &["Content-Type"]);
        assert_eq!(put, Some(&rules[0]));
        assert_eq!(
            find_rule(&rules, "https://app.test", "PUT", &["x-amz-date"]),
            None
        );
        assert_eq!(find_rule(&rules, "https://evil.test", "PUT", &[]), None);
        assert_eq!(
            find_rule(&rules, "https://evil.test", "GET", &[]),
            Some(&rules[1])
        );
        assert_eq!(find_rule(&rules, "https://evil.test", "GET", &["a"]), None);
    }
}
