//! s3quorum: an S3 wire-compatible object store. A stateless gateway speaks S3 through
//! `s3s` and stores every object on RF data nodes with write and read quorums.
//!
//! Module map, following a request from the outside in:
//! - `server`: the S3 and admin listeners, request ids, metrics per request.
//! - `s3`: `impl s3s::S3`, one handler per operation, grouped by family.
//! - `store`: the object-version layer: reading, writing, deleting and tagging versions,
//!   multipart uploads and bucket records; owns placement and the write context.
//! - `integrity`: MD5 / checksum computation and verification of uploads.
//! - `checksum`: the checksum algorithms and multipart checksum kinds, as enums.
//! - `quorum`: fan-out to replicas, quorum counting, merged reads and listings.
//! - `node_client`: one function per data-node endpoint.
//! - `layout`: reading, changing and following the cluster layout the nodes keep.
//! - `repair`: the background worker that keeps every key at full replication.
//! - `host`: virtual-hosted vs path-style addressing; `cors`: preflight and CORS headers.
//! - `config`, `error`, `metrics`, `dev` (three nodes and a gateway in one process).
//!
//! The data node itself is the `node` crate (`node/`), which knows nothing of S3.

pub mod access;
pub mod admin;
mod checksum;
pub mod config;
mod cors;
mod crc_combine;
pub mod dev;
pub mod error;
pub mod gc;
mod guard;
pub mod host;
mod integrity;
mod layout;
pub mod metrics;
mod node_client;
mod quorum;
pub mod repair;
mod s3;
mod scope;
pub mod server;
mod store;
mod wire;
mod xml_escape;

pub use server::run_gateway;
