//! A linearizability checker for one key's history against a register model: the
//! Wing–Gong search as Lowe improved it (linked-list lifting of linearized operations,
//! backtracking, and a memo of (set of linearized operations, register state) already
//! explored), as Porcupine and Knossos implement it.
//!
//! An operation is an interval `[call, ret]` of the client's clock with what it asked and
//! what it was told. One whose outcome is unknown (5xx, timeout, reset) has no return: it
//! may take effect at any point after its call, or never (it is then linearized at the very
//! end, where nothing observes it). Reads that failed carry no information and are left
//! out by the caller.
//!
//! The register holds `None` (no object, or a delete marker) or the id of the value a
//! write stored; every write stores a value no other write stores, so a read names the
//! write it saw.

use std::collections::HashSet;

/// A register value: the id of the write that stored it, or `None` when the key is absent.
pub type Value = Option<u32>;

/// What a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Get,
    Put(u32),
    /// `If-None-Match: *`.
    PutIfAbsent(u32),
    /// `If-Match: <ETag of expect>`.
    PutIfMatch {
        expect: u32,
        value: u32,
    },
    Delete,
    /// `DELETE` with `If-Match: <ETag of expect>`.
    DeleteIfMatch {
        expect: u32,
    },
}

/// What the client was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A GET's answer.
    Read(Value),
    /// 2xx.
    Ok,
    /// 412: the condition did not hold.
    PreconditionFailed,
    /// 404 NoSuchKey to a conditional write: there is no current object.
    NoSuchKey,
    /// 409 ConditionalRequestConflict: refused without effect, whatever the state.
    Conflict,
    /// No definite answer: the write may or may not have happened.
    Unknown,
}

/// One operation of one key's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub client: usize,
    pub op: Op,
    pub outcome: Outcome,
    /// Invocation time, µs since the start of the run.
    pub call: u64,
    /// Completion time; `None` when the outcome is unknown (it never returned).
    pub ret: Option<u64>,
}

/// The register's transition: the state after `op` told `outcome` in `state`, or `None`
/// when the model cannot produce that outcome in that state.
pub fn step(state: Value, op: Op, outcome: Outcome) -> Option<Value> {
    use Outcome::*;
    let conditional = |holds: bool, next: Value| match outcome {
        Ok if holds => Some(next),
        Unknown => Some(if holds { next } else { state }),
        Conflict => Some(state),
        PreconditionFailed if !holds && state.is_some() => Some(state),
        NoSuchKey if state.is_none() && !holds => Some(state),
        _ => None,
    };
    match op {
        Op::Get => match outcome {
            Read(v) if v == state => Some(state),
            _ => None,
        },
        Op::Put(v) => matches!(outcome, Ok | Unknown).then_some(Some(v)),
        Op::Delete => matches!(outcome, Ok | Unknown).then_some(None),
        Op::PutIfAbsent(v) => match outcome {
            // If-None-Match refuses with 412 whatever the state it saw; never 404.
            NoSuchKey => None,
            _ => conditional(state.is_none(), Some(v)),
        },
        Op::PutIfMatch { expect, value } => conditional(state == Some(expect), Some(value)),
        Op::DeleteIfMatch { expect } => conditional(state == Some(expect), None),
    }
}

/// Why a history is not linearizable.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The shortest prefix of the history that is not linearizable: every operation
    /// invoked up to the last one's invocation, where those still running then count as
    /// unknown (reads among them are left out). Its last operation is the one whose
    /// outcome no order of what came before can explain.
    pub events: Vec<Event>,
}

/// The verdict on one key's history.
#[derive(Debug)]
pub enum Verdict {
    Linearizable,
    Violation(Violation),
    /// The search gave up after its step budget without deciding.
    Undecided {
        steps: u64,
    },
}

/// Search steps one check may take before it gives up.
const STEP_BUDGET: u64 = 20_000_000;

/// Checks one key's history, starting from an absent key.
pub fn check(history: &[Event]) -> Verdict {
    match linearizable(history, STEP_BUDGET) {
        Some(true) => Verdict::Linearizable,
        None => Verdict::Undecided { steps: STEP_BUDGET },
        Some(false) => Verdict::Violation(shortest_failing_prefix(history)),
    }
}

/// The history as it stood when the `len`-th operation (by completion) returned, at `T`:
/// every operation invoked by `T`, those still running then made unknown and unfinished
/// reads dropped. A linearizable history's cuts are linearizable (an operation that
/// returned by `T` took effect before `T`, so only operations invoked by `T` can explain
/// it, and an unknown one can do whatever it did), so failure is monotone in `len` and
/// bisection finds the first failing cut. Its last operation is the one that returned at
/// `T`: the first answer no order of what came before explains.
fn cut(by_return: &[Event], len: usize) -> Vec<Event> {
    let Some(last) = by_return[..len].last() else {
        return Vec::new();
    };
    let at = last.ret.unwrap_or(u64::MAX);
    let mut events: Vec<Event> = by_return
        .iter()
        .enumerate()
        .filter(|(i, e)| *i != len - 1 && e.call <= at)
        .filter_map(|(_, e)| match (e.ret.is_some_and(|r| r <= at), e.op) {
            (true, _) => Some(e.clone()),
            (false, Op::Get) => None,
            (false, _) => Some(Event {
                outcome: Outcome::Unknown,
                ret: None,
                ..e.clone()
            }),
        })
        .collect();
    events.sort_by_key(|e| e.call);
    events.push(last.clone());
    events
}

fn shortest_failing_prefix(history: &[Event]) -> Violation {
    let mut by_return = history.to_vec();
    by_return.sort_by_key(|e| (e.ret.unwrap_or(u64::MAX), e.call));
    let (mut ok, mut bad) = (0, by_return.len());
    while bad - ok > 1 {
        let mid = (ok + bad) / 2;
        match linearizable(&cut(&by_return, mid), STEP_BUDGET) {
            Some(true) => ok = mid,
            _ => bad = mid,
        }
    }
    Violation {
        events: cut(&by_return, bad),
    }
}

/// One node of the doubly linked list of call and return entries, in time order.
#[derive(Clone, Copy)]
struct Entry {
    op: usize,
    is_call: bool,
    /// For a call: the index of its return entry.
    partner: usize,
    prev: usize,
    next: usize,
}

/// Wing–Gong–Lowe search. `Some(true)`: linearizable; `Some(false)`: not; `None`: budget
/// exhausted.
fn linearizable(history: &[Event], budget: u64) -> Option<bool> {
    let n = history.len();
    if n == 0 {
        return Some(true);
    }
    // Times: unknown outcomes return after everything else. At equal times calls come
    // first, so operations that touch are treated as concurrent (the lenient reading).
    let mut points: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, e) in history.iter().enumerate() {
        points.push((e.call, false, i));
        points.push((e.ret.unwrap_or(u64::MAX), true, i));
    }
    points.sort_by_key(|&(t, is_ret, i)| (t, is_ret, i));
    // Entry 0 is the list head; entries 1.. follow `points`.
    let head = 0;
    let mut list = vec![
        Entry {
            op: usize::MAX,
            is_call: false,
            partner: 0,
            prev: 0,
            next: 1,
        };
        2 * n + 1
    ];
    let mut ret_of = vec![0usize; n];
    for (k, &(_, is_ret, op)) in points.iter().enumerate() {
        let idx = k + 1;
        list[idx] = Entry {
            op,
            is_call: !is_ret,
            partner: 0,
            prev: idx - 1,
            next: if idx == 2 * n { usize::MAX } else { idx + 1 },
        };
        if is_ret {
            ret_of[op] = idx;
        }
    }
    for idx in 1..=2 * n {
        if list[idx].is_call {
            list[idx].partner = ret_of[list[idx].op];
        }
    }
    let words = n.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, Value)> = HashSet::new();
    let mut stack: Vec<(usize, Value)> = Vec::new();
    let mut state: Value = None;
    let mut entry = list[head].next;
    let mut steps = 0u64;

    let lift = |list: &mut Vec<Entry>, e: usize| {
        let (p, nx) = (list[e].prev, list[e].next);
        list[p].next = nx;
        if nx != usize::MAX {
            list[nx].prev = p;
        }
        let r = list[e].partner;
        let (p, nx) = (list[r].prev, list[r].next);
        list[p].next = nx;
        if nx != usize::MAX {
            list[nx].prev = p;
        }
    };
    let unlift = |list: &mut Vec<Entry>, e: usize| {
        let r = list[e].partner;
        let (p, nx) = (list[r].prev, list[r].next);
        list[p].next = r;
        if nx != usize::MAX {
            list[nx].prev = r;
        }
        let (p, nx) = (list[e].prev, list[e].next);
        list[p].next = e;
        if nx != usize::MAX {
            list[nx].prev = e;
        }
    };

    while list[head].next != usize::MAX {
        steps += 1;
        if steps > budget {
            return None;
        }
        if entry != usize::MAX && list[entry].is_call {
            let op = list[entry].op;
            let ev = &history[op];
            if let Some(next) = step(state, ev.op, ev.outcome) {
                linearized[op / 64] |= 1 << (op % 64);
                if cache.insert((linearized.clone(), next)) {
                    stack.push((entry, state));
                    state = next;
                    lift(&mut list, entry);
                    entry = list[head].next;
                    continue;
                }
                linearized[op / 64] &= !(1 << (op % 64));
            }
            entry = list[entry].next;
        } else {
            // A return reached whose operation is not linearized yet: undo the last choice.
            let Some((e, s)) = stack.pop() else {
                return Some(false);
            };
            let op = list[e].op;
            linearized[op / 64] &= !(1 << (op % 64));
            state = s;
            unlift(&mut list, e);
            entry = list[e].next;
        }
    }
    Some(true)
}

#[cfg(test)]
mod tests;
