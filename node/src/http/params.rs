//! Request parameters outside the path: the `Range` header of blob reads and the query
//! strings of `GET /list/{bucket}` and `GET /hints`.
//!
//! Invariant: query values are percent-decoded like path segments; unknown query
//! parameters are ignored, so a newer gateway can talk to an older node.

use http::HeaderValue;

use crate::error::Error;
use crate::proto::{self, MAX_LIST_LIMIT};

/// A single `Range: bytes=` spec; multiple ranges are not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ByteRange {
    /// `bytes=a-b`, both inclusive.
    FromTo(u64, u64),
    /// `bytes=a-`.
    From(u64),
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

impl ByteRange {
    pub(super) fn parse(value: &HeaderValue) -> Result<ByteRange, Error> {
        let bad = || Error::BadRequest(format!("unsupported Range header {value:?}"));
        let spec = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().strip_prefix("bytes="))
            .ok_or_else(bad)?;
        let (first, last) = spec.trim().split_once('-').ok_or_else(bad)?;
        let number = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
        match (first.trim().is_empty(), last.trim().is_empty()) {
            (false, false) => {
                let (a, b) = (number(first)?, number(last)?);
                if a > b {
                    return Err(bad());
                }
                Ok(ByteRange::FromTo(a, b))
            }
            (false, true) => Ok(ByteRange::From(number(first)?)),
            (true, false) => Ok(ByteRange::Suffix(number(last)?)),
            (true, true) => Err(bad()),
        }
    }

    /// (start, end exclusive) within a blob of `size` bytes, as RFC 9110 reads the spec: an
    /// end past the blob is clipped, a start past it cannot be satisfied.
    pub(super) fn resolve(self, size: u64) -> Result<(u64, u64), Error> {
        let unsatisfiable = Error::RangeNotSatisfiable { size };
        match self {
            ByteRange::FromTo(a, _) | ByteRange::From(a) if a >= size => Err(unsatisfiable),
            ByteRange::FromTo(a, b) => Ok((a, b.saturating_add(1).min(size))),
            ByteRange::From(a) => Ok((a, size)),
            ByteRange::Suffix(n) if n == 0 || size == 0 => Err(unsatisfiable),
            ByteRange::Suffix(n) => Ok((size - n.min(size), size)),
        }
    }
}

/// Query of `GET /list/{bucket}`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ListQuery {
    pub(super) prefix: String,
    pub(super) after: String,
    pub(super) limit: usize,
    /// `check_blobs=1`: report the referenced blobs this node lacks.
    pub(super) check_blobs: bool,
    /// `summary=1`: answer a [`proto::SummaryPage`] instead of full records.
    pub(super) summary: bool,
    /// `select=current`: each key's window instead of every version.
    pub(super) current_only: bool,
    /// `bodies=none`: inline bodies left out of full records.
    pub(super) no_bodies: bool,
}

impl ListQuery {
    pub(super) fn parse(query: Option<&str>) -> Result<ListQuery, Error> {
        let mut parsed = ListQuery {
            prefix: String::new(),
            after: String::new(),
            limit: MAX_LIST_LIMIT,
            check_blobs: false,
            summary: false,
            current_only: false,
            no_bodies: false,
        };
        for (name, value) in params(query)? {
            match name {
                "prefix" => parsed.prefix = value,
                "after" => parsed.after = value,
                "limit" => parsed.limit = limit(&value)?,
                "check_blobs" => parsed.check_blobs = flag(name, &value)?,
                "summary" => parsed.summary = flag(name, &value)?,
                "bodies" if value == "none" => parsed.no_bodies = true,
                "bodies" => return Err(Error::BadRequest(format!("bad bodies {value:?}"))),
                "select" => {
                    parsed.current_only = match value.as_str() {
                        "current" => true,
                        "all" => false,
                        _ => return Err(Error::BadRequest(format!("bad select {value:?}"))),
                    }
                }
                _ => {}
            }
        }
        Ok(parsed)
    }
}

/// The `limit` of `GET /hints` (default and maximum [`MAX_LIST_LIMIT`]).
pub(super) fn hints_limit(query: Option<&str>) -> Result<usize, Error> {
    let mut parsed = MAX_LIST_LIMIT;
    for (name, value) in params(query)? {
        if name == "limit" {
            parsed = limit(&value)?;
        }
    }
    Ok(parsed.min(MAX_LIST_LIMIT))
}

/// The shard of `POST /gc/scan/{shard}`: two lowercase hex digits.
pub(super) fn gc_shard(segment: &str) -> Result<u8, Error> {
    let valid = segment.len() == 2
        && segment
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    valid
        .then(|| u8::from_str_radix(segment, 16).ok())
        .flatten()
        .ok_or_else(|| Error::BadRequest(format!("bad blob shard {segment:?}")))
}

/// The `grace_secs` a garbage-collection request must name: how old an unreferenced blob
/// file must be before it counts as garbage.
pub(super) fn grace(query: Option<&str>) -> Result<std::time::Duration, Error> {
    let mut grace = None;
    for (name, value) in params(query)? {
        if name == "grace_secs" {
            let secs: u64 = value
                .parse()
                .map_err(|_| Error::BadRequest(format!("bad grace_secs {value:?}")))?;
            grace = Some(std::time::Duration::from_secs(secs));
        }
    }
    grace.ok_or_else(|| Error::BadRequest("grace_secs is required".into()))
}

/// The `after` cursor and `limit` (default and maximum [`proto::gc::MAX_GC_IDS`]) of `GET
/// /gc/tombstones`.
pub(super) fn tombstone_page(query: Option<&str>) -> Result<(Option<String>, usize), Error> {
    cursor_page(query, proto::gc::MAX_GC_IDS)
}

/// The `after` cursor and `limit` (default and maximum
/// [`proto::paxos::MAX_AGREED_KEYS`]) of `GET /paxos`.
pub(super) fn agreed_page(query: Option<&str>) -> Result<(Option<String>, usize), Error> {
    cursor_page(query, proto::paxos::MAX_AGREED_KEYS)
}

/// An `after` cursor (none when empty) and a `limit` of at most `max` (`max` by default).
fn cursor_page(query: Option<&str>, max: usize) -> Result<(Option<String>, usize), Error> {
    let (mut after, mut parsed) = (None, max);
    for (name, value) in params(query)? {
        match name {
            "after" if !value.is_empty() => after = Some(value),
            "limit" => parsed = limit(&value)?,
            _ => {}
        }
    }
    Ok((after, parsed.min(max)))
}

/// The decoded (name, value) pairs of a query string, in order.
fn params(query: Option<&str>) -> Result<Vec<(&str, String)>, Error> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = proto::decode_segment(value)
                .ok_or_else(|| Error::BadRequest(format!("query value of {name} is not UTF-8")))?;
            Ok((name, value))
        })
        .collect()
}

fn limit(value: &str) -> Result<usize, Error> {
    value
        .parse()
        .map_err(|_| Error::BadRequest(format!("bad limit {value:?}")))
}

fn flag(name: &str, value: &str) -> Result<bool, Error> {
    match value {
        // A bare `check_blobs` asks for the check as clearly as `check_blobs=1`.
        "1" | "true" | "" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(Error::BadRequest(format!("bad {name} {value:?}"))),
    }
}
