//! Deletes: DeleteObject and DeleteObjects.
//!
//! Without a version id a delete writes a new version: a delete marker (versioned and
//! suspended buckets) or a hidden null marker (unversioned buckets), so the delete merges
//! and replicates like any write. With a version id it writes a purge tombstone for that
//! version, which wins over the version on every replica; its bytes are freed later.

use futures::StreamExt;
use node::proto::{Bodies, ObjectRecord, Select, Version, VersionState};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::conditional::{WriteCondition, commit_if, purge_if};
use super::object::WriteContext;
use super::{Gateway, check_key, check_version_id};
use crate::error::Error;
use crate::quorum::Cluster;
use crate::xml_escape::Escapes;

/// Deletes `key` (a delete marker, or for `version_id` a permanent purge) and returns what
/// S3 reports: the version id involved and whether it is a delete marker.
async fn delete_one(
    cluster: &Cluster,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    condition: &WriteCondition,
) -> S3Result<(Option<String>, bool)> {
    check_key(key)?;
    if let Some(id) = version_id {
        check_version_id(id)?;
    }
    let (b, read) = tokio::join!(
        cluster.existing_bucket(bucket),
        cluster.read_record(bucket, key, Bodies::None, Select::current_and(version_id))
    );
    let bucket_rec = b?.ok_or(Error::NoSuchBucket)?;
    let record = read?.record;
    let replicas = cluster.replicas_of(bucket, key);
    if condition.is_set() {
        // The bucket's current life only: a re-created bucket starts unversioned.
        let versioning = bucket_rec.live(&bucket_rec.versioning).copied();
        let ctx = WriteContext::new(versioning, record.as_ref());
        return delete_if(cluster, bucket, key, version_id, &ctx, condition).await;
    }
    if let Some(id) = version_id {
        let Some(target) = record.as_ref().and_then(|r| r.find_s3_version(id)) else {
            // Deleting a version that does not exist succeeds, as in S3.
            return Ok((Some(id.to_owned()), false));
        };
        let was_marker = matches!(target.state, VersionState::DeleteMarker);
        let tombstone = Version {
            stamp: target.stamp.clone(),
            null: target.null,
            state: VersionState::Purged,
            tags: None,
            follows: None,
        };
        cluster
            .write_record(bucket, key, ObjectRecord::single(tombstone), &replicas)
            .await?;
        return Ok((Some(id.to_owned()), was_marker));
    }
    let ctx = WriteContext::new(
        bucket_rec.live(&bucket_rec.versioning).copied(),
        record.as_ref(),
    );
    // Unversioned: nothing to delete means nothing to write (S3 answers 204 all the same).
    if ctx.versioning.is_none() && record.as_ref().and_then(|r| r.current_object()).is_none() {
        return Ok((None, false));
    }
    let marker = ctx.new_version(cluster, VersionState::DeleteMarker);
    let marker = cluster
        .write_version(bucket, key, marker, &replicas)
        .await?;
    Ok((ctx.version_id_for(&marker), ctx.versioning.is_some()))
}

/// [`delete_one`] under a condition, atomically with respect to other conditional writes.
async fn delete_if(
    cluster: &Cluster,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    ctx: &WriteContext,
    condition: &WriteCondition,
) -> S3Result<(Option<String>, bool)> {
    if let Some(id) = version_id {
        let purged = purge_if(cluster, bucket, key, id, condition).await?;
        let was_marker = purged
            .as_ref()
            .is_some_and(|v| matches!(v.state, VersionState::DeleteMarker));
        return Ok((Some(id.to_owned()), was_marker));
    }
    let state = VersionState::DeleteMarker;
    let written = commit_if(cluster, bucket, key, ctx, state, condition, None).await?;
    let version_id = written.ctx.version_id_for(&written.version);
    Ok((version_id, ctx.versioning.is_some()))
}

pub(super) async fn delete_object(
    gw: &Gateway,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let input = req.input;
    let condition = WriteCondition::for_delete(
        input.if_match,
        input.if_match_last_modified_time,
        input.if_match_size,
    );
    let (version_id, delete_marker) = delete_one(
        &gw.cluster,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        &condition,
    )
    .await?;
    Ok(S3Response::new(DeleteObjectOutput {
        version_id,
        delete_marker: delete_marker.then_some(true),
        ..Default::default()
    }))
}

/// At most this many keys of one DeleteObjects request are deleted concurrently.
const DELETE_CONCURRENCY: usize = 16;

pub(super) async fn delete_objects(
    gw: &Gateway,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let input = req.input;
    let objects = input.delete.objects;
    if objects.len() > 1000 {
        return Err(s3_error!(
            MalformedXML,
            "DeleteObjects accepts at most 1000 keys"
        ));
    }
    gw.cluster
        .existing_bucket(&input.bucket)
        .await?
        .ok_or(Error::NoSuchBucket)?;
    let quiet = input.delete.quiet.unwrap_or(false);
    let bucket = input.bucket;
    let results: Vec<_> = futures::stream::iter(objects)
        .map(|obj| {
            let (cluster, bucket) = (gw.cluster.clone(), bucket.clone());
            async move {
                let condition = WriteCondition::for_batch_delete(
                    obj.e_tag.clone(),
                    obj.last_modified_time.clone(),
                    obj.size,
                );
                let version = obj.version_id.as_deref();
                let r = delete_one(&cluster, &bucket, &obj.key, version, &condition).await;
                (obj, r)
            }
        })
        .buffered(DELETE_CONCURRENCY)
        .collect()
        .await;
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for (obj, result) in results {
        match result {
            Ok((version_id, marker)) => {
                if !quiet {
                    deleted.push(DeletedObject {
                        key: Some(Escapes::text_in(&req.extensions, obj.key)),
                        version_id: obj.version_id.clone(),
                        delete_marker: marker.then_some(true),
                        delete_marker_version_id: if marker && obj.version_id.is_none() {
                            version_id
                        } else {
                            None
                        },
                    });
                }
            }
            Err(e) => errors.push(s3s::dto::Error {
                code: Some(e.code().as_str().to_owned()),
                key: Some(Escapes::text_in(&req.extensions, obj.key)),
                message: e.message().map(str::to_owned),
                version_id: obj.version_id,
            }),
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}
