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
/// Most versions of one key a full-record page holds; a key with more is listed with
/// its oldest ones, marked `partial` (its readers page through the rest).
pub(crate) const ENTRY_VERSIONS: usize = 1000;

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
            .list_decoded(
                bucket,
                prefix,
                after,
                limit,
                current_only,
                Some(ENTRY_VERSIONS),
            )
            .await?;
        let entries = entries
            .into_iter()
            .map(|(key, versions, partial)| ListEntry {
                key,
                record: ObjectRecord { versions },
                partial,
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
            .list_decoded(bucket, prefix, after, limit, current_only, None)
            .await?;
        let entries = entries
            .into_iter()
            .map(|(key, versions, _)| SummaryEntry {
                key,
                record: RecordSummary { versions },
            })
            .collect();
        Ok(SummaryPage { entries, truncated })
    }

    /// The keys and decoded versions of a list page (every version, at most `per_key` of
    /// one key, with a flag when it has more; or with `current_only` each key's window),
    /// and whether more keys follow. A page ends after `limit` keys or once it holds
    /// [`PAGE_VERSIONS`] versions, whichever comes first (a page holds at least one key).
    #[allow(clippy::type_complexity)]
    async fn list_decoded<V: DeserializeOwned + Versioned + Send + 'static>(
        &self,
        bucket: &str,
        prefix: &str,
        after: &str,
        limit: usize,
        current_only: bool,
        per_key: Option<usize>,
    ) -> Result<(Vec<(String, Vec<V>, bool)>, bool), Error> {
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
                let (found, partial): (Vec<V>, bool) =
                    tables.versions_of(hk, current_only, per_key)?;
                if found.is_empty() {
                    continue;
                }
                held += found.len();
                entries.push((key, found, partial));
            }
            Ok((entries, truncated))
        })
        .await
    }
}
