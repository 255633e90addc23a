//! The record database's formats: conversion of a format-1 database (s3quorum 0.1) and of
//! a format-2 one (no blob references yet), and refusal of a newer one.

use super::*;
use crate::proto::{Data, ObjectMeta, VersionState};

/// A database of format 1 (one record per key in `objects`, no format number) as
/// s3quorum 0.1 wrote it, with `records` and one undecodable value.
fn write_format_1(dir: &tempfile::TempDir, records: &[(&str, &str, ObjectRecord)]) {
    const OBJECTS: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("objects");
    let db = redb::Database::create(dir.path().join("records.redb")).expect("create");
    let txn = db.begin_write().expect("write");
    {
        let mut objects = txn.open_table(OBJECTS).expect("objects");
        for (bucket, key, record) in records {
            let k = [bucket.as_bytes(), b"\0", key.as_bytes()].concat();
            let v = serde_json::to_vec(record).expect("encode");
            objects.insert(k.as_slice(), v.as_slice()).expect("insert");
        }
        objects
            .insert(b"b\0broken".as_slice(), b"{not json".as_slice())
            .expect("insert");
    }
    txn.commit().expect("commit");
}

#[tokio::test]
async fn a_format_1_database_is_converted_when_opened() {
    let dir = tempfile::tempdir().expect("tempdir");
    // More records than one conversion batch, keys with 0x00 and many versions among them.
    let mut records: Vec<(String, String, ObjectRecord)> = (0..1200)
        .map(|n| {
            let record = ObjectRecord {
                versions: vec![version(n + 1, &format!("v{n}"))],
            };
            ("b".to_owned(), format!("key/{n:04}"), record)
        })
        .collect();
    let many = ObjectRecord {
        versions: (1..=300).map(|n| version(n, &format!("m{n}"))).collect(),
    };
    records.push(("b".into(), "many\0versions".into(), many.clone()));
    let borrowed: Vec<(&str, &str, ObjectRecord)> = records
        .iter()
        .map(|(b, k, r)| (b.as_str(), k.as_str(), r.clone()))
        .collect();
    write_format_1(&dir, &borrowed);

    let (store, writer) = open(&dir, true);
    for (bucket, key, record) in &records {
        let got = store
            .get_object(bucket, key, Select::All)
            .await
            .expect("get");
        assert_eq!(got.as_ref(), Some(record), "{key:?}");
    }
    let window = store
        .get_object("b", "many\0versions", Select::CURRENT)
        .await
        .expect("get")
        .expect("found");
    let tops: Vec<u64> = window.versions.iter().map(|v| v.stamp.ts).collect();
    assert_eq!(tops, [300]);
    let page = store.list("b", "", "", 1000, false).await.expect("list");
    assert_eq!(page.entries.len(), 1000);
    drop(store);
    writer.join();

    // Converted once: the format is recorded, the old table gone, the broken record kept.
    let db = redb::Database::create(dir.path().join("records.redb")).expect("reopen");
    let txn = db.begin_read().expect("read");
    let tables: Vec<String> = txn
        .list_tables()
        .expect("tables")
        .map(|t| redb::TableHandle::name(&t).to_owned())
        .collect();
    assert!(!tables.contains(&"objects".to_owned()), "{tables:?}");
    let kept: redb::TableDefinition<&[u8], &[u8]> =
        redb::TableDefinition::new("unreadable_records");
    let kept = txn.open_table(kept).expect("unreadable_records");
    assert!(kept.get(b"b\0broken".as_slice()).expect("get").is_some());
    let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
    let meta = txn.open_table(meta).expect("meta");
    assert_eq!(
        meta.get("format").expect("get").map(|v| v.value()),
        Some(crate::records::format::FORMAT)
    );
}

#[test]
fn a_database_of_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = redb::Database::create(dir.path().join("records.redb")).expect("create");
        let txn = db.begin_write().expect("write");
        let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
        txn.open_table(meta)
            .expect("meta")
            .insert("format", crate::records::format::FORMAT + 1)
            .expect("insert");
        txn.commit().expect("commit");
    }
    let commits = IntCounter::new("commits", "test").expect("counter");
    let opened = RecordStore::open(
        &dir.path().join("records.redb"),
        true,
        commits,
        test_disk(&dir),
    );
    let Err(e) = opened else {
        panic!("a newer format was opened");
    };
    assert!(e.to_string().contains("newer release"), "{e}");
}

/// A version whose body is blob `id`.
fn blob_version(ts: u64, id: &str) -> Version {
    let mut v = version(ts, &format!("b{ts}"));
    v.state = VersionState::Object(ObjectMeta {
        size: 4,
        md5: "m".into(),
        etag: "m".into(),
        data: Data::Blob { id: id.into() },
        headers: Default::default(),
        user_metadata: Default::default(),
        part_number: None,
        checksums: Default::default(),
        checksum_type: None,
        checksum_algorithm: None,
    });
    v
}

#[tokio::test]
async fn a_format_2_database_gets_its_blob_references_when_opened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b, c) = (
        "a0000000000000000000000000000000",
        "b0000000000000000000000000000000",
        "c0000000000000000000000000000000",
    );
    let (store, writer) = open(&dir, true);
    // More versions than one indexing batch.
    for n in 0..600u64 {
        let id = if n == 599 { a } else { b };
        let record = ObjectRecord::single(blob_version(n + 1, id));
        store
            .merge_object("b", &format!("k{n:04}"), record)
            .await
            .expect("merge");
    }
    let ballot = Stamp {
        ts: 1000,
        id: "p".into(),
    };
    let value = ObjectRecord::single(blob_version(1000, c));
    let promise = store
        .paxos_prepare("b", "cas", ballot.clone(), Select::All)
        .await
        .expect("prepare");
    assert!(promise.promised);
    let proposal = crate::proto::paxos::Proposal { ballot, value };
    let accepted = store
        .paxos_accept("b", "cas", proposal)
        .await
        .expect("accept");
    assert!(accepted.accepted);
    drop(store);
    writer.join();

    // What a format-2 node left: no references, format 2.
    {
        let db = redb::Database::create(dir.path().join("records.redb")).expect("reopen");
        let txn = db.begin_write().expect("write");
        let refs: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("blob_refs");
        assert!(txn.delete_table(refs).expect("drop"));
        let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
        txn.open_table(meta)
            .expect("meta")
            .insert("format", 2)
            .expect("format");
        txn.commit().expect("commit");
    }
    let (store, writer) = open(&dir, true);
    let ids = vec![a.to_owned(), b.to_owned(), c.to_owned(), "d".repeat(32)];
    let found = store.referrers(ids).await.expect("referenced");
    let found: Vec<&str> = found.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(found, [a, b, c]);
    drop(store);
    writer.join();
}
