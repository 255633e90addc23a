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

/// Decides from `view` whether one of `mine` took effect. `view` must hold every version
/// stamped at or above the oldest of `mine` that the state holds (what `Select::since`
/// asks the replicas for).
///
/// A version in `view` took effect unless a conditional write chose a newer version
/// without seeing it: that write's version `follows` a stamp below this one. Such a version
/// reached the records without ever being the key's state (an attempt a replica stored
/// after the conditional write's majority promised, or an accepted value the round that
/// proposed it lost), and answering "written" for it would order the request before a
/// conditional write whose condition did not see it.
///
/// A chosen version is in every later state unless a newer null version replaced it (null
/// versions drop older ones). So a version absent from `view` never took effect when it is
/// not null, or when no version is newer than it. Otherwise the next newer version tells,
/// if a conditional write made it: it `follows` the newest stamp that write saw, at least
/// this version's if this one was chosen before it, and below it if not.
pub fn earlier_outcome(view: &ObjectRecord, mine: &[Version]) -> Earlier {
    let skipped = |stamp: &Stamp| {
        view.versions
            .iter()
            .any(|x| x.stamp > *stamp && x.follows.as_ref().is_some_and(|f| f < stamp))
    };
    let mut unknown = false;
    for (i, v) in mine.iter().enumerate() {
        if view.versions.iter().any(|x| x.stamp == v.stamp) && !skipped(&v.stamp) {
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
            acl: None,
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
    fn a_present_version_a_conditional_write_skipped_never_took_effect() {
        let mine = [v(10, false, None)];
        // Stored somewhere, but the conditional write of 20 saw only 5.
        let skipped = record(vec![
            v(5, false, None),
            v(10, false, None),
            v(20, false, Some(5)),
        ]);
        assert_eq!(earlier_outcome(&skipped, &mine), Earlier::NotApplied);
        // The write of 20 saw it.
        let seen = record(vec![
            v(5, false, None),
            v(10, false, None),
            v(20, false, Some(10)),
        ]);
        assert_eq!(earlier_outcome(&seen, &mine), Earlier::Applied(0));
        // A plain write above says nothing about it.
        let plain = record(vec![v(10, false, None), v(20, false, None)]);
        assert_eq!(earlier_outcome(&plain, &mine), Earlier::Applied(0));
        // The request's own later version skipped its first one: the later one counts.
        let mine = [v(10, false, None), v(20, false, Some(5))];
        assert_eq!(earlier_outcome(&skipped, &mine), Earlier::Applied(1));
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
