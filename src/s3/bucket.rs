//! Bucket operations: create, head, delete, list, location.
//!
//! Bucket names are validated by s3s (AWS rules) before a handler runs. A bucket is one
//! single-tenant namespace. Creating a bucket that exists answers as S3 does in us-east-1:
//! 200 (and nothing changes) without a location constraint or with `us-east-1`, otherwise
//! 409 `BucketAlreadyOwnedByYou`.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::dto::{continuation_token, continue_after, owner, timestamp};
use super::{Gateway, acl};
use crate::error::Error;
use node::proto::CannedAcl;

pub(super) async fn create_bucket(
    gw: &Gateway,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let input = req.input;
    let acl = acl::requested(acl::acl_request!(
        input,
        [
            &input.grant_read_acp,
            &input.grant_write,
            &input.grant_write_acp
        ]
    ))?;
    let name = input.bucket;
    let location = input
        .create_bucket_configuration
        .as_ref()
        .and_then(|c| c.location_constraint.as_ref())
        .map(|l| l.as_str().to_owned());
    // A key allowed to create buckets owns those it creates.
    let creator = req
        .credentials
        .as_ref()
        .map(|c| c.access_key.as_str())
        .filter(|id| !gw.access.is_root(id));
    match gw.store.create_bucket(&name, creator).await {
        Ok(()) => tracing::info!(bucket = %name, "bucket created"),
        Err(Error::BucketAlreadyOwnedByYou)
            if location
                .as_deref()
                .is_none_or(|l| l.is_empty() || l == "us-east-1") => {}
        Err(e) => return Err(e.into()),
    }
    if acl == CannedAcl::PublicRead {
        acl::set_bucket_acl(gw, &name, acl).await?;
    }
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{name}")),
        ..Default::default()
    }))
}

pub(super) async fn head_bucket(
    gw: &Gateway,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    gw.store.bucket(&req.input.bucket).await?;
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
    gw.store.delete_bucket(&name).await?;
    tracing::info!(bucket = %name, "bucket deleted");
    Ok(S3Response::new(DeleteBucketOutput {}))
}

/// Most buckets one ListBuckets page holds (S3's `max-buckets` limit).
const MAX_BUCKETS: i32 = 10_000;

/// ListBuckets, paginated as S3 has been since 2024: `prefix`, `max-buckets` and an opaque
/// `continuation-token` (the last name of the page before, base64url).
pub(super) async fn list_buckets(
    gw: &Gateway,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let input = req.input;
    let prefix = input.prefix.unwrap_or_default();
    let max = match input.max_buckets {
        None => MAX_BUCKETS as usize,
        Some(n) if (1..=MAX_BUCKETS).contains(&n) => n as usize,
        Some(_) => {
            return Err(s3_error!(
                InvalidArgument,
                "max-buckets must be an integer between 1 and {MAX_BUCKETS}"
            ));
        }
    };
    let after = match input.continuation_token.as_deref() {
        None | Some("") => String::new(),
        Some(token) => continue_after(token)?,
    };
    // A key sees only the buckets it may read.
    let caller = gw
        .access
        .caller(req.credentials.as_ref().map(|c| c.access_key.as_str()));
    let visible = |b: &node::proto::BucketRecord| gw.access.perms(&caller, Some(b)).read;
    // Sorted by name: a page starts after the last name of the one before.
    let mut matching = gw
        .store
        .list_buckets()
        .await?
        .into_iter()
        .filter(|b| b.name.starts_with(&prefix) && b.name > after && visible(b));
    let page: Vec<_> = matching.by_ref().take(max).collect();
    let more = matching.next().is_some();
    let continuation_token = page
        .last()
        .filter(|_| more)
        .map(|b| continuation_token(&b.name));
    let buckets = page
        .into_iter()
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
        continuation_token,
    }))
}

pub(super) async fn get_bucket_location(
    gw: &Gateway,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    gw.store.bucket(&req.input.bucket).await?;
    // No location constraint means us-east-1, the region every client falls back to.
    Ok(S3Response::new(GetBucketLocationOutput::default()))
}
