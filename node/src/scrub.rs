//! The scrubber: a background task that reads every blob through, slowly, and verifies it
//! completely (each block's CRC32C, the footer and layout, the MD5 of all the data against
//! the footer's), so damage on disk is found before a client needs the blob. A damaged
//! blob is quarantined by the blob store like one found by a client read; the gateways'
//! anti-entropy pass sees it missing (`check_blobs`) and writes it back from a good replica.
//!
//! Invariants: the first pass starts one interval after the start, then passes are one
//! interval apart (end to start). Reading is throttled to the configured rate: after each
//! step the task sleeps in proportion to the bytes it read, and every blob costs at least
//! [`BLOB_OVERHEAD`] bytes, so a store of many small blobs does not become a flood of file
//! opens. Blocking work is done in steps of a few blocks, each on a blocking thread, and
//! the task is a future that [`crate::serve`] drops at shutdown: stopping never waits for a
//! pass, at most for the step in flight.

use std::time::{Duration, Instant};

use prometheus::IntCounter;

use crate::blobs::{BlobStore, Checked, FullCheck};
use crate::error::Error;

/// What each blob costs the rate budget on top of its data: the open, the stat and the
/// footer read.
const BLOB_OVERHEAD: u64 = 16 * 1024;
/// Owed sleep is paid once it reaches this much; shorter sleeps would mostly measure the
/// timer's granularity.
const MIN_SLEEP: Duration = Duration::from_millis(10);

/// The scrubber of one node.
pub(crate) struct Scrubber {
    pub(crate) store: BlobStore,
    /// Pause before the first pass and between two passes.
    pub(crate) interval: Duration,
    /// Average read rate the scrubber stays under, in bytes per second (at least 1).
    pub(crate) rate: u64,
    /// `node_scrub_blobs_checked_total`.
    pub(crate) checked: IntCounter,
    /// `node_scrub_passes_total`.
    pub(crate) passes: IntCounter,
}

/// What one pass found.
#[derive(Debug, Default, PartialEq, Eq)]
struct PassReport {
    checked: u64,
    corrupt: u64,
    unreadable: u64,
}

impl Scrubber {
    /// Scrubs forever, one pass every `interval`. Returns only when `stop` resolves (or its
    /// sender is dropped).
    pub(crate) async fn run(self, stop: impl Future<Output = ()>) {
        tracing::info!(
            interval_ms = self.interval.as_millis() as u64,
            rate_bytes_per_sec = self.rate,
            "blob scrubber started"
        );
        tokio::select! {
            () = stop => {}
            () = self.forever() => {}
        }
        tracing::debug!("blob scrubber stopped");
    }

    async fn forever(&self) {
        loop {
            tokio::time::sleep(self.interval).await;
            let started = Instant::now();
            let report = self.pass().await;
            self.passes.inc();
            tracing::info!(
                checked = report.checked,
                corrupt = report.corrupt,
                unreadable = report.unreadable,
                seconds = started.elapsed().as_secs(),
                "blob scrub pass done"
            );
        }
    }

    /// One pass over every blob, shard by shard in id order.
    async fn pass(&self) -> PassReport {
        let mut report = PassReport::default();
        let mut throttle = Throttle::new(self.rate);
        for shard in 0..=255u8 {
            let store = self.store.clone();
            let listed = tokio::task::spawn_blocking(move || store.list_shard(shard))
                .await
                .map_err(Error::task("scrub listing task"))
                .and_then(|listed| listed);
            let ids = match listed {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!(shard, error = %e, "scrubber cannot list a blob shard");
                    continue;
                }
            };
            for (id, _) in ids {
                throttle.pay(BLOB_OVERHEAD).await;
                match self.check(&id, &mut throttle).await {
                    Ok(true) => {}
                    Ok(false) => report.corrupt += 1,
                    // Deleted since the listing: nothing to check.
                    Err(Error::NotFound) => continue,
                    Err(e) => {
                        tracing::warn!(blob = %id, error = %e, "scrubber cannot read blob");
                        report.unreadable += 1;
                    }
                }
                report.checked += 1;
                self.checked.inc();
            }
        }
        report
    }

    /// Verifies blob `id` completely: true when sound, false when corrupt (it is
    /// quarantined by then), `Err` when it cannot be read.
    async fn check(&self, id: &str, throttle: &mut Throttle) -> Result<bool, Error> {
        let mut check: FullCheck = match self.store.open_blob(id).await {
            Ok(blob) => blob.full_check(),
            Err(Error::Corrupt(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        loop {
            let (back, step) = tokio::task::spawn_blocking(move || {
                let step = check.step();
                (check, step)
            })
            .await
            .map_err(Error::task("scrub read task"))?;
            check = back;
            match step {
                Ok(Checked::More(bytes)) => throttle.pay(bytes).await,
                Ok(Checked::Sound) => return Ok(true),
                Err(Error::Corrupt(_)) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
    }
}

/// Sleeps in proportion to the bytes read, so the average rate stays under `rate`.
struct Throttle {
    rate: u64,
    owed: Duration,
}

impl Throttle {
    fn new(rate: u64) -> Throttle {
        Throttle {
            rate: rate.max(1),
            owed: Duration::ZERO,
        }
    }

    /// Time reading `bytes` costs at the configured rate.
    fn cost(&self, bytes: u64) -> Duration {
        let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(self.rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    async fn pay(&mut self, bytes: u64) {
        self.owed = self.owed.saturating_add(self.cost(bytes));
        if self.owed >= MIN_SLEEP {
            tokio::time::sleep(std::mem::take(&mut self.owed)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_costs_are_proportional_and_never_overflow() {
        let throttle = Throttle::new(1024 * 1024);
        assert_eq!(throttle.cost(1024 * 1024), Duration::from_secs(1));
        assert_eq!(throttle.cost(512 * 1024), Duration::from_millis(500));
        assert_eq!(
            Throttle::new(1).cost(u64::MAX),
            Duration::from_nanos(u64::MAX)
        );
        assert_eq!(Throttle::new(0).rate, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn throttle_sleeps_once_enough_is_owed() {
        let mut throttle = Throttle::new(1000);
        let start = tokio::time::Instant::now();
        throttle.pay(5).await; // 5 ms owed: not yet paid
        assert_eq!(start.elapsed(), Duration::ZERO);
        throttle.pay(10).await; // 15 ms owed: paid now
        assert_eq!(start.elapsed(), Duration::from_millis(15));
        assert_eq!(throttle.owed, Duration::ZERO);
    }
}
