//! Reads: a record merged from R replicas, and a blob streamed from one healthy replica with
//! fail-over to the next, mid-stream included.
//!
//! Nodes check each block's CRC32C before sending it, so a corrupt replica shows up as an
//! error or a broken stream, never as wrong bytes; the reader then resumes at the same byte
//! offset on the next replica, and the client sees one uninterrupted, correct body.

use std::collections::VecDeque;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use node::proto::{Bodies, Data, ObjectRecord, Select, VersionState, windows_cover};

use super::{Cluster, quorum_failed};
use crate::error::Error;
use crate::node_client::NodeError;

/// A record as read from a read quorum.
pub struct RecordRead {
    /// The merge of every answer; `None` when no replica has the key.
    pub record: Option<ObjectRecord>,
    /// The key's replicas, those that answered first at the front: the order to try
    /// blob reads in.
    pub replicas: Vec<usize>,
}

impl Cluster {
    /// Reads the record of `(bucket, key)` from R replicas and merges the answers, with
    /// the inline bodies `bodies` asks for. A record read without some bodies is for
    /// reading only: writing it back would lose them (nodes refuse it).
    pub async fn read_record(
        &self,
        bucket: &str,
        key: &str,
        bodies: Bodies,
        select: Select,
    ) -> Result<RecordRead, Error> {
        self.read_record_on(bucket, key, self.replicas(bucket, key), bodies, select)
            .await
    }

    /// Reads the record stored under `(bucket, key)` on `replicas` (R of them must answer).
    /// Asks R replicas first and the others when one fails or the hedge delay passes (see
    /// `hedge`). When the answers disagree, the merged state is made durable on W replicas
    /// before it is returned (`settle`), so no later read can miss what this one saw.
    /// Answers arriving after the read quorum go to read repair in the background.
    pub async fn read_record_on(
        &self,
        bucket: &str,
        key: &str,
        replicas: Vec<usize>,
        bodies: Bodies,
        select: Select,
    ) -> Result<RecordRead, Error> {
        let bodies = std::sync::Arc::new(bodies);
        let chosen = std::sync::Arc::new(select.clone());
        let (b, k) = (
            std::sync::Arc::<str>::from(bucket),
            std::sync::Arc::<str>::from(key),
        );
        let (mut answers, mut rx) = self
            .hedged_read(
                "read record",
                &replicas,
                self.read_need(bucket, key),
                |node| {
                    let (b, k, bodies, chosen) =
                        (b.clone(), k.clone(), bodies.clone(), chosen.clone());
                    async move { node.get_record(&b, &k, &bodies, &chosen).await }
                },
            )
            .await?;
        for (i, record) in &mut answers {
            if let Some(r) = record {
                drop_corrupt_inline(r, self.node(*i).url(), bucket, key);
            }
        }
        let mut order: Vec<usize> = answers.iter().map(|(i, _)| *i).collect();
        let rest: Vec<usize> = replicas
            .iter()
            .copied()
            .filter(|i| !order.contains(i))
            .collect();
        order.extend(rest);
        let mut merged = ObjectRecord::default();
        for (_, record) in &answers {
            if let Some(r) = record {
                merged.merge(r);
            }
        }
        let own = answers
            .iter()
            .map(|(_, r)| r.as_ref().and_then(|r| r.current()).map(|v| &v.stamp));
        if select.is_current() && !windows_cover(own, merged.current().map(|v| &v.stamp)) {
            // Purges that reached different replicas: the windows do not show the state.
            return Box::pin(self.read_record_on(
                bucket,
                key,
                replicas,
                (*bodies).clone(),
                Select::All,
            ))
            .await;
        }
        select.trim(&mut merged);
        // What this read returns must be on W replicas before it is returned.
        if let Some(committed) = self
            .settle(bucket, key, &replicas, &answers, &merged, &select)
            .await?
        {
            merged = committed;
        }
        // Read repair: wait (in the background) for the replicas that have not answered yet,
        // then bring every replica that answered with less up to the merge of all answers.
        let (cluster, b, k) = (self.clone(), bucket.to_owned(), key.to_owned());
        let mut all = merged.clone();
        tokio::spawn(async move {
            let select = select;
            while let Some((i, result)) = rx.recv().await {
                if let Ok(mut record) = result {
                    if let Some(r) = &mut record {
                        drop_corrupt_inline(r, cluster.node(i).url(), &b, &k);
                        all.merge(r);
                    }
                    answers.push((i, record));
                }
            }
            select.trim(&mut all);
            cluster.spawn_read_repair(&b, &k, answers, all, select);
        });
        Ok(RecordRead {
            record: (!merged.versions.is_empty()).then_some(merged),
            replicas: order,
        })
    }

    /// Opens blob `id` for the byte range `start..end`, trying `candidates` in order. Fails
    /// only when no candidate can serve it.
    pub async fn open_blob(
        &self,
        (bucket, key): (&str, &str),
        id: &str,
        candidates: &[usize],
        start: u64,
        end: u64,
    ) -> Result<BlobReader, Error> {
        let mut reader = ReaderState {
            cluster: self.clone(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            id: id.to_owned(),
            candidates: candidates.iter().copied().collect(),
            pos: start,
            end,
            current: None,
            current_node: 0,
            failures: Vec::new(),
        };
        if start < end {
            reader.open_next().await?;
        }
        Ok(BlobReader { state: reader })
    }
}

/// Inline bodies carry no block checksums; their MD5 is checked here instead, and a
/// version whose bytes do not match is left out so another replica's copy wins.
pub(super) fn drop_corrupt_inline(record: &mut ObjectRecord, node: &str, bucket: &str, key: &str) {
    record.versions.retain(|v| match &v.state {
        VersionState::Object(meta) => match &meta.data {
            Data::Inline { bytes } => {
                let ok = hex::encode(Md5::digest(bytes)) == meta.md5;
                if !ok {
                    tracing::warn!(node, bucket, key, version = %v.stamp.id, "corrupt inline body ignored");
                }
                ok
            }
            Data::InlineOmitted | Data::Blob { .. } | Data::Parts { .. } => true,
        },
        _ => true,
    });
}

/// Counts a corrupt replica of blob `id` on node `i` and rewrites it from a good one.
fn count_bitrot(cluster: &Cluster, bucket: &str, key: &str, i: usize, id: &str) {
    cluster.metrics().bitrot_detections.inc();
    let bad = vec![id.to_owned()];
    cluster.spawn_repair(bucket, key, i, bad, "corrupt blob replica");
}

/// A blob byte range being streamed, failing over between replicas.
pub struct BlobReader {
    state: ReaderState,
}

struct ReaderState {
    cluster: Cluster,
    /// The object the blob belongs to: what to repair when a replica's copy is bad.
    bucket: String,
    key: String,
    id: String,
    candidates: VecDeque<usize>,
    pos: u64,
    end: u64,
    current: Option<BoxStream<'static, Result<Bytes, NodeError>>>,
    /// The replica `current` streams from.
    current_node: usize,
    failures: Vec<String>,
}

impl ReaderState {
    async fn open_next(&mut self) -> Result<(), Error> {
        while let Some(i) = self.candidates.pop_front() {
            let node = self.cluster.node(i);
            match node.get_blob(&self.id, Some((self.pos, self.end))).await {
                Ok(stream) => {
                    self.current = Some(stream.boxed());
                    self.current_node = i;
                    return Ok(());
                }
                Err(e) => self.fail(i, e),
            }
        }
        Err(quorum_failed(
            "read blob",
            1,
            0,
            std::mem::take(&mut self.failures),
        ))
    }

    /// Notes replica `i`'s failure and repairs what it says about its copy. Only bad bytes
    /// the node found count as bitrot: a replica without the blob may simply still be
    /// receiving it (the write that made the record visible did not wait for it).
    fn fail(&mut self, i: usize, e: NodeError) {
        let node = self.cluster.node_url(i);
        let node = node.as_str();
        match &e {
            NodeError::Corrupt(_) => self.bitrot(i),
            NodeError::Status { status, .. } if status.as_u16() == 404 => {
                tracing::info!(node, blob = %self.id, "blob replica missing, repair scheduled");
                let missing = vec![self.id.clone()];
                self.cluster.spawn_repair(
                    &self.bucket,
                    &self.key,
                    i,
                    missing,
                    "missing blob replica",
                );
            }
            // The node quarantines a blob whose bytes fail their check as it breaks the
            // stream off: opening the blob again tells a bad block from a lost connection.
            NodeError::Broken(_) => {
                let (cluster, id) = (self.cluster.clone(), self.id.clone());
                let (bucket, key) = (self.bucket.clone(), self.key.clone());
                tokio::spawn(async move {
                    if let Err(NodeError::Corrupt(_)) = cluster.node(i).get_blob(&id, None).await {
                        count_bitrot(&cluster, &bucket, &key, i, &id);
                    }
                });
            }
            _ => {}
        }
        tracing::warn!(node, blob = %self.id, offset = self.pos, "blob read failed, resuming on the next replica: {e}");
        self.failures.push(format!("{node}: {e}"));
    }

    fn bitrot(&self, i: usize) {
        count_bitrot(&self.cluster, &self.bucket, &self.key, i, &self.id);
    }

    /// The next chunk of the range, failing over as needed; `None` at the end.
    async fn next_chunk(&mut self) -> Option<Result<Bytes, Error>> {
        loop {
            if self.pos >= self.end {
                return None;
            }
            if self.current.is_none()
                && let Err(e) = self.open_next().await
            {
                return Some(Err(e));
            }
            let stream = self.current.as_mut()?;
            match stream.next().await {
                Some(Ok(mut chunk)) => {
                    let left = self.end - self.pos;
                    if chunk.len() as u64 > left {
                        chunk.truncate(left as usize);
                    }
                    self.pos += chunk.len() as u64;
                    if !chunk.is_empty() {
                        return Some(Ok(chunk));
                    }
                }
                Some(Err(e)) => {
                    self.current = None;
                    self.fail(self.current_node, e);
                }
                None => {
                    self.current = None;
                    let e = NodeError::BadReply(format!("stream ended early at {}", self.pos));
                    self.fail(self.current_node, e);
                }
            }
        }
    }
}

impl BlobReader {
    /// The body as a stream of chunks; an error ends it (every replica failed).
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
        futures::stream::unfold(Some(self.state), |state| async move {
            let mut state = state?;
            match state.next_chunk().await {
                None => None,
                Some(Ok(chunk)) => Some((Ok(chunk), Some(state))),
                Some(Err(e)) => {
                    tracing::error!("{e}");
                    Some((Err(std::io::Error::other(e.to_string())), None))
                }
            }
        })
    }
}

/// The bytes `start..end` of an object made of parts, streamed part after part.
pub type ObjectStream = futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>>;

impl Cluster {
    /// Opens the byte range `start..end` of an object stored as `parts` (each a blob on
    /// `candidates`). The first part is opened before returning, so an object no replica
    /// can serve fails here rather than after the response started.
    pub async fn open_parts(
        &self,
        (bucket, key): (&str, &str),
        parts: &[node::proto::PartRef],
        candidates: &[usize],
        start: u64,
        end: u64,
    ) -> Result<ObjectStream, Error> {
        let mut segments = VecDeque::new();
        let mut offset = 0u64;
        for part in parts {
            let (part_start, part_end) = (offset, offset + part.size);
            offset = part_end;
            let (s, e) = (start.max(part_start), end.min(part_end));
            if s < e {
                segments.push_back((part.blob.clone(), s - part_start, e - part_start));
            }
        }
        let first = match segments.pop_front() {
            Some((id, s, e)) => Some(
                self.open_blob((bucket, key), &id, candidates, s, e)
                    .await?
                    .into_stream()
                    .boxed(),
            ),
            None => None,
        };
        let owner = (bucket.to_owned(), key.to_owned());
        let state = (self.clone(), owner, candidates.to_vec(), segments, first);
        let stream = futures::stream::unfold(
            state,
            |(cluster, owner, candidates, mut segments, mut current)| async move {
                loop {
                    if let Some(stream) = current.as_mut()
                        && let Some(item) = stream.next().await
                    {
                        // After an error the object body ends: every replica failed.
                        let next = if item.is_err() {
                            segments.clear();
                            None
                        } else {
                            current
                        };
                        return Some((item, (cluster, owner, candidates, segments, next)));
                    }
                    let (id, s, e) = segments.pop_front()?;
                    let opened = cluster
                        .open_blob((&owner.0, &owner.1), &id, &candidates, s, e)
                        .await;
                    match opened {
                        Ok(reader) => current = Some(reader.into_stream().boxed()),
                        Err(err) => {
                            segments.clear();
                            let err = std::io::Error::other(err.to_string());
                            return Some((Err(err), (cluster, owner, candidates, segments, None)));
                        }
                    }
                }
            },
        );
        Ok(stream.boxed())
    }
}
