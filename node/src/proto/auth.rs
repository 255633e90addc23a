//! How gateways authenticate to nodes without the cluster secret on the wire.
//!
//! Every request but `/health` and `/metrics` carries [`AUTH_HEADER`]:
//! `v1 <timestamp ms> <nonce> <body digest> <signature>`, where the signature is the hex
//! HMAC-SHA256, under the cluster secret, of
//!
//! ```text
//! s3q-node-v1 \n METHOD \n path?query \n x-s3q-expected-md5 \n x-s3q-check \n
//! timestamp \n nonce \n body digest
//! ```
//!
//! (the two headers' values, empty when absent). The body digest is the hex SHA-256 of a
//! buffered body, or [`UNSIGNED_BODY`] for a streamed one (blob uploads, whose bytes the
//! gateway checks through their MD5 and CRC table anyway). A node refuses a request whose
//! signature is wrong, whose timestamp is more than [`MAX_SKEW_MS`] away from its clock or
//! older than its own start, or whose nonce it has seen before: a captured request cannot
//! be replayed, altered or used to forge another. Bodies a node buffers must carry their
//! digest. Not covered: answers (a party on the path could still change them; TLS between
//! gateways and nodes closes that).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The request header carrying the signature.
pub const AUTH_HEADER: &str = "x-s3q-auth";
/// How far a request's timestamp may be from the node's clock.
pub const MAX_SKEW_MS: u64 = 60_000;
/// The body digest of a streamed body.
pub const UNSIGNED_BODY: &str = "-";

const VERSION: &str = "v1";
const SCOPE: &str = "s3q-node-v1";

/// The parts of an [`AUTH_HEADER`] value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed<'a> {
    pub ts_ms: u64,
    pub nonce: &'a str,
    /// Hex SHA-256 of the body, or [`UNSIGNED_BODY`].
    pub body: &'a str,
    pub signature: &'a str,
}

/// What a request is signed over besides its time, nonce and body.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub method: &'a str,
    pub path_and_query: &'a str,
    pub expected_md5: &'a str,
    pub check: &'a str,
}

/// The hex SHA-256 of a buffered body.
pub fn body_digest(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

fn mac(secret: &[u8], target: &Target<'_>, ts_ms: u64, nonce: &str, body: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    let Target {
        method,
        path_and_query,
        expected_md5,
        check,
    } = target;
    let text = format!(
        "{SCOPE}\n{method}\n{path_and_query}\n{expected_md5}\n{check}\n{ts_ms}\n{nonce}\n{body}"
    );
    mac.update(text.as_bytes());
    mac
}

/// The [`AUTH_HEADER`] value for a request to `target` sent at `ts_ms` with a fresh
/// `nonce` (unique per request) and body digest `body`.
pub fn header_value(
    secret: &[u8],
    target: &Target<'_>,
    ts_ms: u64,
    nonce: &str,
    body: &str,
) -> String {
    let signature = hex::encode(
        mac(secret, target, ts_ms, nonce, body)
            .finalize()
            .into_bytes(),
    );
    format!("{VERSION} {ts_ms} {nonce} {body} {signature}")
}

/// Splits an [`AUTH_HEADER`] value; `None` if it is not one.
pub fn parse(value: &str) -> Option<Signed<'_>> {
    let mut parts = value.split(' ');
    if parts.next()? != VERSION {
        return None;
    }
    let signed = Signed {
        ts_ms: parts.next()?.parse().ok()?,
        nonce: parts.next().filter(|n| !n.is_empty() && n.len() <= 64)?,
        body: parts.next()?,
        signature: parts.next()?,
    };
    parts.next().is_none().then_some(signed)
}

/// Whether `signed` is `target` signed with `secret` (compared in constant time).
pub fn verify(secret: &[u8], target: &Target<'_>, signed: &Signed<'_>) -> bool {
    let Ok(given) = hex::decode(signed.signature) else {
        return false;
    };
    mac(secret, target, signed.ts_ms, signed.nonce, signed.body)
        .verify_slice(&given)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target<'static> {
        Target {
            method: "POST",
            path_and_query: "/records/b/k",
            expected_md5: "",
            check: "",
        }
    }

    #[test]
    fn a_signature_verifies_only_for_what_it_signed() {
        let body = body_digest(b"{}");
        let value = header_value(b"secret", &target(), 1_000, "n1", &body);
        let signed = parse(&value).expect("parses");
        assert_eq!(
            (signed.ts_ms, signed.nonce, signed.body),
            (1_000, "n1", body.as_str())
        );
        assert!(verify(b"secret", &target(), &signed));
        assert!(!verify(b"other secret", &target(), &signed));
        let elsewhere = Target {
            path_and_query: "/records/b/other",
            ..target()
        };
        assert!(!verify(b"secret", &elsewhere, &signed));
        let md5 = Target {
            expected_md5: "00",
            ..target()
        };
        assert!(!verify(b"secret", &md5, &signed));
        for tampered in [
            Signed {
                ts_ms: 1_001,
                ..signed.clone()
            },
            Signed {
                nonce: "n2",
                ..signed.clone()
            },
            Signed {
                body: UNSIGNED_BODY,
                ..signed.clone()
            },
            Signed {
                signature: "00",
                ..signed.clone()
            },
            Signed {
                signature: "not hex",
                ..signed.clone()
            },
        ] {
            assert!(!verify(b"secret", &target(), &tampered), "{tampered:?}");
        }
    }

    #[test]
    fn malformed_values_do_not_parse() {
        for bad in [
            "",
            "v1",
            "v2 1 n - s",
            "v1 x n - s",
            "v1 1  - s",
            "v1 1 n - s extra",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
