//! Bucket versioning: PutBucketVersioning, GetBucketVersioning, ListObjectVersions.
//!
//! The versioning state lives in the bucket record (last writer wins). A bucket that was
//! never configured answers an empty configuration; once configured it can be Enabled or
//! Suspended but never unversioned again, as in S3. Which version a write creates (a new
//! id, or the `null` version) is decided per write in `object::WriteContext`.

use node::proto::{BucketRecord, Lww, SummaryState, Versioning};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::dto::{owner, timestamp};
use super::list::{Encoder, echoed_delimiter, max_keys};
use crate::integrity::etag;
use crate::store::ListedVersion;

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
    let set = |b: &mut BucketRecord, stamp| {
        b.versioning = Some(Lww {
            stamp,
            value: status,
        })
    };
    gw.store.update_bucket(&input.bucket, set).await?;
    tracing::info!(bucket = %input.bucket, ?status, "bucket versioning set");
    Ok(S3Response::new(PutBucketVersioningOutput::default()))
}

pub(super) async fn get_bucket_versioning(
    gw: &Gateway,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let record = gw.store.bucket(&req.input.bucket).await?;
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
    let bucket = gw.store.bucket(&input.bucket).await?;
    let listing = gw
        .store
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
    let (versions, delete_markers) = entries(listing.versions, &enc);
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
        delimiter: echoed_delimiter(input.delimiter, &enc),
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

/// The listed versions as S3 shows them: objects, and delete markers apart.
fn entries(
    listed: Vec<ListedVersion>,
    enc: &Encoder,
) -> (Vec<ObjectVersion>, Vec<DeleteMarkerEntry>) {
    let mut versions = Vec::new();
    let mut delete_markers = Vec::new();
    for entry in listed {
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
    (versions, delete_markers)
}
