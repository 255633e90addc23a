//! Refusals: bad signatures and anonymous requests on the S3 port, node calls without the
//! cluster secret, and the S3 errors for missing keys and buckets. Every refusal must also
//! leave the stored data unchanged.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use hyper::Method;
use node::proto::{self, Data, ObjectMeta, ObjectRecord, Stamp, Version, VersionState};

use crate::harness::*;

#[tokio::test]
async fn a_request_signed_with_a_wrong_secret_key_is_signature_does_not_match() {
    let cluster = Cluster::start(3).await;
    let good = cluster.client();
    create_bucket(&good, "signed").await;
    put_bytes(&good, "signed", "k", b"original").await;

    let forger = cluster.client_with_keys("S3QTESTACCESSKEY", "not-the-secret-key");
    assert_s3_error(
        forger.list_buckets().send().await,
        403,
        "SignatureDoesNotMatch",
    );
    assert_s3_error(
        forger.get_object().bucket("signed").key("k").send().await,
        403,
        "SignatureDoesNotMatch",
    );
    assert_s3_error(
        forger
            .put_object()
            .bucket("signed")
            .key("k")
            .body(ByteStream::from_static(b"forged"))
            .send()
            .await,
        403,
        "SignatureDoesNotMatch",
    );
    assert_eq!(get_bytes(&good, "signed", "k").await, b"original");
}

#[tokio::test]
async fn a_request_with_an_unknown_access_key_is_invalid_access_key_id() {
    let cluster = Cluster::start(3).await;
    let stranger = cluster.client_with_keys("AKIDUNKNOWN", "whatever-secret");
    assert_s3_error(
        stranger.list_buckets().send().await,
        403,
        "InvalidAccessKeyId",
    );
}

#[tokio::test]
async fn unsigned_requests_to_the_s3_port_are_access_denied() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "private").await;
    put_bytes(&s3, "private", "secret.txt", b"top secret").await;

    let base = cluster.s3_url();
    for (method, path, body) in [
        (Method::GET, "/".to_string(), Bytes::new()),
        (Method::GET, "/private".to_string(), Bytes::new()),
        (Method::GET, "/private/secret.txt".to_string(), Bytes::new()),
        (
            Method::PUT,
            "/private/secret.txt".to_string(),
            Bytes::from_static(b"anonymous overwrite"),
        ),
        (Method::PUT, "/anon-bucket".to_string(), Bytes::new()),
        (
            Method::DELETE,
            "/private/secret.txt".to_string(),
            Bytes::new(),
        ),
    ] {
        let what = format!("unsigned {method} {path}");
        let resp = raw_request(method, &format!("{base}{path}"), &[], body).await;
        assert_eq!(resp.status, 403, "{what}: {}", resp.text());
        let text = resp.text();
        assert!(
            text.contains("<Code>AccessDenied</Code>"),
            "{what}: not an AccessDenied XML error: {text}"
        );
        assert!(
            resp.header("x-amz-request-id")
                .is_some_and(|v| !v.is_empty()),
            "{what}: no x-amz-request-id"
        );
    }
    // Nothing the anonymous requests tried happened.
    assert_eq!(get_bytes(&s3, "private", "secret.txt").await, b"top secret");
    assert_s3_status(s3.head_bucket().bucket("anon-bucket").send().await, 404);
}

/// A valid record that would replace (bucket, key) with `evil` if a node accepted it.
/// Built from JSON with only the required fields, so it stays valid when optional fields
/// are added to the protocol.
fn forged_record(evil: &[u8]) -> ObjectRecord {
    let meta: ObjectMeta = serde_json::from_value(serde_json::json!({
        "size": evil.len(),
        "md5": md5_hex(evil),
        "etag": md5_hex(evil),
        "data": Data::Inline { bytes: evil.to_vec() },
    }))
    .expect("a minimal ObjectMeta");
    ObjectRecord::single(Version {
        stamp: Stamp {
            ts: u64::MAX / 2,
            id: "forged".to_string(),
        },
        null: true,
        state: VersionState::Object(meta),
        tags: None,
        acl: None,
        follows: None,
    })
}

#[tokio::test]
async fn node_routes_refuse_unsigned_replayed_stale_or_forged_calls() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "guarded").await;
    put_bytes(&s3, "guarded", "k", b"genuine").await;
    let (b, k) = (proto::encode_segment("guarded"), proto::encode_segment("k"));
    let forged = Bytes::from(serde_json::to_vec(&forged_record(b"evil")).unwrap());
    let blob_id = "0123456789abcdef0123456789abcdef";

    // /health is the one open route.
    let health = raw_request(
        Method::GET,
        &format!("{}/health", cluster.node_url(0)),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(health.status, 200);

    // Snapshot once the third replica (written in the background) has landed too.
    let cluster_ref = &cluster;
    eventually(
        "all three replicas hold the record",
        Duration::from_secs(60),
        || async move {
            for i in 0..3 {
                if cluster_ref.node_record(i, "guarded", "k").await.is_none() {
                    return Err(format!("node{i} has no record yet"));
                }
            }
            Ok(())
        },
    )
    .await;
    let before: Vec<Option<ObjectRecord>> =
        futures::future::join_all((0..3).map(|i| cluster.node_record(i, "guarded", "k"))).await;
    let calls = [
        (
            Method::GET,
            format!("/list/{b}?after=&prefix=&limit=10"),
            Bytes::new(),
        ),
        (Method::GET, format!("/records/{b}/{k}"), Bytes::new()),
        (Method::POST, format!("/records/{b}/{k}"), forged.clone()),
        (Method::GET, "/buckets".to_string(), Bytes::new()),
        (Method::GET, format!("/buckets/{b}"), Bytes::new()),
        (
            Method::PUT,
            format!("/blobs/{blob_id}"),
            Bytes::from_static(b"evil blob"),
        ),
        (Method::DELETE, format!("/blobs/{blob_id}"), Bytes::new()),
    ];
    let secret = cluster.secret().to_owned();
    for i in 0..3 {
        // A request a gateway really sent, captured on the wire.
        let read = format!("/records/{b}/{k}");
        let captured = sign_node_call(&secret, 0, &Method::GET, &read, &[]);
        let url = format!("{}{read}", cluster.node_url(i));
        let auth = [(proto::auth::AUTH_HEADER, captured.as_str())];
        let genuine = raw_request(Method::GET, &url, &auth, Bytes::new()).await;
        assert_eq!(genuine.status, 200, "{}", genuine.text());
        let replayed = raw_request(Method::GET, &url, &auth, Bytes::new()).await;
        assert_eq!(replayed.status, 401, "a replay: {}", replayed.text());
        for (method, path, body) in &calls {
            let wrong = sign_node_call("wrong-secret", 0, method, path, body);
            let stale = sign_node_call(&secret, 120_000, method, path, body);
            for headers in [
                vec![],
                // The secret itself, as gateways used to send it.
                vec![("x-s3q-secret", secret.as_str())],
                vec![(proto::auth::AUTH_HEADER, wrong.as_str())],
                vec![(proto::auth::AUTH_HEADER, stale.as_str())],
                // The captured signature on another request.
                vec![(proto::auth::AUTH_HEADER, captured.as_str())],
            ] {
                let what = format!("node{i} {method} {path} with {headers:?}");
                let resp = raw_request(
                    method.clone(),
                    &format!("{}{path}", cluster.node_url(i)),
                    &headers,
                    body.clone(),
                )
                .await;
                assert_eq!(resp.status, 401, "{what}: {}", resp.text());
                assert!(
                    !resp.text().contains("genuine"),
                    "{what} leaked data: {}",
                    resp.text()
                );
            }
        }
    }

    // Nothing changed on any node, and the gateway still serves the genuine object.
    for (i, before) in before.iter().enumerate() {
        let after = cluster.node_record(i, "guarded", "k").await;
        assert_eq!(&after, before, "node{i} record changed");
        let blob = cluster
            .node_request(i, Method::GET, &format!("/blobs/{blob_id}"), Bytes::new())
            .await;
        assert_eq!(blob.status, 404, "node{i} stored a blob: {}", blob.text());
    }
    assert_eq!(get_bytes(&s3, "guarded", "k").await, b"genuine");
}

#[tokio::test]
async fn missing_keys_and_buckets_are_404_with_their_s3_codes() {
    let cluster = Cluster::start(3).await;
    for (label, s3) in cluster.clients() {
        let bucket = format!("present-{label}");
        create_bucket(&s3, &bucket).await;
        assert_s3_error(
            s3.get_object().bucket(&bucket).key("missing").send().await,
            404,
            "NoSuchKey",
        );
        assert_s3_status(
            s3.head_object().bucket(&bucket).key("missing").send().await,
            404,
        );
        assert_s3_error(
            s3.get_object().bucket("absent").key("k").send().await,
            404,
            "NoSuchBucket",
        );
        assert_s3_error(
            s3.put_object()
                .bucket("absent")
                .key("k")
                .body(ByteStream::from_static(b"x"))
                .send()
                .await,
            404,
            "NoSuchBucket",
        );
        assert_s3_error(
            s3.delete_object().bucket("absent").key("k").send().await,
            404,
            "NoSuchBucket",
        );
    }
    // The PUT into a missing bucket did not create it.
    assert_s3_status(
        cluster.client().head_bucket().bucket("absent").send().await,
        404,
    );
}
