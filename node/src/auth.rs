//! The node's side of request authentication (`proto::auth`): signature, clock window and
//! replay checks, and the body digest a buffered body must match.
//!
//! Replays: a nonce is remembered for as long as its request could still pass the clock
//! check (at most twice [`MAX_SKEW_MS`] after it was first seen), in two generations
//! that rotate every such period, so memory is bounded by the request rate. Requests
//! signed more than [`START_GRACE_MS`] before the node started are refused: its memory of
//! nonces starts empty then. (The grace lets through requests a gateway signed while the
//! node was starting; a replay of one seen by the previous process in that last moment
//! before a restart is the one thing left open.)

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderMap;

use crate::error::Error;
use crate::proto::auth::{self, MAX_SKEW_MS, Signed, Target, UNSIGNED_BODY};
use crate::proto::{CHECK_HEADER, EXPECTED_MD5_HEADER};

/// The body digest a verified request claimed (`None`: a streamed, unsigned body).
#[derive(Debug, Clone)]
pub(crate) struct SignedBody(pub Option<String>);

/// How long before the node's start a request may have been signed.
pub(crate) const START_GRACE_MS: u64 = 1_000;

pub(crate) struct Authenticator {
    secret: Vec<u8>,
    started_ms: u64,
    nonces: Mutex<Nonces>,
}

#[derive(Default)]
struct Nonces {
    since_ms: u64,
    current: HashSet<String>,
    previous: HashSet<String>,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Authenticator {
    /// `started_ms`: when the node process began serving (before it bound or opened
    /// anything), see [`now_ms`].
    pub(crate) fn new(secret: Vec<u8>, started_ms: u64) -> Self {
        Authenticator {
            secret,
            started_ms,
            nonces: Mutex::new(Nonces {
                since_ms: started_ms,
                ..Nonces::default()
            }),
        }
    }

    /// Checks the request's signature, time and nonce; returns the body digest it claims.
    pub(crate) fn check(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &HeaderMap,
    ) -> Result<SignedBody, Error> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        };
        let signed = auth::parse(header(auth::AUTH_HEADER)).ok_or(Error::Unauthorized)?;
        let target = Target {
            method,
            path_and_query,
            expected_md5: header(EXPECTED_MD5_HEADER),
            check: header(CHECK_HEADER),
        };
        if !auth::verify(&self.secret, &target, &signed) {
            return Err(Error::Unauthorized);
        }
        let now = now_ms();
        let early = signed.ts_ms < self.started_ms.saturating_sub(START_GRACE_MS);
        if signed.ts_ms.abs_diff(now) > MAX_SKEW_MS || early {
            return Err(Error::Unauthorized);
        }
        if !self.first_use(&signed, now) {
            return Err(Error::Unauthorized);
        }
        Ok(SignedBody(
            (signed.body != UNSIGNED_BODY).then(|| signed.body.to_owned()),
        ))
    }

    /// Remembers the nonce; false if it was seen before.
    fn first_use(&self, signed: &Signed<'_>, now: u64) -> bool {
        let mut nonces = self.nonces.lock().unwrap_or_else(|p| p.into_inner());
        if now.saturating_sub(nonces.since_ms) > 2 * MAX_SKEW_MS {
            nonces.previous = std::mem::take(&mut nonces.current);
            nonces.since_ms = now;
        }
        if nonces.previous.contains(signed.nonce) {
            return false;
        }
        nonces.current.insert(signed.nonce.to_owned())
    }
}

/// Refuses a buffered body that is not the one the request's signature names.
pub(crate) fn check_body(signed: Option<&SignedBody>, body: &[u8]) -> Result<(), Error> {
    match signed {
        Some(SignedBody(Some(digest))) if *digest == auth::body_digest(body) => Ok(()),
        _ => Err(Error::Unauthorized),
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    const SECRET: &[u8] = b"s3cret";

    fn signed(method: &str, path: &str, ts_ms: u64, nonce: &str, body: &str) -> HeaderMap {
        let target = Target {
            method,
            path_and_query: path,
            expected_md5: "",
            check: "",
        };
        let value = auth::header_value(SECRET, &target, ts_ms, nonce, body);
        let mut headers = HeaderMap::new();
        headers.insert(auth::AUTH_HEADER, HeaderValue::from_str(&value).unwrap());
        headers
    }

    fn refused(result: Result<SignedBody, Error>) -> bool {
        matches!(result, Err(Error::Unauthorized))
    }

    #[test]
    fn a_request_passes_once_and_a_replay_is_refused() {
        let auth = Authenticator::new(SECRET.to_vec(), now_ms());
        let body = auth::body_digest(b"{}");
        let headers = signed("POST", "/records/b/k", now_ms(), "n1", &body);
        let passed = auth
            .check("POST", "/records/b/k", &headers)
            .expect("passes");
        assert!(check_body(Some(&passed), b"{}").is_ok());
        assert!(refused(auth.check("POST", "/records/b/k", &headers)));
        // The same nonce on another request is a replay too.
        let other = signed("GET", "/buckets", now_ms(), "n1", &body);
        assert!(refused(auth.check("GET", "/buckets", &other)));
    }

    #[test]
    fn wrong_stale_early_and_misdirected_signatures_are_refused() {
        let auth = Authenticator::new(SECRET.to_vec(), now_ms());
        let now = now_ms();
        let unsigned = UNSIGNED_BODY;
        let cases = [
            signed("GET", "/buckets", now + MAX_SKEW_MS + 1_000, "a", unsigned),
            signed("GET", "/buckets", now - MAX_SKEW_MS - 1_000, "b", unsigned),
            // Signed before the node started, within the window: its nonce may have been
            // used before a restart.
            signed(
                "GET",
                "/buckets",
                auth.started_ms - START_GRACE_MS - 1,
                "c",
                unsigned,
            ),
            signed("GET", "/buckets/other", now, "d", unsigned),
            signed("POST", "/buckets", now, "e", unsigned),
        ];
        for headers in cases {
            assert!(refused(auth.check("GET", "/buckets", &headers)));
        }
        let mut forged = signed("GET", "/buckets", now, "f", unsigned);
        let value = forged[auth::AUTH_HEADER]
            .to_str()
            .unwrap()
            .replace(" f ", " g ");
        forged.insert(auth::AUTH_HEADER, HeaderValue::from_str(&value).unwrap());
        assert!(refused(auth.check("GET", "/buckets", &forged)));
        let mut secret = HeaderMap::new();
        secret.insert("x-s3q-secret", HeaderValue::from_static("s3cret"));
        assert!(refused(auth.check("GET", "/buckets", &secret)));
        assert!(refused(auth.check("GET", "/buckets", &HeaderMap::new())));
    }

    #[test]
    fn a_buffered_body_must_be_the_signed_one() {
        let digest = auth::body_digest(b"{\"a\":1}");
        let claimed = SignedBody(Some(digest));
        assert!(check_body(Some(&claimed), b"{\"a\":1}").is_ok());
        assert!(check_body(Some(&claimed), b"{\"a\":2}").is_err());
        assert!(check_body(Some(&SignedBody(None)), b"{}").is_err());
        assert!(check_body(None, b"{}").is_err());
    }
}
