//! CompleteMultipartUpload retried after it succeeded, as SDKs do when the first answer is
//! lost: the retry gets the first answer again (ETag, version id, checksum) and writes
//! nothing, while a different part list, or an upload that never existed, is NoSuchUpload.

use aws_sdk_s3::types::CompletedMultipartUpload;
use aws_sdk_s3::types::{BucketVersioningStatus, ChecksumAlgorithm, CompletedPart};

use crate::harness::*;
use crate::multipart::{MIB, completed, create, upload_part};
use crate::versioning::set_versioning;

#[tokio::test]
async fn a_completion_retried_after_success_gets_the_same_answer_and_writes_nothing() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "mpu").await;
    for versioned in [false, true] {
        if versioned {
            set_versioning(&s3, "mpu", BucketVersioningStatus::Enabled).await;
        }
        let key = format!("retried-{versioned}");
        let id = create(&s3, &key).await;
        let (a, b) = (pattern(5 * MIB, 1), pattern(1000, 2));
        let ea = upload_part(&s3, &key, &id, 1, &a).await;
        let eb = upload_part(&s3, &key, &id, 2, &b).await;
        let complete = |parts: CompletedMultipartUpload| {
            s3.complete_multipart_upload()
                .bucket("mpu")
                .key(&key)
                .upload_id(&id)
                .multipart_upload(parts)
                .send()
        };
        let first = complete(completed(&[(1, &ea), (2, &eb)])).await.unwrap();
        assert_eq!(first.version_id().is_some(), versioned);
        for _ in 0..2 {
            let again = complete(completed(&[(1, &ea), (2, &eb)]))
                .await
                .expect("a retried completion succeeds");
            assert_eq!(again.e_tag(), first.e_tag());
            assert_eq!(again.version_id(), first.version_id());
        }
        assert_s3_error(complete(completed(&[(1, &ea)])).await, 404, "NoSuchUpload");
        let versions = s3
            .list_object_versions()
            .bucket("mpu")
            .prefix(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(versions.versions().len(), 1, "retries wrote nothing");
        assert_eq!(get_bytes(&s3, "mpu", &key).await, [a, b].concat());
    }
    let uploads = s3
        .list_multipart_uploads()
        .bucket("mpu")
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty(), "{uploads:?}");
    assert_s3_error(
        s3.complete_multipart_upload()
            .bucket("mpu")
            .key("never")
            .upload_id("no-such-upload")
            .multipart_upload(completed(&[(1, "\"0\"")]))
            .send()
            .await,
        404,
        "NoSuchUpload",
    );
}

#[tokio::test]
async fn a_retried_completion_repeats_the_object_checksum() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "mpu").await;
    let id = s3
        .create_multipart_upload()
        .bucket("mpu")
        .key("summed")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let part = s3
        .upload_part()
        .bucket("mpu")
        .key("summed")
        .upload_id(&id)
        .part_number(1)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(pattern(1000, 3).into())
        .send()
        .await
        .unwrap();
    let parts = CompletedMultipartUpload::builder()
        .parts(
            CompletedPart::builder()
                .part_number(1)
                .e_tag(part.e_tag().unwrap())
                .checksum_crc32(part.checksum_crc32().unwrap())
                .build(),
        )
        .build();
    let complete = || {
        s3.complete_multipart_upload()
            .bucket("mpu")
            .key("summed")
            .upload_id(&id)
            .multipart_upload(parts.clone())
            .send()
    };
    let first = complete().await.unwrap();
    assert!(first.checksum_crc32().is_some(), "{first:?}");
    let again = complete().await.unwrap();
    assert_eq!(again.checksum_crc32(), first.checksum_crc32());
    assert_eq!(again.checksum_type(), first.checksum_type());
    assert_eq!(again.e_tag(), first.e_tag());
}
