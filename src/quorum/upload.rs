//! Blob uploads: one body streamed to every replica of a key at once.
//!
//! Uploads use the `crc32c` check of `proto::CHECK_HEADER`: the gateway hashes the body with
//! MD5 once (the ETag) and computes its block CRC32C table; each node computes the table of
//! what it wrote, refuses a body whose table differs from the gateway's (sent as a trailer
//! with the MD5) and answers its own table digest, which the gateway checks again before
//! counting the acknowledgement. The node keeps the gateway's MD5 in the blob file, where
//! its scrubber re-verifies it against the data. An upload that is aborted, or dropped half
//! way (the client went away), ends each replica's stream with an error, and the node keeps
//! nothing.
//!
//! Invariants: a replica is at most [`REPLICA_BUFFER_BYTES`] behind the upload (its queued
//! chunks hold permits of a per-replica semaphore until its stream takes them), which bounds
//! the gateway's memory per upload; the upload waits for a lagging replica only while fewer
//! than W have the chunk (then up to the node deadline) and for [`LAG_GRACE`] once W have
//! it; a replica dropped or skipped ends with a failed put, which the record write turns
//! into a repair hint.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::{BoxFuture, Shared};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use http::{HeaderMap, HeaderValue};
use hyper::body::Frame;
use node::proto::{BLOCK_CRCS_TRAILER, BlobPutReply, BlockCrcs, EXPECTED_MD5_HEADER, table_digest};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, timeout_at};

use super::{Cluster, Need, gather, quorum_failed};
use crate::error::Error;
use crate::node_client::{BoxError, NodeError};

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
pub(super) type ReplicaPut = Shared<BoxFuture<'static, Result<BlobPutReply, String>>>;

/// A blob being streamed to the replicas of one key.
pub struct BlobUpload {
    cluster: Cluster,
    id: String,
    senders: Vec<Lane>,
    puts: Vec<(usize, ReplicaPut)>,
    /// Replicas dropped during the upload, with why.
    lost: Vec<String>,
    timeout: Duration,
    /// W in each replica set of the key.
    need: Need,
    /// The block table of the body sent so far.
    crcs: BlockCrcs,
}

/// A blob durably stored on at least W replicas.
pub struct BlobStored {
    pub(super) acked: Vec<usize>,
    pub(super) late: Vec<(usize, ReplicaPut)>,
    pub(super) check: Expected,
}

/// What a replica must answer for its blob to count.
#[derive(Clone)]
pub(super) struct Expected {
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
        let need = self.write_need(bucket, key);
        let up: Vec<usize> = replicas
            .iter()
            .copied()
            .filter(|&i| !self.believed_down(i))
            .collect();
        let skip_down = need.met_by(&up);
        for i in replicas {
            if skip_down && self.believed_down(i) {
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
            timeout: self.inner.registry.timeout(),
            need,
            crcs: BlockCrcs::default(),
        }
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
        let need = self.need.clone();
        let met = |kept: &[Lane]| need.met_by(&kept.iter().map(|l| l.i).collect::<Vec<_>>());
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
            let patience = if met(&kept) { LAG_GRACE } else { self.timeout };
            let mut deadline = Instant::now() + patience;
            while let Ok(Some((n, permit))) = timeout_at(deadline, waits.next()).await {
                let Some(lane) = behind[n].take() else {
                    continue;
                };
                match permit {
                    Ok(permit) => {
                        let had = met(&kept);
                        self.deliver(lane, &chunk, permit, &mut kept);
                        if !had && met(&kept) {
                            deadline = deadline.min(Instant::now() + LAG_GRACE);
                        }
                    }
                    Err(_) => self.note_lost(lane.i, "buffer closed"),
                }
            }
            let why = if met(&kept) {
                format!("more than {REPLICA_BUFFER_BYTES} bytes behind the write quorum")
            } else {
                format!("no progress for {:?}", self.timeout)
            };
            // Dropping a lane ends its stream with an error: the node keeps nothing.
            for lane in behind.into_iter().flatten() {
                self.note_lost(lane.i, &why);
            }
        }
        let enough = met(&kept);
        self.senders = kept;
        if !enough {
            return Err(quorum_failed(
                "put blob",
                need.needed(),
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
        let node = self.cluster.node_url(i);
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
        let need = self.need.clone();
        let w = need.needed();
        let puts = std::mem::take(&mut self.puts);
        let checked = puts
            .iter()
            .map(|(i, put)| {
                let check = check.clone();
                (*i, put.clone().map(move |r| check_reply(r, &check)))
            })
            .collect();
        // One deadline from the end of the body for W replicas to store and answer.
        let acked = tokio::time::timeout(timeout, gather(&self.cluster, "put blob", checked, need))
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
pub(super) fn check_reply(
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
