//! End-to-end integrity of uploads: one pass over the body computes its MD5 (the ETag) and
//! every checksum the client announced, and the result is compared with `Content-MD5` and
//! the `x-amz-checksum-*` values from headers or the aws-chunked trailer.
//!
//! Nothing here stores anything: the caller commits only after [`BodyDigest::verify`]
//! succeeded, which is what keeps a corrupted or truncated upload invisible.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use md5::{Digest, Md5};
use s3s::checksum::ChecksumHasher;
use s3s::dto::{ChecksumAlgorithm, ETag};
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};

use crate::checksum::{Algorithm, Checksums};

/// What the client claims about the body, gathered before it is read.
#[derive(Debug, Default, Clone)]
pub struct Claims {
    /// `Content-MD5`, base64.
    pub content_md5: Option<String>,
    /// Algorithm → base64 value from request headers.
    pub checksums: Checksums,
    /// Algorithms to compute (named by `x-amz-checksum-algorithm`, the trailer, or a header).
    pub algorithms: Vec<Algorithm>,
    /// The checksum `x-amz-trailer` announces: it must arrive after the body.
    pub trailer: Option<Algorithm>,
}

impl Claims {
    /// Reads the claims from the request headers (s3s leaves them unchecked).
    pub fn from_headers(
        headers: &HeaderMap,
        content_md5: Option<&str>,
        algorithm: Option<&ChecksumAlgorithm>,
    ) -> S3Result<Claims> {
        // s3s drops an empty header; S3 refuses it like any malformed digest.
        let content_md5 = content_md5.map(str::to_owned).or_else(|| {
            headers
                .get("content-md5")
                .map(|v| v.to_str().unwrap_or_default().to_owned())
        });
        let mut claims = Claims {
            content_md5,
            ..Claims::default()
        };
        if let Some(md5) = &claims.content_md5 {
            match STANDARD.decode(md5) {
                Ok(raw) if raw.len() == 16 => {}
                _ => {
                    return Err(s3_error!(
                        InvalidDigest,
                        "The Content-MD5 you specified is not valid."
                    ));
                }
            }
        }
        for a in Algorithm::ALL {
            if let Some(value) = headers.get(a.header()) {
                let value = value
                    .to_str()
                    .map_err(|_| s3_error!(InvalidArgument, "{} is not valid", a.header()))?;
                claims.checksums.insert(a, value.to_owned());
                claims.algorithms.push(a);
            }
        }
        let trailer = headers
            .get("x-amz-trailer")
            .and_then(|v| v.to_str().ok())
            .map(|t| t.trim().to_ascii_lowercase());
        if let Some(t) = trailer.as_deref() {
            claims.trailer = Algorithm::ALL.into_iter().find(|a| a.header() == t);
            if claims.trailer.is_none() {
                return Err(s3_error!(
                    InvalidRequest,
                    "The value specified in the x-amz-trailer header is not supported: {t}"
                ));
            }
        }
        let named = match algorithm {
            None => None,
            Some(a) => Some(Algorithm::parse(a.as_str()).ok_or_else(|| {
                s3_error!(
                    InvalidArgument,
                    "Checksum algorithm {} is not supported",
                    a.as_str()
                )
            })?),
        };
        for a in named.into_iter().chain(claims.trailer) {
            if !claims.algorithms.contains(&a) {
                claims.algorithms.push(a);
            }
        }
        Ok(claims)
    }
}

/// The verified digests of a body.
#[derive(Debug, Clone)]
pub struct Verified {
    pub md5: String,
    pub size: u64,
    /// Algorithm → base64, for every algorithm computed.
    pub checksums: Checksums,
}

/// Digests computed while a body streams through.
pub struct BodyDigest {
    md5: Md5,
    others: ChecksumHasher,
    size: u64,
    claims: Claims,
}

impl BodyDigest {
    pub fn new(claims: Claims) -> Self {
        let mut others = ChecksumHasher::default();
        for a in &claims.algorithms {
            a.enable(&mut others);
        }
        BodyDigest {
            md5: Md5::new(),
            others,
            size: 0,
            claims,
        }
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.md5.update(chunk);
        self.others.update(chunk);
        self.size += chunk.len() as u64;
    }

    /// Compares every digest with what the client claimed, in headers or in `trailers`
    /// (read after the body ended). Any mismatch is `BadDigest`.
    pub fn verify(self, trailers: Option<&HeaderMap>) -> S3Result<Verified> {
        // An announced trailing checksum that never came would leave the body unchecked.
        if let Some(a) = self.claims.trailer
            && !self.claims.checksums.contains_key(&a)
            && trailers.and_then(|t| t.get(a.header())).is_none()
        {
            return Err(s3_error!(
                InvalidRequest,
                "The request announced a trailing {} (x-amz-trailer) but did not send it.",
                a.header()
            ));
        }
        let md5 = self.md5.finalize();
        if let Some(claimed) = &self.claims.content_md5
            && STANDARD.encode(md5) != *claimed
        {
            return Err(s3_error!(
                BadDigest,
                "The Content-MD5 you specified did not match what we received."
            ));
        }
        let computed = self.others.finalize();
        let mut checksums = Checksums::new();
        for a in Algorithm::ALL {
            let Some(ours) = a.value_in(&computed).cloned() else {
                continue;
            };
            let name = a.name();
            let claimed = self.claims.checksums.get(&a).cloned().or_else(|| {
                trailers
                    .and_then(|t| t.get(a.header()))
                    .and_then(|v| v.to_str().ok())
                    .map(|s| s.trim().to_owned())
            });
            if let Some(claimed) = claimed
                && claimed != ours
            {
                return Err(S3Error::with_message(
                    S3ErrorCode::BadDigest,
                    format!("The {name} you specified did not match the calculated checksum."),
                ));
            }
            checksums.insert(a, ours);
        }
        Ok(Verified {
            md5: hex::encode(md5),
            size: self.size,
            checksums,
        })
    }
}

/// The ETag of a stored object, as s3s wants it (unquoted, strong).
pub fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(body: &[u8], claims: Claims) -> S3Result<Verified> {
        let mut d = BodyDigest::new(claims);
        for chunk in body.chunks(7) {
            d.update(chunk);
        }
        d.verify(None)
    }

    #[test]
    fn etag_vectors() {
        let v = digest_of(b"", Claims::default()).unwrap();
        assert_eq!(v.md5, "d41d8cd98f00b204e9800998ecf8427e");
        let v = digest_of(
            b"The quick brown fox jumps over the lazy dog",
            Claims::default(),
        )
        .unwrap();
        assert_eq!(v.md5, "9e107d9d372bb6826bd81d3542a419d6");
    }

    #[test]
    fn content_md5_mismatch_is_bad_digest() {
        let claims = Claims {
            content_md5: Some(STANDARD.encode([0u8; 16])),
            ..Claims::default()
        };
        let err = digest_of(b"hello", claims).unwrap_err();
        assert_eq!(*err.code(), S3ErrorCode::BadDigest);
        let claims = Claims {
            content_md5: Some("XUFAKrxLKna5cZ2REBfFkg==".into()),
            ..Claims::default()
        };
        assert!(digest_of(b"hello", claims).is_ok());
    }

    #[test]
    fn crc32_header_checked() {
        // CRC32 of "hello" is 0x3610a686.
        let good = STANDARD.encode(0x3610a686u32.to_be_bytes());
        let mut claims = Claims::default();
        claims.checksums.insert(Algorithm::Crc32, good.clone());
        claims.algorithms.push(Algorithm::Crc32);
        let v = digest_of(b"hello", claims.clone()).unwrap();
        assert_eq!(v.checksums[&Algorithm::Crc32], good);
        claims.checksums.insert(Algorithm::Crc32, "AAAAAA==".into());
        assert_eq!(
            *digest_of(b"hello", claims).unwrap_err().code(),
            S3ErrorCode::BadDigest
        );
    }

    /// Each algorithm announced in `x-amz-trailer`, with its value arriving after the body:
    /// the right value is stored, any other is BadDigest.
    #[test]
    fn every_algorithm_in_a_trailer_is_checked() {
        let body = b"trailing checksums";
        for a in Algorithm::ALL {
            let (name, header) = (a.name(), a.header());
            let mut announced = HeaderMap::new();
            announced.insert("x-amz-trailer", header.parse().unwrap());
            let claims = Claims::from_headers(&announced, None, None).unwrap();
            assert_eq!(claims.algorithms, [a]);
            // Announced and never sent: refused, not left unchecked.
            let mut d = BodyDigest::new(claims.clone());
            d.update(body);
            let err = d.verify(None).unwrap_err();
            assert_eq!(*err.code(), S3ErrorCode::InvalidRequest, "{name}");
            let unannounced = Claims {
                trailer: None,
                ..claims.clone()
            };
            let mut d = BodyDigest::new(unannounced);
            d.update(body);
            let computed = d.verify(None).unwrap().checksums[&a].clone();

            let mut trailers = HeaderMap::new();
            trailers.insert(header, computed.parse().unwrap());
            let mut d = BodyDigest::new(claims.clone());
            d.update(body);
            assert_eq!(d.verify(Some(&trailers)).unwrap().checksums[&a], computed);

            let mut wrong = computed.into_bytes();
            wrong[0] = if wrong[0] == b'A' { b'B' } else { b'A' };
            trailers.insert(header, String::from_utf8(wrong).unwrap().parse().unwrap());
            let mut d = BodyDigest::new(claims);
            d.update(body);
            let err = d.verify(Some(&trailers)).unwrap_err();
            assert_eq!(*err.code(), S3ErrorCode::BadDigest, "{name}");
        }
    }
}
