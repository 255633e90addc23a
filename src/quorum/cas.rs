//! Compare-and-set of one key's record: single-decree Paxos among the key's replicas,
//! repeated per change (Cassandra's lightweight transactions, adapted to mergeable records).
//! Only conditional writes come here; plain writes never pay for agreement.
//!
//! One attempt: **prepare** a fresh ballot at every replica and wait for a majority of
//! promises; join every promised record and the value of the highest-ballot acceptance
//! (unless that acceptance is already committed) into the *view*; let the caller decide
//! on the view (apply a change, nothing to do, or refuse); **accept** `view ⊔ change` at
//! a majority; **commit** it (merged into the records) at W replicas. A refused ballot means another proposer is active: back off for a random
//! while and try again with a higher ballot.
//!
//! Why exactly one of several concurrent conditional writers wins: a proposal's value is
//! the join of everything its proposer saw plus its change, so values only grow. If a value
//! `v` was chosen (accepted by a majority) at ballot `b`, every later ballot's majority of
//! promises contains a node that accepted `v` or a larger value at a ballot `≥ b`, and the
//! highest accepted value is joined into the view; by induction every value proposed at a
//! ballot above `b` contains `v`. So the condition is always evaluated against a state that
//! contains every chosen change, and the second creator of a key sees the first. A view
//! that contains an accepted-but-uncommitted value is committed before the caller's refusal
//! is returned, so a 412 never rests on a change that could still vanish; and a writer
//! that proposed its change in an earlier round and is now refused first gets the view
//! accepted at its new ballot, so its old proposal can never be applied after the refusal.
//!
//! A writer recognises its own change in the view (by the caller's unique version id), so
//! a round that was chosen but whose answers were lost is reported as the success it is.
//! Unconditional writes merge into records without a ballot, but are ordered with the
//! rounds all the same: a new version is stamped with its round's ballot (above every stamp
//! of the view), and nodes refuse a plain version stamped below a ballot they promised
//! (`node::records::paxos::check_fresh`), so a plain write either is in the view a
//! condition is evaluated on or orders after the conditional write.

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use node::proto::paxos::{Ballot, Promise, Proposal};
use node::proto::{ObjectRecord, Select, Stamp, windows_cover};

use super::upload::BlobStored;
use super::{Cluster, Need, Outcome, gather, quorum_failed, spawn_each};
use crate::error::Error;
use crate::node_client::NodeError;

/// How long a conditional write keeps competing before it gives up.
const CAS_DEADLINE: Duration = Duration::from_secs(20);
/// Bounds of the random back-off after a refused ballot. The back-off scales with how long
/// the lost round took: a competitor needs about that long to finish its own round, and
/// coming back sooner with a higher ballot would only knock it out in turn.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// An accepted but uncommitted value younger than this is left to its own proposer by
/// writers the value makes fail; an older one is finished by whoever sees it.
const FINISH_AFTER: Duration = Duration::from_secs(1);

/// What the caller decides on seeing the current state of the key.
pub enum Decision<E> {
    /// The condition holds: join this into the record.
    Apply(ObjectRecord),
    /// The caller's change is already part of the state (an earlier round of this same
    /// request was chosen).
    AlreadyApplied,
    /// The condition does not hold.
    Refuse(E),
}

/// What one `compare_and_set` carries from round to round.
struct Attempt {
    /// A change of this call may have been accepted somewhere.
    proposed: bool,
    /// The blob the change refers to, until a commit took it.
    stored: Option<BlobStored>,
    /// The oldest version this call made (stamped with a round's ballot): later rounds see
    /// every version from there up, which tells whether one took effect however far below
    /// the current version it is by then (see `quorum::outcome`).
    since: Option<Stamp>,
}

/// How one round ended.
enum Round<E> {
    Done(ObjectRecord),
    Refused(E),
    /// Another proposer holds a higher ballot.
    Preempted(Ballot),
    /// The key holds a version stamped at or above the ballot (a plain write from a
    /// gateway whose clock is ahead): a new version stamped with this ballot would order
    /// before it. Try again at once above it.
    Behind(Stamp),
    /// The promises' windows do not show the key's current state (purges that reached
    /// different replicas): try again with every version.
    Uncovered,
}

impl Cluster {
    /// Applies, atomically with respect to every other `compare_and_set` on the same key, the
    /// change `decide` chooses on the key's current record (empty if none). `decide` may run
    /// several times and must be pure apart from its result; it gets the stamp a new
    /// version must carry (the round's ballot, above every stamp of the record), which is
    /// what orders the change with plain writes, and whether a change it chose in an
    /// earlier round may have been accepted somewhere. Returns the record as committed.
    /// `stored` is the blob the change refers to, if any: replicas that have not stored it
    /// yet get the commit only once they have.
    pub async fn compare_and_set<E: From<Error>>(
        &self,
        bucket: &str,
        key: &str,
        stored: Option<BlobStored>,
        select: Select,
        mut decide: impl FnMut(&ObjectRecord, &Stamp, bool) -> Decision<E>,
    ) -> Result<ObjectRecord, E> {
        let started = Instant::now();
        let mut lost = 0u32;
        let mut outbid: Option<u64> = None;
        let mut attempt = Attempt {
            proposed: false,
            stored,
            since: None,
        };
        let mut full = false;
        loop {
            let round_select = if full {
                Select::All
            } else {
                select.and_since(attempt.since.as_ref())
            };
            let ballot = Stamp {
                ts: self.next_timestamp(outbid),
                id: Cluster::new_id(),
            };
            let round_started = Instant::now();
            match self
                .cas_round(
                    bucket,
                    key,
                    &ballot,
                    &round_select,
                    &mut decide,
                    &mut attempt,
                )
                .await?
            {
                Round::Done(value) => {
                    self.count_round("done");
                    return Ok(value);
                }
                Round::Refused(e) => {
                    self.count_round("refused");
                    return Err(e);
                }
                Round::Preempted(higher) => {
                    self.count_round("preempted");
                    outbid = Some(higher.ts);
                }
                Round::Behind(newest) => {
                    outbid = Some(newest.ts);
                    if started.elapsed() < CAS_DEADLINE {
                        continue;
                    }
                }
                Round::Uncovered => {
                    full = true;
                    continue;
                }
            }
            if started.elapsed() >= CAS_DEADLINE {
                return Err(E::from(Error::Contention {
                    outcome_unknown: attempt.proposed,
                }));
            }
            let base = round_started.elapsed().max(BACKOFF_MIN);
            let backoff = base.saturating_mul(1 << lost.min(6)).min(BACKOFF_MAX);
            lost += 1;
            tokio::time::sleep(jitter(backoff)).await;
        }
    }

    fn count_round(&self, result: &str) {
        self.metrics()
            .paxos_rounds
            .with_label_values(&[result])
            .inc();
    }

    async fn cas_round<E: From<Error>>(
        &self,
        bucket: &str,
        key: &str,
        ballot: &Ballot,
        select: &Select,
        decide: &mut impl FnMut(&ObjectRecord, &Stamp, bool) -> Decision<E>,
        attempt: &mut Attempt,
    ) -> Result<Round<E>, E> {
        let replicas = self.replicas(bucket, key);
        let majority = self.majority_need(bucket, key);

        let calls = spawn_each(self, &replicas, |_, node| {
            let (b, k, ballot) = (bucket.to_owned(), key.to_owned(), ballot.clone());
            let select = select.clone();
            async move { node.paxos_prepare(&b, &k, &ballot, &select).await }
        });
        let promises = match self.majority(calls, &majority, "paxos prepare").await? {
            (Majority::Yes(p), _) => p,
            (Majority::Outbid(higher), _) => return Ok(Round::Preempted(higher)),
        };
        let (committed, highest) = join_promises(promises.iter().map(|(_, p)| p));
        let own = promises.iter().map(|(_, p)| {
            p.record
                .as_ref()
                .and_then(|r| r.current())
                .map(|v| &v.stamp)
        });
        if select.is_current() && !windows_cover(own, committed.current().map(|v| &v.stamp)) {
            return Ok(Round::Uncovered);
        }
        // The committed state is durable as the round sees it only when W promises carried
        // all of it; otherwise it may rest on a write that reached one replica, and a
        // refusal based on it must commit it first (as a read would, see `settle`).
        let holders: Vec<usize> = promises
            .iter()
            .filter(|(_, p)| p.record.as_ref().unwrap_or(&ObjectRecord::default()) == &committed)
            .map(|(i, _)| *i)
            .collect();
        let durable = self.write_need(bucket, key).met_by(&holders);
        let mut view = committed.clone();
        if let Some((_, value)) = highest {
            view.merge(value);
        }
        if let Some(newest) = view.newest_stamp()
            && newest >= ballot
        {
            return Ok(Round::Behind(newest.clone()));
        }
        // An accepted value the records do not show yet must be finished before anyone
        // acts on it.
        let unfinished = view != committed;
        // `mine`: the value carries the caller's change (and so refers to its blob).
        let (value, outcome, mine) = match decide(&view, ballot, attempt.proposed) {
            Decision::Apply(change) => {
                if change.versions.iter().any(|v| v.stamp == *ballot) && attempt.since.is_none() {
                    attempt.since = Some(ballot.clone());
                }
                let mut value = view;
                value.merge(&change);
                (value, None, true)
            }
            // The change may be on fewer than W replicas (its proposer stopped after one
            // commit): commit the view again before reporting success.
            Decision::AlreadyApplied => (view, None, true),
            // A young unfinished value most likely has its proposer committing it right
            // now: let it, rather than have every refused writer race to finish it.
            Decision::Refuse(_)
                if unfinished && !attempt.proposed && highest.is_some_and(young) =>
            {
                let (ballot, _) = highest.expect("checked above");
                return Ok(Round::Preempted(ballot.clone()));
            }
            // Once this request may have had its change accepted somewhere, a refusal must
            // also fence that proposal off: a majority accepting the view at this higher
            // ballot means no later round can pick the old proposal up and apply it after
            // we said no. And a refusal never rests on a state fewer than W replicas hold.
            Decision::Refuse(e) if unfinished || attempt.proposed || !durable => {
                (view, Some(e), false)
            }
            Decision::Refuse(e) => return Ok(Round::Refused(e)),
        };

        let proposal = Proposal {
            ballot: ballot.clone(),
            value,
        };
        let shared = std::sync::Arc::new(proposal);
        let calls = spawn_each(self, &replicas, |_, node| {
            let (b, k, p) = (bucket.to_owned(), key.to_owned(), shared.clone());
            async move {
                node.paxos_accept(&b, &k, &p)
                    .await
                    .map(|a| (a.accepted, a.highest))
            }
        });
        let result = self.majority(calls, &majority, "paxos accept").await;
        if mine {
            // A lost accept phase may still have left the change accepted on some node
            // (or on one that did not answer in time).
            attempt.proposed |= !matches!(result, Ok((Majority::Outbid(_), false)));
        }
        if let (Majority::Outbid(higher), _) = result? {
            return Ok(Round::Preempted(higher));
        }
        let blob = if mine { attempt.stored.take() } else { None };
        self.paxos_commit(bucket, key, &replicas, &shared, blob)
            .await?;
        let value = std::sync::Arc::unwrap_or_clone(shared).value;
        Ok(match outcome {
            None => Round::Done(value),
            Some(e) => Round::Refused(e),
        })
    }

    /// Sends the chosen value to every replica and returns once W merged it; a replica that
    /// misses it gets a repair hint. Replicas still storing the blob get it afterwards.
    async fn paxos_commit(
        &self,
        bucket: &str,
        key: &str,
        replicas: &[usize],
        proposal: &std::sync::Arc<Proposal>,
        stored: Option<BlobStored>,
    ) -> Result<(), Error> {
        let (now, late) = match stored {
            Some(s) => s.split(),
            None => (replicas.to_vec(), Vec::new()),
        };
        for (i, blob) in late {
            let (cluster, b, k, p) = (
                self.clone(),
                bucket.to_owned(),
                key.to_owned(),
                proposal.clone(),
            );
            tokio::spawn(async move {
                let result = match blob.await {
                    Ok(()) => cluster.node(i).paxos_commit(&b, &k, &p).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    cluster.raise_hint(&b, &k, i, &e);
                }
            });
        }
        let calls = spawn_each(self, &now, |i, node| {
            let (cluster, b, k, p) = (
                self.clone(),
                bucket.to_owned(),
                key.to_owned(),
                proposal.clone(),
            );
            async move {
                let result = node.paxos_commit(&b, &k, &p).await;
                if let Err(e) = &result {
                    cluster.raise_hint(&b, &k, i, e);
                }
                result
            }
        });
        gather(self, "paxos commit", calls, self.write_need(bucket, key))
            .await
            .map(drop)
    }

    /// Waits for `needed` positive answers, or for a refusal naming a higher ballot (then
    /// for every other answer too); fails when neither can happen any more. With
    /// `Outbid`, the flag tells whether any node granted or failed to answer clearly.
    async fn majority<T, Fut>(
        &self,
        calls: Vec<(usize, Fut)>,
        need: &Need,
        op: &'static str,
    ) -> Result<(Majority<T>, bool), Error>
    where
        T: Answer,
        Fut: Future<Output = Result<T, NodeError>>,
    {
        let called: Vec<usize> = calls.iter().map(|(i, _)| *i).collect();
        // Grants and failures only: a refusal ends the round with `Outbid` anyway.
        let mut tracker = need.tracker(&called);
        let needed = need.needed();
        let mut pending: FuturesUnordered<_> = calls
            .into_iter()
            .map(|(i, f)| async move { (i, f.await) })
            .collect();
        let mut yes = Vec::with_capacity(needed);
        let mut failed = 0;
        let mut reasons = Vec::new();
        let mut outbid: Option<Ballot> = None;
        while let Some((i, result)) = pending.next().await {
            match result {
                Ok(answer) if answer.granted() => {
                    yes.push((i, answer));
                    if tracker.record(i, true) == Outcome::Met && outbid.is_none() {
                        return Ok((Majority::Yes(yes), true));
                    }
                }
                Ok(answer) => {
                    let higher = answer.highest();
                    if outbid.as_ref().is_none_or(|b| higher > b) {
                        outbid = Some(higher.clone());
                    }
                }
                Err(e) => {
                    reasons.push(self.count_failure(i, op, &e));
                    failed += 1;
                    let hopeless = tracker.record(i, false) == Outcome::Failed;
                    if outbid.is_none() && hopeless {
                        break;
                    }
                }
            }
        }
        if let Some(higher) = outbid {
            return Ok((Majority::Outbid(higher), !yes.is_empty() || failed > 0));
        }
        self.metrics()
            .quorum_failures
            .with_label_values(&[op])
            .inc();
        Err(quorum_failed(op, needed, yes.len(), reasons))
    }
}

/// The merge of the promised records, and the value of the highest-ballot acceptance
/// among the promises if it is not committed yet.
///
/// The highest acceptance decides even when it is a commit marker (`value: None`, the
/// node's record standing for it): a lower accepted value elsewhere belongs to a ballot
/// that was either chosen, and then is contained in the higher chosen value, or never
/// chosen and superseded; joining it in would let a round finish a proposal that lost, and
/// a plain write a read already returned would then order before a conditional write
/// whose condition never saw it.
fn join_promises<'p>(
    promises: impl Iterator<Item = &'p Promise> + Clone,
) -> (ObjectRecord, Option<(&'p Ballot, &'p ObjectRecord)>) {
    let mut committed = ObjectRecord::default();
    for r in promises.clone().filter_map(|p| p.record.as_ref()) {
        committed.merge(r);
    }
    let highest = promises
        .filter_map(|p| p.accepted.as_ref())
        .max_by(|a, b| a.ballot.cmp(&b.ballot))
        .and_then(|a| a.value.as_ref().map(|v| (&a.ballot, v)));
    (committed, highest)
}

/// Whether an accepted proposal is recent enough that its proposer is probably still
/// finishing it. Ballot timestamps are wall-clock based, so skew between gateways only
/// shifts when others step in; safety never depends on it.
fn young((ballot, _): (&Ballot, &ObjectRecord)) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    now.saturating_sub(ballot.ts) < FINISH_AFTER.as_micros() as u64
}

/// A random pause in `[0, up_to]`: proposers that collided spread out instead of colliding
/// again in lockstep.
fn jitter(up_to: Duration) -> Duration {
    let micros = up_to.as_micros().max(1);
    Duration::from_micros((uuid::Uuid::new_v4().as_u128() % (micros + 1)) as u64)
}

enum Majority<T> {
    Yes(Vec<(usize, T)>),
    Outbid(Ballot),
}

/// A prepare or accept answer: granted or not, and the node's highest promise.
trait Answer {
    fn granted(&self) -> bool;
    fn highest(&self) -> &Ballot;
}

impl Answer for Promise {
    fn granted(&self) -> bool {
        self.promised
    }
    fn highest(&self) -> &Ballot {
        &self.highest
    }
}

impl Answer for (bool, Ballot) {
    fn granted(&self) -> bool {
        self.0
    }
    fn highest(&self) -> &Ballot {
        &self.1
    }
}

#[cfg(test)]
mod tests {
    use node::proto::paxos::Accepted;
    use node::proto::{Version, VersionState};

    use super::*;

    fn stamp(ts: u64) -> Stamp {
        Stamp {
            ts,
            id: format!("{ts:032}"),
        }
    }

    fn record(ts: u64) -> ObjectRecord {
        ObjectRecord::single(Version {
            stamp: stamp(ts),
            null: true,
            state: VersionState::DeleteMarker,
            tags: None,
            acl: None,
            follows: None,
        })
    }

    fn promise(
        accepted: Option<(u64, Option<ObjectRecord>)>,
        rec: Option<ObjectRecord>,
    ) -> Promise {
        Promise {
            promised: true,
            highest: stamp(100),
            accepted: accepted.map(|(ts, value)| Accepted {
                ballot: stamp(ts),
                value,
            }),
            record: rec,
        }
    }

    #[test]
    fn a_value_accepted_below_a_committed_ballot_is_not_finished() {
        // Node A accepted 36 at ballot 36; ballot 50 then chose 38 on the other nodes, and
        // A missed that commit. B's commit marker outranks A's acceptance.
        let a = promise(Some((36, Some(record(36)))), None);
        let b = promise(Some((50, None)), Some(record(38)));
        for order in [[&a, &b], [&b, &a]] {
            let (committed, pending) = join_promises(order.into_iter());
            assert_eq!(committed, record(38));
            assert!(pending.is_none(), "a superseded proposal was joined in");
        }
    }

    #[test]
    fn the_highest_accepted_value_is_finished() {
        let a = promise(Some((60, Some(record(60)))), Some(record(38)));
        let b = promise(Some((50, None)), Some(record(38)));
        let c = promise(None, Some(record(38)));
        let (committed, pending) = join_promises([&c, &b, &a].into_iter());
        assert_eq!(committed, record(38));
        let (ballot, value) = pending.expect("the highest acceptance is unfinished");
        assert_eq!((ballot, value), (&stamp(60), &record(60)));
    }
}
