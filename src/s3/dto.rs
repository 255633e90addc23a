//! Stored values as S3's DTOs show them: timestamps and the owner. A leaf module: every
//! handler family may use it, and it uses none of them.

use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use s3s::dto::{Owner, Timestamp};
use s3s::{S3Result, s3_error};

/// S3's timestamps from our microsecond hybrid clock.
pub(super) fn timestamp(micros: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_micros(micros))
}

/// The single owner of everything in this store.
pub(super) fn owner() -> Owner {
    Owner {
        display_name: Some("s3quorum".into()),
        id: Some("s3quorum".into()),
    }
}

/// A listing's opaque continuation token: the last name (key or bucket) of the page.
pub(super) fn continuation_token(last: &str) -> String {
    URL_SAFE_NO_PAD.encode(last)
}

/// The name a continuation token continues after (`InvalidArgument` if it is not one of
/// ours).
pub(super) fn continue_after(token: &str) -> S3Result<String> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}
