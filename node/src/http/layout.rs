//! The layout endpoints (`/layout...`) and the layout header: each handler reads its JSON
//! body and calls the node's layout register (`crate::layout`), which owns the acceptor's
//! rules, the fence and the release rule.

use http::{HeaderMap, Request};
use hyper::body::Incoming;

use super::{ResponseBody, State, decode, json, no_content, read_json};
use crate::error::Error;
use crate::proto::layout::{LAYOUT_HEADER, Layout, LayoutPrepare, LayoutProposal};

type Answer = Result<http::Response<ResponseBody>, Error>;

/// The layout version a request was placed with ([`LAYOUT_HEADER`], decimal); `None`
/// without the header.
pub(super) fn sent_version(headers: &HeaderMap) -> Result<Option<u64>, Error> {
    let Some(value) = headers.get(LAYOUT_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            Error::BadRequest(format!(
                "{LAYOUT_HEADER} {:?} is not a decimal layout version",
                String::from_utf8_lossy(value.as_bytes())
            ))
        })
}

/// `GET /layout`.
pub(super) fn get(state: &State) -> Answer {
    json(&state.layout.view())
}

/// `POST /layout/prepare`.
pub(super) async fn prepare(state: &State, req: Request<Incoming>) -> Answer {
    let prepare: LayoutPrepare = read_json(req).await?;
    json(&state.layout.prepare(prepare.ballot).await?)
}

/// `POST /layout/accept`.
pub(super) async fn accept(state: &State, req: Request<Incoming>) -> Answer {
    let proposal: LayoutProposal = read_json(req).await?;
    json(&state.layout.accept(proposal.ballot, proposal.value).await?)
}

/// `POST /layout/commit`: 204 once installed (or found older), see
/// [`crate::layout::LayoutStore::commit`].
pub(super) async fn commit(state: &State, req: Request<Incoming>) -> Answer {
    let value: Layout = read_json(req).await?;
    state.layout.commit(value).await?;
    Ok(no_content())
}

/// `POST /layout/release/{bucket}/{key}`: removes this node's copy of a record it no
/// longer owns. Runs inside the request's fence, so the committed version it checked
/// cannot change before the record is gone.
pub(super) async fn release(state: &State, bucket: &str, key: &str) -> Answer {
    let (bucket, key) = (decode(bucket)?, decode(key)?);
    state.layout.check_release(&state.node_id, &bucket, &key)?;
    state.records.release_object(&bucket, &key).await?;
    Ok(no_content())
}
