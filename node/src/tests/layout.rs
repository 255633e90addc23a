//! The layout register on one node, end to end: the acceptor's rules over HTTP and across
//! a restart, the fence on record routes (and not on blobs), the layout header on every
//! answer, the fence gate holding a commit until a fenced request in flight is done, and
//! the release of a key the node no longer owns.

use std::time::Duration;

use super::gc::candidates;
use super::healing::{object, object_record};
use super::*;
use crate::proto::Data;
use crate::proto::layout::{LAYOUT_HEADER, Layout, LayoutNode, LayoutPromise, LayoutView, owners};
use crate::proto::paxos::{AcceptReply, Ballot};

/// The id the test node gets; the other members never run.
const ME: &str = "n0";

fn members(n: usize) -> Vec<LayoutNode> {
    (0..n)
        .map(|i| LayoutNode {
            id: format!("n{i}"),
            url: format!("http://10.0.0.{i}:3900"),
            zone: String::new(),
            capacity: 0,
        })
        .collect()
}

fn layout(version: u64, revision: u64) -> Layout {
    Layout {
        version,
        revision,
        ..Layout::first(members(3), 1)
    }
}

fn ballot(ts: u64) -> Ballot {
    Ballot {
        ts,
        id: format!("p{ts}"),
    }
}

fn body(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("encode")
}

impl Node {
    async fn with_id() -> Node {
        Node::start_with(tempfile::tempdir().expect("tempdir"), |c| {
            c.node_id = Some(ME.into());
        })
        .await
    }

    async fn prepare(&self, ts: u64) -> LayoutPromise {
        let prepare = serde_json::json!({ "ballot": ballot(ts) });
        let reply = self
            .call("POST", "/layout/prepare", &[], &body(&prepare))
            .await;
        assert_eq!(reply.status, 200);
        reply.json()
    }

    async fn accept(&self, ts: u64, value: &Layout) -> AcceptReply {
        let proposal = serde_json::json!({ "ballot": ballot(ts), "value": value });
        let reply = self
            .call("POST", "/layout/accept", &[], &body(&proposal))
            .await;
        assert_eq!(reply.status, 200);
        reply.json()
    }

    async fn commit(&self, value: &Layout) {
        let reply = self.call("POST", "/layout/commit", &[], &body(value)).await;
        assert_eq!(
            reply.status,
            204,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
    }

    async fn committed(&self) -> Option<Layout> {
        let reply = self.call("GET", "/layout", &[], &[]).await;
        assert_eq!(reply.status, 200);
        reply.json::<LayoutView>().committed
    }
}

#[tokio::test]
async fn the_register_follows_the_acceptor_rules_and_survives_a_restart() {
    let node = Node::start().await;
    assert_eq!(node.committed().await, None);
    assert!(node.prepare(5).await.promised);
    // A re-sent prepare is promised again; a lower ballot is refused and told the higher.
    assert!(node.prepare(5).await.promised);
    let refused = node.prepare(4).await;
    assert!(!refused.promised);
    assert_eq!(refused.highest, ballot(5));
    assert!(!node.accept(4, &layout(1, 1)).await.accepted);
    assert!(node.accept(5, &layout(1, 1)).await.accepted);
    let promise = node.prepare(6).await;
    assert!(promise.promised);
    assert_eq!(promise.accepted, Some((ballot(5), layout(1, 1))));
    assert!(!node.accept(5, &layout(1, 1)).await.accepted);

    node.commit(&layout(1, 1)).await;
    assert_eq!(node.committed().await, Some(layout(1, 1)));
    node.commit(&layout(2, 3)).await;
    // Older or equal revisions are ignored, and still answered 204.
    node.commit(&layout(1, 2)).await;
    node.commit(&layout(9, 3)).await;
    assert_eq!(node.committed().await, Some(layout(2, 3)));
    // A newer revision may not lower the version.
    let lowering = node
        .call("POST", "/layout/commit", &[], &body(&layout(1, 4)))
        .await;
    assert_eq!(lowering.status, 400);
    assert_eq!(node.prepare(3).await.committed, Some(layout(2, 3)));

    let dir = node.stop().await;
    let node = Node::start_in(dir).await;
    assert_eq!(node.committed().await, Some(layout(2, 3)));
    let promise = node.prepare(5).await;
    assert!(!promise.promised);
    assert_eq!(promise.highest, ballot(6));
    assert_eq!(promise.accepted, Some((ballot(5), layout(1, 1))));

    // A layout file that does not decode stops the start.
    let dir = node.stop().await;
    std::fs::write(dir.path().join("data/layout.json"), b"{\"promised\": 7").expect("write");
    let node = Node::start_in(dir).await;
    let served = node.task.await.expect("serve task");
    assert!(matches!(served, Err(Error::Corrupt(_))), "{served:?}");
}

#[tokio::test]
async fn requests_placed_with_an_older_layout_are_refused_and_every_answer_names_the_version() {
    let node = Node::start().await;
    // No layout yet: version 0, and anything is served.
    let health = node.call_as("GET", "/health", &[], &[]).await;
    assert_eq!(health.header(LAYOUT_HEADER), Some("0"));
    let served = node
        .call(
            "POST",
            "/records/b/k",
            &[(LAYOUT_HEADER, "1")],
            &record_json(),
        )
        .await;
    assert_eq!(served.status, 204);
    node.commit(&layout(2, 2)).await;

    let stale = node
        .call(
            "POST",
            "/records/b/new",
            &[(LAYOUT_HEADER, "1")],
            &record_json(),
        )
        .await;
    assert_eq!(stale.status, 409);
    assert_eq!(stale.code(), proto::layout::STALE_LAYOUT_CODE);
    let message = stale.json::<ErrorBody>().message;
    assert!(message.contains('1') && message.contains('2'), "{message}");
    assert_eq!(stale.header(LAYOUT_HEADER), Some("2"));
    // Refused before the handler: nothing was stored.
    assert_eq!(
        node.call("GET", "/records/b/new", &[], &[]).await.status,
        404
    );
    for fenced in ["/records/b/k", "/buckets", "/list/b", "/hints"] {
        let reply = node.call("GET", fenced, &[(LAYOUT_HEADER, "1")], &[]).await;
        assert_eq!(reply.status, 409, "{fenced}");
    }
    // The same version, a newer one, or none: served.
    for sent in [Some("2"), Some("3"), Some(" 2 "), None] {
        let headers: Vec<(&str, &str)> = sent.map(|v| (LAYOUT_HEADER, v)).into_iter().collect();
        let reply = node.call("GET", "/records/b/k", &headers, &[]).await;
        assert_eq!(reply.status, 200, "{sent:?}");
        assert_eq!(reply.header(LAYOUT_HEADER), Some("2"));
    }
    for bad in ["x", "-1", "1.0", "", "18446744073709551616"] {
        let reply = node
            .call("GET", "/records/b/k", &[(LAYOUT_HEADER, bad)], &[])
            .await;
        assert_eq!(reply.status, 400, "{bad:?}");
    }
    // Blobs, leases, the node's identity and the register itself are not fenced.
    let old = [(LAYOUT_HEADER, "1")];
    let put = node
        .call("PUT", &format!("/blobs/{ID}"), &old, b"bytes")
        .await;
    assert_eq!(put.status, 200);
    assert_eq!(put.header(LAYOUT_HEADER), Some("2"));
    let get = node.call("GET", &format!("/blobs/{ID}"), &old, &[]).await;
    assert_eq!(
        (get.status, get.body.as_slice()),
        (200, b"bytes".as_slice())
    );
    assert_eq!(get.header(LAYOUT_HEADER), Some("2"));
    let lease = br#"{"holder":"g","ttl_ms":1000}"#;
    assert_eq!(node.call("POST", "/lease/x", &old, lease).await.status, 200);
    assert_eq!(node.call("GET", "/info", &old, &[]).await.status, 200);
    assert_eq!(node.call("GET", "/layout", &old, &[]).await.status, 200);
    // Every answer carries the version: open routes, refusals, unknown routes.
    for reply in [
        node.call_as("GET", "/health", &[], &[]).await,
        node.call_as("GET", "/metrics", &[], &[]).await,
        node.call_as("GET", "/buckets", &[], &[]).await,
        node.call("GET", "/nowhere", &[], &[]).await,
        node.call("DELETE", "/layout", &[], &[]).await,
        node.call("GET", "/records/b/missing", &[], &[]).await,
    ] {
        assert_eq!(reply.header(LAYOUT_HEADER), Some("2"), "{}", reply.status);
    }
    node.stop().await;
}

#[tokio::test]
async fn a_commit_raising_the_version_waits_for_a_fenced_request_in_flight() {
    let node = Node::start().await;
    node.commit(&layout(1, 1)).await;
    // A record write placed with version 1 whose body is held back: with
    // `expect: 100-continue` the node says `100 Continue` when its handler starts reading
    // the body, inside the fence.
    let record = record_json();
    let path = "/records/b/slow";
    let auth = sign("POST", path, &[], &record);
    let mut slow = BufReader::new(TcpStream::connect(node.addr).await.expect("connect"));
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: node\r\ncontent-length: {}\r\nexpect: 100-continue\r\n\
         {}: {auth}\r\n{LAYOUT_HEADER}: 1\r\n\r\n",
        record.len(),
        proto::auth::AUTH_HEADER
    );
    slow.write_all(head.as_bytes()).await.expect("write head");
    let mut line = String::new();
    slow.read_line(&mut line).await.expect("interim status");
    assert!(line.starts_with("HTTP/1.1 100"), "{line:?}");
    while line != "\r\n" {
        line.clear();
        slow.read_line(&mut line).await.expect("interim header");
    }

    {
        let raised = layout(2, 2);
        let commit = node.commit(&raised);
        tokio::pin!(commit);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut commit)
                .await
                .is_err(),
            "the commit did not wait for the fenced request"
        );
        slow.write_all(&record).await.expect("write body");
        let done = read_reply(&mut slow).await;
        assert_eq!(done.status, 204);
        tokio::time::timeout(Duration::from_secs(10), &mut commit)
            .await
            .expect("the commit never finished");
    }
    let after = node.call("GET", path, &[(LAYOUT_HEADER, "1")], &[]).await;
    assert_eq!(after.status, 409);
    node.stop().await;
}

/// A key `ME` owns and one it does not, under `layout(..)`.
fn keys_by_owner() -> (String, String) {
    let l = layout(0, 0);
    let mine = |k: &String| {
        owners(&l.nodes, l.replicas, "b", k)
            .iter()
            .any(|&i| l.nodes[i].id == ME)
    };
    let keys: Vec<String> = (0..100).map(|i| format!("key-{i}")).collect();
    let owned = keys.iter().find(|k| mine(k)).expect("an owned key").clone();
    let other = keys
        .iter()
        .find(|k| !mine(k))
        .expect("a foreign key")
        .clone();
    (owned, other)
}

#[tokio::test]
async fn a_key_no_longer_owned_is_released_with_its_blob_references() {
    const BLOB: &str = "50000000000000000000000000000005";
    const PROPOSED: &str = "60000000000000000000000000000006";
    let node = Node::with_id().await;
    let (owned, other) = keys_by_owner();
    let release = |bucket: &str, key: &str| {
        format!(
            "/layout/release/{}/{}",
            proto::encode_segment(bucket),
            proto::encode_segment(key)
        )
    };
    let refused = |reply: Reply| {
        assert_eq!(reply.status, 409);
        assert_eq!(reply.code(), proto::layout::STILL_OWNER_CODE);
    };
    node.put_blob(BLOB).await;
    node.put_blob(PROPOSED).await;
    let record = object_record(vec![(1, object(Data::Blob { id: BLOB.into() }))]);
    let path = format!("/records/b/{other}");
    assert_eq!(node.call("POST", &path, &[], &record).await.status, 204);
    // An accepted, uncommitted value of the key keeps a blob too.
    let value: ObjectRecord = serde_json::from_slice(&object_record(vec![(
        7,
        object(Data::Blob {
            id: PROPOSED.into(),
        }),
    )]))
    .expect("decode");
    let proposal = serde_json::json!({ "ballot": ballot(7), "value": value });
    let accept = format!("/paxos/b/{other}/accept");
    assert_eq!(
        node.call("POST", &accept, &[], &body(&proposal))
            .await
            .status,
        200
    );

    // No layout yet, then a migration running: refused, the record kept.
    refused(node.call("POST", &release("b", &other), &[], &[]).await);
    node.commit(&Layout {
        previous: Some(members(2)),
        ..layout(1, 1)
    })
    .await;
    refused(node.call("POST", &release("b", &other), &[], &[]).await);
    node.commit(&layout(2, 2)).await;
    // An owner keeps its copy; so does an upload's record of an owned key.
    refused(node.call("POST", &release("b", &owned), &[], &[]).await);
    let upload = format!("{owned}\0u1");
    refused(
        node.call("POST", &release("b/uploads", &upload), &[], &[])
            .await,
    );
    assert_eq!(node.call("GET", &path, &[], &[]).await.status, 200);
    // Fenced like the record routes.
    let stale = node
        .call("POST", &release("b", &other), &[(LAYOUT_HEADER, "1")], &[])
        .await;
    assert_eq!(stale.code(), proto::layout::STALE_LAYOUT_CODE);

    let done = node
        .call("POST", &release("b", &other), &[(LAYOUT_HEADER, "2")], &[])
        .await;
    assert_eq!(done.status, 204);
    assert_eq!(node.call("GET", &path, &[], &[]).await.status, 404);
    assert!(node.gc_referenced(&[BLOB, PROPOSED]).await.is_empty());
    for id in [BLOB, PROPOSED] {
        assert_eq!(candidates(&node.gc_scan(id, 0).await), [id]);
    }
    // The key's Paxos state went too: a ballot below the old one is promised.
    let prepare = serde_json::json!({ "ballot": ballot(3) });
    let promise: proto::paxos::Promise = node
        .call(
            "POST",
            &format!("/paxos/b/{other}/prepare"),
            &[],
            &body(&prepare),
        )
        .await
        .json();
    assert!(promise.promised && promise.accepted.is_none());
    // Again, or a record never here: nothing to do.
    for (bucket, key) in [("b", other.as_str()), ("b", "never-here")] {
        let again = node.call("POST", &release(bucket, key), &[], &[]).await;
        assert_eq!(again.status, 204, "{key}");
    }
    // An upload's record of a foreign key is released; its blob reference goes with it.
    let upload = format!("{other}\0u1");
    let upload_path = format!(
        "/records/{}/{}",
        proto::encode_segment("b/uploads"),
        proto::encode_segment(&upload)
    );
    assert_eq!(
        node.call("POST", &upload_path, &[], &record).await.status,
        204
    );
    assert_eq!(node.gc_referenced(&[BLOB]).await, [BLOB]);
    let done = node
        .call("POST", &release("b/uploads", &upload), &[], &[])
        .await;
    assert_eq!(done.status, 204);
    assert_eq!(node.call("GET", &upload_path, &[], &[]).await.status, 404);
    assert!(node.gc_referenced(&[BLOB]).await.is_empty());
    assert_eq!(
        node.call("GET", "/layout/release/b/k", &[], &[])
            .await
            .status,
        405
    );
    node.stop().await;
}
