//! Black-box integration tests: real `s3quorum node` and `s3quorum gateway` processes on
//! loopback, driven with aws-sdk-s3 and, where a test must see what is stored where, with
//! plain HTTP calls to the nodes.
//!
//! Every test starts its own small cluster (no fixed ports), so tests run in parallel.
//! Logs of every process are kept in the cluster's temp directory and printed when a test
//! fails. Set `S3Q_KEEP_TEST_DIRS=1` to keep the directories of failed tests.

mod harness;

mod access;
mod acl;
mod admin;
mod buckets;
mod checksums;
mod conditional;
mod copy;
mod cors;
mod errors;
mod hostile;
mod hostile_requests;
mod inline_reads;
mod integrity;
mod layout;
mod limits;
mod listing;
mod many_versions;
mod multipart;
mod multipart_retry;
mod objects;
mod presign;
mod public;
mod replication;
mod s3_details;
mod tagging;
mod upgrade;
mod versioning;
mod vhost;
