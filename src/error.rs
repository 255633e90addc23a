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

impl From<Error> for S3Error {
    #[track_caller]
    fn from(e: Error) -> S3Error {
        let code = match &e {
            Error::NoSuchBucket => S3ErrorCode::NoSuchBucket,
            Error::NoSuchKey => S3ErrorCode::NoSuchKey,
            Error::NoSuchVersion => S3ErrorCode::NoSuchVersion,
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
