//! A node started on a data directory an earlier release wrote serves it unchanged:
//! `tests/fixtures/datadir-v0.tar.gz` was written by s3quorum 0.1 (records without a format
//! version; see `tests/fixtures/make_datadir_v0.py`), `datadir-v0.json` is what a gateway
//! must read back from it. Every node of a fresh cluster is restarted on a copy of it, and
//! every object, version, tag, metadata, bucket setting and the upload in progress must read
//! back, then the cluster must take writes (conditional ones included) as usual.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use serde_json::Value;

use crate::harness::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// A cluster whose every node runs on a copy of the v0 data directory.
async fn cluster_on_v0() -> (Cluster, Value) {
    let mut cluster = Cluster::start(3).await;
    for i in 0..3 {
        cluster.kill_node(i);
        cluster.wipe_node(i);
        unpack(
            &format!("{FIXTURES}/datadir-v0.tar.gz"),
            cluster.node_data_dir(i),
        );
    }
    for i in 0..3 {
        cluster.restart_node(i).await;
    }
    let expect = std::fs::read_to_string(format!("{FIXTURES}/datadir-v0.json")).expect("manifest");
    (
        cluster,
        serde_json::from_str(&expect).expect("manifest JSON"),
    )
}

fn unpack(tarball: &str, into: &Path) {
    let status = Command::new("tar")
        .args(["xzf", tarball, "--strip-components=1", "-C"])
        .arg(into)
        .status()
        .expect("run tar");
    assert!(status.success(), "tar xzf {tarball}");
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), text(v).to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

async fn tags_of(
    s3: &Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> BTreeMap<String, String> {
    let out = s3
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .send()
        .await
        .unwrap_or_else(|e| panic!("tags of {bucket}/{key}: {e:?}"));
    out.tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect()
}

async fn version_md5(s3: &Client, bucket: &str, key: &str, version: &str) -> String {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .version_id(version)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {bucket}/{key}?versionId={version}: {e:?}"));
    md5_hex(&out.body.collect().await.unwrap().into_bytes())
}

#[tokio::test]
async fn a_data_directory_written_by_the_previous_release_is_served_unchanged() {
    let (cluster, expect) = cluster_on_v0().await;
    let s3 = cluster.client();

    // The unversioned bucket: every object, its bytes, headers, metadata and tags.
    let plain = &expect["buckets"]["plain"];
    let objects = plain["objects"].as_object().expect("objects");
    let listed = s3.list_objects_v2().bucket("plain").send().await.unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    let mut want: Vec<&str> = objects.keys().map(String::as_str).collect();
    want.sort();
    assert_eq!(keys, want);
    for (key, o) in objects {
        let got = get_bytes(&s3, "plain", key).await;
        assert_eq!(md5_hex(&got), text(&o["md5"]), "plain/{key}");
        let head = s3
            .head_object()
            .bucket("plain")
            .key(key)
            .send()
            .await
            .unwrap();
        if let Some(etag) = o.get("etag") {
            assert_eq!(head.e_tag(), Some(format!("\"{}\"", text(etag)).as_str()));
        }
        if let Some(ct) = o.get("content_type") {
            assert_eq!(head.content_type(), Some(text(ct)));
        }
        if let Some(meta) = o.get("metadata") {
            let got: BTreeMap<String, String> = head
                .metadata()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .collect();
            assert_eq!(got, string_map(meta));
        }
        assert_eq!(
            tags_of(&s3, "plain", key, None).await,
            string_map(&o["tags"]),
            "tags of {key}"
        );
    }
    assert_s3_status(
        s3.head_object().bucket("plain").key("deleted").send().await,
        404,
    );
    let tags = s3
        .get_bucket_tagging()
        .bucket("plain")
        .send()
        .await
        .unwrap();
    let tags: BTreeMap<String, String> = tags
        .tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    assert_eq!(tags, string_map(&plain["tags"]));
    let cors = s3.get_bucket_cors().bucket("plain").send().await.unwrap();
    let origins: Vec<&str> = cors
        .cors_rules()
        .iter()
        .flat_map(|r| r.allowed_origins())
        .map(String::as_str)
        .collect();
    let want: Vec<&str> = plain["cors_origins"]
        .as_array()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    assert_eq!(origins, want);

    // The versioned bucket: every version in order, the delete marker, the purged version
    // gone, tags on an old version.
    let versioned = &expect["buckets"]["versioned"];
    let status = s3
        .get_bucket_versioning()
        .bucket("versioned")
        .send()
        .await
        .unwrap();
    assert_eq!(status.status().map(|s| s.as_str()), Some("Enabled"));
    let listed = s3
        .list_object_versions()
        .bucket("versioned")
        .send()
        .await
        .unwrap();
    for (key, versions) in versioned["versions"].as_object().unwrap() {
        let want: Vec<&str> = versions
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .map(|v| text(&v["version_id"]))
            .collect();
        let got: Vec<&str> = listed
            .versions()
            .iter()
            .filter(|v| v.key() == Some(key.as_str()))
            .filter_map(|v| v.version_id())
            .collect();
        assert_eq!(got, want, "versions of {key}, newest first");
        for v in versions.as_array().unwrap() {
            let id = text(&v["version_id"]);
            assert_eq!(
                version_md5(&s3, "versioned", key, id).await,
                text(&v["md5"]),
                "{key} {id}"
            );
            assert_eq!(
                tags_of(&s3, "versioned", key, Some(id)).await,
                string_map(&v["tags"]),
                "tags of {key} {id}"
            );
        }
    }
    let markers: Vec<(&str, &str)> = listed
        .delete_markers()
        .iter()
        .map(|m| (m.key().unwrap(), m.version_id().unwrap()))
        .collect();
    assert_eq!(
        markers,
        vec![("gone", text(&versioned["delete_markers"]["gone"]))]
    );
    assert_s3_status(
        s3.get_object().bucket("versioned").key("gone").send().await,
        404,
    );
    let purged = text(&versioned["purged"]["doc"]);
    assert_s3_status(
        s3.get_object()
            .bucket("versioned")
            .key("doc")
            .version_id(purged)
            .send()
            .await,
        404,
    );

    // The upload in progress is listed and completes.
    let pending = &expect["pending_upload"];
    let uploads = s3
        .list_multipart_uploads()
        .bucket("plain")
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = uploads
        .uploads()
        .iter()
        .filter_map(|u| u.upload_id())
        .collect();
    assert_eq!(ids, vec![text(&pending["upload_id"])]);
    s3.complete_multipart_upload()
        .bucket("plain")
        .key("pending")
        .upload_id(text(&pending["upload_id"]))
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(text(&pending["part_etag"]))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("complete the upload the old release started");
    assert_eq!(
        md5_hex(&get_bytes(&s3, "plain", "pending").await),
        text(&pending["md5"])
    );

    // And the cluster takes writes as usual, the key's agreement state included.
    assert_s3_error(
        s3.put_object()
            .bucket("plain")
            .key("created-once")
            .if_none_match("*")
            .body(b"again".to_vec().into())
            .send()
            .await,
        412,
        "PreconditionFailed",
    );
    put_bytes(&s3, "versioned", "doc", b"a new version").await;
    assert_eq!(get_bytes(&s3, "versioned", "doc").await, b"a new version");
    s3.delete_object()
        .bucket("plain")
        .key("small.txt")
        .send()
        .await
        .unwrap();
    assert_s3_status(
        s3.head_object()
            .bucket("plain")
            .key("small.txt")
            .send()
            .await,
        404,
    );
}
