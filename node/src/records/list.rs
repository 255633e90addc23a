//! Listing a bucket's records in key order, in full or summarised (see
//! [`crate::proto::SummaryPage`]), every version or each key's window (see
//! [`crate::proto::Select`]): one read transaction per page, never the writer.

use std::ops::Bound;

use serde::de::DeserializeOwned;

use super::{RecordStore, check_bucket, versions};
use crate::error::Error;
use crate::proto::{
    ListEntry, ListPage, MAX_LIST_LIMIT, ObjectRecord, RecordSummary, SummaryEntry, SummaryPage,
    Versioned,
};

/// Versions past which a list page ends (after the key that reached it).
const PAGE_VERSIONS: usize = 10_000;

impl RecordStore {
    /// Records of `bucket` whose key is greater than `after` and starts with `prefix`, in
    /// ascending byte order, at most `limit` (capped at [`MAX_LIST_LIMIT`]); with
    /// `current_only` each key's window instead of every version.
    pub(crate) async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        after: &str,
        limit: usize,
        current_only: bool,
    ) -> Result<ListPage, Error> {
        let (entries, truncated) = self
            .list_decoded(bucket, prefix, after, limit, current_only)
            .await?;
        let entries = entries
            .into_iter()
            .map(|(key, versions)| ListEntry {
                key,
                record: ObjectRecord { versions },
                missing_blobs: Vec::new(),
                corrupt_blobs: Vec::new(),
            })
            .collect();
        Ok(ListPage { entries, truncated })
    }

    /// Like [`RecordStore::list`], each record summarised. Stored records are decoded
    /// straight into summaries: bodies and metadata are skipped, never built.
    pub(crate) async fn list_summaries(
        &self,
        bucket: &str,
        prefix: &str,
        after: &str,
        limit: usize,
        current_only: bool,
    ) -> Result<SummaryPage, Error> {
        let (entries, truncated) = self
            .list_decoded(bucket, prefix, after, limit, current_only)
            .await?;
        let entries = entries
            .into_iter()
            .map(|(key, versions)| SummaryEntry {
                key,
                record: RecordSummary { versions },
            })
            .collect();
        Ok(SummaryPage { entries, truncated })
    }

    /// The keys and decoded versions of a list page (every version, or with
    /// `current_only` each key's window), and whether more follow. A page ends after
    /// `limit` keys or once it holds [`PAGE_VERSIONS`] versions, whichever comes first (a
    /// page holds at least one key).
    async fn list_decoded<V: DeserializeOwned + Versioned + Send + 'static>(
        &self,
        bucket: &str,
        prefix: &str,
        after: &str,
        limit: usize,
        current_only: bool,
    ) -> Result<(Vec<(String, Vec<V>)>, bool), Error> {
        check_bucket(bucket)?;
        let mut base = bucket.as_bytes().to_vec();
        base.push(0);
        let mut start = base.clone();
        versions::escape_into(&mut start, prefix);
        let mut after_key = base.clone();
        versions::escape_into(&mut after_key, after);
        let limit = limit.min(MAX_LIST_LIMIT);
        self.read(move |txn| {
            let tables = versions::ReadTables::open(txn)?;
            // Keys > after and >= prefix: whichever bound is higher is the one that matters.
            let lower = if after_key >= start {
                Bound::Excluded(after_key.as_slice())
            } else {
                Bound::Included(start.as_slice())
            };
            let range = tables
                .heads()
                .range::<&[u8]>((lower, Bound::Unbounded))
                .map_err(Error::db("list range"))?;
            let mut entries = Vec::new();
            let mut held = 0;
            let mut truncated = false;
            for item in range {
                let (k, _) = item.map_err(Error::db("list read"))?;
                let hk = k.value();
                if !hk.starts_with(&start) {
                    break;
                }
                if entries.len() == limit || held >= PAGE_VERSIONS {
                    truncated = true;
                    break;
                }
                let key = versions::unescape(&hk[base.len()..])?;
                let found: Vec<V> = tables.versions_of(hk, current_only)?;
                if found.is_empty() {
                    continue;
                }
                held += found.len();
                entries.push((key, found));
            }
            Ok((entries, truncated))
        })
        .await
    }
}
