//! What the nodes hold, read straight from their HTTP API with the cluster secret: records,
//! key lists, bucket records, blobs. Tests use it to check placement, replication and repair
//! below the S3 layer.

use std::collections::BTreeSet;

use super::*;

/// The `x-s3q-auth` value of a node call signed with `secret`, `age_ms` in the past, as a
/// gateway signs it (a fresh nonce each time).
pub fn sign_node_call(
    secret: &str,
    age_ms: u64,
    method: &Method,
    path_and_query: &str,
    body: &[u8],
) -> String {
    let target = proto::auth::Target {
        method: method.as_str(),
        path_and_query,
        expected_md5: "",
        check: "",
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let digest = proto::auth::body_digest(body);
    proto::auth::header_value(secret.as_bytes(), &target, now - age_ms, &nonce, &digest)
}

impl Cluster {
    /// A call to node `i` signed with the cluster secret.
    pub async fn node_request(
        &self,
        i: usize,
        method: Method,
        path_and_query: &str,
        body: Bytes,
    ) -> RawResponse {
        let url = format!("{}{}", self.node_url(i), path_and_query);
        let auth = sign_node_call(self.secret(), 0, &method, path_and_query, &body);
        raw_request(method, &url, &[(proto::auth::AUTH_HEADER, &auth)], body).await
    }

    /// The record node `i` holds for (bucket, key), `None` on 404.
    /// Blob ids node `i`'s records of `namespace` refer to (every version not purged).
    pub async fn referenced_blobs(&self, i: usize, namespace: &str) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        for key in self.node_keys(i, namespace).await {
            let Some(record) = self.node_record(i, namespace, &key).await else {
                continue;
            };
            for v in &record.versions {
                if let proto::VersionState::Object(meta) = &v.state {
                    match &meta.data {
                        proto::Data::Blob { id } => {
                            ids.insert(id.clone());
                        }
                        proto::Data::Parts { parts } => {
                            ids.extend(parts.iter().map(|p| p.blob.clone()));
                        }
                        proto::Data::Inline { .. } | proto::Data::InlineOmitted => {}
                    }
                }
            }
        }
        ids
    }

    pub async fn node_record(&self, i: usize, bucket: &str, key: &str) -> Option<ObjectRecord> {
        let path = format!(
            "/records/{}/{}",
            proto::encode_segment(bucket),
            proto::encode_segment(key)
        );
        let resp = self.node_request(i, Method::GET, &path, Bytes::new()).await;
        match resp.status {
            200 => Some(resp.json()),
            404 => None,
            s => panic!("GET {path} on node{i}: {s} {}", resp.text()),
        }
    }

    /// Every key node `i` holds a record for in `bucket` (delete markers included), in the
    /// node's order, following `ListPage::truncated`.
    pub async fn node_keys(&self, i: usize, bucket: &str) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        loop {
            let after = keys.last().map(|k| proto::encode_segment(k));
            let path = format!(
                "/list/{}?after={}&prefix=&limit={}",
                proto::encode_segment(bucket),
                after.unwrap_or_default(),
                proto::MAX_LIST_LIMIT
            );
            let resp = self.node_request(i, Method::GET, &path, Bytes::new()).await;
            assert_eq!(resp.status, 200, "GET {path} on node{i}: {}", resp.text());
            let page: proto::ListPage = resp.json();
            let done = !page.truncated || page.entries.is_empty();
            keys.extend(page.entries.into_iter().map(|e| e.key));
            if done {
                return keys;
            }
        }
    }

    /// The ids of the access keys node `i` holds records of (deleted keys included).
    pub async fn node_key_ids(&self, i: usize) -> Vec<String> {
        let resp = self
            .node_request(i, Method::GET, "/keys", Bytes::new())
            .await;
        assert_eq!(resp.status, 200, "GET /keys on node{i}: {}", resp.text());
        let records: Vec<proto::access::KeyRecord> = resp.json();
        records.into_iter().map(|r| r.id).collect()
    }

    /// The bucket record node `i` holds, `None` on 404.
    pub async fn node_bucket(&self, i: usize, bucket: &str) -> Option<BucketRecord> {
        let path = format!("/buckets/{}", proto::encode_segment(bucket));
        let resp = self.node_request(i, Method::GET, &path, Bytes::new()).await;
        match resp.status {
            200 => Some(resp.json()),
            404 => None,
            s => panic!("GET {path} on node{i}: {s} {}", resp.text()),
        }
    }

    /// The bytes of blob `id` on node `i`; panics unless the node answers 200.
    pub async fn node_blob(&self, i: usize, id: &str) -> Bytes {
        let path = format!("/blobs/{id}");
        let resp = self.node_request(i, Method::GET, &path, Bytes::new()).await;
        assert_eq!(resp.status, 200, "GET {path} on node{i}: {}", resp.text());
        resp.body
    }

    /// The bytes of blob `id` on node `i` as one complete 200 answer, or why not (a status,
    /// a body cut short by a corrupt block, no answer).
    pub async fn try_node_blob(&self, i: usize, id: &str) -> Result<Bytes, String> {
        let path = format!("/blobs/{id}");
        let url = format!("{}{path}", self.node_url(i));
        let auth = sign_node_call(self.secret(), 0, &Method::GET, &path, &[]);
        let resp = try_raw_request(
            Method::GET,
            &url,
            &[(proto::auth::AUTH_HEADER, &auth)],
            Bytes::new(),
        )
        .await?;
        if resp.status != 200 {
            return Err(format!("GET {url}: {} {}", resp.status, resp.text()));
        }
        Ok(resp.body)
    }

    /// The body of the current version node `i` holds for (bucket, key), read from the
    /// record (inline) or the node's own blob; `None` if it holds no current object.
    pub async fn node_object_bytes(&self, i: usize, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let record = self.node_record(i, bucket, key).await?;
        let (_, meta) = record.current_object()?;
        Some(match &meta.data {
            proto::Data::Inline { bytes } => bytes.clone(),
            proto::Data::InlineOmitted => panic!("node{i} stored {key} without its inline body"),
            proto::Data::Blob { id } => self.node_blob(i, id).await.to_vec(),
            proto::Data::Parts { parts } => {
                let mut bytes = Vec::new();
                for part in parts {
                    bytes.extend_from_slice(&self.node_blob(i, &part.blob).await);
                }
                bytes
            }
        })
    }
}

/// The blob files in a directory tree (`blobs/xx/id` or `quarantine/id`).
pub fn blob_files_under(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(blob_files_under(&path));
        } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            out.insert(name.to_owned());
        }
    }
    out
}
