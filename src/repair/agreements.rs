//! Carrying each moving key's agreement across a layout change, before the previous
//! owners retire.
//!
//! Why: a key's compare-and-set state (promises, an accepted value) lives on the nodes
//! that took part in its rounds, and the migration copies records, not that state. A
//! promise made under the old layout by a majority of the old owners, say `{A, B}` of
//! `{A, B, C}`, guards the key only among them: once the key's owners are `{B, C, D}`, a
//! plain write stamped below the promise is refused by B alone, so C and D can acknowledge
//! it, and a round that still reaches A (a gateway on the migrating layout, before every
//! node commits the retirement) can finish A's accepted value, stamped above that write,
//! whose condition never saw it. A reader that saw the write would then see it vanish.
//!
//! So once every node fences the layout before the migrating one (`ready`), each key that
//! moves and that some previous member holds agreement state for gets one round of its
//! agreement under the migrating layout, which needs a majority of both owner sets: it
//! finishes whatever the old owners accepted, and leaves a majority of the new owners
//! promised and committed above every older ballot. From then on the new owners alone
//! refuse what the old promises refused. State made after `ready` needs nothing: every
//! round under the migrating layout already reaches a majority of the new owners.
//!
//! Invariant: the previous members are read whole, or all but fewer than min(W, R) of them
//! (any state that matters is on a majority of a key's old owners, so one unread member
//! hides none of it); otherwise the step is not done, and the migration does not retire.

use std::collections::BTreeSet;

use futures::StreamExt;
use node::proto::Select;

use super::Worker;
use crate::error::Error;
use crate::quorum::Decision;

/// Rounds run at once.
const CONCURRENT_ROUNDS: usize = 8;

/// The keys of one migration whose agreement is carried over.
#[derive(Debug, Default)]
pub(super) struct Carried {
    /// The layout version they were carried to.
    version: Option<u64>,
    /// Every key was carried (the step is done for `version`).
    done: bool,
    keys: BTreeSet<(String, String)>,
}

impl Worker {
    /// Whether every moving key's agreement has been carried to the layout this iteration
    /// follows; carries what is left. Call only once the migration is `ready`.
    pub(super) async fn carry_agreements(&mut self) -> bool {
        let version = self.cluster.layout().version;
        if self.carried.version != Some(version) {
            self.carried = Carried {
                version: Some(version),
                ..Carried::default()
            };
        }
        if self.carried.done {
            return true;
        }
        let Some(keys) = self.agreed_keys().await else {
            return false;
        };
        let moving: Vec<(String, String)> = keys
            .into_iter()
            .filter(|(b, k)| self.cluster.placed(b, k).sets.len() > 1)
            .filter(|bk| !self.carried.keys.contains(bk))
            .collect();
        let cluster = self.cluster.clone();
        let mut rounds = futures::stream::iter(moving)
            .map(|(b, k)| {
                let cluster = cluster.clone();
                async move {
                    // Nothing to change: the round finishes what it finds and commits it.
                    let round = cluster
                        .compare_and_set::<Error>(&b, &k, None, Select::CURRENT, |_, _, _| {
                            Decision::AlreadyApplied
                        })
                        .await;
                    ((b, k), round)
                }
            })
            .buffer_unordered(CONCURRENT_ROUNDS);
        let mut failed = 0usize;
        while let Some(((b, k), round)) = rounds.next().await {
            match round {
                Ok(_) => {
                    self.carried.keys.insert((b, k));
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!(bucket = %b, key = %k, "agreement not carried to the new owners yet: {e}");
                }
            }
        }
        self.carried.done = failed == 0;
        if self.carried.done {
            tracing::info!(
                version,
                keys = self.carried.keys.len(),
                "agreements carried to the new owners"
            );
        }
        self.carried.done
    }

    /// Every key a previous member holds agreement state for; `None` when too many of
    /// them could not be read.
    async fn agreed_keys(&self) -> Option<BTreeSet<(String, String)>> {
        let sets = self.cluster.topology().member_sets();
        let previous = sets.get(1)?;
        let mut keys = BTreeSet::new();
        let mut unread = Vec::new();
        for &i in previous {
            let mut after: Option<String> = None;
            loop {
                match self.cluster.agreed_keys_of(i, after.as_deref()).await {
                    Ok(page) => {
                        after = page.keys.last().map(|k| k.cursor());
                        keys.extend(page.keys.into_iter().map(|k| (k.bucket, k.key)));
                        if !page.truncated || after.is_none() {
                            break;
                        }
                    }
                    Err(e) => {
                        unread.push(format!("{}: {e}", self.cluster.node_url(i)));
                        break;
                    }
                }
            }
        }
        let tolerated = self.cluster.write_quorum().min(self.cluster.read_quorum());
        if unread.len() >= tolerated {
            tracing::warn!(?unread, "agreement state of the previous members not read");
            return None;
        }
        Some(keys)
    }
}
