//! Bucket records: creation, deletion and configuration changes. The bucket table is
//! replicated on every node; each field is a last-writer-wins register, and every change
//! is stamped after everything the record holds, so a change can never lose to the state
//! it was made on.

use node::proto::access::Perms;
use node::proto::{BucketRecord, Lww};

use super::Store;
use crate::error::Error;

impl Store {
    /// The bucket `name`, which must exist now (`NoSuchBucket` otherwise).
    pub async fn bucket(&self, name: &str) -> Result<BucketRecord, Error> {
        self.cluster()
            .existing_bucket(name)
            .await?
            .ok_or(Error::NoSuchBucket)
    }

    /// Every existing bucket, by name.
    pub async fn list_buckets(&self) -> Result<Vec<BucketRecord>, Error> {
        self.cluster().list_buckets().await
    }

    /// Creates bucket `name`: a new life of the record, with no configuration of an
    /// earlier life of the same name. `owner`, a key that is not the root key, is granted
    /// read, write and owner on it.
    pub async fn create_bucket(&self, name: &str, owner: Option<&str>) -> Result<(), Error> {
        let existing = self.cluster().get_bucket(name).await?;
        if existing.as_ref().is_some_and(|b| b.exists.value) {
            return Err(Error::BucketAlreadyOwnedByYou);
        }
        let seen = existing.as_ref().map(|b| b.exists.stamp.ts);
        let mut record = self.life(name, seen, true);
        if let Some(key) = owner {
            let all = Perms {
                read: true,
                write: true,
                owner: true,
            };
            let stamp = self.stamp_after(Some(record.exists.stamp.ts));
            record
                .grants
                .insert(key.to_owned(), Lww { stamp, value: all });
        }
        self.forget_versioned(name);
        self.cluster().put_bucket(record).await
    }

    /// Deletes bucket `name`, which must hold no object, version or upload.
    pub async fn delete_bucket(&self, name: &str) -> Result<(), Error> {
        let record = self.bucket(name).await?;
        if self.cluster().bucket_has_objects(name).await? {
            return Err(Error::BucketNotEmpty);
        }
        let life = self.life(name, Some(record.exists.stamp.ts), false);
        self.forget_versioned(name);
        self.cluster().put_bucket(life).await
    }

    /// The record that starts (`exists`) or ends a life of bucket `name`, stamped after
    /// `seen`.
    fn life(&self, name: &str, seen: Option<u64>, exists: bool) -> BucketRecord {
        BucketRecord::new(name.to_owned(), self.stamp_after(seen), exists)
    }

    /// Changes a configuration field of an existing bucket: `set` gets the record and a
    /// stamp newer than everything in it, and the changed record is merged into the table.
    pub async fn update_bucket(
        &self,
        name: &str,
        set: impl FnOnce(&mut BucketRecord, node::proto::Stamp),
    ) -> Result<(), Error> {
        let mut record = self.bucket(name).await?;
        let newest = [
            Some(&record.exists.stamp),
            record.versioning.as_ref().map(|v| &v.stamp),
            record.tags.as_ref().map(|v| &v.stamp),
            record.cors.as_ref().map(|v| &v.stamp),
        ]
        .into_iter()
        .flatten()
        .map(|s| s.ts)
        .max();
        set(&mut record, self.stamp_after(newest));
        let result = self.cluster().put_bucket(record).await;
        self.forget_versioned(name);
        result
    }
}
