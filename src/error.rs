//! The gateway's error type and the one table that turns it into an S3 error.
//!
//! Domain errors map to the S3 code a client expects; internal failures (a quorum that could
//! not be met, a node that misbehaved) are logged once here, with their cause, and become
//! `503 ServiceUnavailable` so clients retry them.

use s3s::{S3Error, S3ErrorCode};

use crate::node_client::NodeError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the specified bucket does not exist")]
    NoSuchBucket,
    #[error("the specified key does not exist")]
    NoSuchKey,
    #[error("the specified version does not exist")]
    NoSuchVersion,
    /// The version a read addresses is a delete marker: the current one (`named`: false,
    /// S3's 404) or one named by its version id (405).
    #[error("the version addressed is a delete marker")]
    DeleteMarker { version_id: String, named: bool },
    #[error("the specified multipart upload does not exist")]
    NoSuchUpload,
    #[error("at least one of the pre-conditions you specified did not hold: {0}")]
    PreconditionFailed(&'static str),
    #[error("your previous request to create the named bucket succeeded and you already own it")]
    BucketAlreadyOwnedByYou,
    #[error("the bucket you tried to delete is not empty")]
    BucketNotEmpty,
    /// A broken invariant of the gateway itself: a bug, not a client error.
    #[error("internal error: {0}")]
    Internal(String),
    #[error("{0}")]
    BadDigest(String),
    #[error("{op}: needed {needed} replicas, got {got}: [{}]", per_node.join("; "))]
    QuorumFailed {
        op: &'static str,
        needed: usize,
        got: usize,
        per_node: Vec<String>,
    },
    /// A conditional write kept losing to concurrent ones until its deadline. With
    /// `outcome_unknown` one of its proposals may still have taken effect.
    #[error("conditional write did not win agreement in time (outcome unknown: {outcome_unknown})")]
    Contention { outcome_unknown: bool },
    #[error("{op} on node {node}: {source}")]
    Node {
        op: &'static str,
        node: String,
        source: NodeError,
    },
}

impl Error {
    /// Whether a quorum failed because nodes had moved to a newer layout than the one
    /// the operation placed its key with: the operation may be tried again with it.
    pub fn fenced(&self) -> bool {
        match self {
            Error::QuorumFailed { per_node, .. } => per_node
                .iter()
                .any(|r| r.contains(crate::node_client::FENCED)),
            _ => false,
        }
    }
}

impl From<Error> for S3Error {
    #[track_caller]
    fn from(e: Error) -> S3Error {
        let code = match &e {
            Error::NoSuchBucket => S3ErrorCode::NoSuchBucket,
            Error::NoSuchKey => S3ErrorCode::NoSuchKey,
            Error::NoSuchVersion => S3ErrorCode::NoSuchVersion,
            Error::DeleteMarker { version_id, named } => {
                return delete_marker_error(version_id, *named);
            }
            Error::NoSuchUpload => S3ErrorCode::NoSuchUpload,
            Error::PreconditionFailed(_) => S3ErrorCode::PreconditionFailed,
            Error::BucketAlreadyOwnedByYou => S3ErrorCode::BucketAlreadyOwnedByYou,
            Error::BucketNotEmpty => S3ErrorCode::BucketNotEmpty,
            Error::Internal(_) => {
                tracing::error!(caller = %std::panic::Location::caller(), "{e}");
                S3ErrorCode::InternalError
            }
            Error::BadDigest(_) => S3ErrorCode::BadDigest,
            Error::Contention {
                outcome_unknown: false,
            } => S3ErrorCode::ConditionalRequestConflict,
            Error::Contention {
                outcome_unknown: true,
            } => {
                tracing::warn!("{e}");
                return S3Error::with_message(
                    S3ErrorCode::ServiceUnavailable,
                    "A conflicting conditional write was in progress and the outcome of this \
                     one is unknown; please retry.",
                );
            }
            Error::QuorumFailed { .. } | Error::Node { .. } => {
                tracing::error!(caller = %std::panic::Location::caller(), "{e}");
                return S3Error::with_message(
                    S3ErrorCode::ServiceUnavailable,
                    "Not enough storage replicas answered; please retry.",
                );
            }
        };
        S3Error::with_message(code, e.to_string())
    }
}

/// S3's answer to a read of a delete marker: 404 NoSuchKey when it is the current version,
/// 405 MethodNotAllowed when named by its version id; both with `x-amz-delete-marker`.
fn delete_marker_error(version_id: &str, named: bool) -> S3Error {
    let mut err = if named {
        S3Error::with_message(
            S3ErrorCode::MethodNotAllowed,
            "The specified method is not allowed against this resource.",
        )
    } else {
        S3Error::with_message(S3ErrorCode::NoSuchKey, "The specified key does not exist.")
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "x-amz-delete-marker",
        http::HeaderValue::from_static("true"),
    );
    if let Ok(v) = http::HeaderValue::from_str(version_id) {
        headers.insert("x-amz-version-id", v);
    }
    err.set_headers(headers);
    err
}
