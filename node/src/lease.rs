//! Named leases held in memory: a gateway that obtains a lease from a majority of nodes
//! may do the work the lease names (the repair worker) while the others stand by.
//!
//! Invariants: a lease is granted when nobody holds it, when its term ran out, or to its
//! current holder (a renewal, which restarts the term); a term never exceeds
//! [`MAX_LEASE_TTL`]. Leases are not persisted: a restarted node has none, which at worst
//! lets a second holder in one term early — the work they guard is idempotent. The lock is
//! only held for a map lookup and update, never across an `.await`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::proto::{LeaseReply, LeaseRequest};

/// Longest term a lease is granted for, whatever was asked.
pub(crate) const MAX_LEASE_TTL: Duration = Duration::from_secs(10 * 60);
/// Past this many names, expired leases are dropped on the next grant, so names used once
/// cannot pile up.
const PRUNE_ABOVE: usize = 1024;

/// Who holds a lease and until when.
#[derive(Debug)]
struct Held {
    holder: String,
    until: Instant,
}

/// The leases of one node.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    held: Mutex<HashMap<String, Held>>,
}

impl Leases {
    /// Answers `request` for lease `name` at time `now`: grants (or renews) it, or says who
    /// holds it and for how much longer.
    pub(crate) fn acquire(
        &self,
        name: &str,
        request: &LeaseRequest,
        now: Instant,
    ) -> Result<LeaseReply, Error> {
        if request.holder.is_empty() {
            return Err(Error::BadRequest("lease holder is empty".into()));
        }
        let ttl = Duration::from_millis(request.ttl_ms).min(MAX_LEASE_TTL);
        // The map holds plain data updated in single steps: a panic elsewhere while the
        // lock was held cannot have left it half-changed.
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(current) = held.get(name)
            && current.until > now
            && current.holder != request.holder
        {
            return Ok(LeaseReply {
                granted: false,
                holder: current.holder.clone(),
                remaining_ms: millis(current.until.saturating_duration_since(now)),
            });
        }
        if held.len() >= PRUNE_ABOVE {
            held.retain(|_, lease| lease.until > now);
        }
        held.insert(
            name.to_string(),
            Held {
                holder: request.holder.clone(),
                // The cap keeps this far from overflowing; never panic on it anyway.
                until: now.checked_add(ttl).unwrap_or(now),
            },
        );
        Ok(LeaseReply {
            granted: true,
            holder: request.holder.clone(),
            remaining_ms: millis(ttl),
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(holder: &str, ttl_ms: u64) -> LeaseRequest {
        LeaseRequest {
            holder: holder.into(),
            ttl_ms,
        }
    }

    #[test]
    fn grants_refuses_renews_and_expires() {
        let leases = Leases::default();
        let t0 = Instant::now();
        let first = leases.acquire("repair", &ask("a", 1000), t0).expect("a");
        assert!(first.granted && first.holder == "a" && first.remaining_ms == 1000);

        let later = t0 + Duration::from_millis(400);
        let refused = leases.acquire("repair", &ask("b", 1000), later).expect("b");
        assert_eq!(
            refused,
            LeaseReply {
                granted: false,
                holder: "a".into(),
                remaining_ms: 600
            }
        );
        // Another name is another lease.
        assert!(
            leases
                .acquire("other", &ask("b", 10), later)
                .expect("b")
                .granted
        );

        // Renewal restarts the term.
        let renewed = leases.acquire("repair", &ask("a", 1000), later).expect("a");
        assert!(renewed.granted && renewed.remaining_ms == 1000);
        let still = t0 + Duration::from_millis(1200);
        assert!(
            !leases
                .acquire("repair", &ask("b", 1000), still)
                .expect("b")
                .granted
        );

        // Expired: anyone may take it.
        let expired = t0 + Duration::from_millis(1400);
        let taken = leases
            .acquire("repair", &ask("b", 1000), expired)
            .expect("b");
        assert!(taken.granted && taken.holder == "b");
    }

    #[test]
    fn caps_the_term_and_refuses_an_empty_holder() {
        let leases = Leases::default();
        let reply = leases
            .acquire("repair", &ask("a", u64::MAX), Instant::now())
            .expect("a");
        assert_eq!(reply.remaining_ms, MAX_LEASE_TTL.as_millis() as u64);
        assert!(matches!(
            leases.acquire("repair", &ask("", 10), Instant::now()),
            Err(Error::BadRequest(_))
        ));
    }

    #[test]
    fn drops_expired_names_once_many_piled_up() {
        let leases = Leases::default();
        let t0 = Instant::now();
        for i in 0..PRUNE_ABOVE {
            leases
                .acquire(&format!("n{i}"), &ask("a", 1), t0)
                .expect("grant");
        }
        let later = t0 + Duration::from_secs(1);
        leases.acquire("last", &ask("a", 1), later).expect("grant");
        let held = leases.held.lock().expect("lock");
        assert_eq!(held.len(), 1);
    }
}
