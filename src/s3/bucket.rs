//! Bucket operations: create, head, delete, list, location.
//!
//! Bucket names are validated by s3s (AWS rules) before a handler runs. A bucket is one
//! single-tenant namespace: creating an existing bucket answers `BucketAlreadyOwnedByYou`.

use std::time::{Duration, UNIX_EPOCH};

use node::proto::{BucketRecord, Lww, Stamp};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use crate::error::Error;
use crate::quorum::Cluster;

/// S3's timestamps from our microsecond hybrid clock.
pub(super) fn timestamp(micros: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_micros(micros))
}

pub(super) async fn create_bucket(
    gw: &Gateway,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let input = req.input;
    super::acl::check_owner_only(super::acl::AclRequest {
        canned: input.acl.as_ref().map(|a| a.as_str()),
        grant_full_control: input.grant_full_control.as_deref(),
        other_grants: input.grant_read.is_some()
            || input.grant_read_acp.is_some()
            || input.grant_write.is_some()
            || input.grant_write_acp.is_some(),
        policy: None,
    })?;
    let name = input.bucket;
    let existing = gw.cluster.get_bucket(&name).await?;
    if existing.as_ref().is_some_and(|b| b.exists.value) {
        return Err(s3_error!(
            BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it."
        ));
    }
    let seen = existing.as_ref().map(|b| b.exists.stamp.ts);
    let stamp = Stamp {
        ts: gw.cluster.next_timestamp(seen),
        id: Cluster::new_id(),
    };
    gw.cluster
        .put_bucket(BucketRecord {
            name: name.clone(),
            exists: Lww { stamp, value: true },
            versioning: None,
            tags: None,
            cors: None,
        })
        .await?;
    tracing::info!(bucket = %name, "bucket created");
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{name}")),
        ..Default::default()
    }))
}

pub(super) async fn head_bucket(
    gw: &Gateway,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    gw.cluster
        .existing_bucket(&req.input.bucket)
        .await?
        .ok_or(Error::NoSuchBucket)?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some("us-east-1".into()),
        ..Default::default()
    }))
}

pub(super) async fn delete_bucket(
    gw: &Gateway,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let name = req.input.bucket;
    let record = gw
        .cluster
        .existing_bucket(&name)
        .await?
        .ok_or(Error::NoSuchBucket)?;
    if gw.cluster.bucket_has_objects(&name).await? {
        return Err(s3_error!(
            BucketNotEmpty,
            "The bucket you tried to delete is not empty."
        ));
    }
    let stamp = Stamp {
        ts: gw.cluster.next_timestamp(Some(record.exists.stamp.ts)),
        id: Cluster::new_id(),
    };
    gw.cluster
        .put_bucket(BucketRecord {
            name: name.clone(),
            exists: Lww {
                stamp,
                value: false,
            },
            versioning: None,
            tags: None,
            cors: None,
        })
        .await?;
    tracing::info!(bucket = %name, "bucket deleted");
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub(super) async fn list_buckets(
    gw: &Gateway,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let prefix = req.input.prefix.unwrap_or_default();
    let buckets = gw
        .cluster
        .list_buckets()
        .await?
        .into_iter()
        .filter(|b| b.name.starts_with(&prefix))
        .map(|b| Bucket {
            name: Some(b.name),
            creation_date: Some(timestamp(b.exists.stamp.ts)),
            bucket_region: Some("us-east-1".into()),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(owner()),
        prefix: (!prefix.is_empty()).then_some(prefix),
        ..Default::default()
    }))
}

pub(super) async fn get_bucket_location(
    gw: &Gateway,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    gw.cluster
        .existing_bucket(&req.input.bucket)
        .await?
        .ok_or(Error::NoSuchBucket)?;
    // No location constraint means us-east-1, the region every client falls back to.
    Ok(S3Response::new(GetBucketLocationOutput::default()))
}

/// Changes a configuration field of an existing bucket: `set` gets the record and a stamp
/// newer than everything in it, and the changed record is merged into the bucket table.
pub(super) async fn update_bucket(
    cluster: &Cluster,
    name: &str,
    set: impl FnOnce(&mut BucketRecord, Stamp),
) -> S3Result<()> {
    let mut record = cluster
        .existing_bucket(name)
        .await?
        .ok_or(Error::NoSuchBucket)?;
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
    let stamp = Stamp {
        ts: cluster.next_timestamp(newest),
        id: Cluster::new_id(),
    };
    set(&mut record, stamp);
    cluster.put_bucket(record).await?;
    Ok(())
}

/// The single owner of everything in this store.
pub(super) fn owner() -> Owner {
    Owner {
        display_name: Some("s3quorum".into()),
        id: Some("s3quorum".into()),
    }
}
