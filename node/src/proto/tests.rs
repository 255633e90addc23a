//! Merge laws of the records (commutative, associative, idempotent, order-independent),
//! checked by property tests, and the version rules the gateway relies on.
//!
//! Generated histories respect the contract's invariant: versions with equal stamps are
//! equal, except that a version may also appear as its purge tombstone (same stamp, same
//! `null` flag, state `Purged`).

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn meta(tag: u8) -> ObjectMeta {
    ObjectMeta {
        size: u64::from(tag),
        md5: format!("{tag:032x}"),
        etag: format!("{tag:032x}"),
        data: match tag % 3 {
            0 => Data::Inline {
                bytes: vec![tag; usize::from(tag % 5)],
            },
            1 => Data::Blob {
                id: format!("{tag:032x}"),
            },
            _ => Data::Parts {
                parts: vec![PartRef {
                    number: 1,
                    blob: format!("{tag:032x}"),
                    size: u64::from(tag),
                    md5: format!("{tag:032x}"),
                    checksums: BTreeMap::new(),
                }],
            },
        },
        headers: BTreeMap::from([("content-type".to_string(), "text/plain".to_string())]),
        user_metadata: BTreeMap::new(),
        part_number: None,
        checksums: BTreeMap::new(),
        checksum_type: None,
        checksum_algorithm: None,
    }
}

fn stamp(ts: u64, id: &str) -> Stamp {
    Stamp {
        ts,
        id: id.to_string(),
    }
}

fn object(ts: u64, id: &str, null: bool) -> Version {
    Version {
        stamp: stamp(ts, id),
        null,
        state: VersionState::Object(meta(ts as u8)),
        tags: None,
        acl: None,
        follows: None,
    }
}

fn purged(v: &Version) -> Version {
    Version {
        state: VersionState::Purged,
        tags: None,
        ..v.clone()
    }
}

fn merged(parts: &[&ObjectRecord]) -> ObjectRecord {
    let mut out = ObjectRecord::default();
    for p in parts {
        out.merge(p);
    }
    out
}

/// A canonical version for every distinct stamp: its content is a function of the stamp.
fn canonical(ts: u64, id: u8, null: bool, kind: u8) -> Version {
    let stamp = stamp(ts, &format!("id{id}"));
    let state = match kind {
        0 => VersionState::DeleteMarker,
        1 => VersionState::Purged,
        _ => VersionState::Object(meta(ts as u8 ^ id)),
    };
    Version {
        stamp,
        null,
        state,
        tags: None,
        acl: None,
        follows: None,
    }
}

/// A tag set register whose value is a function of its stamp, as for versions.
fn tag_lww(ts: u64, id: u8) -> Lww<Tags> {
    Lww {
        stamp: stamp(ts, &format!("t{id}")),
        value: Tags::from([("k".to_string(), format!("{ts}-{id}"))]),
    }
}

fn acl_lww(ts: u64, id: u8) -> Lww<CannedAcl> {
    Lww {
        stamp: stamp(ts, &format!("a{id}")),
        value: if id == 0 {
            CannedAcl::PublicRead
        } else {
            CannedAcl::Private
        },
    }
}

/// Single-version writes drawn from a small pool of stamps, so that histories overlap; each
/// write is the canonical version, possibly carrying a tag set or an ACL (an update of
/// either), or its purge tombstone.
fn writes() -> impl Strategy<Value = Vec<ObjectRecord>> {
    let pool = prop::collection::btree_map((0u64..6, 0u8..3), (any::<bool>(), 0u8..4), 1..10);
    pool.prop_flat_map(|pool| {
        let pool: Vec<Version> = pool
            .into_iter()
            .map(|((ts, id), (null, kind))| canonical(ts, id, null, kind))
            .collect();
        let n = pool.len();
        let tags = prop::option::of((0u64..4, 0u8..2));
        let acl = prop::option::of((0u64..4, 0u8..2));
        prop::collection::vec((0..n, prop::bool::weighted(0.2), tags, acl), 0..12).prop_map(
            move |picks| {
                picks
                    .into_iter()
                    .map(|(i, purge, tags, acl)| {
                        let v = &pool[i];
                        ObjectRecord::single(if purge {
                            purged(v)
                        } else {
                            Version {
                                tags: tags.map(|(ts, id)| tag_lww(ts, id)),
                                acl: acl.map(|(ts, id)| acl_lww(ts, id)),
                                ..v.clone()
                            }
                        })
                    })
                    .collect()
            },
        )
    })
}

/// Three records, each the merge of some of the writes.
fn three_records() -> impl Strategy<Value = (ObjectRecord, ObjectRecord, ObjectRecord)> {
    writes().prop_flat_map(|ws| {
        let n = ws.len();
        prop::collection::vec(0..3usize, n).prop_map(move |owner| {
            let mut parts = [vec![], vec![], vec![]];
            for (w, o) in ws.iter().zip(owner) {
                parts[o].push(w);
            }
            let [a, b, c] = parts.map(|p| merged(&p));
            (a, b, c)
        })
    })
}

fn bucket_records() -> impl Strategy<Value = Vec<BucketRecord>> {
    // Value fields are functions of the stamp, as for versions.
    let config = || prop::option::of((0u64..5, 0u8..2));
    let grants = prop::collection::vec((0u8..2, 0u64..5, 0u8..2), 0..3);
    let write = (0u64..5, 0u8..2, config(), config(), config(), grants).prop_map(
        |(ts, id, versioning, tags, cors, grants)| BucketRecord {
            name: "b".into(),
            exists: Lww {
                stamp: stamp(ts, &format!("g{id}")),
                value: (ts + u64::from(id)) % 2 == 0,
            },
            versioning: versioning.map(|(ts, id)| Lww {
                stamp: stamp(ts, &format!("g{id}")),
                value: if (ts + u64::from(id)) % 2 == 0 {
                    Versioning::Enabled
                } else {
                    Versioning::Suspended
                },
            }),
            tags: tags.map(|(ts, id)| tag_lww(ts, id)),
            cors: cors.map(|(ts, id)| Lww {
                stamp: stamp(ts, &format!("c{id}")),
                value: vec![CorsRule {
                    allowed_origins: vec![format!("https://{ts}.{id}.test")],
                    allowed_methods: vec!["GET".into()],
                    ..CorsRule::default()
                }],
            }),
            grants: grants
                .into_iter()
                .map(|(key, ts, id)| {
                    let bits = ts + u64::from(id);
                    let perms = crate::proto::access::Perms {
                        read: bits % 2 == 0,
                        write: bits % 3 == 0,
                        owner: bits % 4 == 0,
                    };
                    let lww = Lww {
                        stamp: stamp(ts, &format!("p{id}")),
                        value: perms,
                    };
                    (format!("key{key}"), lww)
                })
                .collect(),
            policy: None,
            public_read: None,
            public_access_block: None,
        },
    );
    prop::collection::vec(write, 1..8)
}

fn merge_buckets(records: &[BucketRecord]) -> BucketRecord {
    let mut out = records[0].clone();
    for r in &records[1..] {
        out.merge(r);
    }
    out
}

proptest! {
    #[test]
    fn object_merge_is_commutative((a, b, _) in three_records()) {
        prop_assert_eq!(merged(&[&a, &b]), merged(&[&b, &a]));
    }

    #[test]
    fn object_merge_is_associative((a, b, c) in three_records()) {
        let left = merged(&[&merged(&[&a, &b]), &c]);
        let right = merged(&[&a, &merged(&[&b, &c])]);
        prop_assert_eq!(left, right);
    }

    #[test]
    fn object_merge_is_idempotent((a, b, _) in three_records()) {
        prop_assert_eq!(merged(&[&a, &a]), a.clone());
        let ab = merged(&[&a, &b]);
        prop_assert_eq!(merged(&[&ab, &b]), ab.clone());
        // Merging into itself in place, as a node does on a re-sent record.
        let mut again = ab.clone();
        again.merge(&ab);
        prop_assert_eq!(again, ab);
    }

    #[test]
    fn object_merge_ignores_delivery_order(
        (ws, shuffled) in writes().prop_flat_map(|ws| (Just(ws.clone()), Just(ws).prop_shuffle()))
    ) {
        let in_order = merged(&ws.iter().collect::<Vec<_>>());
        let reordered = merged(&shuffled.iter().collect::<Vec<_>>());
        prop_assert_eq!(&in_order, &reordered);
        // Versions stay sorted by stamp and unique.
        prop_assert!(in_order.versions.windows(2).all(|w| w[0].stamp < w[1].stamp));
        // At most one null version survives, and no older null than the newest one.
        prop_assert!(in_order.versions.iter().filter(|v| v.null).count() <= 1);
    }

    #[test]
    fn object_record_round_trips_through_json((a, _, _) in three_records()) {
        let text = serde_json::to_string(&a).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: ObjectRecord =
            serde_json::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, a);
    }

    #[test]
    fn bucket_merge_laws(
        (records, shuffled) in bucket_records()
            .prop_flat_map(|r| (Just(r.clone()), Just(r).prop_shuffle()))
    ) {
        let all = merge_buckets(&records);
        prop_assert_eq!(&all, &merge_buckets(&shuffled));
        let mut twice = all.clone();
        twice.merge(&all);
        prop_assert_eq!(&twice, &all);
        if records.len() >= 3 {
            let (a, b, c) = (&records[0], &records[1], &records[2]);
            let left = merge_buckets(&[merge_buckets(&[a.clone(), b.clone()]), c.clone()]);
            let right = merge_buckets(&[a.clone(), merge_buckets(&[b.clone(), c.clone()])]);
            prop_assert_eq!(left, right);
        }
    }
}

#[test]
fn newest_tag_set_wins_whatever_the_order() {
    let v = object(3, "a", false);
    let tagged = |ts, id| Version {
        tags: Some(tag_lww(ts, id)),
        ..v.clone()
    };
    let writes = [
        ObjectRecord::single(v.clone()),
        ObjectRecord::single(tagged(5, 0)),
        ObjectRecord::single(tagged(4, 1)),
    ];
    let forward = merged(&writes.iter().collect::<Vec<_>>());
    let backward = merged(&writes.iter().rev().collect::<Vec<_>>());
    assert_eq!(forward, backward);
    assert_eq!(forward.versions.len(), 1);
    assert_eq!(forward.versions[0].tags, Some(tag_lww(5, 0)));
    assert_eq!(forward.versions[0].changed_at(), 5);
}

#[test]
fn a_tag_update_brings_a_missed_version_along_and_a_purge_drops_its_tags() {
    let v = Version {
        tags: Some(tag_lww(9, 0)),
        ..object(3, "a", false)
    };
    // A replica that missed the write learns the whole version from the tag update.
    let healed = merged(&[&ObjectRecord::default(), &ObjectRecord::single(v.clone())]);
    assert_eq!(healed.versions, vec![v.clone()]);
    let gone = merged(&[&healed, &ObjectRecord::single(purged(&v))]);
    assert!(gone.versions[0].is_purged());
    assert_eq!(gone.versions[0].tags, None);
    // A late tag update cannot bring a purged version back.
    assert_eq!(merged(&[&gone, &ObjectRecord::single(v)]), gone);
}

#[test]
fn bucket_config_from_an_earlier_life_is_not_live() {
    let mut b = BucketRecord::new("b".into(), stamp(1, "g"), true);
    b.tags = Some(tag_lww(2, 0));
    assert!(b.live(&b.tags).is_some());
    // Deleted, then created again: the old tags belong to the bucket that was deleted.
    b.merge(&BucketRecord::new("b".into(), stamp(3, "g"), false));
    assert!(b.live(&b.tags).is_none());
    b.merge(&BucketRecord::new("b".into(), stamp(4, "g"), true));
    assert!(b.live(&b.tags).is_none());
    b.tags = Some(tag_lww(5, 0));
    assert_eq!(b.live(&b.tags), Some(&tag_lww(5, 0).value));
}

#[test]
fn records_without_tags_or_bucket_config_keep_their_old_encoding() {
    // Written before tags existed: still readable, and an untagged version encodes the same.
    let old = r#"{"versions":[{"stamp":{"ts":1,"id":"a"},"null":false,"state":"delete_marker"}]}"#;
    let record: ObjectRecord = serde_json::from_str(old).expect("old object record");
    assert_eq!(record.versions[0].tags, None);
    assert_eq!(serde_json::to_string(&record).expect("encode"), old);
    let old = r#"{"name":"b","exists":{"stamp":{"ts":1,"id":"g"},"value":true},"versioning":null}"#;
    let bucket: BucketRecord = serde_json::from_str(old).expect("old bucket record");
    assert_eq!((bucket.tags, bucket.cors), (None, None));
}

#[test]
fn current_skips_purged_versions() {
    let old = object(1, "a", false);
    let new = object(2, "b", false);
    let record = merged(&[
        &ObjectRecord::single(old.clone()),
        &ObjectRecord::single(purged(&new)),
    ]);
    assert_eq!(record.current(), Some(&old));
    assert_eq!(record.newest_stamp(), Some(&new.stamp));
}

#[test]
fn purge_wins_whatever_the_order() {
    let v = object(3, "a", false);
    let one = merged(&[
        &ObjectRecord::single(v.clone()),
        &ObjectRecord::single(purged(&v)),
    ]);
    let two = merged(&[
        &ObjectRecord::single(purged(&v)),
        &ObjectRecord::single(v.clone()),
    ]);
    assert_eq!(one, two);
    assert!(one.versions[0].is_purged());
    assert_eq!(one.current(), None);
}

#[test]
fn newer_null_version_replaces_older_null_only() {
    let old_null = object(1, "a", true);
    let versioned = object(2, "b", false);
    let new_null = object(3, "c", true);
    let record = merged(&[
        &ObjectRecord::single(new_null.clone()),
        &ObjectRecord::single(versioned.clone()),
        &ObjectRecord::single(old_null),
    ]);
    assert_eq!(record.versions, vec![versioned, new_null]);
}

#[test]
fn delete_marker_hides_the_object() {
    let v = object(1, "a", false);
    let marker = Version {
        stamp: stamp(2, "b"),
        null: false,
        state: VersionState::DeleteMarker,
        tags: None,
        acl: None,
        follows: None,
    };
    let record = merged(&[
        &ObjectRecord::single(v),
        &ObjectRecord::single(marker.clone()),
    ]);
    assert_eq!(record.current(), Some(&marker));
    assert!(record.current_object().is_none());
}

#[test]
fn current_object_returns_the_newest_object() {
    let record = merged(&[
        &ObjectRecord::single(object(1, "a", false)),
        &ObjectRecord::single(object(2, "b", false)),
    ]);
    let (version, meta) = record.current_object().expect("an object is current");
    assert_eq!(version.stamp, stamp(2, "b"));
    assert_eq!(meta, &super::tests::meta(2));
}

#[test]
fn finds_versions_by_s3_id_including_null() {
    let null = object(1, "internal-id", true);
    let other = object(2, "v2", false);
    let record = merged(&[
        &ObjectRecord::single(null.clone()),
        &ObjectRecord::single(other.clone()),
    ]);
    assert_eq!(record.find_s3_version("null"), Some(&null));
    assert_eq!(record.find_s3_version("v2"), Some(&other));
    // A null version is only reachable as "null", not by its internal stamp id.
    assert_eq!(record.find_s3_version("internal-id"), None);
    assert_eq!(null.s3_version_id(), "null");
}

#[test]
fn segments_round_trip_and_hide_path_structure() {
    for s in ["a/b", "..", "é &+?%#", "key with spaces", ""] {
        let encoded = encode_segment(s);
        assert!(!encoded.contains('/') && !encoded.contains('.'));
        assert_eq!(decode_segment(&encoded).as_deref(), Some(s));
    }
    assert_eq!(decode_segment("%FF"), None);
}

#[test]
fn blob_ids_are_32_lowercase_hex() {
    assert!(is_valid_blob_id("0123456789abcdef0123456789abcdef"));
    assert!(!is_valid_blob_id("0123456789ABCDEF0123456789abcdef"));
    assert!(!is_valid_blob_id("../../../../etc/passwd0123456789"));
    assert!(!is_valid_blob_id(""));
}

proptest! {
    #[test]
    fn summary_of_merge_is_merge_of_summaries((a, b, c) in three_records()) {
        let mut summaries = RecordSummary::default();
        for r in [&a, &b, &c] {
            summaries.merge(&RecordSummary::from(r));
        }
        let whole = merged(&[&a, &b, &c]);
        prop_assert_eq!(&summaries, &RecordSummary::from(&whole));
        prop_assert_eq!(
            summaries.current().map(|v| v.stamp.clone()),
            whole.current().map(|v| v.stamp.clone())
        );
        prop_assert_eq!(
            summaries.current_object().map(|v| (v.etag.clone(), v.size)),
            whole.current_object().map(|(_, m)| (m.etag.clone(), m.size))
        );
    }

    #[test]
    fn summaries_decode_from_full_records((a, _, _) in three_records()) {
        // What a node does with stored JSON, and a gateway with an old node's full page.
        let page = ListPage {
            entries: vec![ListEntry {
                key: "k".into(),
                record: a.clone(),
                missing_blobs: vec!["0".repeat(32)],
                corrupt_blobs: Vec::new(),
                partial: false,
            }],
            truncated: true,
        };
        let text = serde_json::to_vec(&page).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: SummaryPage =
            serde_json::from_slice(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back.entries.len(), 1);
        prop_assert!(back.truncated);
        prop_assert_eq!(&back.entries[0].record, &RecordSummary::from(&a));
        // And a summary page round-trips through its own compact JSON.
        let compact = serde_json::to_vec(&back).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let again: SummaryPage =
            serde_json::from_slice(&compact).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(again, back);
    }
}

proptest! {
    #[test]
    fn summary_merge_shortcuts_agree_with_the_join((a, b, _) in three_records()) {
        // Unnormalised input too: a record's versions concatenated in any order.
        let mut raw = RecordSummary::from(&a);
        raw.versions.extend(RecordSummary::from(&b).versions);
        let expected = merge_versions(&raw.versions, &[]);
        let mut from_empty = RecordSummary::default();
        from_empty.merge(&raw);
        prop_assert_eq!(&from_empty.versions, &expected);
        let mut twice = from_empty.clone();
        twice.merge(&from_empty);
        prop_assert_eq!(&twice.versions, &expected);
    }
}
