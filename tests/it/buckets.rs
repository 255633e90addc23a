//! Bucket operations through the gateway: lifecycle, name validation and the errors S3
//! clients expect for missing, existing and non-empty buckets.

use crate::harness::*;

#[tokio::test]
async fn bucket_create_head_list_delete_round_trip() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();

    for bucket in ["alpha", "beta-2", "gamma.dotted"] {
        create_bucket(&s3, bucket).await;
    }
    s3.head_bucket().bucket("alpha").send().await.unwrap();

    let listed = s3.list_buckets().send().await.unwrap();
    let mut names: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    names.sort();
    assert_eq!(names, ["alpha", "beta-2", "gamma.dotted"]);
    for b in listed.buckets() {
        assert!(b.creation_date().is_some(), "no creation date: {b:?}");
    }

    s3.delete_bucket().bucket("beta-2").send().await.unwrap();
    assert_s3_status(s3.head_bucket().bucket("beta-2").send().await, 404);
    let listed = s3.list_buckets().send().await.unwrap();
    let mut names: Vec<&str> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    names.sort();
    assert_eq!(names, ["alpha", "gamma.dotted"]);

    // A deleted bucket can be created again, empty.
    create_bucket(&s3, "beta-2").await;
    let objects = s3.list_objects_v2().bucket("beta-2").send().await.unwrap();
    assert!(objects.contents().is_empty());
}

#[tokio::test]
async fn deleting_a_non_empty_bucket_is_bucket_not_empty() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "full").await;
    put_bytes(&s3, "full", "dir/one", b"1").await;

    assert_s3_error(
        s3.delete_bucket().bucket("full").send().await,
        409,
        "BucketNotEmpty",
    );
    // Refused means unchanged: the bucket and its object are still there.
    s3.head_bucket().bucket("full").send().await.unwrap();
    assert_eq!(get_bytes(&s3, "full", "dir/one").await, b"1");

    // Once empty, it goes.
    s3.delete_object()
        .bucket("full")
        .key("dir/one")
        .send()
        .await
        .unwrap();
    s3.delete_bucket().bucket("full").send().await.unwrap();
    assert_s3_status(s3.head_bucket().bucket("full").send().await, 404);
}

#[tokio::test]
async fn invalid_bucket_names_are_refused() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    let too_long = "a".repeat(64);
    let names = [
        "Ab",
        "a",
        "ab",
        "-bad-",
        "bad-",
        "a..b",
        "192.168.1.1",
        "under_score",
        "UPPER",
        too_long.as_str(),
    ];
    for name in names {
        let f = failure(s3.create_bucket().bucket(name).send().await);
        assert_eq!(
            (f.status, f.code.as_deref()),
            (Some(400), Some("InvalidBucketName")),
            "bucket name {name:?}: {}",
            f.debug
        );
    }
    // None of them exists afterwards.
    let listed = s3.list_buckets().send().await.unwrap();
    assert!(listed.buckets().is_empty(), "{:?}", listed.buckets());

    // The limits themselves are valid names.
    let longest = "b".repeat(63);
    for name in ["abc", "a-b.c9", longest.as_str()] {
        create_bucket(&s3, name).await;
    }
}

#[tokio::test]
async fn head_and_delete_of_a_missing_bucket_are_404_no_such_bucket() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    let err = s3
        .head_bucket()
        .bucket("nowhere")
        .send()
        .await
        .expect_err("head of a missing bucket");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(404));
    assert!(
        err.as_service_error().is_some_and(|e| e.is_not_found()),
        "{err:?}"
    );
    assert_s3_error(
        s3.delete_bucket().bucket("nowhere").send().await,
        404,
        "NoSuchBucket",
    );
    assert_s3_error(
        s3.list_objects_v2().bucket("nowhere").send().await,
        404,
        "NoSuchBucket",
    );
}

#[tokio::test]
async fn get_bucket_location_answers_for_existing_buckets_only() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "located").await;
    let out = s3
        .get_bucket_location()
        .bucket("located")
        .send()
        .await
        .unwrap();
    // us-east-1 is reported as an empty constraint by S3; accept either spelling.
    let location = out.location_constraint().map(|l| l.as_str().to_string());
    assert!(
        matches!(location.as_deref(), None | Some("") | Some("us-east-1")),
        "unexpected location {location:?}"
    );
    assert_s3_error(
        s3.get_bucket_location().bucket("absent").send().await,
        404,
        "NoSuchBucket",
    );
}

#[tokio::test]
async fn a_bucket_named_like_an_admin_route_works_on_the_s3_port() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    for bucket in ["metrics", "health"] {
        create_bucket(&s3, bucket).await;
        put_bytes(&s3, bucket, "k", bucket.as_bytes()).await;
        assert_eq!(get_bytes(&s3, bucket, "k").await, bucket.as_bytes());
    }
}
