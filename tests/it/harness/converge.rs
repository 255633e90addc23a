//! The check every chaos test ends with: once the faults are over and repair had its time,
//! every replica holds the same records and the bytes those records promise, the gateway
//! reports no replication lag, and every object reads back whole through S3.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use node::proto::{Data, ObjectRecord, VersionState};

use super::{Cluster, eventually, md5_hex};

/// How long a cluster may take to converge after its last fault was healed.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

impl Cluster {
    /// Waits (up to [`CONVERGE_TIMEOUT`]) until the cluster has converged, then reads
    /// everything back through the gateway; panics with what is still different.
    ///
    /// Converged means: every node holds the same bucket record for `bucket`; every key any
    /// node lists is held by exactly RF nodes with identical records (all of them when
    /// there are RF nodes); every object version in those records has its bytes on each of
    /// those nodes (inline, or blob files served whole by the node, MD5 and size as
    /// recorded); `replication_lag` is 0. Then each of `expected` reads back through the
    /// gateway with its bytes and ETag, and every other listed key reads back as a whole
    /// object (body MD5 = ETag) or as NoSuchKey (a delete marker). Every node and the
    /// gateway must be running. Returns how long convergence took.
    pub async fn assert_converged(&self, bucket: &str, expected: &[(String, Vec<u8>)]) -> Duration {
        let started = Instant::now();
        eventually(
            "replicas converge (records, bytes, replication_lag)",
            CONVERGE_TIMEOUT,
            || self.converged(bucket, expected),
        )
        .await;
        let took = started.elapsed();

        let s3 = self.client();
        let want: BTreeMap<&str, &[u8]> = expected
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        for key in self.listed_keys(bucket).await {
            let got = s3.get_object().bucket(bucket).key(&key).send().await;
            let out = match (got, want.get(key.as_str())) {
                (Ok(out), _) => out,
                (Err(e), None) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                    continue;
                }
                (Err(e), _) => panic!("converged, but GET {bucket}/{key} failed: {e:?}"),
            };
            let etag = out.e_tag().map(str::to_owned);
            let body = out
                .body
                .collect()
                .await
                .unwrap_or_else(|e| panic!("converged, but reading {bucket}/{key} failed: {e:?}"))
                .into_bytes();
            if let Some(data) = want.get(key.as_str()) {
                super::assert_same_bytes(&body, data, &format!("GET {bucket}/{key}"));
            }
            let etag = etag.unwrap_or_default();
            // Multipart ETags (`…-N`) are not the MD5 of the body.
            if !etag.contains('-') {
                assert_eq!(
                    etag,
                    format!("\"{}\"", md5_hex(&body)),
                    "GET {bucket}/{key}: the ETag does not match the body ({} bytes)",
                    body.len()
                );
            }
        }
        eprintln!(
            "converged: {} keys of {bucket} after {took:?}",
            self.listed_keys(bucket).await.len()
        );
        took
    }

    /// Every key some node lists in `bucket`.
    async fn listed_keys(&self, bucket: &str) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        for i in 0..self.node_count() {
            keys.extend(self.node_keys(i, bucket).await);
        }
        keys
    }

    /// One look at the cluster: `Ok` when it has converged, else the first difference.
    async fn converged(&self, bucket: &str, expected: &[(String, Vec<u8>)]) -> Result<(), String> {
        let n = self.node_count();
        let first = self.node_bucket(0, bucket).await;
        for i in 0..n {
            let here = self.node_bucket(i, bucket).await;
            if here.as_ref().is_none_or(|b| !b.exists.value) {
                return Err(format!(
                    "node{i} has no live bucket record for {bucket}: {here:?}"
                ));
            }
            if here != first {
                return Err(format!(
                    "bucket record of {bucket}: node{i} has {here:?}, node0 has {first:?}"
                ));
            }
        }

        let keys = self.listed_keys(bucket).await;
        if let Some((missing, _)) = expected.iter().find(|(k, _)| !keys.contains(k)) {
            return Err(format!("no node lists {bucket}/{missing}"));
        }
        let mut records: Vec<(String, Vec<(usize, ObjectRecord)>)> = Vec::new();
        for key in &keys {
            let mut holders = Vec::new();
            for i in 0..n {
                if let Some(record) = self.node_record(i, bucket, key).await {
                    holders.push((i, record));
                }
            }
            let on: Vec<usize> = holders.iter().map(|(i, _)| *i).collect();
            if on.len() != self.replicas() {
                return Err(format!(
                    "{bucket}/{key} is on nodes {on:?}, not on {} nodes",
                    self.replicas()
                ));
            }
            let (i0, r0) = &holders[0];
            if let Some((i, r)) = holders.iter().find(|(_, r)| r != r0) {
                return Err(format!(
                    "records of {bucket}/{key} differ: node{i0} has {}, node{i} has {}",
                    summary(r0),
                    summary(r)
                ));
            }
            records.push((key.clone(), holders));
        }

        let lag = self.gateway_metric("replication_lag").await;
        if lag != 0.0 {
            return Err(format!("replication_lag is {lag}"));
        }

        // Records agree; now every holder must have the bytes its record promises.
        for (key, holders) in &records {
            for (i, record) in holders {
                for v in &record.versions {
                    let VersionState::Object(meta) = &v.state else {
                        continue;
                    };
                    let what = format!("node{i} {bucket}/{key} version {}", v.stamp.id);
                    match &meta.data {
                        Data::Inline { bytes } => {
                            if md5_hex(bytes) != meta.md5 {
                                return Err(format!("{what}: inline bytes do not match its MD5"));
                            }
                        }
                        Data::InlineOmitted => {
                            return Err(format!("{what}: stored without its inline body"));
                        }
                        Data::Blob { id } => {
                            self.check_blob(*i, id, &meta.md5, meta.size, &what).await?;
                        }
                        Data::Parts { parts } => {
                            for p in parts {
                                let what = format!("{what} part {}", p.number);
                                self.check_blob(*i, &p.blob, &p.md5, p.size, &what).await?;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether node `i` serves blob `id` whole, with `md5` and `size`.
    async fn check_blob(
        &self,
        i: usize,
        id: &str,
        md5: &str,
        size: u64,
        what: &str,
    ) -> Result<(), String> {
        let bytes = self
            .try_node_blob(i, id)
            .await
            .map_err(|e| format!("{what}: blob {id}: {e}"))?;
        if bytes.len() as u64 != size || md5_hex(&bytes) != md5 {
            return Err(format!(
                "{what}: blob {id} has {} bytes with MD5 {}, the record says {size} bytes, {md5}",
                bytes.len(),
                md5_hex(&bytes)
            ));
        }
        Ok(())
    }
}

/// A record in one line: each version's stamp and state.
fn summary(record: &ObjectRecord) -> String {
    let versions: Vec<String> = record
        .versions
        .iter()
        .map(|v| {
            let state = match &v.state {
                VersionState::Object(meta) => format!("object {} bytes {}", meta.size, meta.md5),
                VersionState::DeleteMarker => "delete marker".to_string(),
                VersionState::Purged => "purged".to_string(),
            };
            format!("{}@{} {state}", v.stamp.id, v.stamp.ts)
        })
        .collect();
    format!("[{}]", versions.join(", "))
}
