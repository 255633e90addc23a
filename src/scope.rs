//! The SigV4 credential scope a request is signed for, checked before s3s sees it.
//!
//! s3s also verifies signatures made for other services (`sts`, for its STS support), and
//! for those it reads the request body *while* verifying the signature, before the
//! operation is known: the body guard could then not tell an S3 document from an object
//! body, and a damaged document would skip its digest check. This store serves S3 only, so,
//! as S3 does, a signature whose scope names another service or an unknown algorithm is
//! refused up front: `400 AuthorizationHeaderMalformed` (header signatures) or
//! `400 AuthorizationQueryParametersError` (presigned URLs).

use http::request::Parts;
use s3s::{S3Error, S3ErrorCode};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Refuses a SigV4 request signed for anything but `s3` with HMAC-SHA256. SigV2 and
/// unsigned requests are left to s3s.
pub fn check(parts: &Parts) -> Result<(), S3Error> {
    if let Some(auth) = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && auth.starts_with("AWS4-")
    {
        let refuse = |why: String| {
            S3Error::with_message(
                S3ErrorCode::AuthorizationHeaderMalformed,
                format!("The authorization header is malformed; {why}"),
            )
        };
        let (algorithm, rest) = auth.split_once(' ').unwrap_or((auth, ""));
        if algorithm != ALGORITHM {
            return Err(refuse(format!(
                "the algorithm {algorithm:?} is not supported"
            )));
        }
        let credential = rest
            .split(',')
            .map(str::trim)
            .find_map(|p| p.strip_prefix("Credential="))
            .unwrap_or_default();
        return match service(credential) {
            Some("s3") | None => Ok(()),
            Some(other) => Err(refuse(format!(
                "incorrect service \"{other}\". This endpoint belongs to \"s3\"."
            ))),
        };
    }
    let query = parts.uri.query().unwrap_or_default();
    let param = |name: &str| {
        query.split('&').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k == name).then(|| percent_encoding::percent_decode_str(v).decode_utf8_lossy())
        })
    };
    if let Some(algorithm) = param("X-Amz-Algorithm") {
        let refuse = |why: String| {
            S3Error::with_message(
                S3ErrorCode::AuthorizationQueryParametersError,
                format!("Error parsing the X-Amz-Credential parameter; {why}"),
            )
        };
        if algorithm != ALGORITHM {
            return Err(refuse(format!(
                "the algorithm {algorithm:?} is not supported"
            )));
        }
        let credential = param("X-Amz-Credential").unwrap_or_default();
        if let Some(other) = service(&credential).filter(|s| *s != "s3") {
            return Err(refuse(format!(
                "incorrect service \"{other}\". This endpoint belongs to \"s3\"."
            )));
        }
    }
    Ok(())
}

/// The service of a credential `AKID/date/region/service/aws4_request`.
fn service(credential: &str) -> Option<&str> {
    let parts: Vec<&str> = credential.rsplitn(3, '/').collect();
    // rsplitn from the end: ["aws4_request", service, "AKID/date/region"].
    (parts.len() == 3).then(|| parts[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(auth: Option<&str>, query: &str) -> Parts {
        let mut req = http::Request::builder().uri(format!("http://h/b/k{query}"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn only_s3_scopes_signed_with_hmac_sha256_pass() {
        let header = |service: &str, alg: &str| {
            format!(
                "{alg} Credential=AK/20261201/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=00"
            )
        };
        assert!(check(&parts(Some(&header("s3", ALGORITHM)), "")).is_ok());
        assert!(check(&parts(Some(&header("sts", ALGORITHM)), "")).is_err());
        assert!(check(&parts(Some(&header("s3", "AWS4-HMAC-SHA512")), "")).is_err());
        assert!(
            check(&parts(Some("AWS AK:sig"), "")).is_ok(),
            "SigV2 is s3s's"
        );
        assert!(check(&parts(None, "")).is_ok());
        let presigned = |service: &str| {
            format!(
                "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261201%2Fus-east-1%2F{service}%2Faws4_request"
            )
        };
        assert!(check(&parts(None, &presigned("s3"))).is_ok());
        assert!(check(&parts(None, &presigned("sts"))).is_err());
        assert!(check(&parts(None, "?X-Amz-Algorithm=AWS4-HMAC-SHA512")).is_err());
    }
}
