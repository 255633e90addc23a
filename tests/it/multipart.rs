//! Multipart uploads as aws-cli, boto3 and rclone drive them: parts uploaded out of order,
//! a re-uploaded part, completion with the S3 multipart ETag, reads across part
//! boundaries, and the errors S3 gives for bad part lists.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use md5::{Digest, Md5};

use crate::harness::*;

pub(crate) const MIB: usize = 1024 * 1024;

pub(crate) async fn upload_part(s3: &Client, key: &str, id: &str, n: i32, data: &[u8]) -> String {
    s3.upload_part()
        .bucket("mpu")
        .key(key)
        .upload_id(id)
        .part_number(n)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("upload part {n}: {e:?}"))
        .e_tag()
        .expect("part etag")
        .to_owned()
}

pub(crate) fn completed(parts: &[(i32, &str)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts
                .iter()
                .map(|(n, e)| CompletedPart::builder().part_number(*n).e_tag(*e).build())
                .collect(),
        ))
        .build()
}

pub(crate) async fn create(s3: &Client, key: &str) -> String {
    s3.create_multipart_upload()
        .bucket("mpu")
        .key(key)
        .content_type("application/x-test")
        .metadata("origin", "multipart")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn parts_uploaded_out_of_order_complete_into_one_object() {
    let cluster = Cluster::start(3).await;
    for s3 in [cluster.client(), cluster.client_when_required()] {
        create_bucket(&s3, "mpu").await;
        let parts = [
            pattern(5 * MIB, 1),
            pattern(5 * MIB, 2),
            pattern(MIB + 17, 3),
        ];
        let id = create(&s3, "big/object").await;
        // Out of order, and part 2 uploaded twice: the last upload of a part wins.
        let e3 = upload_part(&s3, "big/object", &id, 3, &parts[2]).await;
        let _stale = upload_part(&s3, "big/object", &id, 2, &pattern(5 * MIB, 99)).await;
        let e1 = upload_part(&s3, "big/object", &id, 1, &parts[0]).await;
        let e2 = upload_part(&s3, "big/object", &id, 2, &parts[1]).await;
        for (etag, data) in [(&e1, &parts[0]), (&e2, &parts[1]), (&e3, &parts[2])] {
            assert_eq!(*etag, etag_of(data));
        }
        let done = s3
            .complete_multipart_upload()
            .bucket("mpu")
            .key("big/object")
            .upload_id(&id)
            .multipart_upload(completed(&[(1, &e1), (2, &e2), (3, &e3)]))
            .send()
            .await
            .unwrap();
        let mut md5s = Md5::new();
        for p in &parts {
            md5s.update(Md5::digest(p));
        }
        let want_etag = format!("\"{}-3\"", hex::encode(md5s.finalize()));
        assert_eq!(done.e_tag(), Some(want_etag.as_str()));

        let whole: Vec<u8> = parts.concat();
        assert_same_bytes(
            &get_bytes(&s3, "mpu", "big/object").await,
            &whole,
            "whole object",
        );
        let head = s3
            .head_object()
            .bucket("mpu")
            .key("big/object")
            .send()
            .await
            .unwrap();
        assert_eq!(head.e_tag(), Some(want_etag.as_str()));
        assert_eq!(head.content_length(), Some(whole.len() as i64));
        assert_eq!(head.content_type(), Some("application/x-test"));
        assert_eq!(
            head.metadata()
                .and_then(|m| m.get("origin"))
                .map(String::as_str),
            Some("multipart")
        );

        // A range across the boundary of parts 1 and 2.
        let (start, end) = (5 * MIB - 10, 5 * MIB + 9);
        let ranged = s3
            .get_object()
            .bucket("mpu")
            .key("big/object")
            .range(format!("bytes={start}-{end}"))
            .send()
            .await
            .unwrap();
        let got = ranged.body.collect().await.unwrap().into_bytes();
        assert_eq!(&got[..], &whole[start..=end]);

        // The upload is gone once completed: no more parts (a retry of the completion
        // itself repeats its answer, see multipart_retry).
        let late = s3
            .upload_part()
            .bucket("mpu")
            .key("big/object")
            .upload_id(&id)
            .part_number(4)
            .body(ByteStream::from_static(b"late"))
            .send()
            .await;
        assert_s3_error(late, 404, "NoSuchUpload");
        s3.delete_object()
            .bucket("mpu")
            .key("big/object")
            .send()
            .await
            .unwrap();
        s3.delete_bucket().bucket("mpu").send().await.unwrap();
    }
}

#[tokio::test]
async fn bad_part_lists_are_refused_with_s3_errors_and_abort_frees_the_upload() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "mpu").await;
    let id = create(&s3, "k").await;
    let small = pattern(1024, 7);
    let big = pattern(5 * MIB, 8);
    let e1 = upload_part(&s3, "k", &id, 1, &small).await;
    let e2 = upload_part(&s3, "k", &id, 2, &big).await;

    let complete = |parts: CompletedMultipartUpload| {
        s3.complete_multipart_upload()
            .bucket("mpu")
            .key("k")
            .upload_id(&id)
            .multipart_upload(parts)
            .send()
    };
    assert_s3_error(
        complete(completed(&[(2, &e2), (1, &e1)])).await,
        400,
        "InvalidPartOrder",
    );
    assert_s3_error(
        complete(completed(&[(1, &e1), (3, &e2)])).await,
        400,
        "InvalidPart",
    );
    assert_s3_error(
        complete(completed(&[(1, &e2), (2, &e2)])).await,
        400,
        "InvalidPart",
    );
    assert_s3_error(
        complete(completed(&[(1, &e1), (2, &e2)])).await,
        400,
        "EntityTooSmall",
    );
    let bad_number = s3
        .upload_part()
        .bucket("mpu")
        .key("k")
        .upload_id(&id)
        .part_number(10_001)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_s3_error(bad_number, 400, "InvalidArgument");

    // Nothing became visible while the upload was open.
    assert_s3_error(
        s3.get_object().bucket("mpu").key("k").send().await,
        404,
        "NoSuchKey",
    );
    s3.abort_multipart_upload()
        .bucket("mpu")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    let after_abort = s3
        .upload_part()
        .bucket("mpu")
        .key("k")
        .upload_id(&id)
        .part_number(3)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_s3_error(after_abort, 404, "NoSuchUpload");
    let unknown = s3
        .upload_part()
        .bucket("mpu")
        .key("k")
        .upload_id("0123456789abcdef0123456789abcdef")
        .part_number(1)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_s3_error(unknown, 404, "NoSuchUpload");
}

#[tokio::test]
async fn list_parts_and_list_multipart_uploads_page_through_what_is_in_progress() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "mpu").await;
    let a = create(&s3, "logs/a").await;
    let b1 = create(&s3, "logs/b").await;
    let b2 = create(&s3, "logs/b").await;
    let other = create(&s3, "zz").await;
    let mut etags = Vec::new();
    for n in [3, 1, 2] {
        etags.push((
            n,
            upload_part(&s3, "logs/a", &a, n, &pattern(1000 + n as usize, 4)).await,
        ));
    }
    // Re-uploading part 2 replaces it in the listing.
    let e2 = upload_part(&s3, "logs/a", &a, 2, &pattern(2222, 9)).await;

    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = s3
            .list_parts()
            .bucket("mpu")
            .key("logs/a")
            .upload_id(&a)
            .max_parts(2)
            .set_part_number_marker(marker.clone())
            .send()
            .await
            .unwrap();
        for p in page.parts() {
            seen.push((
                p.part_number().unwrap(),
                p.e_tag().unwrap().to_owned(),
                p.size().unwrap(),
            ));
        }
        if !page.is_truncated().unwrap_or(false) {
            break;
        }
        marker = page.next_part_number_marker().map(str::to_owned);
    }
    assert_eq!(
        seen,
        vec![
            (1, etags[1].1.clone(), 1001),
            (2, e2.clone(), 2222),
            (3, etags[0].1.clone(), 1003),
        ]
    );

    let mut uploads = Vec::new();
    let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = s3
            .list_multipart_uploads()
            .bucket("mpu")
            .prefix("logs/")
            .max_uploads(1)
            .set_key_marker(key_marker.clone())
            .set_upload_id_marker(id_marker.clone())
            .send()
            .await
            .unwrap();
        for u in page.uploads() {
            uploads.push((
                u.key().unwrap().to_owned(),
                u.upload_id().unwrap().to_owned(),
            ));
        }
        if !page.is_truncated().unwrap_or(false) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        id_marker = page.next_upload_id_marker().map(str::to_owned);
    }
    let mut b_ids = [b1.clone(), b2.clone()];
    b_ids.sort();
    assert_eq!(
        uploads,
        vec![
            ("logs/a".to_owned(), a.clone()),
            ("logs/b".to_owned(), b_ids[0].clone()),
            ("logs/b".to_owned(), b_ids[1].clone()),
        ]
    );

    // Completed and aborted uploads are no longer listed.
    s3.abort_multipart_upload()
        .bucket("mpu")
        .key("logs/b")
        .upload_id(&b1)
        .send()
        .await
        .unwrap();
    s3.complete_multipart_upload()
        .bucket("mpu")
        .key("zz")
        .upload_id(&other)
        .multipart_upload(completed(&[(
            1,
            &upload_part(&s3, "zz", &other, 1, b"x").await,
        )]))
        .send()
        .await
        .unwrap();
    let left = s3
        .list_multipart_uploads()
        .bucket("mpu")
        .send()
        .await
        .unwrap();
    let mut left: Vec<&str> = left
        .uploads()
        .iter()
        .filter_map(|u| u.upload_id())
        .collect();
    left.sort();
    let mut want = vec![a.as_str(), b2.as_str()];
    want.sort();
    assert_eq!(left, want);
}

#[tokio::test]
async fn upload_part_copy_ranges_and_get_by_part_number() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "mpu").await;
    let source = pattern(7 * MIB + 5, 11);
    put_bytes(&s3, "mpu", "source", &source).await;

    let id = create(&s3, "assembled").await;
    let copy_part = |n: i32, range: Option<String>| {
        s3.upload_part_copy()
            .bucket("mpu")
            .key("assembled")
            .upload_id(&id)
            .part_number(n)
            .copy_source("mpu/source")
            .set_copy_source_range(range)
            .send()
    };
    let first = copy_part(1, Some(format!("bytes=0-{}", 5 * MIB - 1)))
        .await
        .unwrap();
    let second = copy_part(2, Some(format!("bytes={}-{}", 5 * MIB, 7 * MIB + 4)))
        .await
        .unwrap();
    let e1 = first
        .copy_part_result()
        .unwrap()
        .e_tag()
        .unwrap()
        .to_owned();
    let e2 = second
        .copy_part_result()
        .unwrap()
        .e_tag()
        .unwrap()
        .to_owned();
    assert_eq!(e1, etag_of(&source[..5 * MIB]));
    assert_eq!(e2, etag_of(&source[5 * MIB..]));
    let past_end = copy_part(3, Some(format!("bytes=0-{}", source.len()))).await;
    assert_s3_error(past_end, 400, "InvalidRange");
    // A source condition that fails is 412, never 304.
    let unchanged = s3
        .upload_part_copy()
        .bucket("mpu")
        .key("assembled")
        .upload_id(&id)
        .part_number(3)
        .copy_source("mpu/source")
        .copy_source_if_none_match(etag_of(&source))
        .send()
        .await;
    assert_s3_error(unchanged, 412, "PreconditionFailed");
    s3.complete_multipart_upload()
        .bucket("mpu")
        .key("assembled")
        .upload_id(&id)
        .multipart_upload(completed(&[(1, &e1), (2, &e2)]))
        .send()
        .await
        .unwrap();
    assert_same_bytes(
        &get_bytes(&s3, "mpu", "assembled").await,
        &source,
        "assembled",
    );

    // GET and HEAD by part number address one part.
    let part2 = s3
        .get_object()
        .bucket("mpu")
        .key("assembled")
        .part_number(2)
        .send()
        .await
        .unwrap();
    assert_eq!(part2.parts_count(), Some(2));
    assert_eq!(part2.content_length(), Some((2 * MIB + 5) as i64));
    let bytes = part2.body.collect().await.unwrap().into_bytes();
    assert_same_bytes(&bytes, &source[5 * MIB..], "part 2");
    let head = s3
        .head_object()
        .bucket("mpu")
        .key("assembled")
        .part_number(1)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some((5 * MIB) as i64));
    let beyond = s3
        .get_object()
        .bucket("mpu")
        .key("assembled")
        .part_number(3)
        .send()
        .await;
    assert_s3_error(beyond, 400, "InvalidPartNumber");
    let beyond = s3
        .head_object()
        .bucket("mpu")
        .key("assembled")
        .part_number(3)
        .send()
        .await;
    assert_eq!(
        beyond
            .expect_err("HEAD of part 3 of 2")
            .raw_response()
            .map(|r| r.status().as_u16()),
        Some(400)
    );
    // A plain object is its own part 1.
    let whole = s3
        .get_object()
        .bucket("mpu")
        .key("source")
        .part_number(1)
        .send()
        .await
        .unwrap();
    assert_eq!(whole.content_length(), Some(source.len() as i64));

    // CopyObject honours x-amz-copy-source-if-match.
    let refused = s3
        .copy_object()
        .bucket("mpu")
        .key("copy")
        .copy_source("mpu/source")
        .copy_source_if_match("\"0123456789abcdef0123456789abcdef\"")
        .send()
        .await;
    assert_s3_error(refused, 412, "PreconditionFailed");
    s3.copy_object()
        .bucket("mpu")
        .key("copy")
        .copy_source("mpu/source")
        .copy_source_if_match(etag_of(&source))
        .send()
        .await
        .unwrap();
    assert_same_bytes(
        &get_bytes(&s3, "mpu", "copy").await,
        &source,
        "conditional copy",
    );
}

#[tokio::test]
async fn abandoned_uploads_are_aborted_after_the_expiry_and_young_ones_kept() {
    let options = ClusterOptions::new(3)
        .gateway_arg("--scan-interval-ms", 300)
        .gateway_arg("--upload-expiry-secs", 8);
    let cluster = Cluster::start_opts(options).await;
    let s3 = cluster.client();
    create_bucket(&s3, "mpu").await;
    let started = std::time::Instant::now();
    let id = create(&s3, "abandoned").await;
    upload_part(&s3, "abandoned", &id, 1, &pattern(1000, 1)).await;
    let done_id = create(&s3, "done").await;
    let part = upload_part(&s3, "done", &done_id, 1, &pattern(1000, 2)).await;
    let complete = || {
        s3.complete_multipart_upload()
            .bucket("mpu")
            .key("done")
            .upload_id(&done_id)
            .multipart_upload(completed(&[(1, &part)]))
            .send()
    };
    complete().await.expect("complete");
    let listed = |s3: Client| async move {
        let out = s3
            .list_multipart_uploads()
            .bucket("mpu")
            .send()
            .await
            .unwrap();
        out.uploads().len()
    };
    // Passes that run while the upload is young leave it alone.
    let passes = cluster.gateway_metric("anti_entropy_passes_total").await;
    eventually("two anti-entropy passes", CONVERGE_TIMEOUT, || async {
        let now = cluster.gateway_metric("anti_entropy_passes_total").await;
        if now >= passes + 2.0 {
            Ok(())
        } else {
            Err(format!("{now} passes"))
        }
    })
    .await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "the machine is too slow for this test's timing: {:?}",
        started.elapsed()
    );
    assert_eq!(listed(s3.clone()).await, 1, "a young upload is kept");

    eventually(
        "the abandoned upload is aborted",
        CONVERGE_TIMEOUT,
        || async {
            match listed(s3.clone()).await {
                0 => Ok(()),
                n => Err(format!("{n} uploads listed")),
            }
        },
    )
    .await;
    let late = s3
        .upload_part()
        .bucket("mpu")
        .key("abandoned")
        .upload_id(&id)
        .part_number(2)
        .body(ByteStream::from_static(b"late"))
        .send()
        .await;
    assert_s3_error(late, 404, "NoSuchUpload");
    // What the completed upload kept for retries is forgotten after the expiry as well
    // (and is no abandoned upload).
    eventually(
        "the completed upload is forgotten",
        CONVERGE_TIMEOUT,
        || async {
            match complete().await {
                Err(e) if e.code() == Some("NoSuchUpload") => Ok(()),
                other => Err(format!("retry answered {other:?}")),
            }
        },
    )
    .await;
    assert_eq!(cluster.gateway_metric("uploads_expired_total").await, 1.0);
}
