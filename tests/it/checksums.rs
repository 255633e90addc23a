//! Every S3 checksum algorithm on single uploads (computed by the SDK and sent in the
//! aws-chunked trailer, or given as a header), multipart COMPOSITE and FULL_OBJECT
//! checksums, and GetObjectAttributes. Reads with checksum mode make the SDK check the
//! returned checksum against the body it received, so a wrong stored value fails there.

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
    ObjectAttributes,
};

use crate::harness::*;

const MIB: usize = 1024 * 1024;
const ALGORITHMS: [ChecksumAlgorithm; 5] = [
    ChecksumAlgorithm::Crc32,
    ChecksumAlgorithm::Crc32C,
    ChecksumAlgorithm::Crc64Nvme,
    ChecksumAlgorithm::Sha1,
    ChecksumAlgorithm::Sha256,
];

/// The checksum of `alg` in any output type with the five `checksum_*` getters.
macro_rules! checksum_of {
    ($out:expr, $alg:expr) => {
        match $alg {
            ChecksumAlgorithm::Crc32 => $out.checksum_crc32(),
            ChecksumAlgorithm::Crc32C => $out.checksum_crc32_c(),
            ChecksumAlgorithm::Crc64Nvme => $out.checksum_crc64_nvme(),
            ChecksumAlgorithm::Sha1 => $out.checksum_sha1(),
            _ => $out.checksum_sha256(),
        }
        .map(str::to_owned)
    };
}

/// GET with checksum mode: the SDK validates the body against the returned checksum.
async fn get_validated(s3: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

async fn head_with_checksums(s3: &Client, bucket: &str, key: &str) -> HeadObjectOutput {
    s3.head_object()
        .bucket(bucket)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap_or_else(|e| panic!("head {key}: {e:?}"))
}

#[tokio::test]
async fn every_algorithm_in_trailer_and_header_form_and_wrong_values_are_bad_digest() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "sums").await;
    for alg in ALGORITHMS {
        for size in [100, 200 * 1024] {
            let data = pattern(size, size as u64);
            let key = format!("{}/{size}", alg.as_str());
            // The SDK computes the checksum while streaming and sends it as a trailer.
            let put = s3
                .put_object()
                .bucket("sums")
                .key(&key)
                .checksum_algorithm(alg.clone())
                .body(ByteStream::from(data.clone()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{key}: {e:?}"));
            let value = checksum_of!(put, &alg).expect("checksum echoed");
            assert_same_bytes(&get_validated(&s3, "sums", &key).await, &data, &key);
            let head = head_with_checksums(&s3, "sums", &key).await;
            assert_eq!(checksum_of!(head, &alg), Some(value.clone()), "{key}");
            assert_eq!(head.checksum_type(), Some(&ChecksumType::FullObject));

            // The same value as a header is accepted; a wrong one stores nothing.
            let header_key = format!("{key}-header");
            let with_header = |v: &str| {
                let b = s3.put_object().bucket("sums").key(&header_key);
                let b = match alg {
                    ChecksumAlgorithm::Crc32 => b.checksum_crc32(v),
                    ChecksumAlgorithm::Crc32C => b.checksum_crc32_c(v),
                    ChecksumAlgorithm::Crc64Nvme => b.checksum_crc64_nvme(v),
                    ChecksumAlgorithm::Sha1 => b.checksum_sha1(v),
                    _ => b.checksum_sha256(v),
                };
                b.body(ByteStream::from(data.clone())).send()
            };
            let other = s3
                .put_object()
                .bucket("sums")
                .key(format!("{key}-other"))
                .checksum_algorithm(alg.clone())
                .body(ByteStream::from(pattern(size, 999)))
                .send()
                .await
                .unwrap();
            let wrong = checksum_of!(other, &alg).unwrap();
            assert_s3_error(with_header(&wrong).await, 400, "BadDigest");
            assert_s3_error(
                s3.head_object()
                    .bucket("sums")
                    .key(&header_key)
                    .send()
                    .await,
                404,
                "NotFound",
            );
            with_header(&value)
                .await
                .unwrap_or_else(|e| panic!("{header_key}: {e:?}"));
            assert_same_bytes(
                &get_validated(&s3, "sums", &header_key).await,
                &data,
                &header_key,
            );
        }
    }
}

/// Uploads `parts` with `alg` checksums and returns the completed parts list.
async fn upload_parts(
    s3: &Client,
    key: &str,
    id: &str,
    alg: &ChecksumAlgorithm,
    parts: &[Vec<u8>],
) -> Vec<CompletedPart> {
    let mut done = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket("mpsums")
            .key(key)
            .upload_id(id)
            .part_number(n)
            .checksum_algorithm(alg.clone())
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("part {n}: {e:?}"));
        let sum = checksum_of!(out, alg).expect("part checksum echoed");
        let part = CompletedPart::builder()
            .part_number(n)
            .e_tag(out.e_tag().unwrap());
        done.push(
            match alg {
                ChecksumAlgorithm::Crc32 => part.checksum_crc32(sum),
                ChecksumAlgorithm::Crc32C => part.checksum_crc32_c(sum),
                ChecksumAlgorithm::Crc64Nvme => part.checksum_crc64_nvme(sum),
                ChecksumAlgorithm::Sha1 => part.checksum_sha1(sum),
                _ => part.checksum_sha256(sum),
            }
            .build(),
        );
    }
    done
}

#[tokio::test]
async fn multipart_composite_and_full_object_checksums() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "mpsums").await;
    let parts = vec![pattern(5 * MIB, 1), pattern(5 * MIB, 2), pattern(1234, 3)];
    let whole: Vec<u8> = parts.concat();
    let cases = [
        (ChecksumAlgorithm::Crc32, ChecksumType::FullObject),
        (ChecksumAlgorithm::Crc32C, ChecksumType::FullObject),
        (ChecksumAlgorithm::Crc64Nvme, ChecksumType::FullObject),
        (ChecksumAlgorithm::Crc32, ChecksumType::Composite),
        (ChecksumAlgorithm::Sha256, ChecksumType::Composite),
    ];
    for (alg, kind) in cases {
        let key = format!("{}-{}", alg.as_str(), kind.as_str());
        let created = s3
            .create_multipart_upload()
            .bucket("mpsums")
            .key(&key)
            .checksum_algorithm(alg.clone())
            .checksum_type(kind.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(created.checksum_algorithm(), Some(&alg));
        assert_eq!(created.checksum_type(), Some(&kind));
        let id = created.upload_id().unwrap();
        let done = upload_parts(&s3, &key, id, &alg, &parts).await;

        // A part checksum that is not the uploaded part's: InvalidPart.
        let mut tampered = done.clone();
        tampered[1] = CompletedPart::builder()
            .part_number(2)
            .e_tag(done[1].e_tag().unwrap())
            .set_checksum_crc32(done[0].checksum_crc32().map(str::to_owned))
            .set_checksum_crc32_c(done[0].checksum_crc32_c().map(str::to_owned))
            .set_checksum_crc64_nvme(done[0].checksum_crc64_nvme().map(str::to_owned))
            .set_checksum_sha256(done[0].checksum_sha256().map(str::to_owned))
            .build();
        let refused = s3
            .complete_multipart_upload()
            .bucket("mpsums")
            .key(&key)
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(tampered))
                    .build(),
            )
            .send()
            .await;
        assert_s3_error(refused, 400, "InvalidPart");

        let complete = s3
            .complete_multipart_upload()
            .bucket("mpsums")
            .key(&key)
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done))
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {e:?}"));
        assert_eq!(complete.checksum_type(), Some(&kind), "{key}");
        let value = checksum_of!(complete, &alg).expect("object checksum");
        assert_eq!(
            value.ends_with("-3"),
            kind == ChecksumType::Composite,
            "{key}: {value}"
        );
        // For FULL_OBJECT the SDK checks the CRC of the whole body it reads.
        assert_same_bytes(&get_validated(&s3, "mpsums", &key).await, &whole, &key);
        let head = head_with_checksums(&s3, "mpsums", &key).await;
        assert_eq!(checksum_of!(head, &alg), Some(value.clone()), "{key}");
        assert_eq!(head.checksum_type(), Some(&kind));

        let attrs = s3
            .get_object_attributes()
            .bucket("mpsums")
            .key(&key)
            .object_attributes(ObjectAttributes::Checksum)
            .object_attributes(ObjectAttributes::ObjectParts)
            .object_attributes(ObjectAttributes::ObjectSize)
            .object_attributes(ObjectAttributes::Etag)
            .max_parts(2)
            .send()
            .await
            .unwrap();
        assert_eq!(attrs.object_size(), Some(whole.len() as i64));
        assert!(
            attrs
                .e_tag()
                .is_some_and(|e| e.trim_matches('"').ends_with("-3"))
        );
        let sum = attrs.checksum().expect("checksum attribute");
        assert_eq!(checksum_of!(sum, &alg), Some(value), "{key}");
        let listed = attrs.object_parts().expect("parts attribute");
        assert_eq!(listed.total_parts_count(), Some(3));
        assert_eq!(listed.is_truncated(), Some(true));
        let sizes: Vec<Option<i64>> = listed.parts().iter().map(|p| p.size()).collect();
        assert_eq!(sizes, [Some(5 * MIB as i64), Some(5 * MIB as i64)]);
        assert!(
            listed
                .parts()
                .iter()
                .all(|p| checksum_of!(p, &alg).is_some())
        );
    }

    // A full-object checksum claimed on completion must match the combined one.
    let key = "claimed";
    let id = s3
        .create_multipart_upload()
        .bucket("mpsums")
        .key(key)
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let done = upload_parts(&s3, key, &id, &ChecksumAlgorithm::Crc64Nvme, &parts[..1]).await;
    let wrong = s3
        .complete_multipart_upload()
        .bucket("mpsums")
        .key(key)
        .upload_id(&id)
        .checksum_crc64_nvme("AAAAAAAAAAA=")
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await;
    assert_s3_error(wrong, 400, "BadDigest");
}

#[tokio::test]
async fn object_attributes_of_a_single_part_object() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "attrs").await;
    let data = pattern(70_000, 5);
    s3.put_object()
        .bucket("attrs")
        .key("k")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let attrs = s3
        .get_object_attributes()
        .bucket("attrs")
        .key("k")
        .object_attributes(ObjectAttributes::Etag)
        .object_attributes(ObjectAttributes::ObjectSize)
        .object_attributes(ObjectAttributes::StorageClass)
        .object_attributes(ObjectAttributes::Checksum)
        .send()
        .await
        .unwrap();
    assert_eq!(attrs.object_size(), Some(70_000));
    assert_eq!(
        attrs.e_tag().map(|e| e.trim_matches('"').to_owned()),
        Some(md5_hex(&data))
    );
    assert!(attrs.storage_class().is_some());
    assert!(attrs.object_parts().is_none());
    assert!(attrs.checksum().and_then(|c| c.checksum_sha256()).is_some());
    let missing = s3
        .get_object_attributes()
        .bucket("attrs")
        .key("nope")
        .object_attributes(ObjectAttributes::Etag)
        .send()
        .await;
    assert_s3_error(missing, 404, "NoSuchKey");
}
