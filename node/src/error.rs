//! The node's one error type and the one place that turns it into an HTTP answer.
//!
//! Invariant: nothing else in the node chooses a status code. Handlers return `Error`;
//! [`status_and_body`] maps it to a status and a [`proto::ErrorBody`] whose `code` is stable
//! (the gateway matches on it). Internal failures are logged here, once, with their cause.

use std::io;
use std::sync::Arc;

use http::StatusCode;

use crate::proto;

/// Everything that can go wrong in the node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The blob, record or bucket does not exist on this node.
    #[error("not found")]
    NotFound,
    /// Not here because this node found its bytes bad and quarantined them.
    #[error("quarantined as corrupt")]
    Quarantined,
    /// No route matches the request path.
    #[error("no such route")]
    NoRoute,
    /// The path exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request is malformed (bad path segment, bad JSON, bad header, ...).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The cluster secret is missing or wrong.
    #[error("missing or wrong cluster secret")]
    Unauthorized,
    /// A body the node would have to buffer is larger than it accepts.
    #[error("body larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The requested byte range lies outside a blob of `size` bytes.
    #[error("range not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    /// The stored bytes do not have the MD5 the sender announced; nothing was kept.
    #[error("md5 mismatch: expected {expected}, received data has {actual}")]
    DigestMismatch { expected: String, actual: String },
    /// The request body ended with an error (the sender aborted); nothing was kept.
    #[error("request body aborted: {0}")]
    BodyAborted(String),
    /// Stored data failed a checksum or has an invalid layout.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// Fewer free bytes than the reserve on the data directory's disk: nothing was written.
    #[error("disk full: {free} bytes free, {reserve} kept in reserve")]
    DiskFull { free: u64, reserve: u64 },
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A file system operation failed.
    #[error("{op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// The record database failed. Shared because one failed group commit fails every
    /// write in the batch.
    #[error("record database, {op}: {source}")]
    Db {
        op: &'static str,
        #[source]
        source: Arc<redb::Error>,
    },
    /// The metrics registry refused a metric or could not be rendered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The node is shutting down or a background worker it needs has stopped.
    #[error("unavailable: {0}")]
    Unavailable(&'static str),
    /// A plain record write would add a version stamped below the ballot this node promised
    /// for the key: the write must be stamped again above `promised` (see
    /// `records::paxos::check_fresh`). Nothing of the write was stored.
    #[error("stamp below the ballot promised for this key")]
    Stale { promised: proto::Stamp },
    /// The request was placed with layout version `sent`, older than the `committed` one:
    /// the sender must place the key again under the newer layout. Nothing was done.
    #[error(
        "request placed with layout version {sent}; this node has committed version {committed}"
    )]
    StaleLayout { sent: u64, committed: u64 },
    /// A `release` of a key this node may not give up (yet); says why.
    #[error("cannot release: {0}")]
    StillOwner(String),
}

impl Error {
    /// Wraps an IO error with the operation that failed; for `map_err`.
    pub(crate) fn io(op: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io { op, source }
    }

    /// Wraps the failure of a blocking task (it panicked or was cancelled); for `map_err`.
    pub(crate) fn task(op: &'static str) -> impl FnOnce(tokio::task::JoinError) -> Error {
        move |e| Error::Io {
            op,
            source: io::Error::other(e.to_string()),
        }
    }

    /// Wraps any redb error with the operation that failed; for `map_err`.
    pub(crate) fn db<E: Into<redb::Error>>(op: &'static str) -> impl FnOnce(E) -> Error {
        move |source| Error::Db {
            op,
            source: Arc::new(source.into()),
        }
    }

    /// A copy of `self` for each waiter of a failed group commit (`io::Error` is not
    /// `Clone`; redb errors are shared, anything else keeps its message).
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Db { op, source } => Error::Db {
                op,
                source: Arc::clone(source),
            },
            Error::DiskFull { free, reserve } => Error::DiskFull {
                free: *free,
                reserve: *reserve,
            },
            Error::Unavailable(why) => Error::Unavailable(why),
            other => Error::Io {
                op: "record writer",
                source: io::Error::other(other.to_string()),
            },
        }
    }
}

/// The HTTP status and error body for `err`. Logs server-side failures (5xx) once, here.
pub(crate) fn status_and_body(err: &Error) -> (StatusCode, proto::ErrorBody) {
    let (status, code) = match err {
        Error::NotFound => (StatusCode::NOT_FOUND, "NotFound"),
        Error::Quarantined => (StatusCode::NOT_FOUND, proto::QUARANTINED_CODE),
        Error::NoRoute => (StatusCode::NOT_FOUND, "NoSuchRoute"),
        Error::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
        Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
        Error::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized"),
        Error::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "TooLarge"),
        Error::RangeNotSatisfiable { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, "InvalidRange"),
        Error::DigestMismatch { .. } => (StatusCode::BAD_REQUEST, "DigestMismatch"),
        Error::BodyAborted(_) => (StatusCode::BAD_REQUEST, "BodyAborted"),
        Error::Corrupt(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Corrupt"),
        Error::DiskFull { .. } => (StatusCode::INSUFFICIENT_STORAGE, "DiskFull"),
        Error::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull => {
            (StatusCode::INSUFFICIENT_STORAGE, "DiskFull")
        }
        Error::Config(_) | Error::Io { .. } | Error::Db { .. } | Error::Metrics(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
        }
        Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
        Error::Stale { .. } => (StatusCode::CONFLICT, proto::STALE_CODE),
        Error::StaleLayout { .. } => (StatusCode::CONFLICT, proto::layout::STALE_LAYOUT_CODE),
        Error::StillOwner(_) => (StatusCode::CONFLICT, proto::layout::STILL_OWNER_CODE),
    };
    if status.is_server_error() {
        tracing::error!(error = %err, code, "request failed");
    }
    let body = proto::ErrorBody {
        code: code.to_string(),
        message: err.to_string(),
        promised: match err {
            Error::Stale { promised } => Some(promised.clone()),
            _ => None,
        },
    };
    (status, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_are_4xx_and_failures_5xx() {
        let cases = [
            (Error::NotFound, 404, "NotFound"),
            (Error::Unauthorized, 401, "Unauthorized"),
            (Error::TooLarge { limit: 1 }, 413, "TooLarge"),
            (Error::RangeNotSatisfiable { size: 3 }, 416, "InvalidRange"),
            (
                Error::DigestMismatch {
                    expected: "a".into(),
                    actual: "b".into(),
                },
                400,
                "DigestMismatch",
            ),
            (Error::Corrupt("block 3".into()), 500, "Corrupt"),
            (Error::Unavailable("stopping"), 503, "Unavailable"),
            (
                Error::StaleLayout {
                    sent: 1,
                    committed: 2,
                },
                409,
                "StaleLayout",
            ),
            (Error::StillOwner("owner".into()), 409, "StillOwner"),
            (
                Error::Metrics(prometheus::Error::Msg("duplicate".into())),
                500,
                "InternalError",
            ),
        ];
        for (err, status, code) in cases {
            let (s, body) = status_and_body(&err);
            assert_eq!(s.as_u16(), status, "{err}");
            assert_eq!(body.code, code);
        }
    }
}
