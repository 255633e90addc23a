//! Record store behaviour: merge on write, listing bounds, bucket records, group commit
//! under concurrency, and durability across a clean restart.

use std::collections::BTreeMap;

use super::*;
use crate::proto::paxos::{Ballot, Proposal};
use crate::proto::{
    Data, Lww, ObjectMeta, RecordSummary, Stamp, Version, VersionState, Versioning,
};
use crate::proto::{ListPage, MAX_LIST_LIMIT, SummaryEntry};

fn open(dir: &tempfile::TempDir, fsync: bool) -> (RecordStore, RecordWriter) {
    let commits = IntCounter::new("commits", "test").expect("counter");
    RecordStore::open(
        &dir.path().join("records.redb"),
        fsync,
        commits,
        test_disk(dir),
    )
    .expect("open record store")
}

/// The disk of `dir`, without a reserve.
fn test_disk(dir: &tempfile::TempDir) -> std::sync::Arc<crate::disk::Disk> {
    let free = prometheus::IntGauge::new("free", "test").expect("gauge");
    std::sync::Arc::new(crate::disk::Disk::new(dir.path().to_path_buf(), 0, free))
}

fn version(ts: u64, id: &str) -> Version {
    Version {
        stamp: Stamp {
            ts,
            id: id.to_string(),
        },
        null: false,
        state: VersionState::Object(ObjectMeta {
            size: 1,
            md5: "md5".into(),
            etag: "md5".into(),
            data: Data::Inline {
                bytes: vec![ts as u8],
            },
            headers: BTreeMap::new(),
            user_metadata: BTreeMap::new(),
            part_number: None,
            checksums: BTreeMap::new(),
            checksum_type: None,
            checksum_algorithm: None,
        }),
        tags: None,
        acl: None,
        follows: None,
    }
}

fn record(ts: u64) -> ObjectRecord {
    ObjectRecord::single(version(ts, &format!("v{ts}")))
}

fn bucket(name: &str, ts: u64, exists: bool) -> BucketRecord {
    BucketRecord {
        name: name.to_string(),
        exists: Lww {
            stamp: Stamp { ts, id: "g".into() },
            value: exists,
        },
        versioning: None,
        tags: None,
        cors: None,
        grants: Default::default(),
        policy: None,
        public_read: None,
        public_access_block: None,
    }
}

fn keys(page: &ListPage) -> Vec<&str> {
    page.entries.iter().map(|e| e.key.as_str()).collect()
}

#[tokio::test]
async fn merges_versions_and_reports_absent_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _writer) = open(&dir, true);
    assert_eq!(
        store.get_object("b", "k", Select::All).await.expect("get"),
        None
    );
    store
        .merge_object("b", "k", record(2))
        .await
        .expect("merge");
    store
        .merge_object("b", "k", record(1))
        .await
        .expect("merge");
    store
        .merge_object("b", "k", record(2))
        .await
        .expect("re-send");
    let got = store
        .get_object("b", "k", Select::All)
        .await
        .expect("get")
        .expect("present");
    let stamps: Vec<u64> = got.versions.iter().map(|v| v.stamp.ts).collect();
    assert_eq!(stamps, [1, 2]);
    // An empty record creates nothing.
    store
        .merge_object("b", "empty", ObjectRecord::default())
        .await
        .expect("merge empty");
    assert_eq!(
        store
            .get_object("b", "empty", Select::All)
            .await
            .expect("get"),
        None
    );
}

#[tokio::test]
async fn list_honours_prefix_after_limit_and_bucket_bounds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _writer) = open(&dir, false);
    for key in ["a/1", "a/2", "a/3", "b", "ba", "c"] {
        store
            .merge_object("a", key, record(1))
            .await
            .expect("merge");
    }
    // Bucket "ab" sorts right after "a\0..." keys in byte order: it must never leak in.
    for key in ["a/0", "x"] {
        store
            .merge_object("ab", key, record(1))
            .await
            .expect("merge");
    }
    let all = store.list("a", "", "", 100, false).await.expect("list");
    assert_eq!(keys(&all), ["a/1", "a/2", "a/3", "b", "ba", "c"]);
    assert!(!all.truncated);

    let prefixed = store.list("a", "a/", "", 100, false).await.expect("list");
    assert_eq!(keys(&prefixed), ["a/1", "a/2", "a/3"]);
    let after = store
        .list("a", "a/", "a/1", 100, false)
        .await
        .expect("list");
    assert_eq!(keys(&after), ["a/2", "a/3"]);
    // `after` below the prefix: the prefix is the bound.
    let low = store.list("a", "b", "a/9", 100, false).await.expect("list");
    assert_eq!(keys(&low), ["b", "ba"]);
    // `after` beyond every key with the prefix.
    let high = store
        .list("a", "a/", "a/9", 100, false)
        .await
        .expect("list");
    assert!(high.entries.is_empty() && !high.truncated);

    let limited = store.list("a", "", "", 2, false).await.expect("list");
    assert_eq!(keys(&limited), ["a/1", "a/2"]);
    assert!(limited.truncated);
    let exact = store.list("a", "a/", "", 3, false).await.expect("list");
    assert!(!exact.truncated, "nothing after a/3 matches the prefix");
    let zero = store.list("a", "", "", 0, false).await.expect("list");
    assert!(zero.entries.is_empty() && zero.truncated);

    let other = store.list("ab", "", "", 100, false).await.expect("list");
    assert_eq!(keys(&other), ["a/0", "x"]);
    let none = store.list("zz", "", "", 100, false).await.expect("list");
    assert!(none.entries.is_empty() && !none.truncated);
}

#[tokio::test]
async fn pages_through_a_bucket_with_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _writer) = open(&dir, false);
    let expected: Vec<String> = (0..25).map(|i| format!("k{i:03}")).collect();
    for key in &expected {
        store
            .merge_object("b", key, record(1))
            .await
            .expect("merge");
    }
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = store.list("b", "k", &after, 7, false).await.expect("list");
        seen.extend(page.entries.iter().map(|e| e.key.clone()));
        if !page.truncated {
            break;
        }
        after = seen.last().cloned().expect("a truncated page is not empty");
    }
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn list_caps_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _writer) = open(&dir, false);
    let writes = (0..MAX_LIST_LIMIT + 5).map(|i| {
        let store = store.clone();
        async move { store.merge_object("b", &format!("{i:05}"), record(1)).await }
    });
    for result in futures::future::join_all(writes).await {
        result.expect("merge");
    }
    let page = store
        .list("b", "", "", usize::MAX, false)
        .await
        .expect("list");
    assert_eq!(page.entries.len(), MAX_LIST_LIMIT);
    assert!(page.truncated);
}

#[tokio::test]
async fn summaries_list_the_same_page_as_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _writer) = open(&dir, false);
    for (i, key) in ["a", "b/1", "b/2", "b/3", "c"].iter().enumerate() {
        let mut rec = record(i as u64 + 1);
        rec.merge(&ObjectRecord::single(Version {
            state: VersionState::DeleteMarker,
            ..version(10, "marker")
        }));
        store.merge_object("bk", key, rec).await.expect("merge");
    }
    for (prefix, after, limit) in [
        ("", "", 1000),
        ("b/", "b/1", 1),
        ("b/", "", 2),
        ("z", "", 5),
    ] {
        let full = store
            .list("bk", prefix, after, limit, false)
            .await
            .expect("list");
        let summaries = store
            .list_summaries("bk", prefix, after, limit, false)
            .await
            .expect("list summaries");
        assert_eq!(
            summaries.truncated, full.truncated,
            "{prefix} {after} {limit}"
        );
        let expected: Vec<SummaryEntry> = full
            .entries
            .iter()
            .map(|e| SummaryEntry {
                key: e.key.clone(),
                record: RecordSummary::from(&e.record),
            })
            .collect();
        assert_eq!(summaries.entries, expected, "{prefix} {after} {limit}");
    }
}

#[tokio::test]
async fn bucket_records_merge_last_writer_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _writer) = open(&dir, true);
    assert_eq!(store.get_bucket("photos").await.expect("get"), None);
    store
        .merge_bucket(bucket("photos", 5, true))
        .await
        .expect("merge");
    store
        .merge_bucket(bucket("photos", 3, false))
        .await
        .expect("older delete");
    let mut versioned = bucket("photos", 1, true);
    versioned.versioning = Some(Lww {
        stamp: Stamp {
            ts: 7,
            id: "g".into(),
        },
        value: Versioning::Enabled,
    });
    store.merge_bucket(versioned).await.expect("merge");
    store
        .merge_bucket(bucket("docs", 1, true))
        .await
        .expect("merge");

    let photos = store
        .get_bucket("photos")
        .await
        .expect("get")
        .expect("present");
    assert!(photos.exists.value);
    assert_eq!(photos.exists.stamp.ts, 5);
    assert_eq!(
        photos.versioning.map(|v| v.value),
        Some(Versioning::Enabled)
    );
    let names: Vec<String> = store
        .list_buckets()
        .await
        .expect("list")
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, ["docs", "photos"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_are_group_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _writer) = open(&dir, true);
    let writes = (0..200u64).map(|i| {
        let store = store.clone();
        // Half the writes share ten keys, so merges within one batch must compose.
        let key = if i % 2 == 0 {
            format!("own-{i}")
        } else {
            format!("shared-{}", i % 10)
        };
        async move { store.merge_object("b", &key, record(i)).await }
    });
    for result in futures::future::join_all(writes).await {
        result.expect("merge");
    }
    let page = store.list("b", "", "", 1000, false).await.expect("list");
    assert_eq!(page.entries.len(), 100 + 5);
    let versions: usize = page.entries.iter().map(|e| e.record.versions.len()).sum();
    assert_eq!(versions, 200);
    let batches = store.batches();
    assert!(batches < 100, "{batches} transactions for 200 writes");
}

#[tokio::test]
async fn records_survive_a_clean_restart_with_and_without_fsync() {
    for fsync in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, writer) = open(&dir, fsync);
        store
            .merge_object("b", "k", record(1))
            .await
            .expect("merge");
        store
            .merge_bucket(bucket("b", 1, true))
            .await
            .expect("merge");
        drop(store);
        writer.join();
        let (store, _writer) = open(&dir, fsync);
        assert!(
            store
                .get_object("b", "k", Select::All)
                .await
                .expect("get")
                .is_some()
        );
        assert!(store.get_bucket("b").await.expect("get").is_some());
    }
}

#[tokio::test]
async fn refuses_names_that_would_break_key_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _writer) = open(&dir, false);
    for (b, k) in [("a\0b", "k"), ("", "k"), ("b", "")] {
        assert!(matches!(
            store.merge_object(b, k, record(1)).await,
            Err(Error::BadRequest(_))
        ));
    }
    assert!(matches!(
        store.list("a\0", "", "", 1, false).await,
        Err(Error::BadRequest(_))
    ));
    // Keys may hold any character, NUL included: only the bucket delimits.
    store
        .merge_object("b", "k\0x", record(1))
        .await
        .expect("merge");
    assert!(
        store
            .get_object("b", "k\0x", Select::All)
            .await
            .expect("get")
            .is_some()
    );
}

fn hint(target: &str, bucket: &str, key: &str, since: u64) -> Hint {
    Hint {
        target: target.into(),
        bucket: bucket.into(),
        key: key.into(),
        since,
    }
}

fn hint_ids(hints: &[Hint]) -> Vec<(&str, &str, &str, u64)> {
    hints
        .iter()
        .map(|h| {
            (
                h.target.as_str(),
                h.bucket.as_str(),
                h.key.as_str(),
                h.since,
            )
        })
        .collect()
}

#[tokio::test]
async fn hints_keep_the_latest_since_and_delete_only_what_was_processed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, writer) = open(&dir, true);
    store
        .raise_hints(vec![
            hint("http://n2", "b", "k", 5),
            hint("http://n1", "b", "k", 3),
            hint("http://n1", "a", "z", 1),
            // Older than the one just raised in the same batch: ignored.
            hint("http://n1", "b", "k", 2),
        ])
        .await
        .expect("raise");
    let listed = store.hints(1000).await.expect("hints");
    assert_eq!(
        hint_ids(&listed),
        [
            ("http://n1", "a", "z", 1),
            ("http://n1", "b", "k", 3),
            ("http://n2", "b", "k", 5)
        ]
    );
    assert_eq!(store.hints(2).await.expect("hints").len(), 2);
    assert!(store.hints(0).await.expect("hints").is_empty());

    // The repairer processed everything it read; meanwhile (n1, b, k) was raised again.
    store
        .raise_hints(vec![hint("http://n1", "b", "k", 7)])
        .await
        .expect("raise again");
    let mut processed = listed.clone();
    processed.push(hint("http://absent", "b", "k", 1));
    store.clear_hints(processed).await.expect("clear");
    assert_eq!(
        hint_ids(&store.hints(1000).await.expect("hints")),
        [("http://n1", "b", "k", 7)]
    );
    // A delete naming a later `since` removes it; survives a restart in between.
    drop(store);
    writer.join();
    let (store, _writer) = open(&dir, true);
    assert_eq!(store.hints(1000).await.expect("hints").len(), 1);
    store
        .clear_hints(vec![hint("http://n1", "b", "k", 9)])
        .await
        .expect("clear");
    assert!(store.hints(1000).await.expect("hints").is_empty());
}

#[tokio::test]
async fn refuses_a_hint_batch_with_a_malformed_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _writer) = open(&dir, false);
    for bad in [
        hint("", "b", "k", 1),
        hint("n\0x", "b", "k", 1),
        hint("n", "", "k", 1),
        hint("n", "b\0", "k", 1),
    ] {
        let batch = vec![hint("n", "b", "fine", 1), bad.clone()];
        assert!(
            matches!(store.raise_hints(batch).await, Err(Error::BadRequest(_))),
            "{bad:?}"
        );
        assert!(matches!(
            store.clear_hints(vec![bad]).await,
            Err(Error::BadRequest(_))
        ));
    }
    assert!(store.hints(1000).await.expect("hints").is_empty());
    // Keys, like object keys, may hold any character.
    store
        .raise_hints(vec![hint("n", "b", "k\0/x", 1)])
        .await
        .expect("raise");
    assert_eq!(store.hints(10).await.expect("hints")[0].key, "k\0/x");
    // An empty key names the bucket record.
    store
        .raise_hints(vec![hint("n", "b", "", 1)])
        .await
        .expect("raise a bucket hint");
    let keys: Vec<String> = store
        .hints(10)
        .await
        .expect("hints")
        .into_iter()
        .map(|h| h.key)
        .collect();
    assert_eq!(keys, ["", "k\0/x"]);
}

#[tokio::test]
async fn commits_are_counted_once_per_changing_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let commits = IntCounter::new("commits", "test").expect("counter");
    let (store, _writer) = RecordStore::open(
        &dir.path().join("records.redb"),
        false,
        commits.clone(),
        test_disk(&dir),
    )
    .expect("open");
    store
        .merge_object("b", "k", record(1))
        .await
        .expect("merge");
    // Nothing new: no commit.
    store
        .merge_object("b", "k", record(1))
        .await
        .expect("merge");
    store
        .raise_hints(vec![hint("n", "b", "k", 1)])
        .await
        .expect("raise");
    store
        .raise_hints(vec![hint("n", "b", "k", 1)])
        .await
        .expect("raise");
    store.clear_hints(Vec::new()).await.expect("clear nothing");
    assert_eq!(commits.get(), 2);
}

fn ballot(ts: u64) -> Ballot {
    Stamp {
        ts,
        id: format!("g{ts}"),
    }
}

fn proposal(ts: u64, value: ObjectRecord) -> Proposal {
    Proposal {
        ballot: ballot(ts),
        value,
    }
}

#[tokio::test]
async fn paxos_promises_survive_a_restart_and_refuse_lower_ballots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, writer) = open(&dir, true);
    store
        .merge_object("b", "k", record(1))
        .await
        .expect("merge");
    let p = store
        .paxos_prepare("b", "k", ballot(10), Select::All)
        .await
        .expect("prepare");
    assert!(p.promised);
    assert_eq!(p.record, Some(record(1)), "a promise carries the record");
    assert_eq!(p.accepted, None);
    drop(store);
    writer.join();

    let (store, _writer) = open(&dir, true);
    let low = store
        .paxos_prepare("b", "k", ballot(5), Select::All)
        .await
        .expect("prepare");
    assert!(
        !low.promised,
        "the promise of ballot 10 was kept across the restart"
    );
    assert_eq!(low.highest, ballot(10));
    assert_eq!(low.record, None, "a refusal reveals nothing");
    let refused = store
        .paxos_accept("b", "k", proposal(5, record(2)))
        .await
        .expect("accept");
    assert!(!refused.accepted);
    assert_eq!(refused.highest, ballot(10));
    // The same ballot again (a re-sent prepare) is promised again.
    assert!(
        store
            .paxos_prepare("b", "k", ballot(10), Select::All)
            .await
            .expect("prepare")
            .promised
    );
}

#[tokio::test]
async fn paxos_accepted_value_is_reported_until_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _writer) = open(&dir, true);
    let mut value = record(1);
    value.merge(&record(2));
    assert!(
        store
            .paxos_prepare("b", "k", ballot(10), Select::All)
            .await
            .expect("prepare")
            .promised
    );
    let a = store
        .paxos_accept("b", "k", proposal(10, value.clone()))
        .await
        .expect("accept");
    assert!(a.accepted);
    let p = store
        .paxos_prepare("b", "k", ballot(11), Select::All)
        .await
        .expect("prepare");
    let accepted = p.accepted.expect("accepted proposal reported");
    assert_eq!(accepted.ballot, ballot(10));
    assert_eq!(accepted.value, Some(value.clone()));
    assert_eq!(p.record, None, "accepted is not committed");

    store
        .paxos_commit("b", "k", proposal(10, value.clone()))
        .await
        .expect("commit");
    assert_eq!(
        store.get_object("b", "k", Select::All).await.expect("get"),
        Some(value.clone())
    );
    let p = store
        .paxos_prepare("b", "k", ballot(12), Select::All)
        .await
        .expect("prepare");
    let accepted = p.accepted.expect("commit leaves the ballot");
    assert_eq!(accepted.ballot, ballot(10));
    assert_eq!(
        accepted.value, None,
        "the record stands for the committed value"
    );
    assert_eq!(p.record, Some(value));
}

#[tokio::test]
async fn paxos_commit_from_a_node_outside_the_majority_fences_lower_ballots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _writer) = open(&dir, true);
    // This node never saw prepare or accept at ballot 20, only the commit.
    assert!(
        store
            .paxos_prepare("b", "k", ballot(3), Select::All)
            .await
            .expect("prepare")
            .promised
    );
    store
        .paxos_commit("b", "k", proposal(20, record(7)))
        .await
        .expect("commit");
    assert!(
        !store
            .paxos_prepare("b", "k", ballot(15), Select::All)
            .await
            .expect("prepare")
            .promised
    );
    let p = store
        .paxos_prepare("b", "k", ballot(21), Select::All)
        .await
        .expect("prepare");
    assert!(p.promised);
    assert_eq!(p.accepted.map(|a| a.ballot), Some(ballot(20)));
    assert_eq!(p.record, Some(record(7)));
}

#[tokio::test]
async fn a_plain_version_below_a_promised_ballot_is_refused_and_nothing_of_it_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _writer) = open(&dir, true);
    store
        .merge_object("b", "k", record(5))
        .await
        .expect("merge");
    let ballot = Ballot {
        ts: 10,
        id: "ballot".into(),
    };
    let promise = store
        .paxos_prepare("b", "k", ballot.clone(), Select::All)
        .await
        .expect("prepare");
    assert!(promise.promised);
    // A new version stamped below the promise: refused, naming the ballot.
    let refused = store.merge_object("b", "k", record(7)).await;
    assert!(
        matches!(&refused, Err(Error::Stale { promised }) if *promised == ballot),
        "{refused:?}"
    );
    // Refused as a whole, even with a version above the ballot in the same record.
    let mut mixed = record(8);
    mixed.merge(&record(12));
    assert!(matches!(
        store.merge_object("b", "k", mixed).await,
        Err(Error::Stale { .. })
    ));
    let stamps = |r: Option<ObjectRecord>| -> Vec<u64> {
        r.expect("present")
            .versions
            .iter()
            .map(|v| v.stamp.ts)
            .collect()
    };
    assert_eq!(
        stamps(store.get_object("b", "k", Select::All).await.expect("get")),
        [5]
    );
    // What the node already has, a purge tombstone below the ballot, and a version above
    // it are let in.
    store
        .merge_object("b", "k", record(5))
        .await
        .expect("re-sent version");
    let mut purge = version(5, "v5");
    purge.state = VersionState::Purged;
    store
        .merge_object("b", "k", ObjectRecord::single(purge))
        .await
        .expect("purge below the ballot");
    store
        .merge_object("b", "k", record(11))
        .await
        .expect("above the ballot");
    assert_eq!(
        stamps(store.get_object("b", "k", Select::All).await.expect("get")),
        [5, 11]
    );
    // A commit is the chosen value: merged whatever its stamps.
    store
        .paxos_commit(
            "b",
            "k",
            Proposal {
                ballot,
                value: record(9),
            },
        )
        .await
        .expect("commit");
    assert_eq!(
        stamps(store.get_object("b", "k", Select::All).await.expect("get")),
        [5, 9, 11]
    );
}

mod agreed;
mod format;

/// A history walked in pages comes back whole, in order, once: pages of small versions
/// hold `limit` of them, pages of heavy inline bodies end near [`MAX_PAGE_BYTES`], and
/// only the page past the last version is empty.
#[tokio::test]
async fn pages_walk_a_history_within_their_version_and_byte_limits() {
    use crate::proto::MAX_PAGE_BYTES;
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _writer) = open(&dir, false);
    const BODY: usize = 64 * 1024;
    for ts in 1..=100u64 {
        let mut heavy = version(ts, &format!("h{ts}"));
        if let VersionState::Object(meta) = &mut heavy.state {
            meta.data = Data::Inline {
                bytes: vec![ts as u8; BODY],
            };
        }
        store
            .merge_object("b", "heavy", ObjectRecord::single(heavy))
            .await
            .expect("merge heavy");
        store
            .merge_object("b", "light", record(ts))
            .await
            .expect("merge light");
    }
    for (key, limit) in [("light", 7), ("heavy", 1000)] {
        let mut after = None;
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let page = store
                .get_object(
                    "b",
                    key,
                    Select::Page {
                        after: after.clone(),
                        limit,
                    },
                )
                .await
                .expect("page")
                .unwrap_or_default();
            let Some(last) = page.versions.last() else {
                break;
            };
            after = Some(last.stamp.clone());
            pages += 1;
            assert!(page.versions.len() <= limit, "{key}: page over its limit");
            let inline: usize = page
                .versions
                .iter()
                .filter_map(|v| match &v.state {
                    VersionState::Object(ObjectMeta {
                        data: Data::Inline { bytes },
                        ..
                    }) => Some(bytes.len()),
                    _ => None,
                })
                .sum();
            assert!(
                inline < MAX_PAGE_BYTES + BODY,
                "{key}: page of {inline} inline bytes"
            );
            seen.extend(page.versions.iter().map(|v| v.stamp.ts));
        }
        assert_eq!(seen, (1..=100).collect::<Vec<_>>(), "{key}");
        let fewest = 100usize.div_ceil(match key {
            "light" => limit,
            _ => MAX_PAGE_BYTES / BODY + 1,
        });
        assert!(pages >= fewest, "{key}: {pages} pages");
    }
}
