//! Which versions of a key a record read returns (`GET /records/..?select=`, `GET
//! /list/..?select=`): all of them, or the *window* a reader of the key's current state
//! needs, so that such a read costs the same with one version or ten thousand.
//!
//! The window holds every version from the current one (the newest that is not purged) up,
//! and the null version; the merge of the windows of any replicas therefore has the right
//! current version, newest stamp and null version. Invariant: nothing that looks for a
//! version outside the window (by id, by stamp, or every version) reads a window; a read by
//! id names the version in `with`, which the node adds.

/// The versions a record read asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    /// Every version (what a node answers when the query names none).
    All,
    /// The window, and the version S3 clients name `with` (`null` included), if stored.
    Current { with: Option<String> },
}

impl Select {
    /// The window only.
    pub const CURRENT: Select = Select::Current { with: None };

    /// Query parameters (`None` for every version, the default).
    pub fn to_query(&self) -> Option<String> {
        match self {
            Select::All => None,
            Select::Current { with: None } => Some("select=current".into()),
            Select::Current { with: Some(id) } => Some(format!(
                "select=current&with={}",
                percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
            )),
        }
    }

    /// Parses `select=` and `with=` out of a query; `None` when they are malformed.
    pub fn from_query(query: Option<&str>) -> Option<Select> {
        let (mut select, mut with) = (None, None);
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if name != "select" && name != "with" {
                continue;
            }
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .ok()?
                .into_owned();
            if name == "select" {
                select = Some(value);
            } else {
                with = Some(value);
            }
        }
        match (select.as_deref(), with) {
            (None | Some("all"), None) => Some(Select::All),
            (Some("current"), with) => Some(Select::Current { with }),
            _ => None,
        }
    }

    /// Whether only the window (and `with`) is asked for.
    pub fn is_current(&self) -> bool {
        matches!(self, Select::Current { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_travel_as_queries() {
        for select in [
            Select::All,
            Select::CURRENT,
            Select::Current {
                with: Some("a b&c=null".into()),
            },
            Select::Current {
                with: Some("null".into()),
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
    }
}
