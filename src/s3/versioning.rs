//! Bucket versioning: PutBucketVersioning, GetBucketVersioning, ListObjectVersions.
//!
//! The versioning state lives in the bucket record (last writer wins). A bucket that was
//! never configured answers an empty configuration; once configured it can be Enabled or
//! Suspended but never unversioned again, as in S3. Which version a write creates (a new
//! id, or the `null` version) is decided per write in `object::WriteContext`.

use node::proto::{Lww, Stamp, SummaryState, Versioning};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::bucket::{owner, timestamp};
use super::list::{Encoder, max_keys};
use crate::error::Error;
use crate::integrity::etag;
use crate::quorum::Cluster;

pub(super) async fn put_bucket_versioning(
    gw: &Gateway,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let input = req.input;
    let status = match input
        .versioning_configuration
        .status
        .as_ref()
        .map(|s| s.as_str())
    {
        Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
        Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
        _ => {
            return Err(s3_error!(
                MalformedXML,
                "The versioning status must be Enabled or Suspended"
            ));
        }
    };
    let mut record = gw
        .cluster
        .existing_bucket(&input.bucket)
        .await?
        .ok_or(Error::NoSuchBucket)?;
    let seen = record.versioning.as_ref().map(|v| v.stamp.ts);
    record.versioning = Some(Lww {
        stamp: Stamp {
            ts: gw
                .cluster
                .next_timestamp(seen.max(Some(record.exists.stamp.ts))),
            id: Cluster::new_id(),
        },
        value: status,
    });
    gw.cluster.put_bucket(record).await?;
    tracing::info!(bucket = %input.bucket, ?status, "bucket versioning set");
    Ok(S3Response::new(PutBucketVersioningOutput::default()))
}

pub(super) async fn get_bucket_versioning(
    gw: &Gateway,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let record = gw
        .cluster
        .existing_bucket(&req.input.bucket)
        .await?
        .ok_or(Error::NoSuchBucket)?;
    let status = record.live(&record.versioning).map(|v| match v {
        Versioning::Enabled => BucketVersioningStatus::from_static(BucketVersioningStatus::ENABLED),
        Versioning::Suspended => {
            BucketVersioningStatus::from_static(BucketVersioningStatus::SUSPENDED)
        }
    });
    Ok(S3Response::new(GetBucketVersioningOutput {
        status,
        ..Default::default()
    }))
}

pub(super) async fn list_object_versions(
    gw: &Gateway,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let input = req.input;
    let enc = Encoder::new(input.encoding_type.as_ref(), &req.extensions)?;
    let max = max_keys(input.max_keys)?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let version_id_marker = input.version_id_marker.as_deref().filter(|v| !v.is_empty());
    if let Some(marker) = version_id_marker {
        super::check_version_id(marker)?;
    }
    if version_id_marker.is_some() && key_marker.is_empty() {
        return Err(s3_error!(
            InvalidArgument,
            "A version-id marker cannot be specified without a key marker."
        ));
    }
    let bucket = gw
        .cluster
        .existing_bucket(&input.bucket)
        .await?
        .ok_or(Error::NoSuchBucket)?;
    let listing = gw
        .cluster
        .list_versions(
            &input.bucket,
            &prefix,
            input.delimiter.as_deref().filter(|d| !d.is_empty()),
            &key_marker,
            version_id_marker,
            max,
            bucket.live(&bucket.versioning).is_some(),
        )
        .await?;
    let mut versions = Vec::new();
    let mut delete_markers = Vec::new();
    for entry in listing.versions {
        let version_id = Some(entry.version.s3_version_id().to_owned());
        let last_modified = Some(timestamp(entry.version.stamp.ts));
        let key = Some(enc.apply(entry.key));
        match entry.version.state {
            SummaryState::Object => versions.push(ObjectVersion {
                key,
                version_id,
                is_latest: Some(entry.is_latest),
                last_modified,
                e_tag: Some(etag(&entry.version.etag)),
                size: Some(entry.version.size as i64),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                owner: Some(owner()),
                ..Default::default()
            }),
            SummaryState::DeleteMarker => delete_markers.push(DeleteMarkerEntry {
                key,
                version_id,
                is_latest: Some(entry.is_latest),
                last_modified,
                owner: Some(owner()),
            }),
            SummaryState::Purged => {}
        }
    }
    let (next_key_marker, next_version_id_marker) = if listing.truncated {
        (
            listing.next_key_marker.map(|k| enc.apply(k)),
            listing.next_version_id_marker,
        )
    } else {
        (None, None)
    };
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: Some(enc.apply(prefix)),
        key_marker: Some(enc.apply(key_marker)),
        version_id_marker: input.version_id_marker,
        max_keys: Some(max as i32),
        delimiter: input.delimiter.map(|d| enc.apply(d)),
        is_truncated: Some(listing.truncated),
        next_key_marker,
        next_version_id_marker,
        versions: Some(versions),
        delete_markers: Some(delete_markers),
        common_prefixes: Some(
            listing
                .common_prefixes
                .into_iter()
                .map(|p| CommonPrefix {
                    prefix: Some(enc.apply(p)),
                })
                .collect(),
        ),
        encoding_type: enc.echo(),
        ..Default::default()
    }))
}
