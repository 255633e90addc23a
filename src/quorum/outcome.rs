//! What became of versions a request proposed in earlier attempts: the one question both a
//! conditional write (a round whose answers were lost) and a plain write (an attempt some
//! replicas refused as stale and others stored) must answer before trying again, so that
//! one request never takes effect twice, and never answers "refused" after it took effect.

use node::proto::{ObjectRecord, Stamp, Version};

/// The `follows` of a version whose writer saw an empty record.
pub const ZERO_STAMP: Stamp = Stamp {
    ts: 0,
    id: String::new(),
};

/// The fate of a request's earlier versions, as a state that contains every chosen value
/// (a Paxos view) shows it.
#[derive(Debug, PartialEq, Eq)]
pub enum Earlier {
    /// None was ever part of the key's state as it can be observed; trying again with a new
    /// version is safe (the round that does it also fences the old ones off).
    NotApplied,
    /// The `usize`-th one took effect: it is in the state, or a newer null version replaced
    /// it after it was chosen.
    Applied(usize),
    /// One may have taken effect and been replaced since; nothing tells.
    Unknown,
}

/// Decides from `view` whether one of `mine` took effect. A chosen version is in every later
/// state unless a newer null version replaced it (null versions drop older ones). So a
/// version absent from `view` never took effect when it is not null, or when no version is
/// newer than it. Otherwise the next newer version tells, if a conditional write made it:
/// it `follows` the newest stamp that write saw, at least this version's if this one was
/// chosen before it, and below it if not. A version that was not chosen before a newer one
/// can still reach the records later (an attempt some replica stored), but only below that
/// newer version: it is never observed as the key's state.
pub fn earlier_outcome(view: &ObjectRecord, mine: &[Version]) -> Earlier {
    let mut unknown = false;
    for (i, v) in mine.iter().enumerate() {
        if view.versions.iter().any(|x| x.stamp == v.stamp) {
            return Earlier::Applied(i);
        }
    }
    for (i, v) in mine.iter().enumerate() {
        if !v.null {
            continue;
        }
        let Some(next) = view.versions.iter().find(|x| x.stamp > v.stamp) else {
            continue;
        };
        match &next.follows {
            Some(f) if *f < v.stamp => {}
            Some(f) if *f == v.stamp => return Earlier::Applied(i),
            _ => unknown = true,
        }
    }
    if unknown {
        Earlier::Unknown
    } else {
        Earlier::NotApplied
    }
}

#[cfg(test)]
mod tests {
    use node::proto::VersionState;

    use super::*;

    fn v(ts: u64, null: bool, follows: Option<u64>) -> Version {
        let stamp = |ts: u64| Stamp {
            ts,
            id: format!("{ts:032}"),
        };
        Version {
            stamp: stamp(ts),
            null,
            state: VersionState::DeleteMarker,
            tags: None,
            follows: follows.map(stamp),
        }
    }

    fn record(versions: Vec<Version>) -> ObjectRecord {
        ObjectRecord { versions }
    }

    #[test]
    fn a_present_version_took_effect() {
        let mine = [v(10, true, None), v(20, true, None)];
        let view = record(vec![v(5, true, None), v(20, true, Some(5))]);
        assert_eq!(earlier_outcome(&view, &mine), Earlier::Applied(1));
    }

    #[test]
    fn an_absent_version_with_nothing_newer_never_took_effect() {
        let view = record(vec![v(5, true, None)]);
        assert_eq!(
            earlier_outcome(&view, &[v(10, true, None)]),
            Earlier::NotApplied
        );
        // Not null: never dropped, so absent means never chosen, whatever is newer.
        let view = record(vec![v(5, false, None), v(30, false, None)]);
        assert_eq!(
            earlier_outcome(&view, &[v(10, false, None)]),
            Earlier::NotApplied
        );
    }

    #[test]
    fn the_replacing_conditional_write_tells_whether_a_null_version_was_chosen() {
        let mine = [v(10, true, None)];
        let after_it = record(vec![v(30, true, Some(10))]);
        assert_eq!(earlier_outcome(&after_it, &mine), Earlier::Applied(0));
        let without_it = record(vec![v(30, true, Some(5))]);
        assert_eq!(earlier_outcome(&without_it, &mine), Earlier::NotApplied);
        let after_another = record(vec![v(30, true, Some(20))]);
        assert_eq!(earlier_outcome(&after_another, &mine), Earlier::Unknown);
        let plain = record(vec![v(30, true, None)]);
        assert_eq!(earlier_outcome(&plain, &mine), Earlier::Unknown);
    }
}
