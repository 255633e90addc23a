//! Record writes: the record that makes a version visible, sent to the replicas that
//! stored its blob (see `upload`) or, for inline bodies, to every replica; acknowledged at
//! W merges. A plain write a replica refuses as stale (a conditional write of the key holds
//! a higher ballot) goes through the key's agreement instead. Also the delayed deletes of
//! blobs no record refers to any more.
//!
//! Blob before record: a record is only ever sent to a replica whose blob was stored with
//! the gateway's MD5, so no replica holds a record pointing at a missing blob because of
//! this path. The remaining replica finishes (blob, then record) in a background task, and
//! any replica that misses the write gets a repair hint.

use std::sync::{Arc, Mutex};

use node::proto::{ObjectRecord, Select, Stamp, Version};

use super::outcome::{Earlier, ZERO_STAMP, earlier_outcome};
use super::upload::{BlobStored, check_reply};
use super::{Cluster, Decision, gather, spawn_each};
use crate::error::Error;
use crate::node_client::NodeError;

impl Cluster {
    /// Sends `record` to `targets` and returns once W of them merged it. For records that
    /// add no version (purge tombstones, tag changes, upload records); a new version goes
    /// through [`Cluster::write_version`].
    pub async fn write_record(
        &self,
        bucket: &str,
        key: &str,
        record: ObjectRecord,
        targets: &[usize],
    ) -> Result<(), Error> {
        self.write_record_once(bucket, key, record, targets)
            .await
            .map_err(|(e, _)| e)
    }

    /// [`Cluster::write_record`], telling on failure the highest ballot a node refused the
    /// record's stamps for (`NodeError::Stale`), if any did.
    async fn write_record_once(
        &self,
        bucket: &str,
        key: &str,
        record: ObjectRecord,
        targets: &[usize],
    ) -> Result<(), (Error, Option<Stamp>)> {
        let record = Arc::new(record);
        let stale: Arc<Mutex<Option<Stamp>>> = Arc::default();
        let (b, k) = (bucket.to_owned(), key.to_owned());
        let calls = spawn_each(self, targets, |i, node| {
            let (cluster, b, k, record) = (self.clone(), b.clone(), k.clone(), record.clone());
            let stale = stale.clone();
            async move {
                let result = node.put_record(&b, &k, &record).await;
                if let Err(e) = &result {
                    if let NodeError::Stale(promised) = e {
                        let mut seen = stale.lock().unwrap_or_else(|p| p.into_inner());
                        if seen.as_ref().is_none_or(|s| promised > s) {
                            *seen = Some(promised.clone());
                        }
                    }
                    cluster.raise_hint(&b, &k, i, e);
                }
                result
            }
        });
        match gather(self, "write record", calls, self.write_need(bucket, key)).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let promised = stale.lock().unwrap_or_else(|p| p.into_inner()).take();
                Err((e, promised))
            }
        }
    }

    /// Writes the record of a new version to `targets` and returns once W merged it. A
    /// node that promised a conditional write's ballot above the version's stamp refuses
    /// it (see `node::records::paxos::check_fresh`); when that leaves fewer than W, the
    /// write goes through the key's agreement instead ([`Cluster::write_version_agreed`]),
    /// so it orders after the conditional write instead of slipping under it. Returns the
    /// version as written.
    pub async fn write_version(
        &self,
        bucket: &str,
        key: &str,
        version: Version,
        targets: &[usize],
    ) -> Result<Version, Error> {
        let record = ObjectRecord::single(version.clone());
        match self.write_record_once(bucket, key, record, targets).await {
            Ok(()) => Ok(version),
            Err((e, None)) => Err(e),
            Err((_, Some(_))) => self.write_version_agreed(bucket, key, version, None).await,
        }
    }

    /// Writes a plain version whose first attempt some replicas refused as stale: through
    /// a compare-and-set round, under the round's ballot. The first attempt may have reached
    /// other replicas, so each round first asks whether it (or a version an earlier round
    /// proposed) took effect: then that is the write; only if none did is the version
    /// proposed again. One request never takes effect twice.
    async fn write_version_agreed(
        &self,
        bucket: &str,
        key: &str,
        first: Version,
        stored: Option<BlobStored>,
    ) -> Result<Version, Error> {
        let template = first.clone();
        let since = Select::CURRENT.and_since(Some(&first.stamp));
        let mut mine = vec![first];
        // What the last round decided: the version the request is, if it committed.
        let mut chosen: Option<Version> = None;
        self.compare_and_set::<Error>(bucket, key, stored, since, |view, stamp, _| {
            match earlier_outcome(view, &mine) {
                Earlier::Applied(i) => {
                    chosen = Some(mine[i].clone());
                    return Decision::AlreadyApplied;
                }
                Earlier::Unknown => {
                    return Decision::Refuse(Error::Contention {
                        outcome_unknown: true,
                    });
                }
                Earlier::NotApplied => {}
            }
            let mut version = restamped(template.clone(), stamp.clone());
            version.follows = Some(view.newest_stamp().cloned().unwrap_or(ZERO_STAMP));
            mine.push(version.clone());
            chosen = Some(version.clone());
            Decision::Apply(ObjectRecord::single(version))
        })
        .await?;
        let written = chosen.ok_or(Error::Contention {
            outcome_unknown: true,
        })?;
        let abandoned = mine.iter().map(|v| v.stamp.clone()).collect();
        self.purge_abandoned(bucket, key, &written, abandoned);
        Ok(written)
    }

    /// An attempt refused by some replicas may have reached others: once the version is
    /// written under its new stamp, the old one is purged, so a versioned key does not
    /// keep a version nobody was told about. (A null version needs nothing: the newer
    /// null version replaces it, and a purge of it would drop older null versions while
    /// the new one may still be on its way.)
    pub(crate) fn purge_abandoned(
        &self,
        bucket: &str,
        key: &str,
        written: &Version,
        mut abandoned: Vec<Stamp>,
    ) {
        abandoned.retain(|s| *s != written.stamp);
        if written.null || abandoned.is_empty() {
            return;
        }
        let targets = self.replicas(bucket, key);
        let tombstones = ObjectRecord {
            versions: abandoned
                .into_iter()
                .map(|stamp| Version::tombstone_of(stamp, false))
                .collect(),
        };
        let (cluster, b, k, targets) = (
            self.clone(),
            bucket.to_owned(),
            key.to_owned(),
            targets.to_vec(),
        );
        tokio::spawn(async move {
            if let Err(e) = cluster.write_record(&b, &k, tombstones, &targets).await {
                tracing::warn!(bucket = %b, key = %k, "purge of an abandoned version stamp failed: {e}");
            }
        });
    }

    /// Writes the record of a new version whose blob `stored` holds: to the replicas that
    /// acknowledged the blob now (W needed, as [`Cluster::write_version`]), and to each
    /// late replica once its blob is stored with the right MD5. Returns the version as
    /// written.
    pub async fn commit_blob_version(
        &self,
        bucket: &str,
        key: &str,
        version: Version,
        stored: BlobStored,
    ) -> Result<Version, Error> {
        let record = ObjectRecord::single(version.clone());
        match self
            .write_record_once(bucket, key, record.clone(), &stored.acked)
            .await
        {
            Ok(()) => {}
            Err((e, None)) => return Err(e),
            Err((_, Some(_))) => {
                return self
                    .write_version_agreed(bucket, key, version, Some(stored))
                    .await;
            }
        }
        for (i, put) in stored.late {
            let (cluster, b, k, record, check) = (
                self.clone(),
                bucket.to_owned(),
                key.to_owned(),
                record.clone(),
                stored.check.clone(),
            );
            tokio::spawn(async move {
                let node = cluster.node(i).clone();
                let result = match check_reply(put.await, &check) {
                    Ok(_) => node.put_record(&b, &k, &record).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    cluster.raise_hint(&b, &k, i, &e);
                }
            });
        }
        Ok(version)
    }
}

/// `version` under `stamp`; tags and ACL set with the version are stamped like it.
fn restamped(mut version: Version, stamp: Stamp) -> Version {
    if let Some(tags) = &mut version.tags
        && tags.stamp == version.stamp
    {
        tags.stamp = stamp.clone();
    }
    if let Some(acl) = &mut version.acl
        && acl.stamp == version.stamp
    {
        acl.stamp = stamp.clone();
    }
    version.stamp = stamp;
    version
}
