//! The garbage-collection endpoints (`/gc/...`): each parses its query and body and calls
//! the node's collector (`crate::gc`), which owns every rule about what may be deleted.

use http::Request;
use hyper::body::Incoming;

use super::params;
use super::{ResponseBody, State, json, read_json};
use crate::error::Error;
use crate::gc;

type Answer = Result<http::Response<ResponseBody>, Error>;

/// `POST /gc/scan/{shard}?grace_secs=`: the shard's blob files nothing refers to.
pub(super) async fn scan(state: &State, shard: &str, query: Option<&str>) -> Answer {
    let shard = params::gc_shard(shard)?;
    let grace = params::grace(query)?;
    json(&gc::scan(&state.blobs, &state.records, shard, grace).await?)
}

/// `POST /gc/referenced`: which of the ids sent a record here refers to, and by which keys.
pub(super) async fn referenced(state: &State, req: Request<Incoming>) -> Answer {
    let ids: Vec<String> = read_json(req).await?;
    json(&gc::referenced(&state.blobs, &state.records, ids).await?)
}

/// `POST /gc/collect?grace_secs=`: deletes the ids sent that are still unreferenced.
pub(super) async fn collect(state: &State, req: Request<Incoming>) -> Answer {
    let grace = params::grace(req.uri().query())?;
    let ids: Vec<String> = read_json(req).await?;
    json(&gc::collect(&state.blobs, &state.records, ids, grace).await?)
}

/// `GET /gc/tombstones?grace_secs=&after=&limit=`: one page of old purge tombstones.
pub(super) async fn tombstones(state: &State, query: Option<&str>) -> Answer {
    let grace = params::grace(query)?;
    let (after, limit) = params::tombstone_page(query)?;
    json(&gc::tombstones(&state.records, grace, after.as_deref(), limit).await?)
}

/// `POST /gc/drop`: drops the tombstones sent, each only if it is unchanged.
pub(super) async fn drop(state: &State, req: Request<Incoming>) -> Answer {
    let tombstones = read_json(req).await?;
    json(&gc::drop(&state.records, tombstones).await?)
}
