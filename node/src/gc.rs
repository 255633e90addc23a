//! The node's part of garbage collection: which of its blob files nothing here refers to,
//! and deleting those the repair-lease holder found unreferenced on every node.
//!
//! Invariant: a blob file is deleted only by [`collect`], and only when, checked again in
//! the record writer, neither a stored version nor an accepted Paxos value of this node
//! refers to it, none has within the grace, and its file is older than the grace. The
//! cluster-wide check (whether another node's records still need this copy) is the
//! caller's: [`referenced`] tells it which keys refer to a blob, and where its file is.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::blobs::BlobStore;
use crate::error::Error;
use crate::proto::gc::{
    Dropped, GcBlob, GcCollected, GcScan, MAX_GC_IDS, Referenced, TombstonePage, TombstoneRef,
};
use crate::records::RecordStore;

/// The blobs of shard `shard` that nothing here refers to: those older than `grace` are
/// candidates, the younger ones are counted as waiting.
pub(crate) async fn scan(
    blobs: &BlobStore,
    records: &RecordStore,
    shard: u8,
    grace: Duration,
) -> Result<GcScan, Error> {
    let store = blobs.clone();
    let found = tokio::task::spawn_blocking(move || store.gc_shard(shard))
        .await
        .map_err(Error::task("blob shard scan"))??;
    let ids = found.files.iter().map(|f| f.id.clone()).collect();
    let unreferenced: HashMap<String, Option<Duration>> =
        records.released(ids).await?.into_iter().collect();
    let mut scan = GcScan {
        files: found.files.len() as u64,
        quarantine_cleared: found.quarantine_cleared,
        ..GcScan::default()
    };
    for file in found.files {
        let Some(released) = unreferenced.get(&file.id) else {
            continue;
        };
        // A read that began before the last reference went may still stream the blob.
        let age = released.map_or(file.age, |ago| ago.min(file.age));
        if age >= grace {
            scan.unreferenced.push(GcBlob {
                id: file.id,
                size: file.len,
                quarantined: file.quarantined,
            });
        } else {
            scan.waiting += 1;
            scan.waiting_bytes += file.len;
        }
    }
    Ok(scan)
}

/// Which of `ids` something here refers to, by which record addresses, and whether this
/// node holds their files.
pub(crate) async fn referenced(
    blobs: &BlobStore,
    records: &RecordStore,
    ids: Vec<String>,
) -> Result<Vec<Referenced>, Error> {
    check_count(&ids)?;
    let found = records.referrers(ids).await?;
    let ids: Vec<String> = found.iter().map(|(id, _, _)| id.clone()).collect();
    let missing: HashSet<String> = blobs
        .missing(vec![ids])
        .await?
        .into_iter()
        .flatten()
        .collect();
    Ok(found
        .into_iter()
        .map(|(id, keys, more)| Referenced {
            stored: !missing.contains(&id),
            id,
            keys,
            more,
        })
        .collect())
}

/// Deletes each of `ids` that, checked again, nothing here refers to and that is older
/// than `grace`.
pub(crate) async fn collect(
    blobs: &BlobStore,
    records: &RecordStore,
    ids: Vec<String>,
    grace: Duration,
) -> Result<GcCollected, Error> {
    check_count(&ids)?;
    let store = blobs.clone();
    let freed = records
        .collect(
            ids,
            grace,
            Box::new(move |id| store.remove_if_older(id, grace)),
        )
        .await?;
    if !freed.is_empty() {
        tracing::info!(
            blobs = freed.len(),
            "garbage collection deleted unreferenced blobs"
        );
    }
    Ok(GcCollected {
        bytes: freed.iter().map(|(_, b)| b).sum(),
        deleted: freed.into_iter().map(|(id, _)| id).collect(),
    })
}

/// Tombstones held here for longer than `grace`, a page of at most `limit` entries looked
/// at (matching or not) after the cursor `after`.
pub(crate) async fn tombstones(
    records: &RecordStore,
    grace: Duration,
    after: Option<&str>,
    limit: usize,
) -> Result<TombstonePage, Error> {
    let after = match after {
        Some(cursor) => Some(
            crate::records::unhex(cursor)
                .ok_or_else(|| Error::BadRequest(format!("bad tombstone cursor {cursor:?}")))?,
        ),
        None => None,
    };
    records
        .old_tombstones(grace, after, limit.clamp(1, MAX_GC_IDS))
        .await
}

/// Drops each of `tombstones` that is still a purge tombstone here.
pub(crate) async fn drop(
    records: &RecordStore,
    tombstones: Vec<TombstoneRef>,
) -> Result<Dropped, Error> {
    check_count(&tombstones)?;
    let dropped = records.drop_tombstones(tombstones).await?;
    Ok(Dropped { dropped })
}

fn check_count<T>(ids: &[T]) -> Result<(), Error> {
    if ids.len() > MAX_GC_IDS {
        return Err(Error::BadRequest(format!(
            "{} blob ids in one request; at most {MAX_GC_IDS}",
            ids.len()
        )));
    }
    Ok(())
}
