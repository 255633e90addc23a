//! Deletes: DeleteObject and DeleteObjects. What a delete writes (a delete marker, a hidden
//! null marker, or a purge tombstone) is the store's business (`store::delete`).

use futures::StreamExt;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{Gateway, check_key, check_version_id, conditional};
use crate::store::{Condition, Deleted, Store};
use crate::xml_escape::Escapes;

/// Deletes `key` (a delete marker, or for `version_id` a permanent purge) once the request
/// is known to be well-formed.
async fn delete_one(
    store: &Store,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
    condition: &Condition,
) -> S3Result<Deleted> {
    check_key(key)?;
    if let Some(id) = version_id {
        check_version_id(id)?;
    }
    Ok(store.delete(bucket, key, version_id, condition).await?)
}

pub(super) async fn delete_object(
    gw: &Gateway,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let input = req.input;
    let condition = conditional::for_delete(
        input.if_match.as_ref(),
        input.if_match_last_modified_time.as_ref(),
        input.if_match_size,
    );
    let deleted = delete_one(
        &gw.store,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        &condition,
    )
    .await?;
    Ok(S3Response::new(DeleteObjectOutput {
        version_id: deleted.version_id,
        delete_marker: deleted.delete_marker.then_some(true),
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
    gw.store.bucket(&input.bucket).await?;
    let quiet = input.delete.quiet.unwrap_or(false);
    let bucket = input.bucket;
    let results: Vec<_> = futures::stream::iter(objects)
        .map(|obj| {
            let (store, bucket) = (gw.store.clone(), bucket.clone());
            async move {
                let condition = conditional::for_batch_delete(
                    obj.e_tag.as_ref(),
                    obj.last_modified_time.as_ref(),
                    obj.size,
                );
                let version = obj.version_id.as_deref();
                let r = delete_one(&store, &bucket, &obj.key, version, &condition).await;
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
            Ok(Deleted {
                version_id,
                delete_marker: marker,
            }) => {
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
