//! Public read and bucket policies: anonymous access through a public-read policy (of a
//! bucket or a prefix), a public-read bucket ACL (listing) or a public-read object ACL
//! (one version), checked with plain unsigned requests; policies outside the supported
//! subset refused whole; Deny winning over grants; and PublicAccessBlock refusing or
//! neutralising what is public.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketCannedAcl, BucketVersioningStatus, CompletedMultipartUpload, CompletedPart,
    ObjectCannedAcl, PublicAccessBlockConfiguration,
};
use bytes::Bytes;
use hyper::Method;
use serde_json::json;

use crate::harness::*;

fn public_read_policy(bucket: &str, prefix: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "PublicRead",
            "Effect": "Allow",
            "Principal": "*",
            "Action": ["s3:GetObject"],
            "Resource": [format!("arn:aws:s3:::{bucket}/{prefix}*")],
        }],
    })
    .to_string()
}

/// An unsigned GET of `path` on the S3 port; its status.
async fn anonymous_get(cluster: &Cluster, path: &str) -> u16 {
    let url = format!("{}{path}", cluster.s3_url().trim_end_matches('/'));
    raw_request(Method::GET, &url, &[], Bytes::new())
        .await
        .status
}

/// Waits (at most 3 s, a bucket setting's reach) until an unsigned GET of `path` answers
/// `status`.
async fn anonymous_get_becomes(cluster: &Cluster, path: &str, status: u16, what: &str) {
    eventually(what, std::time::Duration::from_secs(3), || async {
        match anonymous_get(cluster, path).await {
            s if s == status => Ok(()),
            s => Err(format!("{path}: status {s}")),
        }
    })
    .await;
}

#[tokio::test]
async fn a_public_read_policy_opens_its_prefix_to_anonymous_gets_and_nothing_else() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "site").await;
    put_bytes(&s3, "site", "public/index.html", b"<h1>hello</h1>").await;
    put_bytes(&s3, "site", "private/notes", b"secret").await;
    assert_eq!(
        anonymous_get(&cluster, "/site/public/index.html").await,
        403
    );

    s3.put_bucket_policy()
        .bucket("site")
        .policy(public_read_policy("site", "public/"))
        .send()
        .await
        .unwrap();
    let stored = s3.get_bucket_policy().bucket("site").send().await.unwrap();
    assert!(stored.policy().unwrap().contains("PublicRead"));
    let status = s3
        .get_bucket_policy_status()
        .bucket("site")
        .send()
        .await
        .unwrap();
    assert_eq!(
        status.policy_status().and_then(|p| p.is_public()),
        Some(true)
    );

    let url = format!(
        "{}/site/public/index.html",
        cluster.s3_url().trim_end_matches('/')
    );
    let got = raw_request(Method::GET, &url, &[], Bytes::new()).await;
    assert_eq!((got.status, &got.body[..]), (200, &b"<h1>hello</h1>"[..]));
    let head = raw_request(Method::HEAD, &url, &[], Bytes::new()).await;
    assert_eq!(head.status, 200);
    // Only GetObject, only under the prefix.
    assert_eq!(anonymous_get(&cluster, "/site/private/notes").await, 403);
    assert_eq!(anonymous_get(&cluster, "/site?list-type=2").await, 403);
    let put = raw_request(Method::PUT, &url, &[], Bytes::from_static(b"defaced")).await;
    assert_eq!(put.status, 403);
    let delete = raw_request(Method::DELETE, &url, &[], Bytes::new()).await;
    assert_eq!(delete.status, 403);
    assert_eq!(
        get_bytes(&s3, "site", "public/index.html").await,
        b"<h1>hello</h1>"
    );
    // With curl, as a browser or a CDN would fetch it.
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok()
    {
        let out = std::process::Command::new("curl")
            .args(["--silent", "--fail", "--max-time", "30", &url])
            .output()
            .expect("curl runs");
        assert!(
            out.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"<h1>hello</h1>");
    }

    // Deleting the policy closes the bucket again.
    s3.delete_bucket_policy()
        .bucket("site")
        .send()
        .await
        .unwrap();
    let page = "/site/public/index.html";
    anonymous_get_becomes(&cluster, page, 403, "a deleted policy stops public reads").await;
}

#[tokio::test]
async fn policies_outside_the_subset_are_refused_whole() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "strict").await;
    s3.put_bucket_policy()
        .bucket("strict")
        .policy(public_read_policy("strict", "a/"))
        .send()
        .await
        .unwrap();
    for bad in [
        "not json".to_owned(),
        json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::strict/*", "Condition": {"IpAddress": {}}}]})
        .to_string(),
        json!({"Statement": [{"Effect": "Allow", "Principal": "*", "NotAction": "s3:PutObject",
            "Resource": "arn:aws:s3:::strict/*"}]})
        .to_string(),
        public_read_policy("another-bucket", ""),
    ] {
        assert_s3_error(
            s3.put_bucket_policy()
                .bucket("strict")
                .policy(&bad)
                .send()
                .await,
            400,
            "MalformedPolicy",
        );
    }
    // The policy before is still the one in force.
    let stored = s3
        .get_bucket_policy()
        .bucket("strict")
        .send()
        .await
        .unwrap();
    assert!(stored.policy().unwrap().contains("strict/a/*"));
}

#[tokio::test]
async fn a_deny_wins_over_a_grant_and_an_allow_names_keys() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "mixed").await;
    put_bytes(&s3, "mixed", "open/a", b"a").await;
    put_bytes(&s3, "mixed", "secret/b", b"b").await;
    let (reader, reader_secret) = cluster.create_key("reader", json!({})).await;
    let (guest, guest_secret) = cluster.create_key("guest", json!({})).await;
    cluster
        .allow(
            "mixed",
            &reader,
            Grant {
                read: true,
                ..Grant::default()
            },
        )
        .await;
    let policy = json!({"Statement": [
        {"Effect": "Deny", "Principal": {"AWS": [reader.clone()]}, "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::mixed/secret/*"},
        {"Effect": "Allow", "Principal": {"AWS": [format!("arn:aws:iam::000000000000:user/{guest}")]},
         "Action": ["s3:GetObject", "s3:ListBucket"],
         "Resource": ["arn:aws:s3:::mixed", "arn:aws:s3:::mixed/open/*"]},
    ]})
    .to_string();
    s3.put_bucket_policy()
        .bucket("mixed")
        .policy(policy)
        .send()
        .await
        .unwrap();
    let status = s3
        .get_bucket_policy_status()
        .bucket("mixed")
        .send()
        .await
        .unwrap();
    assert_eq!(
        status.policy_status().and_then(|p| p.is_public()),
        Some(false)
    );
    let reader = cluster.client_with_keys(&reader, &reader_secret);
    assert_eq!(get_bytes(&reader, "mixed", "open/a").await, b"a");
    assert_s3_error(
        reader
            .get_object()
            .bucket("mixed")
            .key("secret/b")
            .send()
            .await,
        403,
        "AccessDenied",
    );
    let guest = cluster.client_with_keys(&guest, &guest_secret);
    assert_eq!(get_bytes(&guest, "mixed", "open/a").await, b"a");
    guest
        .list_objects_v2()
        .bucket("mixed")
        .send()
        .await
        .expect("the policy lets the guest list");
    assert_s3_error(
        guest
            .get_object()
            .bucket("mixed")
            .key("secret/b")
            .send()
            .await,
        403,
        "AccessDenied",
    );
    // Anonymous callers are not named by either statement.
    assert_eq!(anonymous_get(&cluster, "/mixed/open/a").await, 403);
}

#[tokio::test]
async fn a_public_read_bucket_acl_lets_anyone_list_it() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    s3.create_bucket()
        .bucket("listed")
        .acl(BucketCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    put_bytes(&s3, "listed", "k", b"object").await;
    let url = format!(
        "{}/listed?list-type=2",
        cluster.s3_url().trim_end_matches('/')
    );
    let listing = raw_request(Method::GET, &url, &[], Bytes::new()).await;
    assert_eq!(listing.status, 200, "{}", listing.text());
    assert!(listing.text().contains("<Key>k</Key>"));
    // The bucket ACL opens the listing, not the objects.
    assert_eq!(anonymous_get(&cluster, "/listed/k").await, 403);
    let acl = s3.get_bucket_acl().bucket("listed").send().await.unwrap();
    assert!(
        acl.grants().iter().any(|g| g
            .grantee()
            .and_then(|e| e.uri())
            .is_some_and(|u| u.ends_with("AllUsers"))),
        "{acl:?}"
    );
    s3.put_bucket_acl()
        .bucket("listed")
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_get(&cluster, "/listed?list-type=2").await, 403);
}

#[tokio::test]
async fn public_access_block_refuses_and_neutralises_public_settings() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "blocked").await;
    put_bytes(&s3, "blocked", "k", b"object").await;
    let block = |acls: bool, policy: bool, restrict: bool| {
        PublicAccessBlockConfiguration::builder()
            .block_public_acls(acls)
            .ignore_public_acls(acls)
            .block_public_policy(policy)
            .restrict_public_buckets(restrict)
            .build()
    };
    s3.put_public_access_block()
        .bucket("blocked")
        .public_access_block_configuration(block(true, true, false))
        .send()
        .await
        .unwrap();
    let got = s3
        .get_public_access_block()
        .bucket("blocked")
        .send()
        .await
        .unwrap();
    let config = got.public_access_block_configuration().unwrap();
    assert_eq!(config.block_public_policy(), Some(true));
    assert_eq!(config.restrict_public_buckets(), Some(false));
    assert_s3_error(
        s3.put_bucket_policy()
            .bucket("blocked")
            .policy(public_read_policy("blocked", ""))
            .send()
            .await,
        403,
        "AccessDenied",
    );
    assert_s3_error(
        s3.put_bucket_acl()
            .bucket("blocked")
            .acl(BucketCannedAcl::PublicRead)
            .send()
            .await,
        403,
        "AccessDenied",
    );
    // A public policy stored before RestrictPublicBuckets grants nothing once it is set.
    s3.put_public_access_block()
        .bucket("blocked")
        .public_access_block_configuration(block(false, false, false))
        .send()
        .await
        .unwrap();
    s3.put_bucket_policy()
        .bucket("blocked")
        .policy(public_read_policy("blocked", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_get(&cluster, "/blocked/k").await, 200);
    s3.put_public_access_block()
        .bucket("blocked")
        .public_access_block_configuration(block(false, false, true))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_get(&cluster, "/blocked/k").await, 403);
    s3.delete_public_access_block()
        .bucket("blocked")
        .send()
        .await
        .unwrap();
    assert_s3_error(
        s3.get_public_access_block().bucket("blocked").send().await,
        404,
        "NoSuchPublicAccessBlockConfiguration",
    );
    assert_eq!(anonymous_get(&cluster, "/blocked/k").await, 200);
}

/// Whether the version's ACL, as GetObjectAcl shows it, grants everyone READ.
async fn shows_public(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> bool {
    let acl = s3
        .get_object_acl()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .send()
        .await
        .unwrap();
    acl.grants().iter().any(|g| {
        g.grantee()
            .and_then(|e| e.uri())
            .is_some_and(|u| u.ends_with("/global/AllUsers"))
            && g.permission() == Some(&aws_sdk_s3::types::Permission::Read)
    })
}

#[tokio::test]
async fn a_public_read_object_acl_opens_that_version_to_anyone_and_nothing_else() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "assets").await;
    set_versioning(&s3, "assets", BucketVersioningStatus::Enabled).await;
    let first = s3
        .put_object()
        .bucket("assets")
        .key("logo")
        .body(ByteStream::from_static(b"v1"))
        .send()
        .await
        .unwrap();
    let v1 = first.version_id().unwrap().to_owned();
    let second = s3
        .put_object()
        .bucket("assets")
        .key("logo")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"v2"))
        .send()
        .await
        .unwrap();
    let v2 = second.version_id().unwrap().to_owned();
    put_bytes(&s3, "assets", "private", b"secret").await;

    let base = cluster.s3_url().trim_end_matches('/').to_owned();
    let got = raw_request(
        Method::GET,
        &format!("{base}/assets/logo"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!((got.status, &got.body[..]), (200, &b"v2"[..]));
    let head = raw_request(
        Method::HEAD,
        &format!("{base}/assets/logo"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(head.status, 200);
    assert!(shows_public(&s3, "assets", "logo", Some(&v2)).await);
    assert!(!shows_public(&s3, "assets", "logo", Some(&v1)).await);
    // The other version, other keys, missing keys, listings and writes stay closed, and a
    // closed answer tells nothing about what exists.
    for path in [
        format!("/assets/logo?versionId={v1}"),
        "/assets/private".to_owned(),
        "/assets/missing".to_owned(),
        "/assets?list-type=2".to_owned(),
        "/assets/logo?acl".to_owned(),
        "/assets/logo?tagging".to_owned(),
    ] {
        assert_eq!(anonymous_get(&cluster, &path).await, 403, "{path}");
    }
    let put = raw_request(
        Method::PUT,
        &format!("{base}/assets/logo"),
        &[],
        Bytes::from_static(b"x"),
    )
    .await;
    assert_eq!(put.status, 403);

    // PutObjectAcl opens an older version; a key without any grant reads public versions
    // like anyone, and nothing more.
    s3.put_object_acl()
        .bucket("assets")
        .key("logo")
        .version_id(&v1)
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    assert_eq!(
        anonymous_get(&cluster, &format!("/assets/logo?versionId={v1}")).await,
        200
    );
    let (guest_id, guest_secret) = cluster.create_key("guest", json!({})).await;
    let guest = cluster.client_with_keys(&guest_id, &guest_secret);
    assert_eq!(get_bytes(&guest, "assets", "logo").await, b"v2");
    assert_s3_error(
        guest
            .get_object()
            .bucket("assets")
            .key("private")
            .send()
            .await,
        403,
        "AccessDenied",
    );
    assert_s3_status(
        guest
            .head_object()
            .bucket("assets")
            .key("missing")
            .send()
            .await,
        403,
    );
    assert_s3_error(
        guest.list_objects_v2().bucket("assets").send().await,
        403,
        "AccessDenied",
    );
    // It may copy a public version into a bucket it writes, and no private one.
    create_bucket(&s3, "drop").await;
    let write = Grant {
        write: true,
        ..Grant::default()
    };
    cluster.allow("drop", &guest_id, write).await;
    guest
        .copy_object()
        .bucket("drop")
        .key("logo")
        .copy_source("assets/logo")
        .send()
        .await
        .expect("a public version is a copy source for anyone");
    assert_eq!(get_bytes(&s3, "drop", "logo").await, b"v2");
    // Writing is not publishing: that takes the owner permission.
    assert_s3_error(
        guest
            .put_object_acl()
            .bucket("drop")
            .key("logo")
            .acl(ObjectCannedAcl::PublicRead)
            .send()
            .await,
        403,
        "AccessDenied",
    );
    assert_s3_error(
        guest
            .put_object()
            .bucket("drop")
            .key("published")
            .acl(ObjectCannedAcl::PublicRead)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        403,
        "AccessDenied",
    );
    guest
        .put_object_acl()
        .bucket("drop")
        .key("logo")
        .acl(ObjectCannedAcl::Private)
        .send()
        .await
        .expect("a private ACL is the writer's to set");
    assert_eq!(anonymous_get(&cluster, "/drop/logo").await, 403);
    assert_s3_error(
        guest
            .copy_object()
            .bucket("drop")
            .key("private")
            .copy_source("assets/private")
            .send()
            .await,
        403,
        "AccessDenied",
    );

    // A copy starts private unless the request says otherwise (S3 does not copy ACLs), and
    // so does a multipart upload.
    s3.copy_object()
        .bucket("assets")
        .key("copy")
        .copy_source("assets/logo")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_get(&cluster, "/assets/copy").await, 403);
    s3.copy_object()
        .bucket("assets")
        .key("copy")
        .copy_source("assets/logo")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_get(&cluster, "/assets/copy").await, 200);
    let upload = s3
        .create_multipart_upload()
        .bucket("assets")
        .key("big")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let part = s3
        .upload_part()
        .bucket("assets")
        .key("big")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"multipart body"))
        .send()
        .await
        .unwrap();
    s3.complete_multipart_upload()
        .bucket("assets")
        .key("big")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let big = raw_request(
        Method::GET,
        &format!("{base}/assets/big"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!((big.status, &big.body[..]), (200, &b"multipart body"[..]));

    // Closing the ACL, or a delete marker on top, closes the key; tags do not touch it.
    s3.put_object_tagging()
        .bucket("assets")
        .key("logo")
        .tagging(
            aws_sdk_s3::types::Tagging::builder()
                .tag_set(
                    aws_sdk_s3::types::Tag::builder()
                        .key("t")
                        .value("1")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(shows_public(&s3, "assets", "logo", None).await);
    s3.put_object_acl()
        .bucket("assets")
        .key("logo")
        .acl(ObjectCannedAcl::Private)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_get(&cluster, "/assets/logo").await, 403);
    s3.delete_object()
        .bucket("assets")
        .key("copy")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous_get(&cluster, "/assets/copy").await, 403);
}

#[tokio::test]
async fn public_access_block_refuses_and_ignores_public_object_acls() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "guarded").await;
    s3.put_object()
        .bucket("guarded")
        .key("open")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"open"))
        .send()
        .await
        .unwrap();
    put_bytes(&s3, "guarded", "closed", b"closed").await;
    assert_eq!(anonymous_get(&cluster, "/guarded/open").await, 200);
    let block = |block: bool, ignore: bool| {
        PublicAccessBlockConfiguration::builder()
            .block_public_acls(block)
            .ignore_public_acls(ignore)
            .build()
    };
    s3.put_public_access_block()
        .bucket("guarded")
        .public_access_block_configuration(block(true, false))
        .send()
        .await
        .unwrap();
    assert_s3_error(
        s3.put_object_acl()
            .bucket("guarded")
            .key("closed")
            .acl(ObjectCannedAcl::PublicRead)
            .send()
            .await,
        403,
        "AccessDenied",
    );
    assert_s3_error(
        s3.put_object()
            .bucket("guarded")
            .key("new")
            .acl(ObjectCannedAcl::PublicRead)
            .body(ByteStream::from_static(b"new"))
            .send()
            .await,
        403,
        "AccessDenied",
    );
    assert_s3_status(
        s3.head_object().bucket("guarded").key("new").send().await,
        404,
    );
    // Blocking new public ACLs leaves the stored one in force; ignoring them does not.
    assert_eq!(anonymous_get(&cluster, "/guarded/open").await, 200);
    s3.put_public_access_block()
        .bucket("guarded")
        .public_access_block_configuration(block(false, true))
        .send()
        .await
        .unwrap();
    anonymous_get_becomes(&cluster, "/guarded/open", 403, "IgnorePublicAcls closes it").await;
    s3.delete_public_access_block()
        .bucket("guarded")
        .send()
        .await
        .unwrap();
    anonymous_get_becomes(
        &cluster,
        "/guarded/open",
        200,
        "no PublicAccessBlock opens it",
    )
    .await;
    assert_eq!(anonymous_get(&cluster, "/guarded/closed").await, 403);
}
