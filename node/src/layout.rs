//! The node's part in the cluster layout register (see [`crate::proto::layout`]): the
//! acceptor of its compare-and-set, the committed layout other node code reads, and the
//! fence that keeps requests placed with an older layout off this node's records.
//!
//! State: the highest ballot promised, the last proposal accepted and the committed layout,
//! in `<data_dir>/layout.json`, written whole (aside, fsynced, renamed, the directory
//! fsynced, like the node id) and loaded at start. A file that does not decode stops the
//! start: a node that forgot a promise could let two proposers both win.
//!
//! Invariants:
//! - an answer is given only once the state it reports is on disk. Changes are serialised
//!   (`writing`), so files land in the order the changes were made, and memory only ever
//!   holds what is on disk;
//! - nothing is ever lowered: the promise only rises, a commit installs only a newer
//!   revision, and the committed version never decreases;
//! - the fence gate: a fenced request holds a read guard of `gate` while its handler runs,
//!   and a commit that raises the committed version installs it under the write guard. So
//!   once the commit of version v is answered, no request fenced with a version below v is
//!   still being handled here, and none will be.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::sync::{RwLock, RwLockReadGuard};

use crate::error::Error;
use crate::proto::layout::{Layout, LayoutPromise, LayoutView, owners, placed_key};
use crate::proto::paxos::{AcceptReply, Ballot};

const FILE: &str = "layout.json";

/// Held while a fenced request is handled: a commit raising the version waits for it.
pub(crate) type Fence<'a> = RwLockReadGuard<'a, ()>;

/// The acceptor's state, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Acceptor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    promised: Option<Ballot>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    accepted: Option<(Ballot, Layout)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    committed: Option<Layout>,
}

impl Acceptor {
    /// Whether a ballot higher than `ballot` was promised.
    fn outbid(&self, ballot: &Ballot) -> bool {
        self.promised.as_ref().is_some_and(|p| p > ballot)
    }

    fn highest_or(&self, ballot: &Ballot) -> Ballot {
        self.promised.clone().unwrap_or_else(|| ballot.clone())
    }

    /// Promised unless a higher ballot was; an equal one is a re-sent prepare, promised
    /// again. The answer reports what this node accepted and committed either way.
    fn prepare(&mut self, ballot: &Ballot) -> LayoutPromise {
        let promised = !self.outbid(ballot);
        if promised {
            self.promised = Some(ballot.clone());
        }
        LayoutPromise {
            promised,
            highest: self.highest_or(ballot),
            accepted: self.accepted.clone(),
            committed: self.committed.clone(),
        }
    }

    /// Accepted unless a higher ballot was promised.
    fn accept(&mut self, ballot: &Ballot, value: &Layout) -> AcceptReply {
        let accepted = !self.outbid(ballot);
        if accepted {
            self.promised = Some(ballot.clone());
            self.accepted = Some((ballot.clone(), value.clone()));
        }
        AcceptReply {
            accepted,
            highest: self.highest_or(ballot),
        }
    }

    /// Installs `value` if its revision is newer than the committed one's (an older or
    /// equal one is a late or re-sent commit: ignored). A newer revision with an older
    /// version is a proposer's bug; refused, so the fence never moves back.
    fn commit(&mut self, value: Layout) -> Result<(), Error> {
        if let Some(c) = &self.committed {
            if value.revision <= c.revision {
                return Ok(());
            }
            if value.version < c.version {
                return Err(Error::BadRequest(format!(
                    "layout revision {} has version {}, below the committed version {}",
                    value.revision, value.version, c.version
                )));
            }
        }
        self.committed = Some(value);
        Ok(())
    }

    fn version(&self) -> u64 {
        self.committed.as_ref().map_or(0, |c| c.version)
    }
}

/// The layout register on this node. Cheap to clone.
#[derive(Clone)]
pub(crate) struct LayoutStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    /// What is on disk; locked briefly, never across an await.
    state: Mutex<Acceptor>,
    /// Serialises changes from read to stored to installed.
    writing: tokio::sync::Mutex<()>,
    /// The committed version (0 when none), for the fence check without the state lock.
    version: AtomicU64,
    gate: RwLock<()>,
}

impl LayoutStore {
    /// Loads the state kept in `dir` (none yet: the empty state). Blocking.
    pub(crate) fn open(dir: &Path) -> Result<LayoutStore, Error> {
        let path = dir.join(FILE);
        let state: Acceptor = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Acceptor::default(),
            Err(source) => {
                return Err(Error::Io {
                    op: "read layout state",
                    source,
                });
            }
        };
        Ok(LayoutStore {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                version: AtomicU64::new(state.version()),
                state: Mutex::new(state),
                writing: tokio::sync::Mutex::new(()),
                gate: RwLock::new(()),
            }),
        })
    }

    /// The committed layout, if one was agreed.
    pub(crate) fn committed(&self) -> Option<Layout> {
        self.inner.lock().committed.clone()
    }

    /// The committed layout's version; 0 when there is none.
    pub(crate) fn version(&self) -> u64 {
        self.inner.version.load(Ordering::Acquire)
    }

    pub(crate) fn view(&self) -> LayoutView {
        LayoutView {
            committed: self.committed(),
        }
    }

    pub(crate) async fn prepare(&self, ballot: Ballot) -> Result<LayoutPromise, Error> {
        self.change(move |s| Ok(s.prepare(&ballot))).await
    }

    pub(crate) async fn accept(&self, ballot: Ballot, value: Layout) -> Result<AcceptReply, Error> {
        self.change(move |s| Ok(s.accept(&ballot, &value))).await
    }

    /// Installs `value` if it is newer; returns once it is on disk and, when it raised the
    /// version, once no request fenced with an older version is being handled.
    pub(crate) async fn commit(&self, value: Layout) -> Result<(), Error> {
        self.change(move |s| s.commit(value)).await
    }

    /// Admits a request placed with layout version `sent` (none: unplaced, always served)
    /// unless the committed version is newer. Hold the guard while the request is handled.
    pub(crate) async fn enter(&self, sent: Option<u64>) -> Result<Fence<'_>, Error> {
        // Checked under the guard: a commit cannot slip between the check and the handler.
        let guard = self.inner.gate.read().await;
        let committed = self.version();
        match sent {
            Some(sent) if sent < committed => Err(Error::StaleLayout { sent, committed }),
            _ => Ok(guard),
        }
    }

    /// Refuses (`StillOwner`) to give up the record at (bucket, key) unless this node,
    /// `node_id`, has a committed layout, no migration runs, and it is not among the owners
    /// of the key the address is placed by. Call it inside the request's fence: then the
    /// version cannot change before the record is removed, and the members and `previous`
    /// change only with the version.
    pub(crate) fn check_release(
        &self,
        node_id: &str,
        bucket: &str,
        key: &str,
    ) -> Result<(), Error> {
        match release_refusal(self.inner.lock().committed.as_ref(), node_id, bucket, key) {
            Some(why) => Err(Error::StillOwner(why)),
            None => Ok(()),
        }
    }

    /// Applies `f` to the state, stores the result and installs it, in a task of its own:
    /// a request dropped half-way (its client went) must not leave on disk a change that
    /// memory does not hold.
    async fn change<R, F>(&self, f: F) -> Result<R, Error>
    where
        R: Send + 'static,
        F: FnOnce(&mut Acceptor) -> Result<R, Error> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move { inner.change(f).await })
            .await
            .map_err(Error::task("layout change"))?
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Acceptor> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn change<R>(
        &self,
        f: impl FnOnce(&mut Acceptor) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let _writing = self.writing.lock().await;
        let current = self.lock().clone();
        let mut next = current.clone();
        let answer = f(&mut next)?;
        if next == current {
            // A re-sent prepare, a late commit: nothing to store.
            return Ok(answer);
        }
        let (dir, stored) = (self.dir.clone(), next.clone());
        tokio::task::spawn_blocking(move || store(&dir, &stored))
            .await
            .map_err(Error::task("store layout state"))??;
        let version = next.version();
        // A raised version waits for every fenced request in flight; the ones after it
        // see the new version.
        let _gate = if version > self.version.load(Ordering::Acquire) {
            Some(self.gate.write().await)
        } else {
            None
        };
        *self.lock() = next;
        self.version.store(version, Ordering::Release);
        Ok(answer)
    }
}

/// Why this node, `node_id`, may not give up the record at (bucket, key) under the
/// committed layout; `None` when it may.
fn release_refusal(
    committed: Option<&Layout>,
    node_id: &str,
    bucket: &str,
    key: &str,
) -> Option<String> {
    let Some(layout) = committed else {
        return Some("this node has no committed layout".into());
    };
    if layout.previous.is_some() {
        // Reads still go to the previous owners: this copy may be the one they need.
        return Some(format!(
            "layout version {} is still migrating",
            layout.version
        ));
    }
    let (b, k) = placed_key(bucket, key);
    let owns = owners(&layout.nodes, layout.replicas, b, k)
        .into_iter()
        .any(|i| layout.nodes.get(i).is_some_and(|n| n.id == node_id));
    owns.then(|| {
        format!(
            "this node owns the key in layout version {}",
            layout.version
        )
    })
}

/// Writes the whole state: aside, synced, renamed into place, the directory synced.
fn store(dir: &Path, state: &Acceptor) -> Result<(), Error> {
    let bytes = serde_json::to_vec_pretty(state)
        .map_err(|e| Error::Corrupt(format!("cannot encode layout state: {e}")))?;
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut file = std::fs::File::create(&tmp).map_err(Error::io("create layout state"))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(Error::io("write layout state"))?;
    std::fs::rename(&tmp, dir.join(FILE)).map_err(Error::io("store layout state"))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("sync data directory"))
}

#[cfg(test)]
mod tests;
