//! Bucket policies and PublicAccessBlock: Get/Put/DeleteBucketPolicy,
//! GetBucketPolicyStatus, Get/Put/DeletePublicAccessBlock. Both are stored in the bucket
//! record; `crate::access` evaluates them on every request.
//!
//! A policy outside the supported subset (`access::policy`) is refused whole with 400
//! MalformedPolicy. With `BlockPublicPolicy` set, a policy that allows anything to anyone is
//! refused with 403 AccessDenied, as S3 does; `RestrictPublicBuckets` keeps a stored public
//! policy from granting anything to anyone. Without a PublicAccessBlock configuration
//! nothing is blocked.

use node::proto::access::PublicAccessBlock;
use node::proto::{BucketRecord, Lww};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use crate::access::policy::Policy;

/// The stored policy of a bucket, if it has one.
fn stored_policy(record: &BucketRecord) -> Option<&String> {
    record.live(&record.policy).filter(|p| !p.is_empty())
}

/// The bucket's PublicAccessBlock, if configured (all off counts as none).
pub(super) fn stored_block(record: &BucketRecord) -> Option<PublicAccessBlock> {
    record
        .live(&record.public_access_block)
        .copied()
        .filter(|b| *b != PublicAccessBlock::default())
}

pub(super) async fn get_bucket_policy(
    gw: &Gateway,
    req: S3Request<GetBucketPolicyInput>,
) -> S3Result<S3Response<GetBucketPolicyOutput>> {
    let record = gw.store.bucket(&req.input.bucket).await?;
    match stored_policy(&record) {
        Some(policy) => Ok(S3Response::new(GetBucketPolicyOutput {
            policy: Some(policy.clone()),
        })),
        None => Err(s3_error!(
            NoSuchBucketPolicy,
            "The bucket policy does not exist"
        )),
    }
}

pub(super) async fn put_bucket_policy(
    gw: &Gateway,
    req: S3Request<PutBucketPolicyInput>,
) -> S3Result<S3Response<PutBucketPolicyOutput>> {
    let input = req.input;
    let record = gw.store.bucket(&input.bucket).await?;
    let policy = Policy::parse(&input.policy, &input.bucket).map_err(|why| {
        S3Error::with_message(
            S3ErrorCode::MalformedPolicy,
            format!("Policies must be valid JSON and use only the supported elements: {why}"),
        )
    })?;
    if policy.is_public() && stored_block(&record).is_some_and(|b| b.block_public_policy) {
        return Err(s3_error!(
            AccessDenied,
            "The bucket's PublicAccessBlock blocks public policies"
        ));
    }
    let text = input.policy;
    let set = |b: &mut BucketRecord, stamp| b.policy = Some(Lww { stamp, value: text });
    gw.store.update_bucket(&input.bucket, set).await?;
    gw.access.forget_bucket(&input.bucket);
    tracing::info!(bucket = %input.bucket, public = policy.is_public(), "bucket policy set");
    Ok(S3Response::new(PutBucketPolicyOutput::default()))
}

pub(super) async fn delete_bucket_policy(
    gw: &Gateway,
    req: S3Request<DeleteBucketPolicyInput>,
) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
    let bucket = req.input.bucket;
    let set = |b: &mut BucketRecord, stamp| {
        b.policy = Some(Lww {
            stamp,
            value: String::new(),
        })
    };
    gw.store.update_bucket(&bucket, set).await?;
    gw.access.forget_bucket(&bucket);
    Ok(S3Response::new(DeleteBucketPolicyOutput::default()))
}

/// Whether the bucket's policy allows anything to anyone (S3's definition of public).
pub(super) async fn get_bucket_policy_status(
    gw: &Gateway,
    req: S3Request<GetBucketPolicyStatusInput>,
) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
    let record = gw.store.bucket(&req.input.bucket).await?;
    let Some(text) = stored_policy(&record) else {
        return Err(s3_error!(
            NoSuchBucketPolicy,
            "The bucket policy does not exist"
        ));
    };
    let public = Policy::parse(text, &record.name).is_ok_and(|p| p.is_public());
    Ok(S3Response::new(GetBucketPolicyStatusOutput {
        policy_status: Some(PolicyStatus {
            is_public: Some(public),
        }),
    }))
}

pub(super) async fn get_public_access_block(
    gw: &Gateway,
    req: S3Request<GetPublicAccessBlockInput>,
) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
    let record = gw.store.bucket(&req.input.bucket).await?;
    let Some(b) = stored_block(&record) else {
        let mut e = S3Error::with_message(
            S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
            "The public access block configuration was not found",
        );
        e.set_status_code(http::StatusCode::NOT_FOUND);
        return Err(e);
    };
    Ok(S3Response::new(GetPublicAccessBlockOutput {
        public_access_block_configuration: Some(PublicAccessBlockConfiguration {
            block_public_acls: Some(b.block_public_acls),
            block_public_policy: Some(b.block_public_policy),
            ignore_public_acls: Some(b.ignore_public_acls),
            restrict_public_buckets: Some(b.restrict_public_buckets),
        }),
    }))
}

pub(super) async fn put_public_access_block(
    gw: &Gateway,
    req: S3Request<PutPublicAccessBlockInput>,
) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
    let input = req.input;
    let c = &input.public_access_block_configuration;
    let block = PublicAccessBlock {
        block_public_acls: c.block_public_acls.unwrap_or(false),
        ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
        block_public_policy: c.block_public_policy.unwrap_or(false),
        restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
    };
    set_block(gw, &input.bucket, block).await?;
    Ok(S3Response::new(PutPublicAccessBlockOutput::default()))
}

pub(super) async fn delete_public_access_block(
    gw: &Gateway,
    req: S3Request<DeletePublicAccessBlockInput>,
) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
    set_block(gw, &req.input.bucket, PublicAccessBlock::default()).await?;
    Ok(S3Response::new(DeletePublicAccessBlockOutput::default()))
}

async fn set_block(gw: &Gateway, bucket: &str, block: PublicAccessBlock) -> S3Result<()> {
    let set = |b: &mut BucketRecord, stamp| {
        b.public_access_block = Some(Lww {
            stamp,
            value: block,
        })
    };
    gw.store.update_bucket(bucket, set).await?;
    gw.access.forget_bucket(bucket);
    tracing::info!(bucket, ?block, "public access block set");
    Ok(())
}
