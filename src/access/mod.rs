//! Who may do what: access keys kept by the cluster, per-bucket grants, and the check every
//! S3 request passes before its handler runs.
//!
//! - The **root key** (`--access-key` / `--secret-key`) may do everything.
//! - Other keys live in the cluster's key table (`quorum::keys`). Every gateway re-reads the
//!   table every [`REFRESH`], so a key created, deleted or expired through any gateway is
//!   honoured or refused by every other within about that; the gateway that made a change
//!   knows it at once.
//! - A key may do in a bucket what its grant there says (`read`, `write`, `owner`, see
//!   [`ops::need`]); a key allowed to create buckets is granted all three on the buckets it
//!   creates. Grants are read from the bucket record, reused for at most [`REFRESH`].
//! - Anything else is 403 AccessDenied, whether or not the bucket exists (a key with no
//!   grant cannot tell).
//!
//! Invariant: a key that is deleted or past its expiry is never returned by
//! [`Access::secret_of`], so no request signed with it (header or presigned) verifies.

pub mod ops;
pub mod policy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use node::proto::access::{KeyRecord, KeyState, Perms};
use node::proto::{BucketRecord, Lww, Stamp};
use s3s::{S3Error, S3ErrorCode, S3Result};
use tokio::sync::watch;

use crate::error::Error;
use crate::quorum::Cluster;
use ops::Need;

/// How often every gateway re-reads the key table, and how long it reuses a bucket's grants.
pub const REFRESH: Duration = Duration::from_millis(500);

/// Handle on the key registry and the grant check; cheap to clone.
#[derive(Clone)]
pub struct Access {
    inner: Arc<Inner>,
}

struct Inner {
    cluster: Cluster,
    root_id: String,
    root_secret: String,
    /// The key table as last read, deleted keys included.
    keys: RwLock<HashMap<String, KeyRecord>>,
    /// Bucket records as recently read, for their grants.
    buckets: Mutex<HashMap<String, (Instant, Option<BucketRecord>)>>,
}

/// What a request may reach beyond what its caller's grants and the bucket policy allow:
/// a caller refused only for want of read access may still GET and HEAD object versions
/// whose ACL is `public-read` (and copy from them), which only the version read tells.
/// [`Access::check`] puts this in the request's extensions when it applies; the handlers
/// that read a version honour it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublicOnly {
    /// The object the request names.
    pub target: bool,
    /// The source object of a copy.
    pub source: bool,
}

/// What [`Access::decide`] concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allow,
    Deny,
    /// Allowed if the object version read turns out to be public-read.
    IfPublicObject,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Root,
    Key(String),
    Anonymous,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether a key may be used now.
fn usable(state: &KeyState) -> bool {
    !state.deleted && state.expires_at.is_none_or(|t| now_secs() < t)
}

fn denied() -> S3Error {
    S3Error::with_message(S3ErrorCode::AccessDenied, "Access Denied")
}

impl Access {
    pub fn new(cluster: Cluster, root_id: &str, root_secret: &str) -> Self {
        Access {
            inner: Arc::new(Inner {
                cluster,
                root_id: root_id.to_owned(),
                root_secret: root_secret.to_owned(),
                keys: RwLock::default(),
                buckets: Mutex::default(),
            }),
        }
    }

    /// Re-reads the key table every [`REFRESH`] until `stop` turns true.
    pub async fn run_refresher(self, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.refresh().await {
                tracing::warn!("access keys not refreshed: {e}");
            }
            tokio::select! {
                _ = tokio::time::sleep(REFRESH) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Reads the whole key table from a read quorum.
    pub async fn refresh(&self) -> Result<(), Error> {
        let records = self.inner.cluster.current().list_keys().await?;
        if let Ok(mut keys) = self.inner.keys.write() {
            for record in records {
                match keys.get_mut(&record.id) {
                    Some(known) => known.merge(&record),
                    None => {
                        keys.insert(record.id.clone(), record);
                    }
                }
            }
        }
        Ok(())
    }

    /// The secret of access key `id`, if it may sign requests now.
    pub fn secret_of(&self, id: &str) -> Option<String> {
        if id == self.inner.root_id {
            return Some(self.inner.root_secret.clone());
        }
        self.usable_key(id).map(|s| s.secret)
    }

    /// Key `id`'s state, if it is known, not deleted and not expired.
    fn usable_key(&self, id: &str) -> Option<KeyState> {
        let keys = self.inner.keys.read().ok()?;
        keys.get(id).map(|r| r.state.value.clone()).filter(usable)
    }

    /// Who signed with access key `id` (`None`: an unsigned request).
    pub fn caller(&self, id: Option<&str>) -> Caller {
        match id {
            None => Caller::Anonymous,
            Some(id) if id == self.inner.root_id => Caller::Root,
            Some(id) => Caller::Key(id.to_owned()),
        }
    }

    /// What `caller` may do in `bucket` (as its record, possibly `None`, shows).
    pub fn perms(&self, caller: &Caller, bucket: Option<&BucketRecord>) -> Perms {
        match (caller, bucket) {
            (Caller::Root, _) => Perms {
                read: true,
                write: true,
                owner: true,
            },
            (Caller::Key(id), Some(b)) if self.usable_key(id).is_some() => b.perms_of(id),
            _ => Perms::default(),
        }
    }

    /// Refuses (403) a request `caller` may not make: operation `op` on `bucket` (and
    /// object `key`), reading `copy_source` too when the operation copies. What it may
    /// reach only if the version read is public is returned.
    pub async fn check(
        &self,
        caller: &Caller,
        op: &str,
        (bucket, key): (Option<&str>, Option<&str>),
        copy_source: Option<&str>,
    ) -> S3Result<PublicOnly> {
        let mut public_only = PublicOnly::default();
        if *caller == Caller::Root {
            return Ok(public_only);
        }
        let who = match caller {
            Caller::Key(id) => {
                if self.usable_key(id).is_none() {
                    return Err(denied());
                }
                Some(id.as_str())
            }
            _ => None,
        };
        let need = ops::need(op);
        let allow = |yes: bool| if yes { Verdict::Allow } else { Verdict::Deny };
        let verdict = match (need, bucket) {
            (Need::AnyKey, _) => allow(who.is_some()),
            (Need::CreateBucket, _) => allow(
                who.and_then(|id| self.usable_key(id))
                    .is_some_and(|k| k.allow_create_bucket),
            ),
            (Need::Root, _) | (_, None) => Verdict::Deny,
            (_, Some(bucket)) => {
                let record = self.bucket(bucket).await?;
                self.decide(caller, op, need, record.as_ref(), key)
            }
        };
        match verdict {
            Verdict::Allow => {}
            Verdict::IfPublicObject => public_only.target = true,
            Verdict::Deny => {
                return Err(match who {
                    Some(_) => denied(),
                    None => {
                        s3s::s3_error!(AccessDenied, "Access Denied (the request was not signed)")
                    }
                });
            }
        }
        if ops::reads_copy_source(op)
            && let Some((source, source_key)) = copy_source.and_then(ops::copy_source_object)
        {
            let record = self.bucket(&source).await?;
            let get = "GetObject";
            match self.decide(caller, get, Need::Read, record.as_ref(), Some(&source_key)) {
                Verdict::Allow => {}
                Verdict::IfPublicObject => public_only.source = true,
                Verdict::Deny => return Err(denied()),
            }
        }
        Ok(public_only)
    }

    /// Whether `caller` may do `op` (needing `need`) in the bucket `record` describes, on
    /// object `key`: a Deny of the bucket policy refuses; its Allow, the caller's grant, or
    /// (for anyone) a public-read ACL of the bucket (listing) or of the version (reading
    /// it) permits.
    fn decide(
        &self,
        caller: &Caller,
        op: &str,
        need: Need,
        record: Option<&BucketRecord>,
        key: Option<&str>,
    ) -> Verdict {
        let Some(record) = record else {
            return Verdict::Deny;
        };
        let block = record
            .live(&record.public_access_block)
            .copied()
            .unwrap_or_default();
        let who = match caller {
            Caller::Key(id) => Some(id.as_str()),
            _ => None,
        };
        let policy = record
            .live(&record.policy)
            .filter(|p| !p.is_empty())
            .and_then(|text| policy::Policy::parse(text, &record.name).ok());
        let verdict = policy.map_or(policy::Verdict::Silent, |p| {
            p.verdict(
                who,
                &policy::action_of(op),
                key,
                !block.restrict_public_buckets,
            )
        });
        match verdict {
            policy::Verdict::Deny => return Verdict::Deny,
            policy::Verdict::Allow => return Verdict::Allow,
            policy::Verdict::Silent => {}
        }
        let granted = match caller {
            Caller::Anonymous => {
                // A public-read bucket ACL lets anyone list the bucket (S3's READ on a
                // bucket).
                let public_acl = record.live(&record.public_read).copied().unwrap_or(false)
                    && !block.ignore_public_acls;
                public_acl && matches!(op, "ListObjects" | "ListObjectsV2" | "HeadBucket")
            }
            _ => {
                let perms = self.perms(caller, Some(record));
                match need {
                    Need::Read => perms.read,
                    Need::Write => perms.write,
                    Need::Owner => perms.owner,
                    _ => false,
                }
            }
        };
        if granted {
            Verdict::Allow
        } else if ops::reads_object_version(op) && !block.ignore_public_acls {
            Verdict::IfPublicObject
        } else {
            Verdict::Deny
        }
    }

    /// Bucket `name`'s record (existing buckets only), reused for at most [`REFRESH`].
    async fn bucket(&self, name: &str) -> Result<Option<BucketRecord>, Error> {
        let cached = self.inner.buckets.lock().ok().and_then(|m| {
            m.get(name)
                .filter(|(at, _)| at.elapsed() < REFRESH)
                .map(|(_, r)| r.clone())
        });
        if let Some(record) = cached {
            return Ok(record);
        }
        let record = self.inner.cluster.current().existing_bucket(name).await?;
        if let Ok(mut m) = self.inner.buckets.lock() {
            m.retain(|_, (at, _)| at.elapsed() < REFRESH);
            m.insert(name.to_owned(), (Instant::now(), record.clone()));
        }
        Ok(record)
    }

    /// Forgets what was read of bucket `name` (after this gateway changed it).
    pub fn forget_bucket(&self, name: &str) {
        if let Ok(mut m) = self.inner.buckets.lock() {
            m.remove(name);
        }
    }

    /// Every key record this gateway knows (deleted keys included), by id.
    pub fn known_keys(&self) -> Vec<KeyRecord> {
        let mut keys: Vec<KeyRecord> = self
            .inner
            .keys
            .read()
            .map(|k| k.values().cloned().collect())
            .unwrap_or_default();
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        keys
    }

    /// Key `id`'s record as the cluster holds it now (a fresh read of the table).
    pub async fn key_record(&self, id: &str) -> Result<Option<KeyRecord>, Error> {
        self.refresh().await?;
        Ok(self.inner.keys.read().ok().and_then(|k| k.get(id).cloned()))
    }

    /// Writes `state` as key `id`'s new state (stamped after every state it had), to a
    /// majority of the nodes; this gateway uses it at once.
    pub async fn put_key(&self, id: &str, state: KeyState) -> Result<KeyRecord, Error> {
        let seen = self.key_record(id).await?.map(|r| r.state.stamp.ts);
        let record = KeyRecord {
            id: id.to_owned(),
            state: Lww {
                stamp: Stamp {
                    ts: self.inner.cluster.current().next_timestamp(seen),
                    id: Cluster::new_id(),
                },
                value: state,
            },
        };
        self.inner.cluster.current().put_key(record.clone()).await?;
        if let Ok(mut keys) = self.inner.keys.write() {
            match keys.get_mut(id) {
                Some(known) => known.merge(&record),
                None => {
                    keys.insert(id.to_owned(), record.clone());
                }
            }
        }
        Ok(record)
    }

    /// Whether `id` is the root key's id.
    pub fn is_root(&self, id: &str) -> bool {
        id == self.inner.root_id
    }

    /// Whether `state` may be used now.
    pub fn usable(state: &KeyState) -> bool {
        usable(state)
    }
}
