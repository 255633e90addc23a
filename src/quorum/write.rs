//! Writes: a blob streamed to every replica at once, then the record that makes it visible.
//!
//! Blob before record: a record is only ever sent to a replica whose blob was stored with the
//! gateway's MD5, so no replica holds a record pointing at a missing blob because of this
//! path. Uploads use the `crc32c` check of `proto::CHECK_HEADER`: the gateway hashes the
//! body with MD5 once (the ETag) and computes its block CRC32C table; each node computes
//! the table of what it wrote, refuses a body whose table differs from the gateway's
//! (sent as a trailer with the MD5) and answers its own table digest, which the gateway
//! checks again before counting the acknowledgement. The node keeps the gateway's MD5
//! in the blob file, where its scrubber re-verifies it against the data. An upload that is aborted, or dropped half way (the client went away), ends each
//! replica's stream with an error, and the node keeps nothing. A write is acknowledged at W
//! replicas; the remaining replica finishes (blob, then record) in a background task.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::StreamExt;
use futures::future::{BoxFuture, Shared};
use futures::stream::FuturesUnordered;
use http::{HeaderMap, HeaderValue};
use hyper::body::Frame;
use node::proto::{
    BLOCK_CRCS_TRAILER, BlobPutReply, BlockCrcs, EXPECTED_MD5_HEADER, ObjectRecord, Stamp, Version,
    VersionState, table_digest,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, timeout_at};

use super::outcome::{Earlier, ZERO_STAMP, earlier_outcome};
use super::{Cluster, Decision, gather, quorum_failed, spawn_each};
use crate::error::Error;
use crate::node_client::{BoxError, NodeError};

/// How long a replaced or deleted version's blobs stay readable.
const BLOB_RELEASE_GRACE: Duration = Duration::from_secs(60);

/// Bytes a replica may be behind the upload (queued for it here, not yet taken by its
/// stream). A replica that falls further behind holds the upload back only while the write
/// quorum needs it; this bounds the gateway's memory per upload too.
const REPLICA_BUFFER_BYTES: usize = 2 * 1024 * 1024;
/// How long an upload already on W replicas waits for a replica that is a whole buffer
/// behind before dropping it (it gets a repair hint): long enough for a busy node's
/// hiccup, short next to any large upload.
const LAG_GRACE: Duration = Duration::from_millis(50);

enum Msg {
    /// A chunk, holding its share of the replica's buffer until the stream takes it.
    Data(Bytes, OwnedSemaphorePermit),
    /// The body ended cleanly, with these trailers. A channel closed without this is an
    /// abort.
    End(HeaderMap),
}

/// One replica's side of an upload: where its chunks go, and the room it has left.
struct Lane {
    i: usize,
    tx: mpsc::UnboundedSender<Msg>,
    room: Arc<Semaphore>,
}

/// Buffer permits a chunk of `len` bytes takes (a chunk larger than the buffer takes all).
fn permits_for(len: usize) -> u32 {
    len.clamp(1, REPLICA_BUFFER_BYTES) as u32
}

/// One replica's blob upload; shared so the quorum wait and the late replica's record
/// write can both look at it. The upload itself runs in a spawned task.
type ReplicaPut = Shared<BoxFuture<'static, Result<BlobPutReply, String>>>;

/// A blob being streamed to the replicas of one key.
pub struct BlobUpload {
    cluster: Cluster,
    id: String,
    senders: Vec<Lane>,
    puts: Vec<(usize, ReplicaPut)>,
    /// Replicas dropped during the upload, with why.
    lost: Vec<String>,
    timeout: Duration,
    /// The block table of the body sent so far.
    crcs: BlockCrcs,
}

/// A blob durably stored on at least W replicas.
pub struct BlobStored {
    acked: Vec<usize>,
    late: Vec<(usize, ReplicaPut)>,
    check: Expected,
}

/// What a replica must answer for its blob to count.
#[derive(Clone)]
struct Expected {
    md5: String,
    block_crcs: String,
}

impl Cluster {
    /// Opens one streaming upload per replica of `(bucket, key)`. A replica the health
    /// checks believe down is not waited for when W others are believed up: it gets no
    /// stream and, like any replica that misses the write, a repair hint.
    pub fn start_blob_upload(&self, bucket: &str, key: &str) -> BlobUpload {
        let id = Cluster::new_id();
        let mut senders = Vec::new();
        let mut puts = Vec::new();
        let mut lost = Vec::new();
        let replicas = self.replicas(bucket, key);
        let up = replicas.iter().filter(|&&i| !self.believed_down(i)).count();
        for i in replicas {
            if up >= self.inner.write_quorum && self.believed_down(i) {
                let why = "skipped: the health checks see the node down".to_owned();
                lost.push(format!("{}: {why}", self.node(i).url()));
                let put: ReplicaPut = futures::future::ready(Err(why)).boxed().shared();
                puts.push((i, put));
                continue;
            }
            let (tx, rx) = mpsc::unbounded_channel::<Msg>();
            let stream = futures::stream::unfold((rx, false), |(mut rx, done)| async move {
                if done {
                    return None;
                }
                match rx.recv().await {
                    // The permit is released as the stream takes the chunk.
                    Some(Msg::Data(b, _room)) => Some((Ok(Frame::data(b)), (rx, false))),
                    Some(Msg::End(trailers)) => Some((Ok(Frame::trailers(trailers)), (rx, true))),
                    None => Some((Err::<_, BoxError>("upload aborted".into()), (rx, true))),
                }
            });
            let node = self.node(i).clone();
            let blob_id = id.clone();
            let task = tokio::spawn(async move { node.put_blob_checked(&blob_id, stream).await });
            let put: ReplicaPut = async move {
                match task.await {
                    Ok(Ok(reply)) => Ok(reply),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(format!("task: {e}")),
                }
            }
            .boxed()
            .shared();
            puts.push((i, put));
            let room = Arc::new(Semaphore::new(REPLICA_BUFFER_BYTES));
            senders.push(Lane { i, tx, room });
        }
        BlobUpload {
            cluster: self.clone(),
            id,
            senders,
            puts,
            lost,
            timeout: self.node(0).timeout(),
            crcs: BlockCrcs::default(),
        }
    }

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
        match gather(self, "write record", calls, self.inner.write_quorum).await {
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
        let mut mine = vec![first];
        let mut chosen: Option<Version> = None;
        let committed = self
            .compare_and_set::<Error>(bucket, key, stored, |view, stamp, _| {
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
                Decision::Apply(ObjectRecord::single(version))
            })
            .await?;
        let written = mine
            .iter()
            .find(|v| committed.versions.iter().any(|c| c.stamp == v.stamp))
            .cloned()
            .or(chosen)
            .ok_or(Error::Contention {
                outcome_unknown: true,
            })?;
        let abandoned = mine
            .iter()
            .filter(|v| v.stamp != written.stamp)
            .map(|v| v.stamp.clone())
            .collect();
        self.purge_abandoned(
            bucket,
            key,
            &written,
            abandoned,
            &self.replicas(bucket, key),
        );
        Ok(written)
    }

    /// An attempt refused by some replicas may have reached others: once the version is
    /// written under its new stamp, the old one is purged, so a versioned key does not
    /// keep a version nobody was told about. (A null version needs nothing: the newer
    /// null version replaces it, and a purge of it would drop older null versions while
    /// the new one may still be on its way.)
    fn purge_abandoned(
        &self,
        bucket: &str,
        key: &str,
        written: &Version,
        abandoned: Vec<Stamp>,
        targets: &[usize],
    ) {
        if written.null || abandoned.is_empty() {
            return;
        }
        let tombstones = ObjectRecord {
            versions: abandoned
                .into_iter()
                .map(|stamp| Version {
                    stamp,
                    null: false,
                    state: VersionState::Purged,
                    tags: None,
                    follows: None,
                })
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

/// `version` under `stamp`; tags set with the version are stamped like it.
fn restamped(mut version: Version, stamp: Stamp) -> Version {
    if let Some(tags) = &mut version.tags
        && tags.stamp == version.stamp
    {
        tags.stamp = stamp.clone();
    }
    version.stamp = stamp;
    version
}

impl Cluster {
    /// Deletes unreferenced blobs from `replicas` in a background task; a replica that
    /// misses a delete keeps an orphan file, which costs space, never correctness.
    pub fn delete_blobs_in_background(&self, blobs: Vec<String>, replicas: Vec<usize>) {
        self.delete_blobs_after(blobs, replicas, Duration::ZERO);
    }

    /// Deletes blobs a record no longer refers to, after a grace period that lets reads
    /// which started before the change finish. A gateway that stops meanwhile leaves
    /// orphan files: space, never correctness.
    pub fn delete_blobs_later(&self, blobs: Vec<String>, replicas: Vec<usize>) {
        self.delete_blobs_after(blobs, replicas, BLOB_RELEASE_GRACE);
    }

    fn delete_blobs_after(&self, blobs: Vec<String>, replicas: Vec<usize>, grace: Duration) {
        if blobs.is_empty() {
            return;
        }
        let cluster = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            for id in blobs {
                for &i in &replicas {
                    let node = cluster.node(i);
                    if let Err(e) = node.delete_blob(&id).await {
                        tracing::debug!(node = node.url(), blob = %id, "blob delete failed: {e}");
                    }
                }
            }
        });
    }
}

/// A replica still storing the blob: ends once it has stored it with the right MD5.
pub(super) type LateReplica = BoxFuture<'static, Result<(), NodeError>>;

impl BlobStored {
    /// The replicas that stored the blob, and for each late replica a future that ends once
    /// it has stored the blob with the right MD5 (or failed to).
    pub(super) fn split(self) -> (Vec<usize>, Vec<(usize, LateReplica)>) {
        let check = self.check;
        let late = self
            .late
            .into_iter()
            .map(|(i, put)| {
                let check = check.clone();
                (
                    i,
                    async move { check_reply(put.await, &check).map(drop) }.boxed(),
                )
            })
            .collect();
        (self.acked, late)
    }
}

impl BlobUpload {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Sends one chunk to every live replica. A replica with a full buffer is waited for
    /// up to the node deadline while fewer than W replicas have the chunk, and for
    /// [`LAG_GRACE`] once W have it; then it is dropped (its stream aborts, and the write
    /// leaves it a repair hint). Fewer than W live replicas fails the upload.
    pub async fn send(&mut self, chunk: Bytes) -> Result<(), Error> {
        self.crcs.update(&chunk);
        let want = permits_for(chunk.len());
        let w = self.cluster.inner.write_quorum;
        let mut kept = Vec::with_capacity(self.senders.len());
        let mut behind: Vec<Option<Lane>> = Vec::new();
        for lane in std::mem::take(&mut self.senders) {
            match lane.room.clone().try_acquire_many_owned(want) {
                Ok(permit) => self.deliver(lane, &chunk, permit, &mut kept),
                Err(_) => behind.push(Some(lane)),
            }
        }
        if !behind.is_empty() {
            let mut waits: FuturesUnordered<_> = behind
                .iter()
                .enumerate()
                .filter_map(|(n, lane)| {
                    let room = lane.as_ref()?.room.clone();
                    Some(async move { (n, room.acquire_many_owned(want).await) })
                })
                .collect();
            let patience = if kept.len() >= w {
                LAG_GRACE
            } else {
                self.timeout
            };
            let mut deadline = Instant::now() + patience;
            while let Ok(Some((n, permit))) = timeout_at(deadline, waits.next()).await {
                let Some(lane) = behind[n].take() else {
                    continue;
                };
                match permit {
                    Ok(permit) => {
                        let had = kept.len();
                        self.deliver(lane, &chunk, permit, &mut kept);
                        if had < w && kept.len() >= w {
                            deadline = deadline.min(Instant::now() + LAG_GRACE);
                        }
                    }
                    Err(_) => self.note_lost(lane.i, "buffer closed"),
                }
            }
            let why = if kept.len() >= w {
                format!("more than {REPLICA_BUFFER_BYTES} bytes behind the write quorum")
            } else {
                format!("no progress for {:?}", self.timeout)
            };
            // Dropping a lane ends its stream with an error: the node keeps nothing.
            for lane in behind.into_iter().flatten() {
                self.note_lost(lane.i, &why);
            }
        }
        self.senders = kept;
        if self.senders.len() < w {
            return Err(quorum_failed(
                "put blob",
                w,
                self.senders.len(),
                std::mem::take(&mut self.lost),
            ));
        }
        Ok(())
    }

    /// Queues `chunk` for `lane` (which holds room for it) and keeps the lane if its
    /// stream still runs.
    fn deliver(
        &mut self,
        lane: Lane,
        chunk: &Bytes,
        room: OwnedSemaphorePermit,
        kept: &mut Vec<Lane>,
    ) {
        match lane.tx.send(Msg::Data(chunk.clone(), room)) {
            Ok(()) => kept.push(lane),
            Err(_) => self.note_lost(lane.i, "stream closed by the node"),
        }
    }

    fn note_lost(&mut self, i: usize, why: &str) {
        let node = self.cluster.node(i).url();
        tracing::warn!(node, blob = %self.id, "replica dropped from upload: {why}");
        self.lost.push(format!("{node}: {why}"));
    }

    /// Ends the body (`md5` is its MD5, hex) and waits for W replicas to confirm they
    /// stored exactly the bytes sent.
    pub async fn finish(mut self, md5: &str) -> Result<BlobStored, Error> {
        let check = Expected {
            md5: md5.to_owned(),
            block_crcs: table_digest(&std::mem::take(&mut self.crcs).finish()),
        };
        let mut trailers = HeaderMap::new();
        for (name, value) in [
            (EXPECTED_MD5_HEADER, &check.md5),
            (BLOCK_CRCS_TRAILER, &check.block_crcs),
        ] {
            // Hex digits: always a valid header value.
            if let Ok(v) = HeaderValue::from_str(value) {
                trailers.insert(name, v);
            }
        }
        for lane in std::mem::take(&mut self.senders) {
            // Queued behind the replica's chunks; it takes no room.
            let _ = lane.tx.send(Msg::End(trailers.clone()));
        }
        let timeout = self.timeout;
        let w = self.cluster.inner.write_quorum;
        let puts = std::mem::take(&mut self.puts);
        let checked = puts
            .iter()
            .map(|(i, put)| {
                let check = check.clone();
                (*i, put.clone().map(move |r| check_reply(r, &check)))
            })
            .collect();
        // One deadline from the end of the body for W replicas to store and answer.
        let acked = tokio::time::timeout(timeout, gather(&self.cluster, "put blob", checked, w))
            .await
            .map_err(|_| {
                quorum_failed(
                    "put blob",
                    w,
                    0,
                    vec![format!("no quorum within {timeout:?} after the body ended")],
                )
            })??;
        let acked: Vec<usize> = acked.into_iter().map(|(i, _)| i).collect();
        let late = puts
            .into_iter()
            .filter(|(i, _)| !acked.contains(i))
            .collect();
        Ok(BlobStored { acked, late, check })
    }
}

/// Dropping an unfinished upload closes the channels without the end marker, which ends
/// each replica's body with an error: the nodes discard the partial blob.
impl Drop for BlobUpload {
    fn drop(&mut self) {
        self.senders.clear();
    }
}

/// A replica's answer counts only if it names the gateway's MD5 and the node's own block
/// table equals the gateway's (a node that ignored the check answers no table: refused).
fn check_reply(
    put: Result<BlobPutReply, String>,
    want: &Expected,
) -> Result<BlobPutReply, NodeError> {
    match put {
        Ok(reply)
            if reply.md5 == want.md5
                && reply.block_crcs.as_deref() == Some(want.block_crcs.as_str()) =>
        {
            Ok(reply)
        }
        Ok(reply) if reply.md5 != want.md5 => Err(NodeError::DigestMismatch {
            want: want.md5.clone(),
            got: reply.md5,
        }),
        Ok(reply) => Err(NodeError::DigestMismatch {
            want: format!("block table {}", want.block_crcs),
            got: format!("block table {}", reply.block_crcs.unwrap_or_default()),
        }),
        Err(e) => Err(NodeError::BadReply(e)),
    }
}
