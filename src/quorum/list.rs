//! Listing: sorted record pages from every node, merged key by key.
//!
//! Every node is asked (with N > RF no node holds every key) and the answers of at least
//! N - (RF - R) nodes are required: then every key written with W acknowledgements has at
//! least one of its replicas among them (list-after-write). Each round is only trusted up
//! to the smallest last key of the pages that were cut short; the next round starts there.
//! Listings for clients merge record summaries (stamps, states, sizes, ETags: see
//! `node::proto::SummaryPage`); repair scans merge full records.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};

use node::proto::{
    Bodies, ListEntry, MAX_LIST_LIMIT, ObjectRecord, RecordSummary, Select, Stamp, SummaryState,
    VersionSummary, windows_cover,
};

use super::{Cluster, Need, gather, spawn_each};
use crate::error::Error;

/// One current object in a listing.
pub struct ListedObject {
    pub key: String,
    /// Its current version, an object.
    pub version: VersionSummary,
}

/// One page of a ListObjects answer.
#[derive(Default)]
pub struct Listing {
    pub objects: Vec<ListedObject>,
    pub common_prefixes: Vec<String>,
    /// More results exist after `next_marker`.
    pub truncated: bool,
    /// The last key or common prefix returned.
    pub next_marker: Option<String>,
}

/// One key seen by a scan round.
pub struct ScannedKey {
    pub key: String,
    /// The merge of every copy seen.
    pub merged: ObjectRecord,
    /// Each answering owner's copy, by node index; an owner that answered but is not
    /// listed here has no record for the key.
    pub copies: Vec<(usize, ListEntry)>,
    /// Nodes that answered with a copy they do not own (left over from an earlier
    /// layout): not merged, theirs to release.
    pub strays: Vec<usize>,
}

/// What one round of a scan saw.
pub struct ScanRound {
    pub keys: Vec<ScannedKey>,
    /// The nodes whose pages make up this round.
    pub answered: Vec<usize>,
    /// The last key covered, when more may follow.
    pub next: Option<String>,
}

/// Larger than any valid key continuation: `cp` + this sorts after every key under `cp`
/// whose next character is below U+10FFFF (the rest are skipped one by one).
const AFTER_ALL: char = '\u{10FFFF}';

impl Cluster {
    /// Answers a listing needs from all members: every key is on at least W of its owners
    /// in some live replica set, so missing at most RF - R < W nodes still hears from one
    /// of them. During a migration that holds with the previous and current members
    /// together: a key not yet copied is still on W previous owners.
    fn list_quorum(&self) -> Need {
        let all = self.all_nodes();
        let rf = self.topo.layout.replicas;
        let missable = rf.saturating_sub(self.inner.read_quorum);
        Need::count(&all, all.len().saturating_sub(missable).max(1))
    }

    /// One round of pages from every node: the keys after `after` (and starting with
    /// `prefix`) up to the point every answering node has covered, each with the merge of
    /// its copies and the copies themselves (by node). `next` is where the following round
    /// starts, `None` at the end.
    ///
    /// With `every_member`, the round waits for every current member's page (a migration
    /// must compare each new owner's copies); otherwise for the listing quorum.
    pub async fn scan_round(
        &self,
        bucket: &str,
        prefix: &str,
        after: &str,
        limit: usize,
        check_blobs: bool,
        every_member: bool,
    ) -> Result<ScanRound, Error> {
        let limit = limit.clamp(1, MAX_LIST_LIMIT);
        let (b, p, c) = (bucket.to_owned(), prefix.to_owned(), after.to_owned());
        let calls = spawn_each(self, &self.all_nodes(), |_, node| {
            let (b, p, c) = (b.clone(), p.clone(), c.clone());
            async move { node.list(&b, &p, &c, limit, check_blobs).await }
        });
        let mut need = self.list_quorum();
        if every_member {
            let members = self.topo.member_sets().swap_remove(0);
            need = need.and(Need::count(&members, members.len()));
        }
        let pages = gather(self, "list", calls, need).await?;
        let answered: Vec<usize> = pages.iter().map(|(i, _)| *i).collect();
        let bound = covered_bound(
            pages
                .iter()
                .map(|(_, p)| (p.truncated, p.entries.last().map(|e| e.key.as_str()))),
        );
        let mut by_key: BTreeMap<String, Vec<(usize, ListEntry)>> = BTreeMap::new();
        for (i, page) in pages {
            for entry in page.entries {
                if bound.as_ref().is_none_or(|b| &entry.key <= b) {
                    by_key
                        .entry(entry.key.clone())
                        .or_default()
                        .push((i, entry));
                }
            }
        }
        let keys = by_key
            .into_iter()
            .map(|(key, copies)| {
                let owners = self.placed(bucket, &key).targets;
                let (copies, strays): (Vec<_>, Vec<_>) =
                    copies.into_iter().partition(|(i, _)| owners.contains(i));
                let mut merged = ObjectRecord::default();
                for (_, entry) in &copies {
                    merged.merge(&entry.record);
                }
                ScannedKey {
                    key,
                    merged,
                    copies,
                    strays: strays.into_iter().map(|(i, _)| i).collect(),
                }
            })
            .collect();
        Ok(ScanRound {
            keys,
            answered,
            next: bound,
        })
    }

    /// Like [`Cluster::scan_round`] without blob checks, merging record summaries: the keys
    /// of one round in order, each with the merge of the summaries seen, and where the next
    /// round starts (`None` at the end).
    async fn summary_round(
        &self,
        bucket: &str,
        prefix: &str,
        after: &str,
        limit: usize,
        current_only: bool,
    ) -> Result<(Vec<(String, RecordSummary)>, Option<String>), Error> {
        let limit = limit.clamp(1, MAX_LIST_LIMIT);
        let (b, p, c) = (bucket.to_owned(), prefix.to_owned(), after.to_owned());
        let calls = spawn_each(self, &self.all_nodes(), |_, node| {
            let (b, p, c) = (b.clone(), p.clone(), c.clone());
            async move { node.list_summaries(&b, &p, &c, limit, current_only).await }
        });
        let pages = gather(self, "list", calls, self.list_quorum()).await?;
        let bound = covered_bound(
            pages
                .iter()
                .map(|(_, p)| (p.truncated, p.entries.last().map(|e| e.key.as_str()))),
        );
        let mut by_key: BTreeMap<String, RecordSummary> = BTreeMap::new();
        // Each answer's own current version, per key (windows only).
        let mut own: BTreeMap<String, Vec<Stamp>> = BTreeMap::new();
        let answered: Vec<usize> = pages.iter().map(|(i, _)| *i).collect();
        for (i, page) in pages {
            for entry in page.entries {
                if bound.as_ref().is_some_and(|b| &entry.key > b) {
                    continue;
                }
                // A copy a node keeps from an earlier layout may miss what its owners
                // dropped since (a purged version's tombstone): only owners count.
                if !self.placed(bucket, &entry.key).targets.contains(&i) {
                    continue;
                }
                if current_only && let Some(v) = entry.record.current() {
                    own.entry(entry.key.clone())
                        .or_default()
                        .push(v.stamp.clone());
                }
                match by_key.get_mut(&entry.key) {
                    Some(merged) => merged.merge(&entry.record),
                    None => {
                        // Normalised like any merge (a node's copy already is; be sure).
                        let mut merged = RecordSummary::default();
                        merged.merge(&entry.record);
                        by_key.insert(entry.key, merged);
                    }
                }
            }
        }
        // Purges that reached different replicas: those keys' windows do not show their
        // state, so every version of them is read.
        for (key, stamps) in &own {
            let Some(merged) = by_key.get_mut(key) else {
                continue;
            };
            if windows_cover(stamps.iter().map(Some), merged.current().map(|v| &v.stamp)) {
                continue;
            }
            *merged = self.whole_summary(bucket, key, &answered).await?;
        }
        Ok((by_key.into_iter().collect(), bound))
    }

    /// Every version of `key`, summarised, merged from `nodes` (all must answer).
    async fn whole_summary(
        &self,
        bucket: &str,
        key: &str,
        nodes: &[usize],
    ) -> Result<RecordSummary, Error> {
        let (b, k) = (bucket.to_owned(), key.to_owned());
        // The smallest key with this prefix is the key itself.
        let calls = spawn_each(self, nodes, |_, node| {
            let (b, k) = (b.clone(), k.clone());
            async move { node.list_summaries(&b, &k, "", 1, false).await }
        });
        let pages = gather(self, "list", calls, Need::count(nodes, nodes.len())).await?;
        let mut merged = RecordSummary::default();
        let owners = self.placed(bucket, key).targets;
        for (_, page) in pages.into_iter().filter(|(i, _)| owners.contains(i)) {
            if let Some(entry) = page.entries.into_iter().find(|e| e.key == key) {
                merged.merge(&entry.record);
            }
        }
        Ok(merged)
    }

    /// Walks the merged record summaries (with `current_only`, of each key's window: see
    /// [`node::proto::Select`]) of `bucket` with keys starting with `prefix` and
    /// greater than `after`, in key order. `visit` may return a key to jump past (all keys up to
    /// and including it are skipped) or break. `page()` is the page size asked of each node
    /// for the next round (a caller that needs only a few more keys says so).
    async fn scan<F>(
        &self,
        bucket: &str,
        prefix: &str,
        after: &str,
        page: impl Fn() -> usize,
        current_only: bool,
        mut visit: F,
    ) -> Result<(), Error>
    where
        F: FnMut(&str, &RecordSummary) -> ControlFlow<(), Option<String>>,
    {
        let mut cursor = after.to_owned();
        loop {
            let (keys, next) = self
                .summary_round(bucket, prefix, &cursor, page(), current_only)
                .await?;
            let mut skip_to: Option<String> = None;
            for (key, merged) in &keys {
                if *key <= cursor || skip_to.as_ref().is_some_and(|s| key <= s) {
                    continue;
                }
                cursor.clone_from(key);
                match visit(key, merged) {
                    ControlFlow::Break(()) => return Ok(()),
                    ControlFlow::Continue(Some(jump)) => skip_to = Some(jump),
                    ControlFlow::Continue(None) => {}
                }
            }
            let Some(bound) = next else {
                return Ok(());
            };
            cursor = bound.max(cursor);
            if let Some(jump) = skip_to {
                cursor = jump.max(cursor);
            }
        }
    }

    /// One page of current (not deleted) objects, S3 ListObjects style.
    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: &str,
        max_keys: usize,
    ) -> Result<Listing, Error> {
        let mut out = Listing::default();
        // Atomic only because the listing future must be `Send`; one task uses it.
        let count = AtomicUsize::new(0);
        // Without a delimiter each listed key takes one slot, so a round asks only for the
        // keys still missing plus one (which proves truncation): a full page of 1000 costs
        // one round of 1000 and one of 1, not two of 1000.
        let page = || {
            if delimiter.is_some() {
                MAX_LIST_LIMIT
            } else {
                max_keys + 1 - count.load(Ordering::Relaxed)
            }
        };
        // Each key's window: its current version, whatever the key's history.
        self.scan(bucket, prefix, start_after, page, true, |key, record| {
            let Some(version) = record.current_object() else {
                return ControlFlow::Continue(None);
            };
            let rolled_up = delimiter.and_then(|d| {
                let rest = key.get(prefix.len()..)?;
                rest.find(d)
                    .map(|at| key[..prefix.len() + at + d.len()].to_owned())
            });
            if let Some(cp) = &rolled_up
                && (cp.as_str() <= start_after || out.next_marker.as_ref() == Some(cp))
            {
                return ControlFlow::Continue(Some(format!("{cp}{AFTER_ALL}")));
            }
            if count.load(Ordering::Relaxed) == max_keys {
                out.truncated = true;
                return ControlFlow::Break(());
            }
            count.fetch_add(1, Ordering::Relaxed);
            match rolled_up {
                Some(cp) => {
                    let jump = format!("{cp}{AFTER_ALL}");
                    out.common_prefixes.push(cp.clone());
                    out.next_marker = Some(cp);
                    ControlFlow::Continue(Some(jump))
                }
                None => {
                    out.objects.push(ListedObject {
                        key: key.to_owned(),
                        version: version.clone(),
                    });
                    out.next_marker = Some(key.to_owned());
                    ControlFlow::Continue(None)
                }
            }
        })
        .await?;
        Ok(out)
    }

    /// True when any key of `bucket` still holds an object or a delete marker a client
    /// could list (what makes DeleteBucket refuse with BucketNotEmpty).
    pub async fn bucket_has_objects(&self, bucket: &str) -> Result<bool, Error> {
        let mut found = false;
        self.scan(
            bucket,
            "",
            "",
            || MAX_LIST_LIMIT,
            false,
            |_, record| {
                let live = record.versions.iter().any(|v| match v.state {
                    SummaryState::Object => true,
                    SummaryState::DeleteMarker => !v.null,
                    SummaryState::Purged => false,
                });
                if live {
                    found = true;
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(None)
                }
            },
        )
        .await?;
        Ok(found)
    }
}

/// The last key a round may trust: a node's page covers keys up to its last entry only when
/// it was cut short, so the smallest such last key (`None`: every page was complete).
fn covered_bound<'a>(pages: impl Iterator<Item = (bool, Option<&'a str>)>) -> Option<String> {
    pages
        .filter_map(|(truncated, last)| if truncated { last } else { None })
        .min()
        .map(str::to_owned)
}

/// One version (or delete marker) in a version listing.
pub struct ListedVersion {
    pub key: String,
    pub version: VersionSummary,
    pub is_latest: bool,
}

/// One page of a ListObjectVersions answer.
#[derive(Default)]
pub struct VersionListing {
    pub versions: Vec<ListedVersion>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_version_id_marker: Option<String>,
}

/// Builds a version listing from records visited in key order.
struct VersionPager<'a> {
    prefix: &'a str,
    delimiter: Option<&'a str>,
    key_marker: &'a str,
    max_keys: usize,
    show_null_markers: bool,
    out: VersionListing,
    count: usize,
    last_prefix: Option<String>,
}

impl VersionPager<'_> {
    /// Adds the versions of `key` older than `after_version` (all when `None`). Breaks
    /// when the page is full and one more entry proved it truncated.
    fn visit(
        &mut self,
        key: &str,
        record: &RecordSummary,
        after_version: Option<&str>,
    ) -> ControlFlow<(), Option<String>> {
        let latest = record.current().map(|v| v.stamp.clone());
        let mut visible = record.versions.iter().rev().filter(|v| match v.state {
            SummaryState::Purged => false,
            SummaryState::DeleteMarker => !v.null || self.show_null_markers,
            SummaryState::Object => true,
        });
        if visible.clone().next().is_none() {
            return ControlFlow::Continue(None);
        }
        let rolled_up = self.delimiter.and_then(|d| {
            let rest = key.get(self.prefix.len()..)?;
            rest.find(d)
                .map(|at| key[..self.prefix.len() + at + d.len()].to_owned())
        });
        if let Some(cp) = rolled_up {
            let jump = Some(format!("{cp}{AFTER_ALL}"));
            if cp.as_str() <= self.key_marker || self.last_prefix.as_ref() == Some(&cp) {
                return ControlFlow::Continue(jump);
            }
            if self.count == self.max_keys {
                self.out.truncated = true;
                return ControlFlow::Break(());
            }
            self.count += 1;
            self.out.common_prefixes.push(cp.clone());
            self.out.next_key_marker = Some(cp.clone());
            self.out.next_version_id_marker = None;
            self.last_prefix = Some(cp);
            return ControlFlow::Continue(jump);
        }
        if let Some(after) = after_version {
            // Skip up to and including the marker version (listed newest first).
            if visible.clone().any(|v| v.s3_version_id() == after) {
                for v in visible.by_ref() {
                    if v.s3_version_id() == after {
                        break;
                    }
                }
            }
        }
        for v in visible {
            if self.count == self.max_keys {
                self.out.truncated = true;
                return ControlFlow::Break(());
            }
            self.count += 1;
            self.out.next_key_marker = Some(key.to_owned());
            self.out.next_version_id_marker = Some(v.s3_version_id().to_owned());
            self.out.versions.push(ListedVersion {
                key: key.to_owned(),
                version: v.clone(),
                is_latest: latest.as_ref() == Some(&v.stamp),
            });
        }
        ControlFlow::Continue(None)
    }
}

impl Cluster {
    /// One page of every version and delete marker, newest first within a key, S3
    /// ListObjectVersions style. `show_null_markers` is false for buckets that never had
    /// versioning configured, where a delete leaves nothing to list.
    #[allow(clippy::too_many_arguments)]
    pub async fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: &str,
        version_id_marker: Option<&str>,
        max_keys: usize,
        show_null_markers: bool,
    ) -> Result<VersionListing, Error> {
        let mut pager = VersionPager {
            prefix,
            delimiter,
            key_marker,
            max_keys,
            show_null_markers,
            out: VersionListing::default(),
            count: 0,
            last_prefix: None,
        };
        // Resuming inside a key: its remaining versions come first.
        if let Some(after) = version_id_marker
            && key_marker.starts_with(prefix)
            && let Some(record) = self
                .read_record(bucket, key_marker, Bodies::None, Select::All)
                .await?
                .record
            && pager
                .visit(key_marker, &RecordSummary::from(&record), Some(after))
                .is_break()
        {
            return Ok(pager.out);
        }
        let page = if delimiter.is_some() {
            MAX_LIST_LIMIT
        } else {
            max_keys + 1
        };
        self.scan(
            bucket,
            prefix,
            key_marker,
            || page,
            false,
            |key, record| pager.visit(key, record, None),
        )
        .await?;
        Ok(pager.out)
    }
}

/// One multipart upload in progress.
pub struct ListedUpload {
    pub key: String,
    pub upload_id: String,
    /// Hybrid-clock µs of CreateMultipartUpload.
    pub initiated: u64,
}

/// One page of a ListMultipartUploads answer.
#[derive(Default)]
pub struct UploadListing {
    pub uploads: Vec<ListedUpload>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
}

impl Cluster {
    /// Uploads in progress in `bucket` (their records live under `<bucket>/uploads`, key
    /// `<key>\0<upload id>`), by key then upload id, after `(key_marker, upload_id_marker)`.
    pub async fn list_uploads(
        &self,
        namespace: &str,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: &str,
        upload_id_marker: Option<&str>,
        max_uploads: usize,
    ) -> Result<UploadListing, Error> {
        let after = match (key_marker, upload_id_marker) {
            ("", _) => String::new(),
            (k, Some(id)) => format!("{k}\0{id}"),
            (k, None) => format!("{k}\0{AFTER_ALL}"),
        };
        let mut out = UploadListing::default();
        let mut count = 0;
        let mut last_prefix: Option<String> = None;
        let page = if delimiter.is_some() {
            MAX_LIST_LIMIT
        } else {
            max_uploads + 1
        };
        self.scan(
            namespace,
            prefix,
            &after,
            || page,
            false,
            |address, record| {
                let Some((key, id)) = address.split_once('\0') else {
                    return ControlFlow::Continue(None);
                };
                let init = record
                    .versions
                    .iter()
                    .find(|v| v.stamp.id == id && !v.is_purged());
                let Some(init) = init else {
                    return ControlFlow::Continue(None);
                };
                let rolled_up = delimiter.and_then(|d| {
                    let rest = key.get(prefix.len()..)?;
                    rest.find(d)
                        .map(|at| key[..prefix.len() + at + d.len()].to_owned())
                });
                if let Some(cp) = &rolled_up
                    && (cp.as_str() <= key_marker || last_prefix.as_ref() == Some(cp))
                {
                    return ControlFlow::Continue(Some(format!("{cp}{AFTER_ALL}")));
                }
                if count == max_uploads {
                    out.truncated = true;
                    return ControlFlow::Break(());
                }
                count += 1;
                match rolled_up {
                    Some(cp) => {
                        let jump = format!("{cp}{AFTER_ALL}");
                        out.common_prefixes.push(cp.clone());
                        last_prefix = Some(cp);
                        ControlFlow::Continue(Some(jump))
                    }
                    None => {
                        out.uploads.push(ListedUpload {
                            key: key.to_owned(),
                            upload_id: id.to_owned(),
                            initiated: init.stamp.ts,
                        });
                        ControlFlow::Continue(None)
                    }
                }
            },
        )
        .await?;
        Ok(out)
    }
}
