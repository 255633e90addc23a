//! Access keys and grants: what each kind of caller may do, how fast every gateway learns
//! about a key, and the admin API that manages them.

use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, Tag, Tagging, VersioningConfiguration};
use bytes::Bytes;
use hyper::Method;
use serde_json::json;

use crate::harness::*;

/// Every kind of caller the model distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Root,
    Owner,
    ReadOnly,
    WriteOnly,
    NoGrant,
    Expired,
    Deleted,
}

const ROLES: [Role; 7] = [
    Role::Root,
    Role::Owner,
    Role::ReadOnly,
    Role::WriteOnly,
    Role::NoGrant,
    Role::Expired,
    Role::Deleted,
];

/// The operation families of the matrix, each one S3 call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    HeadBucket,
    ListObjects,
    GetObject,
    GetTagging,
    GetVersioning,
    PutObject,
    DeleteObject,
    CreateMultipart,
    PutTagging,
    CopyObject,
    PutVersioning,
    DeleteBucket,
    CreateBucket,
}

const OPS: [Op; 13] = [
    Op::HeadBucket,
    Op::ListObjects,
    Op::GetObject,
    Op::GetTagging,
    Op::GetVersioning,
    Op::PutObject,
    Op::DeleteObject,
    Op::CreateMultipart,
    Op::PutTagging,
    Op::CopyObject,
    Op::PutVersioning,
    Op::DeleteBucket,
    Op::CreateBucket,
];

/// Whether `role` may do `op` in a bucket where its grant is the role's.
fn allowed(role: Role, op: Op) -> bool {
    use Op::*;
    match role {
        Role::Root | Role::Owner => true,
        Role::ReadOnly => matches!(
            op,
            HeadBucket | ListObjects | GetObject | GetTagging | GetVersioning
        ),
        Role::WriteOnly => matches!(op, PutObject | DeleteObject | CreateMultipart | PutTagging),
        Role::NoGrant | Role::Expired | Role::Deleted => false,
    }
}

/// The grant each role has in its buckets.
fn grant_of(role: Role) -> Grant {
    match role {
        Role::ReadOnly => Grant {
            read: true,
            ..Grant::default()
        },
        Role::WriteOnly => Grant {
            write: true,
            ..Grant::default()
        },
        Role::NoGrant => Grant::default(),
        _ => Grant {
            read: true,
            write: true,
            owner: true,
        },
    }
}

/// Runs `op` as `s3` in bucket `bucket` (role number `n` keeps names apart); the HTTP
/// status of a refusal, `None` on success.
async fn attempt(s3: &Client, op: Op, bucket: &str, n: usize) -> Option<u16> {
    fn status<T, E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug>(
        r: Result<T, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
    ) -> Option<u16> {
        match r {
            Ok(_) => None,
            Err(e) => Some(e.raw_response().map_or(0, |r| r.status().as_u16())),
        }
    }
    let body = || ByteStream::from_static(b"by a role");
    match op {
        Op::HeadBucket => status(s3.head_bucket().bucket(bucket).send().await),
        Op::ListObjects => status(s3.list_objects_v2().bucket(bucket).send().await),
        Op::GetObject => status(s3.get_object().bucket(bucket).key("obj").send().await),
        Op::GetTagging => status(
            s3.get_object_tagging()
                .bucket(bucket)
                .key("obj")
                .send()
                .await,
        ),
        Op::GetVersioning => status(s3.get_bucket_versioning().bucket(bucket).send().await),
        Op::PutObject => status(
            s3.put_object()
                .bucket(bucket)
                .key(format!("new-{n}"))
                .body(body())
                .send()
                .await,
        ),
        Op::DeleteObject => status(
            s3.delete_object()
                .bucket(bucket)
                .key(format!("victim-{n}"))
                .send()
                .await,
        ),
        Op::CreateMultipart => status(
            s3.create_multipart_upload()
                .bucket(bucket)
                .key(format!("mpu-{n}"))
                .send()
                .await,
        ),
        Op::PutTagging => status(
            s3.put_object_tagging()
                .bucket(bucket)
                .key("obj")
                .tagging(
                    Tagging::builder()
                        .tag_set(Tag::builder().key("by").value("role").build().unwrap())
                        .build()
                        .unwrap(),
                )
                .send()
                .await,
        ),
        Op::CopyObject => status(
            s3.copy_object()
                .bucket(bucket)
                .key(format!("copy-{n}"))
                .copy_source(format!("{bucket}/obj"))
                .send()
                .await,
        ),
        Op::PutVersioning => status(
            s3.put_bucket_versioning()
                .bucket(bucket)
                .versioning_configuration(
                    VersioningConfiguration::builder()
                        .status(BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await,
        ),
        Op::DeleteBucket => status(s3.delete_bucket().bucket(format!("empty-{n}")).send().await),
        Op::CreateBucket => status(s3.create_bucket().bucket(format!("made-{n}")).send().await),
    }
}

#[tokio::test]
async fn every_operation_family_is_allowed_or_denied_as_the_grants_say() {
    let cluster = Cluster::start(3).await;
    let root = cluster.client();
    let mut clients = Vec::new();
    for (n, role) in ROLES.iter().enumerate() {
        let bucket = format!("data-{n}");
        create_bucket(&root, &bucket).await;
        create_bucket(&root, &format!("empty-{n}")).await;
        put_bytes(&root, &bucket, "obj", b"object").await;
        put_bytes(&root, &bucket, &format!("victim-{n}"), b"to delete").await;
        let client = match role {
            Role::Root => root.clone(),
            _ => {
                let extra = match role {
                    Role::Owner => json!({"allow_create_bucket": true}),
                    Role::Expired => json!({"expires_at": "2001-01-01T00:00:00Z"}),
                    _ => json!({}),
                };
                let (id, secret) = cluster.create_key(&format!("{role:?}"), extra).await;
                let grant = grant_of(*role);
                if grant.read || grant.write || grant.owner {
                    cluster.allow(&bucket, &id, grant).await;
                    cluster.allow(&format!("empty-{n}"), &id, grant).await;
                }
                if *role == Role::Deleted {
                    cluster
                        .admin(Method::DELETE, &format!("/v1/keys/{id}"), None)
                        .await;
                }
                cluster.client_with_keys(&id, &secret)
            }
        };
        clients.push((n, *role, bucket, client));
    }
    let mut wrong = Vec::new();
    for (n, role, bucket, client) in &clients {
        for op in OPS {
            let got = attempt(client, op, bucket, *n).await;
            let expected = allowed(*role, op);
            match got {
                None if expected => {}
                Some(403) if !expected => {}
                other => wrong.push(format!(
                    "{role:?} {op:?}: got {other:?}, expected allowed={expected}"
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // ListBuckets: any valid key, which sees only what it may read.
    for (n, role, bucket, client) in &clients {
        let listed = client.list_buckets().send().await;
        match role {
            Role::Expired | Role::Deleted => {
                assert_eq!(failure(listed).status, Some(403), "{role:?}");
            }
            _ => {
                let names: Vec<String> = listed
                    .unwrap_or_else(|e| panic!("{role:?}: {e:?}"))
                    .buckets()
                    .iter()
                    .filter_map(|b| b.name().map(str::to_owned))
                    .collect();
                let sees_own = names.contains(bucket);
                assert_eq!(sees_own, grant_of(*role).read, "{role:?} {names:?}");
                if *role != Role::Root {
                    let others = names
                        .iter()
                        .filter(|b| !b.ends_with(&format!("-{n}")) && !b.starts_with("made-"))
                        .count();
                    assert_eq!(others, 0, "{role:?} sees {names:?}");
                }
            }
        }
    }
    // A key allowed to create buckets owns what it created, and only that.
    let (owner_n, _, _, owner) = &clients[1];
    put_bytes(owner, &format!("made-{owner_n}"), "k", b"mine").await;
    let read_only = &clients[2].3;
    assert_s3_error(
        read_only
            .get_object()
            .bucket(format!("made-{owner_n}"))
            .key("k")
            .send()
            .await,
        403,
        "AccessDenied",
    );
}

#[tokio::test]
async fn unsigned_requests_are_refused_everywhere() {
    let cluster = Cluster::start(3).await;
    let root = cluster.client();
    create_bucket(&root, "shut").await;
    put_bytes(&root, "shut", "k", b"private").await;
    let base = cluster.s3_url().trim_end_matches('/').to_owned();
    for (method, path) in [
        (Method::GET, "/"),
        (Method::GET, "/shut"),
        (Method::HEAD, "/shut"),
        (Method::GET, "/shut/k"),
        (Method::PUT, "/shut/k"),
        (Method::DELETE, "/shut/k"),
    ] {
        let resp = raw_request(method.clone(), &format!("{base}{path}"), &[], Bytes::new()).await;
        assert_eq!(resp.status, 403, "{method} {path}: {}", resp.text());
    }
    assert_eq!(get_bytes(&root, "shut", "k").await, b"private");
}

/// Polls `check` every 50 ms until it holds; how long that took. Panics after `limit`.
async fn within<F, Fut>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_key_made_or_deleted_on_one_gateway_is_honoured_by_another_within_2_s() {
    let mut cluster = Cluster::start(3).await;
    cluster.start_extra_gateway().await;
    let second = cluster.gateway_urls()[1].clone();
    let root = cluster.client();
    create_bucket(&root, "shared").await;
    put_bytes(&root, "shared", "k", b"shared bytes").await;

    let (id, secret) = cluster.create_key("traveller", json!({})).await;
    cluster
        .allow(
            "shared",
            &id,
            Grant {
                read: true,
                ..Grant::default()
            },
        )
        .await;
    let there = cluster.client_at(&second, &id, &secret);
    let took = within(
        "a new key works on the second gateway",
        Duration::from_secs(2),
        || {
            let there = there.clone();
            async move {
                there
                    .get_object()
                    .bucket("shared")
                    .key("k")
                    .send()
                    .await
                    .is_ok()
            }
        },
    )
    .await;
    eprintln!("a new key and its grant reached the second gateway in {took:?}");
    // A presigned URL carries the signing key's grants.
    let presigned = there
        .get_object()
        .bucket("shared")
        .key("k")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let url = presigned.uri().to_string();
    let resp = raw_request(Method::GET, &url, &[], Bytes::new()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(&resp.body[..], b"shared bytes");

    cluster
        .admin(Method::DELETE, &format!("/v1/keys/{id}"), None)
        .await;
    let took = within(
        "a deleted key is refused on the second gateway",
        Duration::from_secs(2),
        || {
            let there = there.clone();
            async move {
                there
                    .get_object()
                    .bucket("shared")
                    .key("k")
                    .send()
                    .await
                    .is_err()
            }
        },
    )
    .await;
    eprintln!("the deletion reached the second gateway in {took:?}");
    let resp = raw_request(Method::GET, &url, &[], Bytes::new()).await;
    assert_eq!(
        resp.status,
        403,
        "presigned by a deleted key: {}",
        resp.text()
    );
    // Refused on the first gateway at once.
    let here = cluster.client_with_keys(&id, &secret);
    assert_eq!(
        failure(here.get_object().bucket("shared").key("k").send().await).status,
        Some(403)
    );
}

#[tokio::test]
async fn the_admin_api_needs_its_token_and_never_shows_a_secret_twice() {
    let cluster = Cluster::start(3).await;
    for token in [None, Some("wrong-token")] {
        let resp = cluster
            .admin_call(Method::GET, "/v1/keys", None, token)
            .await;
        assert_eq!(resp.status, 401, "{token:?}: {}", resp.text());
        let resp = cluster
            .admin_call(Method::POST, "/v1/keys", Some(json!({"name": "x"})), token)
            .await;
        assert_eq!(resp.status, 401, "{token:?}: {}", resp.text());
    }
    for open in ["/health", "/metrics", "/ready", "/status"] {
        let resp = cluster.admin_call(Method::GET, open, None, None).await;
        assert_eq!(resp.status, 200, "{open}");
    }

    let made = cluster
        .admin(Method::POST, "/v1/keys", Some(json!({"name": "app"})))
        .await;
    let id = made["access_key_id"].as_str().unwrap().to_owned();
    let secret = made["secret_access_key"].as_str().unwrap().to_owned();
    let listed = cluster.admin(Method::GET, "/v1/keys", None).await;
    assert!(listed.to_string().contains(&id));
    let info = cluster
        .admin(Method::GET, &format!("/v1/keys/{id}"), None)
        .await;
    assert_eq!(info["name"], "app");
    for shown in [
        listed.to_string(),
        info.to_string(),
        cluster.gateway_metrics().await,
    ] {
        assert!(!shown.contains(&secret), "the secret shows again: {shown}");
    }

    // Grants show on the key and the bucket; deny takes them back.
    create_bucket(&cluster.client(), "granted").await;
    let rw = Grant {
        read: true,
        write: true,
        ..Grant::default()
    };
    cluster.allow("granted", &id, rw).await;
    let info = cluster
        .admin(Method::GET, &format!("/v1/keys/{id}"), None)
        .await;
    assert_eq!(info["buckets"][0]["bucket"], "granted");
    assert_eq!(info["buckets"][0]["write"], true);
    let bucket = cluster
        .admin(
            Method::POST,
            "/v1/buckets/granted/deny",
            Some(json!({"key": id, "write": true})),
        )
        .await;
    assert_eq!(bucket["grants"][&id]["read"], true);
    assert_eq!(bucket["grants"][&id]["write"], false);
    let key_client = cluster.client_with_keys(&id, &secret);
    assert_eq!(
        failure(
            key_client
                .put_object()
                .bucket("granted")
                .key("k")
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
        )
        .status,
        Some(403)
    );

    // Import keeps a key pair made elsewhere; an id in use is refused.
    let imported = json!({
        "access_key_id": "MIGRATEDKEY01",
        "secret_access_key": "migrated-secret-123",
        "name": "from-elsewhere",
    });
    cluster
        .admin(Method::POST, "/v1/keys/import", Some(imported.clone()))
        .await;
    let again = cluster
        .admin_call(
            Method::POST,
            "/v1/keys/import",
            Some(imported),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.text());
    cluster
        .allow(
            "granted",
            "MIGRATEDKEY01",
            Grant {
                read: true,
                ..Grant::default()
            },
        )
        .await;
    let migrated = cluster.client_with_keys("MIGRATEDKEY01", "migrated-secret-123");
    migrated
        .list_objects_v2()
        .bucket("granted")
        .send()
        .await
        .expect("an imported key works");
    // Unknown keys and bad bodies are clear errors.
    let missing = cluster
        .admin_call(Method::GET, "/v1/keys/NOSUCHKEY", None, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(missing.status, 404);
    let bad = cluster
        .admin_call(
            Method::POST,
            "/v1/keys",
            Some(json!({"name": "x", "expires_at": "tomorrow"})),
            Some(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text());
}

#[tokio::test]
async fn without_a_token_the_admin_api_is_off() {
    let cluster = Cluster::start_opts(ClusterOptions::new(3).without_admin_token()).await;
    let resp = cluster
        .admin_call(Method::GET, "/v1/keys", None, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    // S3 with the root key is unaffected.
    create_bucket(&cluster.client(), "still-works").await;
}
