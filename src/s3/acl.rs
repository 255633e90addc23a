//! ACLs as S3 answers them for a bucket with ACLs disabled (Object Ownership "bucket owner
//! enforced", the S3 default since 2023): Get/PutBucketAcl, Get/PutObjectAcl, and the
//! `x-amz-acl` / `x-amz-grant-*` headers of writes. Policies are in `policy`.
//!
//! Who may do what is the grants' business (`crate::access`); as ACLs show it, everything
//! has one owner (the root key), and the one stored ACL setting is a bucket's canned
//! `public-read` (anyone may list it; `crate::access` honours it). Every other ACL is
//! "owner has FULL_CONTROL". Setting that same ACL (canned `private` or `bucket-owner-full-control`, or a policy granting only the
//! owner FULL_CONTROL) is accepted as a no-op; anything granting access to someone else is
//! refused with S3's `AccessControlListNotSupported` (400), never silently ignored.

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use node::proto::{BucketRecord, Lww};

use super::Gateway;
use super::dto::owner;
use super::policy::stored_block;
use super::resolve::resolve_version;
use crate::store::Need;

/// Canned ACLs that mean "only the owner has access" in a single-owner store.
const OWNER_ONLY_CANNED: &[&str] = &["private", "bucket-owner-full-control"];

fn acl_not_supported() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::AccessControlListNotSupported,
        "The bucket does not allow ACLs",
    )
}

/// The one ACL of everything: the owner with FULL_CONTROL.
fn owner_grants() -> Grants {
    let o = owner();
    vec![Grant {
        grantee: Some(Grantee {
            display_name: o.display_name,
            email_address: None,
            id: o.id,
            type_: Type::from_static(Type::CANONICAL_USER),
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    }]
}

/// The ACL-related parts of a request, whatever the operation.
#[derive(Default)]
pub(super) struct AclRequest<'a> {
    pub canned: Option<&'a str>,
    pub grant_full_control: Option<&'a str>,
    /// Whether any of `x-amz-grant-read`, `-read-acp`, `-write`, `-write-acp` was given.
    pub other_grants: bool,
    pub policy: Option<&'a AccessControlPolicy>,
}

/// The ACL headers of an object write (PutObject, CopyObject, CreateMultipartUpload):
/// accepted only if they grant nothing beyond the owner's FULL_CONTROL.
pub(super) fn check_object_write(
    canned: Option<&ObjectCannedACL>,
    grant_full_control: Option<&str>,
    other_grants: [Option<&str>; 3],
) -> S3Result<()> {
    check_owner_only(AclRequest {
        canned: canned.map(|a| a.as_str()),
        grant_full_control,
        other_grants: other_grants.iter().any(Option::is_some),
        policy: None,
    })
}

/// Accepts the request only if it grants nothing beyond the owner's FULL_CONTROL.
pub(super) fn check_owner_only(req: AclRequest<'_>) -> S3Result<()> {
    let owner_id = owner().id.unwrap_or_default();
    if let Some(c) = req.canned
        && !OWNER_ONLY_CANNED.contains(&c)
    {
        return Err(acl_not_supported());
    }
    if req.other_grants {
        return Err(acl_not_supported());
    }
    if let Some(g) = req.grant_full_control {
        // `id="..."` entries, comma-separated; only the owner may be named.
        let only_owner = g.split(',').all(|e| {
            e.trim()
                .strip_prefix("id=")
                .is_some_and(|v| v.trim_matches('"') == owner_id)
        });
        if !only_owner {
            return Err(acl_not_supported());
        }
    }
    if let Some(p) = req.policy {
        if p.owner
            .as_ref()
            .and_then(|o| o.id.as_deref())
            .is_some_and(|id| id != owner_id)
        {
            return Err(s3_error!(
                AccessDenied,
                "The ACL owner must be the bucket owner"
            ));
        }
        let grants = p.grants.as_deref().unwrap_or_default();
        let owner_full_control = |g: &Grant| {
            g.permission.as_ref().map(|p| p.as_str()) == Some(Permission::FULL_CONTROL)
                && g.grantee.as_ref().is_some_and(|e| {
                    e.type_.as_str() == Type::CANONICAL_USER && e.id.as_deref() == Some(&owner_id)
                })
        };
        if grants.is_empty() || !grants.iter().all(owner_full_control) {
            return Err(acl_not_supported());
        }
    }
    Ok(())
}

/// Whether a bucket's ACL is the canned `public-read` (stored, and not ignored by its
/// PublicAccessBlock).
fn is_public_read(record: &BucketRecord) -> bool {
    record.live(&record.public_read).copied().unwrap_or(false)
        && !stored_block(record).is_some_and(|b| b.ignore_public_acls)
}

/// The grant S3 shows for a public-read bucket: anyone may list it.
fn all_users_read() -> Grant {
    Grant {
        grantee: Some(Grantee {
            display_name: None,
            email_address: None,
            id: None,
            type_: Type::from_static(Type::GROUP),
            uri: Some(ALL_USERS.to_owned()),
        }),
        permission: Some(Permission::from_static(Permission::READ)),
    }
}

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

/// Makes the bucket's ACL the canned `public-read` (`true`) or `private`; a public ACL is
/// refused (403) where the bucket's PublicAccessBlock blocks public ACLs.
pub(super) async fn set_public_read(gw: &Gateway, bucket: &str, public: bool) -> S3Result<()> {
    let record = gw.store.bucket(bucket).await?;
    if public && stored_block(&record).is_some_and(|b| b.block_public_acls) {
        return Err(s3_error!(
            AccessDenied,
            "The bucket's PublicAccessBlock blocks public ACLs"
        ));
    }
    let set = |b: &mut BucketRecord, stamp| {
        b.public_read = Some(Lww {
            stamp,
            value: public,
        })
    };
    gw.store.update_bucket(bucket, set).await?;
    gw.access.forget_bucket(bucket);
    Ok(())
}

pub(super) async fn get_bucket_acl(
    gw: &Gateway,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let record = gw.store.bucket(&req.input.bucket).await?;
    let mut grants = owner_grants();
    if is_public_read(&record) {
        grants.push(all_users_read());
    }
    Ok(S3Response::new(GetBucketAclOutput {
        grants: Some(grants),
        owner: Some(owner()),
    }))
}

pub(super) async fn put_bucket_acl(
    gw: &Gateway,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let input = req.input;
    gw.store.bucket(&input.bucket).await?;
    let canned = input.acl.as_ref().map(|a| a.as_str());
    if canned == Some(BucketCannedACL::PUBLIC_READ) {
        set_public_read(gw, &input.bucket, true).await?;
        return Ok(S3Response::new(PutBucketAclOutput::default()));
    }
    check_owner_only(AclRequest {
        canned: input.acl.as_ref().map(|a| a.as_str()),
        grant_full_control: input.grant_full_control.as_deref(),
        other_grants: input.grant_read.is_some()
            || input.grant_read_acp.is_some()
            || input.grant_write.is_some()
            || input.grant_write_acp.is_some(),
        policy: input.access_control_policy.as_ref(),
    })?;
    // An owner-only ACL makes a public-read bucket private again.
    set_public_read(gw, &input.bucket, false).await?;
    Ok(S3Response::new(PutBucketAclOutput::default()))
}

pub(super) async fn get_object_acl(
    gw: &Gateway,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let input = req.input;
    resolve_version(
        &gw.store,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        Need::Meta,
    )
    .await?;
    Ok(S3Response::new(GetObjectAclOutput {
        grants: Some(owner_grants()),
        owner: Some(owner()),
        ..Default::default()
    }))
}

pub(super) async fn put_object_acl(
    gw: &Gateway,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    let input = req.input;
    resolve_version(
        &gw.store,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        Need::Meta,
    )
    .await?;
    check_owner_only(AclRequest {
        canned: input.acl.as_ref().map(|a| a.as_str()),
        grant_full_control: input.grant_full_control.as_deref(),
        other_grants: input.grant_read.is_some()
            || input.grant_read_acp.is_some()
            || input.grant_write.is_some()
            || input.grant_write_acp.is_some(),
        policy: input.access_control_policy.as_ref(),
    })?;
    Ok(S3Response::new(PutObjectAclOutput::default()))
}
