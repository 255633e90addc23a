//! The record endpoints: object records (read, merge, list), bucket records, repair hints,
//! leases and the per-key Paxos rounds. Each handler decodes its path segments, reads its
//! JSON body (bounded by `read_json`) and calls the record store once.

use std::collections::HashSet;
use std::time::Instant;

use http::Request;
use hyper::body::Incoming;

use super::params::{self, ListQuery};
use super::{ResponseBody, State, decode, json, no_content, read_json};
use crate::error::Error;
use crate::proto::access::KeyRecord;
use crate::proto::paxos::{Prepare, Proposal};
use crate::proto::{
    Bodies, BucketRecord, Data, Hint, LeaseRequest, ObjectRecord, Select, VersionState,
};

type Answer = Result<http::Response<ResponseBody>, Error>;

/// `GET /records/{bucket}/{key}`: the record, with the bodies and versions asked for.
pub(super) async fn get_record(
    state: &State,
    bucket: &str,
    key: &str,
    req: &Request<Incoming>,
) -> Answer {
    let (bucket, key) = (decode(bucket)?, decode(key)?);
    let bodies = Bodies::from_query(req.uri().query())
        .ok_or_else(|| Error::BadRequest("invalid bodies= or version= query".into()))?;
    let select = Select::from_query(req.uri().query())
        .ok_or_else(|| Error::BadRequest("invalid select= or with= query".into()))?;
    let mut record = state
        .records
        .get_object(&bucket, &key, select)
        .await?
        .ok_or(Error::NotFound)?;
    record.omit_bodies(&bodies);
    json(&record)
}

/// `POST /records/{bucket}/{key}`: merges the record sent into the stored one.
pub(super) async fn merge_record(
    state: &State,
    bucket: &str,
    key: &str,
    req: Request<Incoming>,
) -> Answer {
    let (bucket, key) = (decode(bucket)?, decode(key)?);
    let record: ObjectRecord = read_json(req).await?;
    refuse_omitted_bodies(&record)?;
    state.records.merge_object(&bucket, &key, record).await?;
    Ok(no_content())
}

/// A record read without some of its bodies must never be stored: the bytes would be lost.
fn refuse_omitted_bodies(record: &ObjectRecord) -> Result<(), Error> {
    if record.has_omitted_body() {
        return Err(Error::BadRequest(
            "record has an omitted inline body; send the full record".into(),
        ));
    }
    Ok(())
}

/// `GET /list/{bucket}`; with `check_blobs` each entry names the blobs its record refers
/// to that this node lacks (full records then, whatever `summary` says); with `summary`
/// the records are summarised.
pub(super) async fn list(state: &State, bucket: &str, query: Option<&str>) -> Answer {
    let bucket = decode(bucket)?;
    let query = ListQuery::parse(query)?;
    if query.summary && !query.check_blobs {
        let page = state
            .records
            .list_summaries(
                &bucket,
                &query.prefix,
                &query.after,
                query.limit,
                query.current_only,
            )
            .await?;
        return json(&page);
    }
    let mut page = state
        .records
        .list(
            &bucket,
            &query.prefix,
            &query.after,
            query.limit,
            query.current_only,
        )
        .await?;
    if query.no_bodies {
        for entry in &mut page.entries {
            entry.record.omit_bodies(&Bodies::None);
        }
    }
    if query.check_blobs {
        let referenced = page
            .entries
            .iter()
            .map(|entry| referenced_blobs(&entry.record))
            .collect();
        let missing = state.blobs.missing(referenced).await?;
        for (entry, missing) in page.entries.iter_mut().zip(missing) {
            entry.corrupt_blobs = state.blobs.quarantined(&missing).await;
            entry.missing_blobs = missing;
        }
    }
    json(&page)
}

/// Ids of the blobs the versions of `record` refer to, each once, in version order. Purged
/// versions and delete markers refer to none; neither do inline bodies.
pub(super) fn referenced_blobs(record: &ObjectRecord) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    // A set, not `ids.contains`: an object may have 10,000 parts.
    let mut seen = HashSet::new();
    let mut add = |id: &String| {
        if seen.insert(id.clone()) {
            ids.push(id.clone());
        }
    };
    for version in &record.versions {
        let VersionState::Object(meta) = &version.state else {
            continue;
        };
        match &meta.data {
            Data::Inline { .. } | Data::InlineOmitted => {}
            Data::Blob { id } => add(id),
            Data::Parts { parts } => parts.iter().for_each(|part| add(&part.blob)),
        }
    }
    ids
}

/// `GET /buckets/{name}`.
pub(super) async fn get_bucket(state: &State, name: &str) -> Answer {
    let name = decode(name)?;
    let record = state.records.get_bucket(&name).await?;
    json(&record.ok_or(Error::NotFound)?)
}

/// `POST /buckets/{name}`: merges the bucket record sent, which must name that bucket.
pub(super) async fn merge_bucket(state: &State, name: &str, req: Request<Incoming>) -> Answer {
    let name = decode(name)?;
    let record: BucketRecord = read_json(req).await?;
    if record.name != name {
        return Err(Error::BadRequest(format!(
            "bucket record names {:?} but was sent to {name:?}",
            record.name
        )));
    }
    state.records.merge_bucket(record).await?;
    Ok(no_content())
}

/// `POST /keys/{id}`: merges the access key record sent, which must have that id.
pub(super) async fn merge_key(state: &State, id: &str, req: Request<Incoming>) -> Answer {
    let id = decode(id)?;
    let record: KeyRecord = read_json(req).await?;
    if record.id != id {
        return Err(Error::BadRequest(format!(
            "key record names {:?} but was sent to {id:?}",
            record.id
        )));
    }
    state.records.merge_key(record).await?;
    Ok(no_content())
}

/// `POST /hints`, `GET /hints`, `POST /hints/clear`.
pub(super) async fn raise_hints(state: &State, req: Request<Incoming>) -> Answer {
    let hints: Vec<Hint> = read_json(req).await?;
    state.records.raise_hints(hints).await?;
    Ok(no_content())
}

pub(super) async fn get_hints(state: &State, query: Option<&str>) -> Answer {
    let limit = params::hints_limit(query)?;
    json(&state.records.hints(limit).await?)
}

pub(super) async fn clear_hints(state: &State, req: Request<Incoming>) -> Answer {
    let hints: Vec<Hint> = read_json(req).await?;
    state.records.clear_hints(hints).await?;
    Ok(no_content())
}

/// `GET /paxos`: a page of the keys with agreement state here.
pub(super) async fn agreed_keys(state: &State, query: Option<&str>) -> Answer {
    let (after, limit) = params::agreed_page(query)?;
    json(&state.records.agreed_keys(after, limit).await?)
}

/// `POST /lease/{name}`: takes or renews the named lease.
pub(super) async fn lease(state: &State, name: &str, req: Request<Incoming>) -> Answer {
    let name = decode(name)?;
    if name.is_empty() {
        return Err(Error::BadRequest("empty lease name".into()));
    }
    let request: LeaseRequest = read_json(req).await?;
    json(&state.leases.acquire(&name, &request, Instant::now())?)
}

/// The three phases of a key's Paxos round.
pub(super) async fn paxos_prepare(
    state: &State,
    bucket: &str,
    key: &str,
    req: Request<Incoming>,
) -> Answer {
    let (bucket, key) = (decode(bucket)?, decode(key)?);
    let prepare: Prepare = read_json(req).await?;
    let select = Select::from_query(prepare.select.as_deref())
        .ok_or_else(|| Error::BadRequest("invalid select of a prepare".into()))?;
    let promise = state
        .records
        .paxos_prepare(&bucket, &key, prepare.ballot, select)
        .await?;
    json(&promise)
}

pub(super) async fn paxos_accept(
    state: &State,
    bucket: &str,
    key: &str,
    req: Request<Incoming>,
) -> Answer {
    let (bucket, key) = (decode(bucket)?, decode(key)?);
    let proposal: Proposal = read_json(req).await?;
    refuse_omitted_bodies(&proposal.value)?;
    json(&state.records.paxos_accept(&bucket, &key, proposal).await?)
}

pub(super) async fn paxos_commit(
    state: &State,
    bucket: &str,
    key: &str,
    req: Request<Incoming>,
) -> Answer {
    let (bucket, key) = (decode(bucket)?, decode(key)?);
    let proposal: Proposal = read_json(req).await?;
    refuse_omitted_bodies(&proposal.value)?;
    state.records.paxos_commit(&bucket, &key, proposal).await?;
    Ok(no_content())
}
