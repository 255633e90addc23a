//! ACLs: the owner's FULL_CONTROL ACL, and READ for everyone (`public-read`) on buckets
//! and object versions; granting anything else is AccessControlListNotSupported.
//! Policies and public access: `public.rs`.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AccessControlPolicy, BucketCannedAcl, Grant, Grantee, ObjectCannedAcl, Owner, Permission, Type,
};

use crate::harness::*;

#[tokio::test]
async fn acls_show_the_owner_and_refuse_anything_public() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    s3.create_bucket()
        .bucket("acl")
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket("acl")
        .key("k")
        .acl(ObjectCannedAcl::Private)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let owner = s3.list_buckets().send().await.unwrap().owner().cloned();
    let owner = owner.expect("ListBuckets has an owner");

    let bucket_acl = s3.get_bucket_acl().bucket("acl").send().await.unwrap();
    let object_acl = s3
        .get_object_acl()
        .bucket("acl")
        .key("k")
        .send()
        .await
        .unwrap();
    for (what, acl_owner, grants) in [
        ("bucket", bucket_acl.owner(), bucket_acl.grants()),
        ("object", object_acl.owner(), object_acl.grants()),
    ] {
        assert_eq!(acl_owner.and_then(|o| o.id()), owner.id(), "{what}");
        assert_eq!(
            acl_owner.and_then(|o| o.display_name()),
            owner.display_name(),
            "{what}"
        );
        assert_eq!(grants.len(), 1, "{what}: {grants:?}");
        let grantee = grants[0].grantee().expect("grantee");
        assert_eq!(grantee.r#type(), &Type::CanonicalUser, "{what}");
        assert_eq!(grantee.id(), owner.id(), "{what}");
        assert_eq!(grants[0].permission(), Some(&Permission::FullControl));
    }

    // Setting the ACL it already has is accepted, by canned name or by policy.
    s3.put_bucket_acl()
        .bucket("acl")
        .acl(BucketCannedAcl::Private)
        .send()
        .await
        .unwrap();
    let owner_only = AccessControlPolicy::builder()
        .owner(
            Owner::builder()
                .id(owner.id().unwrap())
                .display_name(owner.display_name().unwrap())
                .build(),
        )
        .grants(
            Grant::builder()
                .grantee(
                    Grantee::builder()
                        .r#type(Type::CanonicalUser)
                        .id(owner.id().unwrap())
                        .build()
                        .unwrap(),
                )
                .permission(Permission::FullControl)
                .build(),
        )
        .build();
    s3.put_object_acl()
        .bucket("acl")
        .key("k")
        .access_control_policy(owner_only)
        .send()
        .await
        .unwrap();
    s3.put_object_acl()
        .bucket("acl")
        .key("k")
        .acl(ObjectCannedAcl::Private)
        .send()
        .await
        .unwrap();

    // Anything granting access to someone else than everyone's READ is refused (see
    // `public.rs` for public-read).
    let grant = |grantee: Grantee, permission: Permission| {
        AccessControlPolicy::builder()
            .grants(
                Grant::builder()
                    .grantee(grantee)
                    .permission(permission)
                    .build(),
            )
            .build()
    };
    let everyone = || {
        Grantee::builder()
            .r#type(Type::Group)
            .uri("http://acs.amazonaws.com/groups/global/AllUsers")
            .build()
            .unwrap()
    };
    let someone = Grantee::builder()
        .r#type(Type::CanonicalUser)
        .id("another-canonical-user")
        .build()
        .unwrap();
    for refused in [
        grant(everyone(), Permission::Write),
        grant(everyone(), Permission::FullControl),
        grant(someone, Permission::Read),
    ] {
        assert_s3_error(
            s3.put_object_acl()
                .bucket("acl")
                .key("k")
                .access_control_policy(refused)
                .send()
                .await,
            400,
            "AccessControlListNotSupported",
        );
    }
    assert_s3_error(
        s3.put_object_acl()
            .bucket("acl")
            .key("k")
            .grant_read("id=\"another-canonical-user\"")
            .send()
            .await,
        400,
        "AccessControlListNotSupported",
    );
    assert_s3_error(
        s3.put_object_acl()
            .bucket("acl")
            .key("k")
            .acl(ObjectCannedAcl::PublicRead)
            .grant_read("uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"")
            .send()
            .await,
        400,
        "InvalidRequest",
    );
    assert_s3_error(
        s3.put_object()
            .bucket("acl")
            .key("public")
            .acl(ObjectCannedAcl::PublicReadWrite)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        400,
        "AccessControlListNotSupported",
    );
    assert_s3_error(
        s3.copy_object()
            .bucket("acl")
            .key("public")
            .copy_source("acl/k")
            .acl(ObjectCannedAcl::AuthenticatedRead)
            .send()
            .await,
        400,
        "AccessControlListNotSupported",
    );
    let still = s3
        .get_object_acl()
        .bucket("acl")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(still.grants().len(), 1, "a refused ACL changed nothing");
    assert_s3_error(
        s3.create_multipart_upload()
            .bucket("acl")
            .key("public")
            .acl(ObjectCannedAcl::AuthenticatedRead)
            .send()
            .await,
        400,
        "AccessControlListNotSupported",
    );
    assert_s3_status(
        s3.head_object().bucket("acl").key("public").send().await,
        404,
    );
    assert_s3_error(
        s3.create_bucket()
            .bucket("public-bucket")
            .acl(BucketCannedAcl::PublicReadWrite)
            .send()
            .await,
        400,
        "AccessControlListNotSupported",
    );

    // Missing bucket or key.
    assert_s3_error(
        s3.get_bucket_acl().bucket("nope").send().await,
        404,
        "NoSuchBucket",
    );
    assert_s3_error(
        s3.get_object_acl().bucket("acl").key("nope").send().await,
        404,
        "NoSuchKey",
    );
    assert_s3_error(
        s3.put_object_acl()
            .bucket("nope")
            .key("k")
            .acl(ObjectCannedAcl::Private)
            .send()
            .await,
        404,
        "NoSuchBucket",
    );
}

#[tokio::test]
async fn a_new_bucket_has_no_policy_and_no_public_access_block() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "closed").await;
    assert_s3_error(
        s3.get_bucket_policy_status().bucket("closed").send().await,
        404,
        "NoSuchBucketPolicy",
    );
    assert_s3_error(
        s3.get_public_access_block().bucket("closed").send().await,
        404,
        "NoSuchPublicAccessBlockConfiguration",
    );
    assert_s3_error(
        s3.get_bucket_policy().bucket("closed").send().await,
        404,
        "NoSuchBucketPolicy",
    );
    assert_s3_error(
        s3.get_bucket_policy_status().bucket("nope").send().await,
        404,
        "NoSuchBucket",
    );
}
