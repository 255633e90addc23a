//! What makes a quorum when a key may have two replica sets: while a layout change
//! migrates, a key's owners under the previous members and under the new ones are both
//! live, and an operation needs its quorum in each of them (a write W in each, a read R in
//! each, an agreement a majority of each). With one set this is the plain count.
//!
//! Invariant: a node in both sets counts for both; a node in no set counts for none (a
//! call the caller added for its own reasons); a set member that was not called counts as
//! a failure, so an operation skipping a node can never meet a quorum it would not have
//! met by asking it.

use super::{Outcome, QuorumTracker};

/// Per set: its members (node indexes) and how many of them must succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    sets: Vec<(Vec<usize>, usize)>,
}

impl Need {
    /// `each(set size)` successes in every one of `sets`.
    pub fn per_set(sets: &[Vec<usize>], each: impl Fn(usize) -> usize) -> Need {
        Need {
            sets: sets.iter().map(|s| (s.clone(), each(s.len()))).collect(),
        }
    }

    /// `n` successes among `members`.
    pub fn count(members: &[usize], n: usize) -> Need {
        Need {
            sets: vec![(members.to_vec(), n)],
        }
    }

    /// This need and `other`'s, both.
    pub fn and(mut self, other: Need) -> Need {
        self.sets.extend(other.sets);
        self
    }

    /// The largest per-set need: what an error message reports as needed.
    pub fn needed(&self) -> usize {
        self.sets.iter().map(|(_, n)| *n).max().unwrap_or(0)
    }

    /// Whether successes from `ok` meet every set's need.
    pub fn met_by(&self, ok: &[usize]) -> bool {
        self.sets
            .iter()
            .all(|(members, n)| members.iter().filter(|m| ok.contains(m)).count() >= *n)
    }

    /// The fewest nodes, taken from `order` front first, that can meet the need when all
    /// of them answer: what a read asks before it hedges.
    pub fn first_asks(&self, order: &[usize]) -> Vec<usize> {
        let mut chosen: Vec<usize> = Vec::new();
        for &i in order {
            if self.met_by(&chosen) {
                break;
            }
            let helps = self.sets.iter().any(|(members, n)| {
                members.contains(&i) && members.iter().filter(|m| chosen.contains(m)).count() < *n
            });
            if helps {
                chosen.push(i);
            }
        }
        chosen
    }

    /// A tracker for answers from the nodes in `called`.
    pub fn tracker(&self, called: &[usize]) -> NeedTracker {
        NeedTracker {
            sets: self
                .sets
                .iter()
                .map(|(members, n)| {
                    let asked = members.iter().filter(|m| called.contains(m)).count();
                    (members.clone(), QuorumTracker::new(asked, *n))
                })
                .collect(),
            ok: 0,
        }
    }
}

/// [`QuorumTracker`] per set: met when every set is, failed as soon as one set is.
#[derive(Debug, Clone)]
pub struct NeedTracker {
    sets: Vec<(Vec<usize>, QuorumTracker)>,
    ok: usize,
}

impl NeedTracker {
    /// Records node `i`'s answer.
    pub fn record(&mut self, i: usize, success: bool) -> Outcome {
        if success {
            self.ok += 1;
        }
        for (members, t) in &mut self.sets {
            if members.contains(&i) {
                t.record(success);
            }
        }
        self.outcome()
    }

    pub fn outcome(&self) -> Outcome {
        let outcomes = self.sets.iter().map(|(_, t)| t.outcome());
        let mut all_met = true;
        for o in outcomes {
            match o {
                Outcome::Failed => return Outcome::Failed,
                Outcome::Pending => all_met = false,
                Outcome::Met => {}
            }
        }
        if all_met {
            Outcome::Met
        } else {
            Outcome::Pending
        }
    }

    /// Successful answers recorded, from any node.
    pub fn successes(&self) -> usize {
        self.ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_set_is_the_plain_count() {
        let need = Need::count(&[0, 1, 2], 2);
        let mut t = need.tracker(&[0, 1, 2]);
        assert_eq!(t.record(0, false), Outcome::Pending);
        assert_eq!(t.record(1, true), Outcome::Pending);
        assert_eq!(t.record(2, true), Outcome::Met);
        let mut t = need.tracker(&[0, 1, 2]);
        assert_eq!(t.record(0, false), Outcome::Pending);
        assert_eq!(t.record(2, false), Outcome::Failed);
    }

    #[test]
    fn two_sets_need_their_quorum_in_each() {
        // Old owners 0 1 2, new owners 0 1 3: W = 2 in each.
        let need = Need::per_set(&[vec![0, 1, 3], vec![0, 1, 2]], |_| 2);
        let all = [0, 1, 2, 3];
        let mut t = need.tracker(&all);
        assert_eq!(t.record(2, true), Outcome::Pending);
        assert_eq!(t.record(3, true), Outcome::Pending);
        // 0 counts in both sets.
        assert_eq!(t.record(0, true), Outcome::Met);
        // Two shared nodes failing leave neither set able to reach 2.
        let mut t = need.tracker(&all);
        assert_eq!(t.record(0, false), Outcome::Pending);
        assert_eq!(t.record(1, false), Outcome::Failed);
        // The new set failing is enough to fail, whatever the old set does.
        let mut t = need.tracker(&all);
        assert_eq!(t.record(3, false), Outcome::Pending);
        assert_eq!(t.record(2, true), Outcome::Pending);
        assert_eq!(t.record(1, false), Outcome::Failed);
        assert!(need.met_by(&[0, 1]));
        assert!(!need.met_by(&[0, 2]));
        assert!(need.met_by(&[0, 2, 3]));
    }

    #[test]
    fn members_not_called_count_as_failed() {
        let need = Need::per_set(&[vec![0, 1, 2], vec![0, 1, 3]], |_| 2);
        let mut t = need.tracker(&[0, 2]);
        assert_eq!(t.outcome(), Outcome::Failed);
        assert_eq!(t.record(0, true), Outcome::Failed);
    }

    #[test]
    fn first_asks_cover_every_set_with_the_fewest_nodes() {
        let need = Need::per_set(&[vec![0, 1, 2], vec![0, 1, 3]], |_| 2);
        assert_eq!(need.first_asks(&[0, 1, 2, 3]), [0, 1]);
        assert_eq!(need.first_asks(&[2, 3, 0, 1]), [2, 3, 0]);
        assert_eq!(need.first_asks(&[2, 0, 3, 1]), [2, 0, 3]);
        let one = Need::count(&[4, 5, 6], 2);
        assert_eq!(one.first_asks(&[6, 4, 5]), [6, 4]);
        assert_eq!(need.needed(), 2);
    }
}
