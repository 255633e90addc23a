//! Record reads that leave out inline bodies (`GET /records/..?bodies=`): which bodies a
//! read asks for, how that travels as a query, and how a node strips the rest.
//!
//! Invariant: a record with an omitted body ([`Data::InlineOmitted`]) only ever goes to a
//! reader. Nodes refuse to merge or accept one, and merging it with a copy that has the
//! body takes the body (`Versioned::absorb`), so no body is ever lost or hidden by a read.

use super::{Data, ObjectRecord, VersionState};

impl ObjectRecord {
    /// Leaves out the inline bodies `bodies` does not ask for.
    pub fn omit_bodies(&mut self, bodies: &Bodies) {
        let keep = match bodies {
            Bodies::All => return,
            Bodies::None => None,
            Bodies::Of(None) => self.current(),
            Bodies::Of(Some(id)) => self.find_s3_version(id),
        }
        .map(|v| v.stamp.clone());
        for v in &mut self.versions {
            if let VersionState::Object(meta) = &mut v.state
                && matches!(meta.data, Data::Inline { .. })
                && keep.as_ref() != Some(&v.stamp)
            {
                meta.data = Data::InlineOmitted;
            }
        }
    }

    /// Whether a read left an inline body out (such a record is never stored).
    pub fn has_omitted_body(&self) -> bool {
        self.versions
            .iter()
            .any(|v| matches!(&v.state, VersionState::Object(m) if m.data == Data::InlineOmitted))
    }
}

/// Which inline bodies a record read returns: all (for repair and writes, which store what
/// they read), none (HEAD and metadata calls), or the one a GET serves. Leaving bodies out
/// keeps small-object reads from shipping, decoding and checking bytes nobody sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bodies {
    All,
    None,
    /// The current version's body, or that of the version with this S3 version id.
    Of(Option<String>),
}

impl Bodies {
    /// Query parameters of `GET /records/..` (`None` for all bodies, the default).
    pub fn to_query(&self) -> Option<String> {
        match self {
            Bodies::All => None,
            Bodies::None => Some("bodies=none".into()),
            Bodies::Of(None) => Some("bodies=current".into()),
            Bodies::Of(Some(id)) => Some(format!(
                "bodies=version&version={}",
                percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
            )),
        }
    }

    /// Parses the query of `GET /records/..`; `None` when it is malformed.
    pub fn from_query(query: Option<&str>) -> Option<Bodies> {
        let (mut bodies, mut version) = (None, None);
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .ok()?
                .into_owned();
            match name {
                "bodies" => bodies = Some(value),
                "version" => version = Some(value),
                _ => {}
            }
        }
        match (bodies.as_deref(), version) {
            (None, None) => Some(Bodies::All),
            (Some("none"), None) => Some(Bodies::None),
            (Some("current"), None) => Some(Bodies::Of(None)),
            (Some("version"), Some(id)) => Some(Bodies::Of(Some(id))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
