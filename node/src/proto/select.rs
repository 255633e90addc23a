//! Which versions of a key a record read returns (`GET /records/..?select=`, `GET
//! /list/..?select=`): all of them, or the *window* a reader of the key's current state
//! needs, so that such a read costs the same with one version or ten thousand.
//!
//! The window holds every version from the current one (the newest that is not purged) up,
//! and the null version; the merge of the windows of any replicas therefore has the right
//! current version, newest stamp and null version. Invariant: nothing that looks for a
//! version outside the window (by id, by stamp, or every version) reads a window alone: a
//! read by id names the version in `with`, a check of given versions names their stamps,
//! and the node adds those it has; a conditional write asking what became of its own
//! earlier attempts names the oldest one in `since` and gets every version from there up.

use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::{ObjectRecord, Stamp};

/// The versions a record read asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    /// Every version (what a node answers when the query names none).
    All,
    /// The window; the version S3 clients name `with` (`null` included), if stored; the
    /// versions of `stamps` that are stored (a reader checking where given versions are,
    /// which the window of a replica that has newer ones does not show); and every version
    /// stamped at or above `since` (a writer asking what became of its own earlier
    /// attempts, which the versions written since tell: see `quorum::outcome`).
    Current {
        with: Option<String>,
        stamps: Vec<Stamp>,
        since: Option<Stamp>,
    },
    /// At most `limit` (capped at [`MAX_PAGE_VERSIONS`]) versions stamped above `after`,
    /// oldest first, ending early once [`MAX_PAGE_BYTES`] of stored versions are in it:
    /// how a repair walks a history of any size. A page shorter than `limit` is not
    /// necessarily the last; an empty one is.
    Page { after: Option<Stamp>, limit: usize },
}

/// Most versions a [`Select::Page`] answers.
pub const MAX_PAGE_VERSIONS: usize = 1000;
/// Stored bytes (inline bodies included) past which a [`Select::Page`] ends: an answer
/// that carries bodies stays far below a call's deadline and the largest record body.
pub const MAX_PAGE_BYTES: usize = 2 * 1024 * 1024;

/// Whether a merge of window answers shows the key's current state, given each answer's
/// own current version (`None`: it has none, so its window is its whole history) and the
/// merge's. An answer's window says nothing about versions under its own current version;
/// when another answer purged that one, the merge's current version may lie there, where
/// this answer may have purged it too. Then the reader must read every version.
pub fn windows_cover<'a>(
    answers: impl IntoIterator<Item = Option<&'a Stamp>>,
    merged: Option<&Stamp>,
) -> bool {
    answers
        .into_iter()
        .flatten()
        .all(|own| merged.is_some_and(|m| own <= m))
}

/// Most stamps one read names; a reader with more reads every version.
pub const MAX_SELECT_STAMPS: usize = 64;

impl Select {
    /// The window only.
    pub const CURRENT: Select = Select::Current {
        with: None,
        stamps: Vec::new(),
        since: None,
    };

    /// The window and the version S3 clients name `version_id`, if any.
    pub fn current_and(version_id: Option<&str>) -> Select {
        Select::Current {
            with: version_id.map(str::to_owned),
            stamps: Vec::new(),
            since: None,
        }
    }

    /// This selection, also asking for every version stamped at or above `stamp` (every
    /// version, for `All`; a page is left as it is).
    pub fn and_since(&self, stamp: Option<&Stamp>) -> Select {
        match (self, stamp) {
            (
                Select::Current {
                    with,
                    stamps,
                    since,
                },
                Some(stamp),
            ) => Select::Current {
                with: with.clone(),
                stamps: stamps.clone(),
                since: Some(since.as_ref().map_or(stamp, |s| s.min(stamp)).clone()),
            },
            _ => self.clone(),
        }
    }

    /// What tells whether a replica holds every version of `record`: this selection with
    /// `record`'s stamps added (every version when they are too many to name).
    pub fn probing(&self, record: &ObjectRecord) -> Select {
        match self {
            Select::All | Select::Page { .. } => self.clone(),
            Select::Current { .. } if record.versions.len() > MAX_SELECT_STAMPS => Select::All,
            Select::Current { with, since, .. } => Select::Current {
                with: with.clone(),
                stamps: record.versions.iter().map(|v| v.stamp.clone()).collect(),
                since: since.clone(),
            },
        }
    }

    /// Query parameters (`None` for every version, the default).
    pub fn to_query(&self) -> Option<String> {
        let (with, stamps, since) = match self {
            Select::All => return None,
            Select::Page { after, limit } => {
                let mut query = format!("select=page&limit={limit}");
                if let Some(stamp) = after {
                    query.push_str(&format!("&after={}:", stamp.ts));
                    query.extend(utf8_percent_encode(&stamp.id, NON_ALPHANUMERIC));
                }
                return Some(query);
            }
            Select::Current {
                with,
                stamps,
                since,
            } => (with, stamps, since),
        };
        let stamp_param = |query: &mut String, name: &str, stamp: &Stamp| {
            query.push_str(&format!("&{name}={}:", stamp.ts));
            query.extend(utf8_percent_encode(&stamp.id, NON_ALPHANUMERIC));
        };
        let mut query = String::from("select=current");
        if let Some(id) = with {
            query.push_str("&with=");
            query.extend(utf8_percent_encode(id, NON_ALPHANUMERIC));
        }
        for stamp in stamps {
            stamp_param(&mut query, "stamp", stamp);
        }
        if let Some(stamp) = since {
            stamp_param(&mut query, "since", stamp);
        }
        Some(query)
    }

    /// Parses `select=`, `with=`, `stamp=`, `since=`, `after=` and `limit=` out of a query;
    /// `None` when they are malformed.
    pub fn from_query(query: Option<&str>) -> Option<Select> {
        let (mut select, mut with, mut stamps) = (None, None, Vec::new());
        let (mut after, mut limit, mut since) = (None, None, None);
        let stamp = |value: &str| -> Option<Stamp> {
            let (ts, id) = value.split_once(':')?;
            Some(Stamp {
                ts: ts.parse().ok()?,
                id: id.to_owned(),
            })
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !matches!(
                name,
                "select" | "with" | "stamp" | "since" | "after" | "limit"
            ) {
                continue;
            }
            let value = percent_decode_str(value).decode_utf8().ok()?.into_owned();
            match name {
                "select" => select = Some(value),
                "with" => with = Some(value),
                "stamp" => stamps.push(stamp(&value)?),
                "after" => after = Some(stamp(&value)?),
                "since" => since = Some(stamp(&value)?),
                _ => limit = Some(value.parse::<usize>().ok()?),
            }
        }
        if stamps.len() > MAX_SELECT_STAMPS {
            return None;
        }
        let only_current = after.is_none() && limit.is_none();
        match select.as_deref() {
            None | Some("all")
                if with.is_none() && stamps.is_empty() && since.is_none() && only_current =>
            {
                Some(Select::All)
            }
            Some("current") if only_current => Some(Select::Current {
                with,
                stamps,
                since,
            }),
            Some("page") if with.is_none() && stamps.is_empty() && since.is_none() => {
                Some(Select::Page {
                    after,
                    limit: limit?.min(MAX_PAGE_VERSIONS),
                })
            }
            _ => None,
        }
    }

    /// Keeps of `record` (a merge of answers to this selection) what the selection names: a
    /// merge of windows holds older versions some replica had in its window (a replica
    /// that lacks the newest version answers the one below it), which are neither the
    /// key's current state nor a sign that another replica lacks them.
    pub fn trim(&self, record: &mut ObjectRecord) {
        let Select::Current {
            with,
            stamps,
            since,
        } = self
        else {
            return;
        };
        if record.versions.is_empty() {
            return;
        }
        let current = record.current().map(|v| v.stamp.clone());
        let null = record
            .versions
            .iter()
            .rev()
            .find(|v| v.null)
            .map(|v| v.stamp.clone());
        record.versions.retain(|v| {
            current.as_ref().is_none_or(|c| v.stamp >= *c)
                || Some(&v.stamp) == null.as_ref()
                || with.as_deref() == Some(v.s3_version_id())
                || stamps.contains(&v.stamp)
                || since.as_ref().is_some_and(|s| v.stamp >= *s)
        });
    }

    /// Whether only the window (and what it names) is asked for.
    pub fn is_current(&self) -> bool {
        matches!(self, Select::Current { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Version, VersionState};

    fn v(ts: u64, null: bool, state: VersionState) -> Version {
        Version {
            stamp: Stamp {
                ts,
                id: format!("id{ts}"),
            },
            null,
            state,
            tags: None,
            acl: None,
            follows: None,
        }
    }

    #[test]
    fn windows_cover_the_current_state_unless_an_answer_stops_above_it() {
        let s = |ts: u64| Stamp {
            ts,
            id: format!("id{ts}"),
        };
        let (s2, s3) = (s(2), s(3));
        // Both answers' current versions are at or below the merge's.
        assert!(windows_cover([Some(&s2), Some(&s3)], Some(&s3)));
        assert!(windows_cover([None, Some(&s3)], Some(&s3)));
        assert!(windows_cover([None, None], None));
        // One answer's current version (3) was purged by the other, whose current is 2:
        // what the first holds under 3 is unknown.
        assert!(!windows_cover([Some(&s2), Some(&s3)], Some(&s2)));
        assert!(!windows_cover([Some(&s3)], None));
    }

    #[test]
    fn trimming_keeps_the_window_and_the_named_version() {
        let record = ObjectRecord {
            versions: vec![
                v(1, true, VersionState::DeleteMarker),
                v(2, false, VersionState::DeleteMarker),
                v(3, false, VersionState::DeleteMarker),
                v(4, false, VersionState::DeleteMarker),
                v(5, false, VersionState::Purged),
            ],
        };
        let kept = |select: Select| {
            let mut r = record.clone();
            select.trim(&mut r);
            r.versions.iter().map(|v| v.stamp.ts).collect::<Vec<_>>()
        };
        assert_eq!(kept(Select::All), [1, 2, 3, 4, 5]);
        assert_eq!(kept(Select::CURRENT), [1, 4, 5]);
        let with = |id: &str| Select::current_and(Some(id));
        assert_eq!(kept(with("id2")), [1, 2, 4, 5]);
        assert_eq!(kept(with("null")), [1, 4, 5]);
        // A null version is only ever named `null`.
        assert_eq!(kept(with("id1")), [1, 4, 5]);
        let probe = Select::CURRENT.probing(&ObjectRecord {
            versions: vec![v(3, false, VersionState::DeleteMarker)],
        });
        assert_eq!(kept(probe), [1, 3, 4, 5]);
        let since = |ts: u64| {
            Select::CURRENT.and_since(Some(&Stamp {
                ts,
                id: format!("id{ts}"),
            }))
        };
        assert_eq!(kept(since(2)), [1, 2, 3, 4, 5]);
        // The oldest of several.
        assert_eq!(
            kept(since(3).and_since(Some(&v(2, false, VersionState::Purged).stamp))),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(
            kept(since(2).and_since(Some(&v(3, false, VersionState::Purged).stamp))),
            [1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn selections_travel_as_queries() {
        for select in [
            Select::All,
            Select::CURRENT,
            Select::current_and(Some("a b&c=null")),
            Select::current_and(Some("null")),
            Select::Page {
                after: None,
                limit: 5,
            },
            Select::Page {
                after: Some(Stamp {
                    ts: 3,
                    id: "a:b".into(),
                }),
                limit: MAX_PAGE_VERSIONS,
            },
            Select::CURRENT.and_since(Some(&Stamp {
                ts: 9,
                id: "s&:".into(),
            })),
            Select::Current {
                with: None,
                since: None,
                stamps: vec![
                    Stamp {
                        ts: 7,
                        id: "x:y&z".into(),
                    },
                    Stamp {
                        ts: u64::MAX,
                        id: String::new(),
                    },
                ],
            },
        ] {
            let query = select.to_query();
            assert_eq!(Select::from_query(query.as_deref()), Some(select.clone()));
            // Beside other parameters, too.
            let mixed = format!("bodies=none&{}", query.unwrap_or_default());
            assert_eq!(Select::from_query(Some(&mixed)), Some(select));
        }
        assert_eq!(Select::from_query(Some("select=everything")), None);
        assert_eq!(Select::from_query(Some("with=abc")), None);
        assert_eq!(Select::from_query(Some("select=current&stamp=x:1")), None);
    }
}
