use proptest::prelude::*;
use redb::Database;

use super::*;
use crate::proto::{Data, Lww, ObjectMeta, VersionState};

fn version(ts: u64, id: u8, null: bool, kind: u8, tag: Option<u64>) -> Version {
    let state = match kind {
        0 => VersionState::DeleteMarker,
        1 => VersionState::Purged,
        _ => VersionState::Object(ObjectMeta {
            size: 1,
            md5: "0cc175b9c0f1b6a831c399e269772661".into(),
            etag: "0cc175b9c0f1b6a831c399e269772661".into(),
            // Kind 3: the body in a blob named after the stamp.
            data: if kind == 3 {
                Data::Blob {
                    id: format!("{ts:032x}"),
                }
            } else {
                Data::Inline {
                    bytes: b"a".to_vec(),
                }
            },
            headers: Default::default(),
            user_metadata: Default::default(),
            part_number: None,
            checksums: Default::default(),
            checksum_type: None,
            checksum_algorithm: None,
        }),
    };
    Version {
        stamp: Stamp {
            ts,
            id: format!("{id:02x}"),
        },
        null,
        state,
        tags: tag.map(|t| Lww {
            stamp: Stamp {
                ts: t,
                id: "t".into(),
            },
            value: [("k".to_owned(), t.to_string())].into(),
        }),
        acl: None,
        follows: None,
    }
}

/// A version of a small stamp space, so that copies of the same version meet often. The
/// content of a stamp is fixed by the stamp (content is immutable); tags and purges vary.
fn arb_version() -> impl Strategy<Value = Version> {
    (0u64..6, any::<bool>(), proptest::option::of(0u64..4)).prop_map(|(ts, purged, tag)| {
        let kind = match (purged, ts % 4) {
            (true, _) => 1,
            (false, 0) => 2,
            (false, 2) => 3,
            _ => 0,
        };
        version(ts, ts as u8, ts % 3 == 0, kind, tag)
    })
}

fn store() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::create(dir.path().join("v.redb")).expect("db");
    let txn = db.begin_write().unwrap();
    Tables::open(&txn).unwrap();
    txn.commit().unwrap();
    (dir, db)
}

fn merge_all(db: &Database, key: &str, batches: &[Vec<Version>]) {
    for batch in batches {
        let txn = db.begin_write().unwrap();
        {
            let mut tables = Tables::open(&txn).unwrap();
            let record = ObjectRecord {
                versions: batch.clone(),
            };
            merge(&mut tables, &head_key("b", key), &record).unwrap();
        }
        txn.commit().unwrap();
    }
}

fn read(db: &Database, key: &str) -> (ObjectRecord, ObjectRecord) {
    let txn = db.begin_read().unwrap();
    let tables = ReadTables::open(&txn).unwrap();
    let hk = head_key("b", key);
    let get = |select| tables.select(&hk, &select).unwrap().unwrap_or_default();
    (get(Select::All), get(Select::CURRENT))
}

/// The version S3 clients name `id`, as a read that adds it to the window finds it.
fn find_by_id(db: &Database, key: &str, id: &str) -> Option<Version> {
    let txn = db.begin_read().unwrap();
    let tables = ReadTables::open(&txn).unwrap();
    let select = Select::current_and(Some(id));
    let record = tables.select(&head_key("b", key), &select).unwrap()?;
    record.find_s3_version(id).cloned()
}

proptest! {
    // Each case opens a database: fewer cases than the default keep this under seconds.
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Stored versions are the whole-record merge of everything merged in, in any grouping.
    #[test]
    fn per_version_storage_is_the_whole_record_merge(
        batches in proptest::collection::vec(proptest::collection::vec(arb_version(), 0..4), 0..8)
    ) {
        let (_dir, db) = store();
        merge_all(&db, "k\u{0}x", &batches);
        let mut model = ObjectRecord::default();
        for batch in &batches {
            model.merge(&ObjectRecord { versions: batch.clone() });
        }
        let (all, window) = read(&db, "k\u{0}x");
        prop_assert_eq!(&all, &model);
        // The blob references are exactly those of the stored versions.
        let hk = head_key("b", "k\u{0}x");
        let expected: std::collections::BTreeSet<Vec<u8>> = model
            .versions
            .iter()
            .flat_map(|v| {
                let vk = version_key(&hk, &v.stamp);
                refs::blobs_of(v).into_iter().map(move |b| refs::entry(b, 1, &vk)).collect::<Vec<_>>()
            })
            .collect();
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(refs::REFS).unwrap();
        // Reference entries only (kind 1); kind 0 says when a blob's last one went.
        let stored: std::collections::BTreeSet<Vec<u8>> = table
            .iter()
            .unwrap()
            .map(|e| e.unwrap().0.value().to_vec())
            .filter(|k| k.iter().position(|&b| b == 0).is_some_and(|at| k[at + 1] != 0))
            .collect();
        prop_assert_eq!(stored, expected);
        // Every version is found by the id S3 clients name it by, and only those.
        for ts in 0u64..6 {
            let id = format!("{:02x}", ts);
            prop_assert_eq!(find_by_id(&db, "k\u{0}x", &id), model.find_s3_version(&id).cloned());
        }
        prop_assert_eq!(find_by_id(&db, "k\u{0}x", "null"), model.find_s3_version("null").cloned());
        // The window has the current version and everything above it, and the null one.
        prop_assert_eq!(window.current(), model.current());
        let current = model.current().map(|v| v.stamp.clone());
        for v in &model.versions {
            let needed = v.null || current.as_ref().is_none_or(|c| v.stamp >= *c);
            prop_assert_eq!(needed, window.versions.contains(v), "{:?}", v.stamp);
        }
    }
}

#[test]
fn keys_that_prefix_each_other_keep_their_versions_apart() {
    let (_dir, db) = store();
    for (n, key) in ["a", "a\u{0}", "a\u{0}b", "ab", "a/"].iter().enumerate() {
        merge_all(&db, key, &[vec![version(n as u64 + 10, 1, false, 2, None)]]);
    }
    for (n, key) in ["a", "a\u{0}", "a\u{0}b", "ab", "a/"].iter().enumerate() {
        let (all, _) = read(&db, key);
        assert_eq!(all.versions.len(), 1, "{key:?}");
        assert_eq!(all.versions[0].stamp.ts, n as u64 + 10, "{key:?}");
    }
}

#[test]
fn the_window_of_a_key_with_many_versions_reads_only_its_top() {
    let (_dir, db) = store();
    let batch: Vec<Version> = (1..=2000)
        .map(|ts| version(ts, 1, ts == 1, 2, None))
        .collect();
    merge_all(&db, "many", &[batch]);
    let (all, window) = read(&db, "many");
    assert_eq!(all.versions.len(), 2000);
    // The newest version and the null one (the first).
    let stamps: Vec<u64> = window.versions.iter().map(|v| v.stamp.ts).collect();
    assert_eq!(stamps, [1, 2000]);
}

#[test]
fn named_stamps_bring_their_versions_and_since_every_newer_one() {
    let (_dir, db) = store();
    let batch: Vec<Version> = [10, 20, 30, 40]
        .into_iter()
        .map(|ts| version(ts, ts as u8, false, 2, None))
        .collect();
    merge_all(&db, "k", &[batch]);
    let txn = db.begin_read().unwrap();
    let tables = ReadTables::open(&txn).unwrap();
    let stamp = |ts: u64| Stamp {
        ts,
        id: format!("{:02x}", ts as u8),
    };
    let select = |stamps: Vec<Stamp>, since: Option<u64>| Select::Current {
        with: None,
        stamps,
        since: since.map(stamp),
    };
    let got = |select: Select| -> Vec<u64> {
        let record = tables
            .select(&head_key("b", "k"), &select)
            .unwrap()
            .unwrap();
        record.versions.iter().map(|v| v.stamp.ts).collect()
    };
    // The window alone is the newest version.
    assert_eq!(got(Select::CURRENT), [40]);
    // A stored stamp brings its version; a missing one nothing.
    assert_eq!(got(select(vec![stamp(20)], None)), [20, 40]);
    assert_eq!(got(select(vec![stamp(15)], None)), [40]);
    assert_eq!(got(select(vec![stamp(10), stamp(35)], None)), [10, 40]);
    // `since` brings every version from there up, whether or not one is stamped so.
    assert_eq!(got(select(vec![], Some(20))), [20, 30, 40]);
    assert_eq!(got(select(vec![], Some(15))), [20, 30, 40]);
    assert_eq!(got(select(vec![stamp(10)], Some(35))), [10, 40]);
    assert_eq!(got(select(vec![], Some(50))), [40]);
}
