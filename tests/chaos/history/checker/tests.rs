//! The checker on hand-made histories (each anomaly the history test hunts for), and
//! against an exhaustive search on small random histories.

use super::*;

fn ev(client: usize, op: Op, outcome: Outcome, call: u64, ret: u64) -> Event {
    Event {
        client,
        op,
        outcome,
        call,
        ret: Some(ret),
    }
}

fn unknown(client: usize, op: Op, call: u64) -> Event {
    Event {
        client,
        op,
        outcome: Outcome::Unknown,
        call,
        ret: None,
    }
}

fn is_linearizable(h: &[Event]) -> bool {
    match check(h) {
        Verdict::Linearizable => true,
        Verdict::Violation(_) => false,
        Verdict::Undecided { steps } => panic!("undecided after {steps} steps"),
    }
}

use Outcome::{Ok as Done, PreconditionFailed as Failed, Read};

#[test]
fn a_linearizable_history_with_overlaps_passes() {
    let h = [
        ev(0, Op::Put(1), Done, 0, 10),
        ev(1, Op::Get, Read(Some(1)), 5, 15),
        ev(
            2,
            Op::PutIfMatch {
                expect: 1,
                value: 2,
            },
            Done,
            12,
            30,
        ),
        // Concurrent with the If-Match write: may see either value.
        ev(3, Op::Get, Read(Some(1)), 14, 20),
        ev(1, Op::Get, Read(Some(2)), 21, 25),
        ev(0, Op::DeleteIfMatch { expect: 2 }, Done, 31, 40),
        ev(3, Op::PutIfAbsent(3), Done, 41, 50),
        ev(2, Op::PutIfAbsent(4), Failed, 42, 55),
        ev(1, Op::Get, Read(Some(3)), 56, 60),
    ];
    assert!(is_linearizable(&h));
}

#[test]
fn a_stale_read_fails() {
    let h = [
        ev(0, Op::Put(1), Done, 0, 10),
        ev(0, Op::Put(2), Done, 11, 20),
        ev(1, Op::Get, Read(Some(1)), 21, 30),
    ];
    assert!(!is_linearizable(&h));
}

#[test]
fn two_winning_creates_fail() {
    let h = [
        ev(0, Op::PutIfAbsent(1), Done, 0, 10),
        ev(1, Op::PutIfAbsent(2), Done, 1, 11),
    ];
    assert!(!is_linearizable(&h));
}

#[test]
fn a_lost_acknowledged_write_fails() {
    let h = [
        ev(0, Op::Put(1), Done, 0, 10),
        ev(1, Op::Get, Read(None), 20, 30),
    ];
    assert!(!is_linearizable(&h));
}

#[test]
fn a_non_monotonic_read_fails() {
    // The write is still in flight, so either read alone is fine; the second read,
    // which starts after the first ended, may not go back.
    let h = [
        ev(0, Op::Put(1), Done, 0, 10),
        ev(
            1,
            Op::PutIfMatch {
                expect: 1,
                value: 2,
            },
            Done,
            11,
            100,
        ),
        ev(2, Op::Get, Read(Some(2)), 20, 30),
        ev(3, Op::Get, Read(Some(1)), 40, 50),
    ];
    assert!(!is_linearizable(&h));
}

#[test]
fn a_refused_write_that_took_effect_fails() {
    let h = [
        ev(0, Op::Put(1), Done, 0, 10),
        ev(
            1,
            Op::PutIfMatch {
                expect: 1,
                value: 2,
            },
            Failed,
            11,
            100,
        ),
        ev(2, Op::Get, Read(Some(2)), 20, 30),
    ];
    assert!(!is_linearizable(&h));
}

#[test]
fn a_true_condition_refused_fails() {
    let h = [
        ev(0, Op::Put(1), Done, 0, 10),
        ev(1, Op::DeleteIfMatch { expect: 1 }, Failed, 11, 20),
        ev(2, Op::Get, Read(Some(1)), 21, 30),
    ];
    assert!(!is_linearizable(&h));
}

#[test]
fn an_unknown_write_may_take_effect_late_or_never() {
    let late = [
        ev(0, Op::Put(1), Done, 0, 10),
        unknown(1, Op::Put(2), 11),
        ev(2, Op::Get, Read(Some(1)), 20, 30),
        ev(2, Op::Get, Read(Some(2)), 40, 50),
    ];
    assert!(is_linearizable(&late));
    let never = [
        ev(0, Op::Put(1), Done, 0, 10),
        unknown(1, Op::Put(2), 11),
        ev(2, Op::Get, Read(Some(1)), 20, 30),
    ];
    assert!(is_linearizable(&never));
    // ...but not before it was invoked.
    let early = [
        ev(2, Op::Get, Read(Some(2)), 0, 5),
        unknown(1, Op::Put(2), 11),
    ];
    assert!(!is_linearizable(&early));
}

#[test]
fn a_deleted_value_that_comes_back_fails() {
    let h = [
        ev(0, Op::PutIfAbsent(1), Done, 0, 10),
        ev(1, Op::DeleteIfMatch { expect: 1 }, Done, 11, 20),
        ev(2, Op::Get, Read(None), 21, 30),
        ev(2, Op::Get, Read(Some(1)), 31, 40),
    ];
    assert!(!is_linearizable(&h));
}

#[test]
fn the_failing_prefix_ends_at_the_operation_that_breaks_it() {
    let h = [
        ev(0, Op::Put(1), Done, 0, 10),
        ev(0, Op::Put(2), Done, 11, 20),
        ev(1, Op::Get, Read(Some(1)), 21, 30),
        ev(1, Op::Get, Read(Some(2)), 31, 40),
        ev(1, Op::Put(3), Done, 41, 50),
    ];
    let Verdict::Violation(v) = check(&h) else {
        panic!("not linearizable")
    };
    assert_eq!(v.events.len(), 3);
    assert_eq!(v.events.last().unwrap().outcome, Read(Some(1)));
}

#[test]
fn a_cut_keeps_what_later_operations_explain_open() {
    // The 412 is explained by the Put invoked after it; a cut before the Put must not
    // be taken for a violation.
    let h = [
        ev(0, Op::PutIfAbsent(1), Done, 0, 10),
        ev(1, Op::DeleteIfMatch { expect: 1 }, Done, 11, 20),
        ev(2, Op::PutIfAbsent(2), Failed, 21, 100),
        ev(3, Op::Put(3), Done, 30, 40),
        ev(3, Op::Get, Read(Some(1)), 50, 60),
    ];
    let Verdict::Violation(v) = check(&h) else {
        panic!("not linearizable")
    };
    assert_eq!(v.events.last(), h.last(), "{:?}", v.events);
    assert!(is_linearizable(&h[..4]));
}

#[test]
fn many_concurrent_unknown_writes_stay_within_the_budget() {
    let mut h = Vec::new();
    for i in 0..24u32 {
        h.push(unknown(i as usize, Op::Put(i + 1), u64::from(i)));
    }
    for k in 0..200u64 {
        h.push(ev(
            99,
            Op::Get,
            Read(Some(24)),
            1000 + 10 * k,
            1005 + 10 * k,
        ));
    }
    assert!(is_linearizable(&h));
}

/// The checker against an exhaustive search on small random histories, each checked in
/// several orders of its events.
mod exhaustive {
    use super::*;

    /// Every order consistent with real time (unknown operations may also be left out, the
    /// same as linearizing them last), tried one by one.
    fn brute_force(h: &[Event]) -> bool {
        fn go(h: &[Event], used: &mut Vec<bool>, state: Value) -> bool {
            // Done when every operation with a known outcome is placed.
            if h.iter()
                .zip(used.iter())
                .all(|(e, u)| *u || e.outcome == Outcome::Unknown)
            {
                return true;
            }
            for i in 0..h.len() {
                if used[i] {
                    continue;
                }
                // Nothing unplaced may have returned before this one was invoked.
                let blocked = h.iter().zip(used.iter()).enumerate().any(|(j, (e, u))| {
                    j != i
                        && !*u
                        && e.outcome != Outcome::Unknown
                        && e.ret.is_some_and(|r| r < h[i].call)
                });
                if blocked {
                    continue;
                }
                if let Some(next) = step(state, h[i].op, h[i].outcome) {
                    used[i] = true;
                    if go(h, used, next) {
                        return true;
                    }
                    used[i] = false;
                }
            }
            false
        }
        go(h, &mut vec![false; h.len()], None)
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn random_history(rng: &mut Rng) -> Vec<Event> {
        let n = 2 + rng.below(6) as usize;
        (0..n)
            .map(|i| {
                let value = i as u32 + 1;
                let expect = 1 + rng.below(n as u64) as u32;
                let op = match rng.below(6) {
                    0 => Op::Get,
                    1 => Op::Put(value),
                    2 => Op::PutIfAbsent(value),
                    3 => Op::PutIfMatch { expect, value },
                    4 => Op::Delete,
                    _ => Op::DeleteIfMatch { expect },
                };
                let outcome = match (op, rng.below(5)) {
                    (Op::Get, r) => {
                        Outcome::Read((r > 0).then_some(1 + rng.below(n as u64) as u32))
                    }
                    (_, 0) => Outcome::Unknown,
                    (Op::Put(_) | Op::Delete, _) => Outcome::Ok,
                    (_, 1) => Outcome::PreconditionFailed,
                    (_, 2) => Outcome::NoSuchKey,
                    _ => Outcome::Ok,
                };
                let call = rng.below(40);
                let ret = (outcome != Outcome::Unknown).then(|| call + rng.below(20));
                Event {
                    client: i,
                    op,
                    outcome,
                    call,
                    ret,
                }
            })
            .collect()
    }

    #[test]
    fn agrees_with_an_exhaustive_search_in_every_order() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut yes, mut no) = (0, 0);
        for _ in 0..20_000 {
            let mut h = random_history(&mut rng);
            let want = brute_force(&h);
            for _ in 0..3 {
                let got = linearizable(&h, STEP_BUDGET).expect("small histories are decided");
                assert_eq!(got, want, "{h:#?}");
                let (a, b) = (
                    rng.below(h.len() as u64) as usize,
                    rng.below(h.len() as u64) as usize,
                );
                h.swap(a, b);
            }
            if want {
                yes += 1;
            } else {
                no += 1;
            }
            if !want {
                // The reported cut fails too, and ends with an operation of the history.
                let Verdict::Violation(v) = check(&h) else {
                    panic!("{h:#?}")
                };
                assert!(!brute_force(&v.events), "{:#?}", v.events);
            }
        }
        assert!(yes > 1000 && no > 1000, "{yes} linearizable, {no} not");
    }
}
