//! The node's identity: an id made on the first start and kept in the data directory
//! (file `node_id`), so it follows the disk, not the address. A node's URL may change
//! without it; a wiped or new disk is a new node.
//!
//! Invariant: a data directory never changes its id. `--node-id` names the id a new
//! directory gets; given for a directory that already has another, the node refuses to
//! start (a disk mounted under the wrong identity would otherwise serve as someone else).

use std::io::Write;
use std::path::Path;

use crate::error::Error;
use crate::proto::valid_node_id;

const FILE: &str = "node_id";

/// The id of the node whose data directory is `dir` (created beforehand), made now from
/// `wanted` (or at random) if it has none yet.
pub(crate) fn load_or_create(dir: &Path, wanted: Option<&str>) -> Result<String, Error> {
    if let Some(w) = wanted
        && !valid_node_id(w)
    {
        return Err(Error::Config(format!(
            "node id {w:?}: 1 to 64 characters of A-Z a-z 0-9 . _ -"
        )));
    }
    let path = dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(stored) => {
            let stored = stored.trim().to_owned();
            if !valid_node_id(&stored) {
                return Err(Error::Corrupt(format!(
                    "{} holds no valid node id",
                    path.display()
                )));
            }
            match wanted {
                Some(w) if w != stored => Err(Error::Config(format!(
                    "the data directory belongs to node {stored}, not {w}"
                ))),
                _ => Ok(stored),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = wanted
                .map(str::to_owned)
                .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
            // Whole or not at all: written aside, synced, then renamed into place.
            let tmp = dir.join(format!("{FILE}.tmp"));
            let mut file = std::fs::File::create(&tmp).map_err(Error::io("create node id"))?;
            file.write_all(format!("{id}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(Error::io("write node id"))?;
            std::fs::rename(&tmp, &path).map_err(Error::io("store node id"))?;
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(Error::io("sync data directory"))?;
            Ok(id)
        }
        Err(e) => Err(Error::Io {
            op: "read node id",
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let made = load_or_create(dir.path(), None).unwrap();
        assert!(valid_node_id(&made));
        assert_eq!(load_or_create(dir.path(), None).unwrap(), made);
        assert_eq!(load_or_create(dir.path(), Some(&made)).unwrap(), made);
        assert!(matches!(
            load_or_create(dir.path(), Some("another")),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn a_chosen_id_is_taken_by_a_new_directory_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            load_or_create(dir.path(), Some("rack1-a")).unwrap(),
            "rack1-a"
        );
        assert_eq!(load_or_create(dir.path(), None).unwrap(), "rack1-a");
        for bad in ["", "a b", "x/y", &"n".repeat(65)] {
            let other = tempfile::tempdir().unwrap();
            assert!(load_or_create(other.path(), Some(bad)).is_err(), "{bad:?}");
        }
    }
}
