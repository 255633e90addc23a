//! Wire types of the per-key compare-and-set (single-decree Paxos, repeated per key, in the
//! manner of Cassandra's lightweight transactions). Only conditional writes use it.
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | POST | `/paxos/{bucket}/{key}/prepare` | [`Prepare`] | [`Promise`] |
//! | POST | `/paxos/{bucket}/{key}/accept` | [`Proposal`] | [`AcceptReply`] |
//! | POST | `/paxos/{bucket}/{key}/commit` | [`Proposal`] | 204 |
//! | GET | `/paxos?after=&limit=` | | [`AgreedKeys`] |
//!
//! A proposal's value is a whole [`ObjectRecord`]: the join of everything the proposer saw
//! in a majority plus its own change. Values therefore only grow in the record lattice, and
//! "finishing" an unfinished proposal is the same as joining it in. The node side keeps,
//! per key and durably, the highest ballot promised and the last proposal accepted; a
//! refusal names the promise that beat the ballot, so the proposer can outbid it.

use serde::{Deserialize, Serialize};

use super::{ObjectRecord, Stamp};

/// A proposal number: a hybrid-logical timestamp made unique by a random id, so ballots of
/// different gateways never tie.
pub type Ballot = Stamp;

/// `prepare`: promise to ignore every ballot lower than `ballot`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepare {
    pub ballot: Ballot,
    /// The versions the promise's record holds, as a [`super::Select`] query (every
    /// version when absent, as older gateways expect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<String>,
}

/// The last proposal a node accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub ballot: Ballot,
    /// The accepted value; `None` once a commit at this ballot or a later one was merged
    /// into the node's record, which then stands for the value (it is at least as large).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<ObjectRecord>,
}

/// Answer to `prepare`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promise {
    /// True when the node promised `ballot`; false when it had promised a higher one.
    pub promised: bool,
    /// The highest ballot this node has promised (the requested one when `promised`).
    pub highest: Ballot,
    /// The node's last accepted proposal, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<Accepted>,
    /// The node's current record of the key, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<ObjectRecord>,
}

/// `accept` and `commit`: a value under a ballot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub ballot: Ballot,
    pub value: ObjectRecord,
}

/// Answer to `accept`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptReply {
    pub accepted: bool,
    /// The highest ballot this node has promised.
    pub highest: Ballot,
}

/// Most keys one [`AgreedKeys`] page names.
pub const MAX_AGREED_KEYS: usize = 1000;

/// Answer to `GET /paxos`: the keys this node holds agreement state for, in byte order of
/// `bucket ++ 0x00 ++ key`, after the `after` cursor (that same string, percent-encoded).
/// A layout change settles each moving key's agreement before it retires the previous
/// owners (see the gateway's migration).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgreedKeys {
    pub keys: Vec<AgreedKey>,
    /// True when more keys follow the last one.
    pub truncated: bool,
}

/// One key of an [`AgreedKeys`] page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgreedKey {
    pub bucket: String,
    pub key: String,
}

impl AgreedKey {
    /// The page cursor that continues after this key.
    pub fn cursor(&self) -> String {
        format!("{}\0{}", self.bucket, self.key)
    }
}

/// What a node stores per key: its promise and its last accepted proposal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaxosState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promised: Option<Ballot>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<Accepted>,
}

impl PaxosState {
    /// Handles `prepare(ballot)`: true when promised. A ballot equal to the promise is a
    /// re-sent prepare and is promised again.
    pub fn prepare(&mut self, ballot: &Ballot) -> bool {
        if self.promised.as_ref().is_some_and(|p| p > ballot) {
            return false;
        }
        self.promised = Some(ballot.clone());
        true
    }

    /// Handles `accept(ballot, value)`: true when accepted, which happens unless a higher
    /// ballot was promised.
    pub fn accept(&mut self, ballot: &Ballot, value: &ObjectRecord) -> bool {
        if self.promised.as_ref().is_some_and(|p| p > ballot) {
            return false;
        }
        self.promised = Some(ballot.clone());
        self.accepted = Some(Accepted {
            ballot: ballot.clone(),
            value: Some(value.clone()),
        });
        true
    }

    /// Handles `commit(ballot, ..)` once the value has been merged into the node's record.
    /// The record now stands for any accepted value at this ballot or below (a chosen value
    /// contains every value chosen before it), and no proposal below the ballot may be
    /// accepted any more. A later accepted proposal is kept as it is.
    pub fn committed(&mut self, ballot: &Ballot) {
        if self.promised.as_ref().is_none_or(|p| p < ballot) {
            self.promised = Some(ballot.clone());
        }
        if self.accepted.as_ref().is_none_or(|a| a.ballot <= *ballot) {
            self.accepted = Some(Accepted {
                ballot: ballot.clone(),
                value: None,
            });
        }
    }

    /// The highest ballot promised, or `fallback` if none.
    pub fn highest_or(&self, fallback: &Ballot) -> Ballot {
        self.promised.clone().unwrap_or_else(|| fallback.clone())
    }
}
