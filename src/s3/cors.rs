//! Bucket CORS configuration: PutBucketCors, GetBucketCors, DeleteBucketCors.
//!
//! The rules live in the bucket record (a last-writer-wins register, fully replicated like
//! the rest of the record); an empty list is a deleted configuration. Preflight (`OPTIONS`)
//! and the CORS headers of actual responses are answered in the HTTP layer (`crate::cors`),
//! which reads the same rules. Validation follows S3: at least one rule and at most 100,
//! each with at least one origin and one method, methods among GET, PUT, POST, DELETE and
//! HEAD, at most one `*` in an origin or an allowed header, no `*` in an exposed header.

use node::proto::{CorsRule, Lww};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;

const MAX_RULES: usize = 100;
const METHODS: &[&str] = &["GET", "PUT", "POST", "DELETE", "HEAD"];

fn validate(config: CORSConfiguration) -> S3Result<Vec<CorsRule>> {
    if config.cors_rules.is_empty() || config.cors_rules.len() > MAX_RULES {
        return Err(s3_error!(
            MalformedXML,
            "The CORS configuration must have between 1 and {MAX_RULES} rules"
        ));
    }
    config.cors_rules.into_iter().map(validate_rule).collect()
}

fn validate_rule(rule: CORSRule) -> S3Result<CorsRule> {
    if rule.allowed_methods.is_empty() || rule.allowed_origins.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "Each CORSRule must have at least one AllowedMethod and one AllowedOrigin"
        ));
    }
    if let Some(m) = rule
        .allowed_methods
        .iter()
        .find(|m| !METHODS.contains(&m.as_str()))
    {
        return Err(s3_error!(
            InvalidRequest,
            "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
        ));
    }
    if let Some(o) = rule
        .allowed_origins
        .iter()
        .find(|o| o.matches('*').count() > 1)
    {
        return Err(s3_error!(
            InvalidRequest,
            "AllowedOrigin \"{o}\" can not have more than one wildcard."
        ));
    }
    let allowed_headers = rule.allowed_headers.unwrap_or_default();
    if let Some(h) = allowed_headers.iter().find(|h| h.matches('*').count() > 1) {
        return Err(s3_error!(
            InvalidRequest,
            "AllowedHeader \"{h}\" can not have more than one wildcard."
        ));
    }
    let expose_headers = rule.expose_headers.unwrap_or_default();
    if let Some(h) = expose_headers.iter().find(|h| h.contains('*')) {
        return Err(s3_error!(
            InvalidRequest,
            "ExposeHeader \"{h}\" contains wildcard. We currently do not support wildcard for ExposeHeader."
        ));
    }
    if rule.id.as_ref().is_some_and(|id| id.len() > 255) {
        return Err(s3_error!(
            InvalidArgument,
            "The ID of a CORSRule must be at most 255 characters"
        ));
    }
    if rule.max_age_seconds.is_some_and(|s| s < 0) {
        return Err(s3_error!(
            MalformedXML,
            "MaxAgeSeconds must not be negative"
        ));
    }
    Ok(CorsRule {
        id: rule.id,
        allowed_origins: rule.allowed_origins,
        allowed_methods: rule.allowed_methods,
        allowed_headers,
        expose_headers,
        max_age_seconds: rule.max_age_seconds,
    })
}

pub(super) async fn put_bucket_cors(
    gw: &Gateway,
    req: S3Request<PutBucketCorsInput>,
) -> S3Result<S3Response<PutBucketCorsOutput>> {
    let input = req.input;
    let rules = validate(input.cors_configuration)?;
    gw.store
        .update_bucket(&input.bucket, |b, stamp| {
            b.cors = Some(Lww {
                stamp,
                value: rules,
            })
        })
        .await?;
    tracing::info!(bucket = %input.bucket, "bucket CORS configuration set");
    Ok(S3Response::new(PutBucketCorsOutput::default()))
}

pub(super) async fn get_bucket_cors(
    gw: &Gateway,
    req: S3Request<GetBucketCorsInput>,
) -> S3Result<S3Response<GetBucketCorsOutput>> {
    let record = gw.store.bucket(&req.input.bucket).await?;
    let Some(rules) = record.live(&record.cors).filter(|r| !r.is_empty()) else {
        return Err(s3_error!(
            NoSuchCORSConfiguration,
            "The CORS configuration does not exist"
        ));
    };
    let rules = rules
        .iter()
        .map(|r| CORSRule {
            id: r.id.clone(),
            allowed_origins: r.allowed_origins.clone(),
            allowed_methods: r.allowed_methods.clone(),
            allowed_headers: (!r.allowed_headers.is_empty()).then(|| r.allowed_headers.clone()),
            expose_headers: (!r.expose_headers.is_empty()).then(|| r.expose_headers.clone()),
            max_age_seconds: r.max_age_seconds,
        })
        .collect();
    Ok(S3Response::new(GetBucketCorsOutput {
        cors_rules: Some(rules),
    }))
}

pub(super) async fn delete_bucket_cors(
    gw: &Gateway,
    req: S3Request<DeleteBucketCorsInput>,
) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
    gw.store
        .update_bucket(&req.input.bucket, |b, stamp| {
            b.cors = Some(Lww {
                stamp,
                value: Vec::new(),
            })
        })
        .await?;
    Ok(S3Response::new(DeleteBucketCorsOutput::default()))
}
