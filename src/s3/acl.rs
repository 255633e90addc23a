//! ACLs: Get/PutBucketAcl, Get/PutObjectAcl, and the `x-amz-acl` / `x-amz-grant-*`
//! headers of CreateBucket and of object writes. Policies are in `policy`.
//!
//! Who may do what is the grants' business (`crate::access`); as ACLs show it, everything
//! has one owner (the root key) with FULL_CONTROL, and the one thing an ACL may add is
//! READ for everyone (S3's canned `public-read`): on a bucket it lets anyone list it, on
//! an object version anyone may GET and HEAD it (`crate::access` and `resolve` honour it).
//! That ACL is asked for by the canned `public-read`, by `x-amz-grant-read` naming the
//! AllUsers group, or by an AccessControlPolicy of exactly those grants; owner-only ACLs
//! (`private`, `bucket-owner-full-control`, or a policy granting only the owner
//! FULL_CONTROL) make it private again. Anything granting access to someone else is
//! refused with S3's `AccessControlListNotSupported` (400), never silently ignored; a
//! public ACL where the bucket's PublicAccessBlock blocks them is refused with 403.

use s3s::auth::Credentials;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use node::proto::{BucketRecord, CannedAcl, Lww};

use super::Gateway;
use super::dto::owner;
use super::policy::stored_block;
use super::resolve::resolve_version;
use crate::store::Need;

/// Canned ACLs that mean "only the owner has access" in a single-owner store.
const OWNER_ONLY_CANNED: &[&str] = &["private", "bucket-owner-full-control"];

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

fn acl_not_supported() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::AccessControlListNotSupported,
        "The bucket does not allow ACLs granting access to anyone but the owner or everyone",
    )
}

/// The owner with FULL_CONTROL, and for a public ACL everyone with READ.
fn grants(public_read: bool) -> Grants {
    let o = owner();
    let mut grants = vec![Grant {
        grantee: Some(Grantee {
            display_name: o.display_name,
            email_address: None,
            id: o.id,
            type_: Type::from_static(Type::CANONICAL_USER),
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    }];
    if public_read {
        grants.push(Grant {
            grantee: Some(Grantee {
                display_name: None,
                email_address: None,
                id: None,
                type_: Type::from_static(Type::GROUP),
                uri: Some(ALL_USERS.to_owned()),
            }),
            permission: Some(Permission::from_static(Permission::READ)),
        });
    }
    grants
}

/// The ACL-related parts of a request, whatever the operation.
#[derive(Default)]
pub(super) struct AclRequest<'a> {
    pub canned: Option<&'a str>,
    pub grant_full_control: Option<&'a str>,
    pub grant_read: Option<&'a str>,
    /// Whether any of `x-amz-grant-read-acp`, `-write`, `-write-acp` was given.
    pub other_grants: bool,
    pub policy: Option<&'a AccessControlPolicy>,
}

/// Builds an [`AclRequest`] from an input's ACL fields (every input names them alike).
macro_rules! acl_request {
    ($input:expr, $others:expr) => {
        $crate::s3::acl::AclRequest {
            canned: $input.acl.as_ref().map(|a| a.as_str()),
            grant_full_control: $input.grant_full_control.as_deref(),
            grant_read: $input.grant_read.as_deref(),
            other_grants: $others.iter().any(|o| o.is_some()),
            policy: None,
        }
    };
}
pub(super) use acl_request;

/// The [`AclRequest`] of a PutBucketAcl or PutObjectAcl input (both have a body policy and
/// every grant header).
macro_rules! put_acl_request {
    ($input:expr) => {
        AclRequest {
            policy: $input.access_control_policy.as_ref(),
            ..acl_request!(
                $input,
                [
                    &$input.grant_read_acp,
                    &$input.grant_write,
                    &$input.grant_write_acp
                ]
            )
        }
    };
}

/// Whether a grant header's list (`id="…"`, `uri="…"`, comma-separated) names only
/// grantees `ok` accepts.
fn names_only(list: &str, ok: impl Fn(&str, &str) -> bool) -> bool {
    list.split(',').all(|e| {
        e.trim()
            .split_once('=')
            .is_some_and(|(kind, v)| ok(kind.trim(), v.trim().trim_matches('"')))
    })
}

/// The ACL a request asks for, if it asks for one s3quorum keeps.
pub(super) fn requested(req: AclRequest<'_>) -> S3Result<CannedAcl> {
    let owner_id = owner().id.unwrap_or_default();
    let headers = req.grant_full_control.is_some() || req.grant_read.is_some() || req.other_grants;
    if req.canned.is_some() && headers {
        return Err(s3_error!(
            InvalidRequest,
            "Specifying both Canned ACLs and Header Grants is not allowed"
        ));
    }
    if req.other_grants {
        return Err(acl_not_supported());
    }
    let mut acl = CannedAcl::Private;
    match req.canned {
        Some(c) if c == BucketCannedACL::PUBLIC_READ => acl = CannedAcl::PublicRead,
        Some(c) if !OWNER_ONLY_CANNED.contains(&c) => return Err(acl_not_supported()),
        _ => {}
    }
    if let Some(g) = req.grant_full_control
        && !names_only(g, |kind, v| kind == "id" && v == owner_id)
    {
        return Err(acl_not_supported());
    }
    if let Some(g) = req.grant_read {
        if !names_only(g, |kind, v| kind == "uri" && v == ALL_USERS) {
            return Err(acl_not_supported());
        }
        acl = CannedAcl::PublicRead;
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
        let permission = |g: &Grant| g.permission.as_ref().map(|p| p.as_str().to_owned());
        let owner_full_control = |g: &Grant| {
            permission(g).as_deref() == Some(Permission::FULL_CONTROL)
                && g.grantee.as_ref().is_some_and(|e| {
                    e.type_.as_str() == Type::CANONICAL_USER && e.id.as_deref() == Some(&owner_id)
                })
        };
        let everyone_reads = |g: &Grant| {
            permission(g).as_deref() == Some(Permission::READ)
                && g.grantee.as_ref().is_some_and(|e| {
                    e.type_.as_str() == Type::GROUP && e.uri.as_deref() == Some(ALL_USERS)
                })
        };
        if grants.is_empty()
            || !grants
                .iter()
                .all(|g| owner_full_control(g) || everyone_reads(g))
        {
            return Err(acl_not_supported());
        }
        if grants.iter().any(everyone_reads) {
            acl = CannedAcl::PublicRead;
        }
    }
    Ok(acl)
}

/// Refuses (403) a public ACL where `record`'s PublicAccessBlock blocks public ACLs.
pub(super) fn check_allowed(record: &BucketRecord, acl: CannedAcl) -> S3Result<()> {
    if acl == CannedAcl::PublicRead && stored_block(record).is_some_and(|b| b.block_public_acls) {
        return Err(s3_error!(
            AccessDenied,
            "The bucket's PublicAccessBlock blocks public ACLs"
        ));
    }
    Ok(())
}

/// Refuses (403) making an object version public where the bucket's PublicAccessBlock
/// blocks public ACLs, or by a caller without the owner permission there: publishing is
/// the bucket owner's decision, as a policy is; `write` lets a key store objects, not
/// open them to everyone.
async fn check_object_acl(
    gw: &Gateway,
    signer: Option<&Credentials>,
    bucket: &str,
    acl: CannedAcl,
) -> S3Result<()> {
    if acl == CannedAcl::Private {
        return Ok(());
    }
    let record = gw.store.bucket(bucket).await?;
    check_allowed(&record, acl)?;
    let caller = gw.access.caller(signer.map(|c| c.access_key.as_str()));
    if !gw.access.perms(&caller, Some(&record)).owner {
        return Err(s3_error!(
            AccessDenied,
            "Making an object public needs the owner permission on the bucket"
        ));
    }
    Ok(())
}

/// The ACL a new object version starts with (`x-amz-acl` or `x-amz-grant-*` of PutObject,
/// CopyObject or CreateMultipartUpload, by `signer`), checked as [`check_object_acl`]
/// does; `None` for private.
pub(super) async fn for_object_write(
    gw: &Gateway,
    signer: Option<&Credentials>,
    bucket: &str,
    req: AclRequest<'_>,
) -> S3Result<Option<CannedAcl>> {
    let acl = requested(req)?;
    check_object_acl(gw, signer, bucket, acl).await?;
    Ok(Some(acl).filter(|a| *a != CannedAcl::Private))
}

/// Whether a bucket's ACL is the canned `public-read` (stored, and not ignored by its
/// PublicAccessBlock).
fn is_public_read(record: &BucketRecord) -> bool {
    record.live(&record.public_read).copied().unwrap_or(false)
        && !stored_block(record).is_some_and(|b| b.ignore_public_acls)
}

/// Gives the bucket the ACL `acl` (refused, 403, if public where its PublicAccessBlock
/// blocks public ACLs).
pub(super) async fn set_bucket_acl(gw: &Gateway, bucket: &str, acl: CannedAcl) -> S3Result<()> {
    check_allowed(&gw.store.bucket(bucket).await?, acl)?;
    let public = acl == CannedAcl::PublicRead;
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
    Ok(S3Response::new(GetBucketAclOutput {
        grants: Some(grants(is_public_read(&record))),
        owner: Some(owner()),
    }))
}

pub(super) async fn put_bucket_acl(
    gw: &Gateway,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let input = req.input;
    let acl = requested(put_acl_request!(input))?;
    set_bucket_acl(gw, &input.bucket, acl).await?;
    Ok(S3Response::new(PutBucketAclOutput::default()))
}

pub(super) async fn get_object_acl(
    gw: &Gateway,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let input = req.input;
    let found = resolve_version(
        &gw.store,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        Need::Meta,
    )
    .await?;
    Ok(S3Response::new(GetObjectAclOutput {
        grants: Some(grants(found.version.is_public_read())),
        owner: Some(owner()),
        ..Default::default()
    }))
}

pub(super) async fn put_object_acl(
    gw: &Gateway,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    let input = req.input;
    let acl = requested(put_acl_request!(input))?;
    check_object_acl(gw, req.credentials.as_ref(), &input.bucket, acl).await?;
    // Read whole: a replica that lacks the version gets all of it with the new ACL.
    let found = resolve_version(
        &gw.store,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        Need::Body,
    )
    .await?;
    gw.store.set_acl(found, acl).await?;
    Ok(S3Response::new(PutObjectAclOutput::default()))
}
