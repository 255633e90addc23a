//! Stored values as S3's DTOs show them: timestamps and the owner. A leaf module: every
//! handler family may use it, and it uses none of them.

use std::time::{Duration, UNIX_EPOCH};

use s3s::dto::{Owner, Timestamp};

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
