//! Listing a bucket's records in key order, in full or summarised (see
//! [`crate::proto::SummaryPage`]): one read transaction per page, never the writer.

use std::ops::Bound;

use serde::de::DeserializeOwned;

use super::{OBJECTS, RecordStore, check_bucket, decode};
use crate::error::Error;
use crate::proto::{ListEntry, ListPage, MAX_LIST_LIMIT, SummaryEntry, SummaryPage};

impl RecordStore {
    /// Records of `bucket` whose key is greater than `after` and starts with `prefix`, in
    /// ascending byte order, at most `limit` (capped at [`MAX_LIST_LIMIT`]).
    pub(crate) async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> Result<ListPage, Error> {
        let (entries, truncated) = self.list_decoded(bucket, prefix, after, limit).await?;
        let entries = entries
            .into_iter()
            .map(|(key, record)| ListEntry {
                key,
                record,
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
    ) -> Result<SummaryPage, Error> {
        let (entries, truncated) = self.list_decoded(bucket, prefix, after, limit).await?;
        let entries = entries
            .into_iter()
            .map(|(key, record)| SummaryEntry { key, record })
            .collect();
        Ok(SummaryPage { entries, truncated })
    }

    /// The keys and decoded records of a list page, and whether more follow.
    async fn list_decoded<T: DeserializeOwned + Send + 'static>(
        &self,
        bucket: &str,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> Result<(Vec<(String, T)>, bool), Error> {
        check_bucket(bucket)?;
        let mut base = bucket.as_bytes().to_vec();
        base.push(0);
        let mut start = base.clone();
        start.extend_from_slice(prefix.as_bytes());
        let mut after_key = base.clone();
        after_key.extend_from_slice(after.as_bytes());
        let limit = limit.min(MAX_LIST_LIMIT);
        self.read(move |txn| {
            let table = txn.open_table(OBJECTS).map_err(Error::db("open objects"))?;
            // Keys > after and >= prefix: whichever bound is higher is the one that matters.
            let lower = if after_key >= start {
                Bound::Excluded(after_key.as_slice())
            } else {
                Bound::Included(start.as_slice())
            };
            let range = table
                .range::<&[u8]>((lower, Bound::Unbounded))
                .map_err(Error::db("list range"))?;
            let mut entries = Vec::new();
            let mut truncated = false;
            for item in range {
                let (k, v) = item.map_err(Error::db("list read"))?;
                let k = k.value();
                if !k.starts_with(&start) {
                    break;
                }
                if entries.len() == limit {
                    truncated = true;
                    break;
                }
                let key = std::str::from_utf8(&k[base.len()..])
                    .map_err(|_| Error::Corrupt("stored object key is not UTF-8".into()))?;
                entries.push((key.to_string(), decode(v.value())?));
            }
            Ok((entries, truncated))
        })
        .await
    }
}
