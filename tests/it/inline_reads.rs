//! Small objects travel inside their record, and reads ask the nodes only for the bodies
//! they serve: HEAD for none, GET for the version it returns. These tests pin what a client
//! sees when that matters: old versions read by id, and a merge of replica answers that
//! picks a version none of them sent a body for.

use std::time::Duration;

use aws_sdk_s3::types::BucketVersioningStatus;
use bytes::Bytes;
use hyper::Method;
use node::proto;

use crate::harness::*;
use crate::versioning::{get_version, put_version, set_versioning};

/// GET and HEAD read the key's record without the inline bodies they do not serve (each
/// replica sends only the body of the version it would serve). When the merge of the
/// answers picks a version no answer carried a body for, because each replica knows of a
/// purge the other lacks, the GET still serves that version's bytes.
#[tokio::test]
async fn get_serves_a_small_version_whose_body_no_replica_sent_first() {
    let mut cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "reads").await;
    set_versioning(&s3, "reads", BucketVersioningStatus::Enabled).await;
    let bodies: [&[u8]; 3] = [b"the survivor", b"purged on node 1", b"purged on node 0"];
    let mut ids = Vec::new();
    for body in bodies {
        ids.push(
            put_version(&s3, "reads", "k", body)
                .await
                .expect("version id"),
        );
    }
    let cluster_ref = &cluster;
    eventually(
        "every replica holds all three versions",
        Duration::from_secs(30),
        || async move {
            for i in 0..3 {
                let n = cluster_ref
                    .node_record(i, "reads", "k")
                    .await
                    .map_or(0, |r| r.versions.len());
                if n != 3 {
                    return Err(format!("node{i} holds {n} versions"));
                }
            }
            Ok(())
        },
    )
    .await;
    // Node 0 learns of one purge, node 1 of the other, and node 2 is gone, so reads merge
    // the answers of nodes 0 and 1: each sends the body of its own current version, and
    // neither is the merge's current version.
    let full = cluster.node_record(0, "reads", "k").await.expect("record");
    for (node, purged) in [(0, 2), (1, 1)] {
        let mut record = full.clone();
        record.versions[purged].state = proto::VersionState::Purged;
        record.versions[purged].tags = None;
        let resp = cluster
            .node_request(
                node,
                Method::POST,
                "/records/reads/k",
                Bytes::from(serde_json::to_vec(&record).unwrap()),
            )
            .await;
        assert_eq!(resp.status, 204, "{}", resp.text());
    }
    cluster.kill_node(2);
    assert_eq!(get_bytes(&s3, "reads", "k").await, bodies[0]);
    let head = s3
        .head_object()
        .bucket("reads")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.e_tag(),
        Some(format!("\"{}\"", md5_hex(bodies[0])).as_str())
    );
    assert_eq!(head.version_id(), Some(ids[0].as_str()));
    // A listing sees the same current version (each node's current version is one the
    // other purged: their windows alone do not show it).
    let listed = s3.list_objects_v2().bucket("reads").send().await.unwrap();
    let etags: Vec<Option<&str>> = listed.contents().iter().map(|o| o.e_tag()).collect();
    assert_eq!(
        etags,
        [Some(format!("\"{}\"", md5_hex(bodies[0])).as_str())]
    );
    assert_eq!(get_version(&s3, "reads", "k", &ids[0]).await, bodies[0]);
    for purged in &ids[1..] {
        let got = s3
            .get_object()
            .bucket("reads")
            .key("k")
            .version_id(purged)
            .send()
            .await;
        assert_s3_status(got, 404);
    }
}

/// A GET by version id of an older small version gets that version's bytes, not the
/// current one's, and HEAD of each version its own ETag.
#[tokio::test]
async fn small_versions_read_by_id_serve_their_own_bytes() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "byid").await;
    set_versioning(&s3, "byid", BucketVersioningStatus::Enabled).await;
    let bodies: Vec<Vec<u8>> = (0..4u8)
        .map(|i| vec![b'a' + i; 10 + usize::from(i)])
        .collect();
    let mut ids = Vec::new();
    for body in &bodies {
        ids.push(
            put_version(&s3, "byid", "k", body)
                .await
                .expect("version id"),
        );
    }
    for (id, body) in ids.iter().zip(&bodies) {
        assert_eq!(&get_version(&s3, "byid", "k", id).await, body);
        let head = s3
            .head_object()
            .bucket("byid")
            .key("k")
            .version_id(id)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.e_tag(),
            Some(format!("\"{}\"", md5_hex(body)).as_str())
        );
        assert_eq!(head.content_length(), Some(body.len() as i64));
    }
    assert_eq!(&get_bytes(&s3, "byid", "k").await, bodies.last().unwrap());
}
