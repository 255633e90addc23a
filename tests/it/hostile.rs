//! Hostile and damaged input, sent byte by byte with our own SigV4 signing: every such
//! request gets a clear S3 client error and leaves stored data as it was. Control
//! characters in keys, documents whose digest does not match (or is missing where S3
//! requires one), oversized documents, broken aws-chunked framing, bodies that stall.

use std::time::{Duration, Instant};

use aws_sdk_s3::types::EncodingType;
use bytes::Bytes;
use hyper::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;

const BUCKET: &str = "hostile";

async fn cluster() -> Cluster {
    let cluster = Cluster::start(3).await;
    create_bucket(&cluster.client(), BUCKET).await;
    cluster
}

/// The key holding control character `b`, percent-encoded for a URL path.
fn control_key(b: u8) -> (String, String) {
    let key = format!("ctl/{b:02x}-{}-end", b as char);
    let path = format!("ctl/{b:02x}-%{b:02X}-end");
    (key, path)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The text of every `<Key>` element of a raw XML listing.
fn xml_keys(xml: &str) -> Vec<String> {
    xml.split("<Key>")
        .skip(1)
        .map(|rest| rest.split("</Key>").next().unwrap().to_owned())
        .collect()
}

/// `&#xNN;` references back to characters.
fn unreference(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find("&#x") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find(';').unwrap() + at;
        let code = u32::from_str_radix(&rest[at + 3..end], 16).unwrap();
        out.push(char::from_u32(code).unwrap());
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn every_control_character_in_a_key_is_listed_escaped_or_url_encoded() {
    let cluster = cluster().await;
    let s3 = cluster.client();
    let keys: Vec<(String, String)> = (1u8..0x20).map(control_key).collect();
    for (key, _) in &keys {
        put_bytes(&s3, BUCKET, key, key.as_bytes()).await;
    }
    let mut expected: Vec<String> = keys.iter().map(|(k, _)| k.clone()).collect();
    expected.sort();

    for (listing, query) in [
        ("ListObjects", ""),
        ("ListObjectsV2", "list-type=2"),
        ("ListObjectVersions", "versions"),
    ] {
        for url in [false, true] {
            let query = match (query, url) {
                ("", false) => String::new(),
                ("", true) => "?encoding-type=url".to_owned(),
                (q, false) => format!("?{q}"),
                (q, true) => format!("?{q}&encoding-type=url"),
            };
            let resp = cluster
                .signed_request(Method::GET, &format!("/{BUCKET}{query}"), &[], Bytes::new())
                .await;
            let what = format!("{listing} {query}");
            assert_eq!(resp.status, 200, "{what}: {}", resp.text());
            let xml = resp.text();
            assert!(
                !xml.bytes().any(|b| b < 0x20 && b != b'\t' && b != b'\n'),
                "{what}: a raw control character in the XML"
            );
            let raw = xml_keys(&xml);
            let got: Vec<String> = raw
                .iter()
                .map(|k| {
                    if url {
                        percent_decode(k)
                    } else {
                        unreference(k)
                    }
                })
                .collect();
            assert_eq!(got, expected, "{what}: {raw:?}");
            if url {
                assert!(xml.contains("<EncodingType>url</EncodingType>"), "{what}");
                assert!(raw.iter().all(|k| !k.contains("&#x")), "{what}: {raw:?}");
            }
        }
    }

    // The SDK asks for no encoding and decodes the references itself.
    let listed = s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    let got: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(got, expected);
    let listed = s3
        .list_objects()
        .bucket(BUCKET)
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .unwrap();
    let got: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .map(percent_decode)
        .collect();
    assert_eq!(got, expected);

    // DeleteObjects echoes every key: its answer must be XML too, and delete them all.
    let objects: Vec<_> = expected
        .iter()
        .map(|k| {
            aws_sdk_s3::types::ObjectIdentifier::builder()
                .key(k)
                .build()
                .unwrap()
        })
        .collect();
    let out = s3
        .delete_objects()
        .bucket(BUCKET)
        .delete(
            aws_sdk_s3::types::Delete::builder()
                .set_objects(Some(objects))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("DeleteObjects of control-character keys");
    let mut deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort();
    assert_eq!(deleted, expected);
    let left = s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    assert_eq!(left.key_count(), Some(0));
}

#[tokio::test]
async fn delete_objects_requires_a_digest_and_a_wrong_one_deletes_nothing() {
    let cluster = cluster().await;
    let s3 = cluster.client();
    put_bytes(&s3, BUCKET, "victim", b"still here").await;
    let body = Bytes::from_static(
        b"<Delete><Object><Key>victim</Key></Object><Quiet>false</Quiet></Delete>",
    );
    let path = format!("/{BUCKET}?delete");
    let wrong_md5 = md5_base64(b"another document");
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 3] = [
        (
            "wrong Content-MD5",
            vec![("content-md5", &wrong_md5)],
            "BadDigest",
        ),
        (
            "wrong CRC32",
            vec![("x-amz-checksum-crc32", "AAAAAA==")],
            "BadDigest",
        ),
        ("no digest", vec![], "InvalidRequest"),
    ];
    for (what, headers, code) in &cases {
        let resp = cluster
            .signed_request(Method::POST, &path, headers, body.clone())
            .await;
        assert_eq!(resp.status, 400, "{what}: {}", resp.text());
        assert!(resp.text().contains(code), "{what}: {}", resp.text());
        assert_eq!(
            get_bytes(&s3, BUCKET, "victim").await,
            b"still here",
            "{what}"
        );
    }
    let md5 = md5_base64(&body);
    let resp = cluster
        .signed_request(Method::POST, &path, &[("content-md5", &md5)], body)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        resp.text().contains("<Deleted><Key>victim</Key>"),
        "{}",
        resp.text()
    );
    assert_s3_status(
        s3.head_object().bucket(BUCKET).key("victim").send().await,
        404,
    );
}

#[tokio::test]
async fn a_document_whose_digest_does_not_match_changes_nothing() {
    let cluster = cluster().await;
    let s3 = cluster.client();
    put_bytes(&s3, BUCKET, "k", b"data").await;
    let wrong = md5_base64(b"not this document");
    let documents: [(&str, String, &str); 4] = [
        (
            "PutBucketCors",
            format!("/{BUCKET}?cors"),
            "<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>\
             <AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>",
        ),
        (
            "PutObjectTagging",
            format!("/{BUCKET}/k?tagging"),
            "<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>",
        ),
        (
            "PutBucketTagging",
            format!("/{BUCKET}?tagging"),
            "<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>",
        ),
        (
            "PutBucketVersioning",
            format!("/{BUCKET}?versioning"),
            "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>",
        ),
    ];
    for (what, path, doc) in &documents {
        for header in ["content-md5", "x-amz-checksum-sha256"] {
            let claim = if header == "content-md5" {
                wrong.clone()
            } else {
                "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".to_owned()
            };
            let resp = cluster
                .signed_request(
                    Method::PUT,
                    path,
                    &[(header, &claim)],
                    Bytes::from(doc.to_string()),
                )
                .await;
            assert_eq!(resp.status, 400, "{what} {header}: {}", resp.text());
            assert!(resp.text().contains("BadDigest"), "{what}: {}", resp.text());
        }
    }
    assert_s3_status(s3.get_bucket_cors().bucket(BUCKET).send().await, 404);
    let tags = s3
        .get_object_tagging()
        .bucket(BUCKET)
        .key("k")
        .send()
        .await
        .unwrap();
    assert!(tags.tag_set().is_empty(), "{tags:?}");
    assert_s3_status(s3.get_bucket_tagging().bucket(BUCKET).send().await, 404);
    let versioning = s3
        .get_bucket_versioning()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(versioning.status(), None);

    // The same documents with a matching Content-MD5 take effect.
    for (what, path, doc) in &documents {
        let md5 = md5_base64(doc.as_bytes());
        let resp = cluster
            .signed_request(
                Method::PUT,
                path,
                &[("content-md5", &md5)],
                Bytes::from(doc.to_string()),
            )
            .await;
        assert_eq!(resp.status, 200, "{what}: {}", resp.text());
    }
    s3.get_bucket_cors().bucket(BUCKET).send().await.unwrap();
}

#[tokio::test]
async fn oversized_documents_are_max_message_length_exceeded() {
    let cluster = cluster().await;
    let s3 = cluster.client();
    put_bytes(&s3, BUCKET, "keep", b"kept").await;
    let object = format!("<Object><Key>{}</Key></Object>", "a".repeat(1000));
    let body = format!("<Delete>{}</Delete>", object.repeat(21 * 1024));
    assert!(body.len() > 20 * 1024 * 1024);
    let md5 = md5_base64(body.as_bytes());
    let body = Bytes::from(body);
    // Refused by its Content-Length before a byte is read, while the client is still
    // sending: the client must read the answer, not a reset connection (it did not, now
    // and then, before the gateway drained refused bodies). Repeated to catch that.
    for attempt in 0..8 {
        let resp = cluster
            .signed_request_with_hash(
                Method::POST,
                &format!("/{BUCKET}?delete"),
                &[("content-md5", &md5)],
                "UNSIGNED-PAYLOAD",
                body.clone(),
            )
            .await;
        assert_eq!(resp.status, 400, "attempt {attempt}: {}", resp.text());
        assert!(
            resp.text().contains("MaxMessageLengthExceeded"),
            "{}",
            resp.text()
        );
        // The same for a body a handler refuses before reading it (no such bucket).
        let resp = cluster
            .signed_request_with_hash(
                Method::PUT,
                "/no-such-bucket-here/key",
                &[],
                "UNSIGNED-PAYLOAD",
                body.clone(),
            )
            .await;
        assert_eq!(resp.status, 404, "attempt {attempt}: {}", resp.text());
    }

    // CORS configurations are bounded at 64 KB, as in S3.
    let rule = "<CORSRule><AllowedOrigin>https://a.example</AllowedOrigin>\
                <AllowedMethod>GET</AllowedMethod></CORSRule>";
    let cors = format!(
        "<CORSConfiguration>{}</CORSConfiguration>",
        rule.repeat(65 * 1024 / rule.len() + 1)
    );
    assert!(cors.len() > 64 * 1024);
    let md5 = md5_base64(cors.as_bytes());
    let resp = cluster
        .signed_request(
            Method::PUT,
            &format!("/{BUCKET}?cors"),
            &[("content-md5", &md5)],
            Bytes::from(cors),
        )
        .await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(
        resp.text().contains("MaxMessageLengthExceeded"),
        "{}",
        resp.text()
    );
    assert_s3_status(s3.get_bucket_cors().bucket(BUCKET).send().await, 404);
    assert_eq!(get_bytes(&s3, BUCKET, "keep").await, b"kept");
}

#[tokio::test]
async fn broken_aws_chunked_framing_is_a_client_error_and_stores_nothing() {
    let cluster = cluster().await;
    let s3 = cluster.client();
    let headers = [
        ("content-encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", "10"),
        ("x-amz-trailer", "x-amz-checksum-crc32"),
    ];
    let bodies: [(&str, Vec<u8>); 3] = [
        (
            "a 100 KB size line",
            [&b"1".repeat(100_000)[..], b"\r\n"].concat(),
        ),
        (
            "a 100 KB chunk extension",
            [&b"a;x="[..], &b"0".repeat(100_000), b"\r\n"].concat(),
        ),
        (
            "a size that is no number",
            b"zz\r\n0123456789\r\n0\r\n\r\n".to_vec(),
        ),
    ];
    for (what, body) in bodies {
        let resp = cluster
            .signed_request_with_hash(
                Method::PUT,
                &format!("/{BUCKET}/chunky"),
                &headers,
                "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                Bytes::from(body),
            )
            .await;
        assert!(
            (400..500).contains(&resp.status),
            "{what}: {} {}",
            resp.status,
            resp.text()
        );
        assert_s3_status(
            s3.head_object().bucket(BUCKET).key("chunky").send().await,
            404,
        );
    }
}

/// Writes the head and the first `sent` bytes of a `total`-byte signed upload, then goes
/// silent; returns the whole answer (read until the gateway closes the connection) and how
/// long it took to come.
async fn stall(cluster: &Cluster, path: &str, total: usize, sent: usize) -> (String, Duration) {
    let length = total.to_string();
    let head = cluster.signed_head(
        &Method::PUT,
        path,
        &[("content-length", &length)],
        "UNSIGNED-PAYLOAD",
    );
    let addr = cluster
        .s3_url()
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&head).await.unwrap();
    tcp.write_all(&pattern(sent, 5)).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), tcp.read_to_end(&mut answer))
        .await
        .unwrap_or_else(|_| panic!("{path}: no answer and no close within 60 s"))
        .unwrap();
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

fn temp_files(cluster: &Cluster) -> Vec<String> {
    (0..cluster.node_count())
        .flat_map(|i| {
            std::fs::read_dir(cluster.node_data_dir(i).join("tmp"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path().display().to_string())
        })
        .collect()
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_request_timeout_and_releases_everything() {
    const IDLE: Duration = Duration::from_millis(1500);
    let cluster = Cluster::start_opts(
        ClusterOptions::new(3).gateway_arg("--body-idle-timeout-ms", IDLE.as_millis()),
    )
    .await;
    let s3 = cluster.client();
    create_bucket(&s3, BUCKET).await;
    let cases = [
        ("a blob upload", format!("/{BUCKET}/big"), 8 << 20, 3 << 20),
        ("an inline upload", format!("/{BUCKET}/small"), 1000, 10),
        ("a document", format!("/{BUCKET}?tagging"), 1000, 10),
    ];
    let cluster = &cluster;
    let stalls = cases.iter().map(|(what, path, total, sent)| async move {
        let (answer, took) = stall(cluster, path, *total, *sent).await;
        (what, answer, took)
    });
    for (what, answer, took) in futures::future::join_all(stalls).await {
        let status = answer.lines().next().unwrap_or_default();
        assert!(status.contains(" 400 "), "{what}: {answer}");
        assert!(
            answer.contains("<Code>RequestTimeout</Code>"),
            "{what}: {answer}"
        );
        assert!(
            took >= IDLE && took < IDLE * 4,
            "{what}: answered after {took:?}, idle timeout {IDLE:?}"
        );
    }
    for key in ["big", "small"] {
        assert_s3_status(s3.head_object().bucket(BUCKET).key(key).send().await, 404);
    }
    eventually(
        "the nodes dropped every temp file",
        Duration::from_secs(5),
        || async {
            match temp_files(cluster) {
                files if files.is_empty() => Ok(()),
                files => Err(format!("{files:?}")),
            }
        },
    )
    .await;
    put_bytes(&s3, BUCKET, "after", b"the gateway still serves").await;
}
