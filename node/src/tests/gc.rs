//! Garbage collection on one node: which blob files the scan reports as unreferenced (a
//! stored version, an upload part, a multipart object's part or an accepted Paxos value
//! keeps a blob), the grace, the re-check of `collect`, and quarantined copies.

use super::healing::{object, object_record};
use super::*;
use crate::proto::gc::{GcCollected, GcScan, KeyRef, MAX_REFERRING_KEYS, Referenced};
use crate::proto::{Data, PartRef, VersionState};

/// Four blob ids of four different shards.
const KEPT: &str = "10000000000000000000000000000001";
const LOOSE: &str = "20000000000000000000000000000002";
const PROPOSED: &str = "30000000000000000000000000000003";
const PART: &str = "40000000000000000000000000000004";

impl Node {
    pub(super) async fn gc_scan(&self, id: &str, grace: u64) -> GcScan {
        let path = format!("/gc/scan/{}?grace_secs={grace}", &id[..2]);
        let reply = self.call("POST", &path, &[], &[]).await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        reply.json()
    }

    async fn gc_collect(&self, ids: &[&str], grace: u64) -> GcCollected {
        let path = format!("/gc/collect?grace_secs={grace}");
        let body = serde_json::to_vec(ids).expect("encode");
        let reply = self.call("POST", &path, &[], &body).await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        reply.json()
    }

    pub(super) async fn gc_referrers(&self, ids: &[&str]) -> Vec<Referenced> {
        let body = serde_json::to_vec(ids).expect("encode");
        let reply = self.call("POST", "/gc/referenced", &[], &body).await;
        assert_eq!(reply.status, 200);
        reply.json()
    }

    /// The ids of `ids` something here refers to.
    pub(super) async fn gc_referenced(&self, ids: &[&str]) -> Vec<String> {
        let found = self.gc_referrers(ids).await;
        found.into_iter().map(|r| r.id).collect()
    }

    pub(super) async fn put_blob(&self, id: &str) {
        let put = self
            .call("PUT", &format!("/blobs/{id}"), &[], b"body")
            .await;
        assert_eq!(put.status, 200);
    }
}

pub(super) fn candidates(scan: &GcScan) -> Vec<&str> {
    scan.unreferenced.iter().map(|b| b.id.as_str()).collect()
}

#[tokio::test]
async fn only_blobs_nothing_refers_to_are_collected_and_only_past_the_grace() {
    let node = Node::start().await;
    for id in [KEPT, LOOSE, PROPOSED, PART] {
        node.put_blob(id).await;
    }
    let kept = object_record(vec![(1, object(Data::Blob { id: KEPT.into() }))]);
    assert_eq!(
        node.call("POST", "/records/b/kept", &[], &kept)
            .await
            .status,
        204
    );
    let part = PartRef {
        number: 1,
        blob: PART.into(),
        size: 4,
        md5: "m".into(),
        checksums: Default::default(),
    };
    let multi = object_record(vec![(1, object(Data::Parts { parts: vec![part] }))]);
    assert_eq!(
        node.call("POST", "/records/b/multi", &[], &multi)
            .await
            .status,
        204
    );
    // A conditional write's value, accepted and not committed: a later round may commit it.
    let value: ObjectRecord = serde_json::from_slice(&object_record(vec![(
        7,
        object(Data::Blob {
            id: PROPOSED.into(),
        }),
    )]))
    .expect("decode");
    let proposal = serde_json::json!({ "ballot": { "ts": 7, "id": "p" }, "value": value });
    let accepted = node
        .call(
            "POST",
            "/paxos/b/cas/accept",
            &[],
            &serde_json::to_vec(&proposal).unwrap(),
        )
        .await;
    assert_eq!(accepted.status, 200);

    let all = [KEPT, LOOSE, PROPOSED, PART];
    assert_eq!(node.gc_referenced(&all).await, [KEPT, PROPOSED, PART]);
    for id in all {
        let scan = node.gc_scan(id, 0).await;
        let expected: &[&str] = if id == LOOSE { &[LOOSE] } else { &[] };
        assert_eq!(candidates(&scan), expected, "shard of {id}");
    }
    // Younger than the grace: waiting, never collected.
    let young = node.gc_scan(LOOSE, 3600).await;
    assert!(young.unreferenced.is_empty());
    assert_eq!(young.waiting, 1);
    assert!(young.waiting_bytes > 4);
    assert!(node.gc_collect(&all, 3600).await.deleted.is_empty());
    // Past it: only the unreferenced one goes, whatever the request names.
    let collected = node.gc_collect(&all, 0).await;
    assert_eq!(collected.deleted, [LOOSE]);
    assert!(collected.bytes > 4);
    assert!(!node.blob_path(LOOSE).exists());
    for id in [KEPT, PROPOSED, PART] {
        assert!(node.blob_path(id).exists(), "{id} deleted");
    }

    // Committing the value keeps the blob referenced, now by the version.
    let commit = node
        .call(
            "POST",
            "/paxos/b/cas/commit",
            &[],
            &serde_json::to_vec(&proposal).unwrap(),
        )
        .await;
    assert_eq!(commit.status, 204);
    assert_eq!(node.gc_referenced(&[PROPOSED]).await, [PROPOSED]);
    // A purge releases the blob; so does a newer null version replacing an older one.
    let purged = object_record(vec![(1, VersionState::Purged)]);
    assert_eq!(
        node.call("POST", "/records/b/kept", &[], &purged)
            .await
            .status,
        204
    );
    assert_eq!(node.gc_collect(&[KEPT], 0).await.deleted, [KEPT]);
    let mut null: ObjectRecord = serde_json::from_slice(&multi).expect("decode");
    null.versions[0].null = true;
    let body = serde_json::to_vec(&null).unwrap();
    assert_eq!(
        node.call("POST", "/records/b/null", &[], &body)
            .await
            .status,
        204
    );
    let mut newer = null.clone();
    newer.versions[0].stamp.ts = 2;
    newer.versions[0].state = VersionState::DeleteMarker;
    let body = serde_json::to_vec(&newer).unwrap();
    assert_eq!(
        node.call("POST", "/records/b/null", &[], &body)
            .await
            .status,
        204
    );
    // The multipart object of key `multi` still holds the part.
    assert_eq!(node.gc_referenced(&[PART]).await, [PART]);
    let purged = object_record(vec![(1, VersionState::Purged)]);
    assert_eq!(
        node.call("POST", "/records/b/multi", &[], &purged)
            .await
            .status,
        204
    );
    assert_eq!(node.gc_collect(&[PART], 0).await.deleted, [PART]);

    // References survive a restart (they are in the record database).
    let dir = node.stop().await;
    let node = Node::start_in(dir).await;
    assert_eq!(node.gc_referenced(&all).await, [PROPOSED]);
    node.stop().await;
}

/// Makes `path`'s file look written `secs` ago.
fn age_file(path: &std::path::Path, secs: u64) {
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open");
    let then = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
    file.set_modified(then).expect("set mtime");
}

#[tokio::test]
async fn the_grace_counts_from_when_the_last_reference_went() {
    let node = Node::start().await;
    node.put_blob(KEPT).await;
    node.put_blob(LOOSE).await;
    let kept = object_record(vec![(1, object(Data::Blob { id: KEPT.into() }))]);
    assert_eq!(
        node.call("POST", "/records/b/kept", &[], &kept)
            .await
            .status,
        204
    );
    // Both files written two hours ago; the grace is one hour.
    age_file(&node.blob_path(KEPT), 7200);
    age_file(&node.blob_path(LOOSE), 7200);
    assert_eq!(candidates(&node.gc_scan(LOOSE, 3600).await), [LOOSE]);
    assert!(candidates(&node.gc_scan(KEPT, 3600).await).is_empty());
    // Purged just now: a read that began before may still stream it, so it waits.
    let purged = object_record(vec![(1, VersionState::Purged)]);
    assert_eq!(
        node.call("POST", "/records/b/kept", &[], &purged)
            .await
            .status,
        204
    );
    let scan = node.gc_scan(KEPT, 3600).await;
    assert!(scan.unreferenced.is_empty());
    assert_eq!(scan.waiting, 1);
    assert!(node.gc_collect(&[KEPT, LOOSE], 3600).await.deleted == [LOOSE]);
    assert!(node.blob_path(KEPT).exists());
    assert_eq!(node.gc_collect(&[KEPT], 0).await.deleted, [KEPT]);
    node.stop().await;
}

#[tokio::test]
async fn quarantined_copies_go_once_rewritten_or_unreferenced() {
    let node = Node::start().await;
    node.put_blob(LOOSE).await;
    node.put_blob(KEPT).await;
    let quarantine = node.dir.path().join("data/quarantine");
    // Both found corrupt; LOOSE is written again by a repair, KEPT is not.
    for id in [LOOSE, KEPT] {
        std::fs::rename(node.blob_path(id), quarantine.join(id)).expect("quarantine");
    }
    node.put_blob(LOOSE).await;
    let scan = node.gc_scan(LOOSE, 0).await;
    assert_eq!(scan.quarantine_cleared, 1);
    assert!(!quarantine.join(LOOSE).exists());
    assert!(node.blob_path(LOOSE).exists());
    let scan = node.gc_scan(KEPT, 0).await;
    assert_eq!(scan.unreferenced.len(), 1);
    assert!(scan.unreferenced[0].quarantined);
    assert_eq!(node.gc_collect(&[KEPT], 0).await.deleted, [KEPT]);
    assert!(!quarantine.join(KEPT).exists());
    node.stop().await;
}

#[tokio::test]
async fn malformed_collection_requests_are_refused() {
    let node = Node::start().await;
    for path in [
        "/gc/scan/zz?grace_secs=0",
        "/gc/scan/1?grace_secs=0",
        "/gc/scan/AB?grace_secs=0",
        "/gc/scan/00",
        "/gc/scan/00?grace_secs=-1",
    ] {
        assert_eq!(
            node.call("POST", path, &[], &[]).await.status,
            400,
            "{path}"
        );
    }
    assert_eq!(
        node.call("POST", "/gc/collect", &[], b"[]").await.status,
        400
    );
    assert_eq!(
        node.call("POST", "/gc/referenced", &[], b"{}").await.status,
        400
    );
    let many: Vec<String> = (0..=proto::gc::MAX_GC_IDS)
        .map(|i| format!("{i:032x}"))
        .collect();
    let body = serde_json::to_vec(&many).unwrap();
    assert_eq!(
        node.call("POST", "/gc/referenced", &[], &body).await.status,
        400
    );
    assert_eq!(node.call("GET", "/gc/collect", &[], &[]).await.status, 405);
    // Without the secret.
    assert_eq!(
        node.call_as("POST", "/gc/collect?grace_secs=0", &[], b"[]")
            .await
            .status,
        401
    );
    node.stop().await;
}

#[tokio::test]
async fn old_tombstones_are_listed_and_dropped_and_nothing_else() {
    use crate::proto::gc::{Dropped, TombstonePage};
    let node = Node::start().await;
    let key = "a\u{0}b/é";
    let path = format!("/records/b/{}", proto::encode_segment(key));
    let record = object_record(vec![
        (
            1,
            object(Data::Inline {
                bytes: b"m".to_vec(),
            }),
        ),
        (2, VersionState::Purged),
    ]);
    assert_eq!(node.call("POST", &path, &[], &record).await.status, 204);
    let other = object_record(vec![(5, VersionState::Purged)]);
    assert_eq!(
        node.call("POST", "/records/b/z", &[], &other).await.status,
        204
    );
    let list = |query: &'static str| {
        let node = &node;
        async move {
            let reply = node
                .call("GET", &format!("/gc/tombstones?{query}"), &[], &[])
                .await;
            assert_eq!(
                reply.status,
                200,
                "{}",
                String::from_utf8_lossy(&reply.body)
            );
            reply.json::<TombstonePage>()
        }
    };
    let all = list("grace_secs=0").await;
    let named: Vec<(&str, &str, u64)> = all
        .tombstones
        .iter()
        .map(|t| (t.bucket.as_str(), t.key.as_str(), t.stamp.ts))
        .collect();
    assert_eq!(named, [("b", key, 2), ("b", "z", 5)]);
    assert!(all.next.is_none());
    assert!(list("grace_secs=3600").await.tombstones.is_empty());
    // Page by page.
    let first = list("grace_secs=0&limit=1").await;
    assert_eq!(first.tombstones.len(), 1);
    let cursor = first.next.expect("a next page");
    let second = node
        .call(
            "GET",
            &format!("/gc/tombstones?grace_secs=0&limit=1&after={cursor}"),
            &[],
            &[],
        )
        .await
        .json::<TombstonePage>();
    assert_eq!(second.tombstones[0].key, "z");

    // A drop removes tombstones only: the live version 1 named too stays.
    let mut named = all.tombstones.clone();
    let mut live = named[0].clone();
    live.stamp.ts = 1;
    live.stamp.id = "v1".into();
    named.push(live);
    let body = serde_json::to_vec(&named).unwrap();
    let dropped: Dropped = node.call("POST", "/gc/drop", &[], &body).await.json();
    assert_eq!(dropped.dropped, 2);
    let left: ObjectRecord = node.call("GET", &path, &[], &[]).await.json();
    assert_eq!(left.versions.len(), 1);
    assert_eq!(left.versions[0].stamp.ts, 1);
    // Nothing is left of `z`: its head went too.
    assert_eq!(node.call("GET", "/records/b/z", &[], &[]).await.status, 404);
    assert!(list("grace_secs=0").await.tombstones.is_empty());
    // Again: nothing to drop.
    let dropped: Dropped = node.call("POST", "/gc/drop", &[], &body).await.json();
    assert_eq!(dropped.dropped, 0);
    for bad in [
        "/gc/tombstones",
        "/gc/tombstones?grace_secs=0&after=zz",
        "/gc/tombstones?grace_secs=0&limit=x",
    ] {
        assert_eq!(node.call("GET", bad, &[], &[]).await.status, 400, "{bad}");
    }
    node.stop().await;
}

/// What a collector needs to tell whose copy a blob is: `referenced` names the record
/// addresses (an object's, an upload's with a NUL in its key, an accepted value's) that
/// refer to each blob, says when more refer to it than it names, and whether the file is
/// here.
#[tokio::test]
async fn referenced_names_the_keys_that_refer_and_whether_the_file_is_here() {
    let node = Node::start().await;
    node.put_blob(KEPT).await;
    let record = |id: &str| object_record(vec![(1, object(Data::Blob { id: id.into() }))]);
    let store = |bucket: &str, key: &str, body: Vec<u8>| {
        let path = format!(
            "/records/{}/{}",
            proto::encode_segment(bucket),
            proto::encode_segment(key)
        );
        let node = &node;
        async move {
            let reply = node.call("POST", &path, &[], &body).await;
            assert_eq!(reply.status, 204, "{path}");
        }
    };
    store("b", "obj/\u{0}x", record(KEPT)).await;
    store("b/uploads", "obj\u{0}upload-1", record(KEPT)).await;
    // PART's file is not here: a record may arrive before its blob (a repair in progress).
    store("b", "other", record(PART)).await;
    let value: ObjectRecord = serde_json::from_slice(&record(PROPOSED)).expect("decode");
    let proposal = serde_json::json!({ "ballot": { "ts": 7, "id": "p" }, "value": value });
    let accepted = node
        .call(
            "POST",
            "/paxos/b/cas%00key/accept",
            &[],
            &serde_json::to_vec(&proposal).unwrap(),
        )
        .await;
    assert_eq!(accepted.status, 200);
    node.put_blob(PROPOSED).await;

    let key = |bucket: &str, key: &str| KeyRef {
        bucket: bucket.into(),
        key: key.into(),
    };
    let found = node.gc_referrers(&[KEPT, LOOSE, PROPOSED, PART]).await;
    assert_eq!(
        found,
        [
            Referenced {
                id: KEPT.into(),
                keys: vec![key("b", "obj/\u{0}x"), key("b/uploads", "obj\u{0}upload-1")],
                more: false,
                stored: true,
            },
            Referenced {
                id: PROPOSED.into(),
                keys: vec![key("b", "cas\u{0}key")],
                more: false,
                stored: true,
            },
            Referenced {
                id: PART.into(),
                keys: vec![key("b", "other")],
                more: false,
                stored: false,
            },
        ]
    );

    // Two versions of one key are one address; past the cap, `more` says the list is cut.
    let two = object_record(vec![
        (1, object(Data::Blob { id: LOOSE.into() })),
        (2, object(Data::Blob { id: LOOSE.into() })),
    ]);
    store("many", "k", two).await;
    for n in 1..=MAX_REFERRING_KEYS {
        store("many", &format!("k{n:02}"), record(LOOSE)).await;
    }
    let found = node.gc_referrers(&[LOOSE]).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].keys.len(), MAX_REFERRING_KEYS);
    assert!(found[0].more);
    assert!(!found[0].stored);
    node.stop().await;
}
