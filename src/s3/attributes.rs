//! GetObjectAttributes: an object's ETag, checksum, parts, storage class and size in one
//! call, without its body. Only the attributes asked for (`x-amz-object-attributes`) are
//! returned; parts are paginated like ListParts (`max-parts`, `part-number-marker`).

use node::proto::{Data, PartRef};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::Gateway;
use super::dto::timestamp;
use super::object::checksum_type;
use super::resolve::resolve_version;
use crate::checksum;
use crate::integrity::etag;
use crate::store::Need;

/// Most parts one answer lists (S3's default and maximum).
const MAX_PARTS: usize = 1000;

pub(super) async fn get_object_attributes(
    gw: &Gateway,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let input = req.input;
    let wanted = |name: &str| {
        input
            .object_attributes
            .iter()
            .any(|a| a.as_str().eq_ignore_ascii_case(name))
    };
    if input.object_attributes.is_empty() {
        return Err(s3_error!(
            InvalidArgument,
            "x-amz-object-attributes must name at least one attribute"
        ));
    }
    let found = resolve_version(
        &gw.store,
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
        Need::Meta,
    )
    .await?;
    let meta = &found.meta;
    let mut out = GetObjectAttributesOutput {
        last_modified: Some(timestamp(found.version.stamp.ts)),
        version_id: found.version_id(),
        ..Default::default()
    };
    if wanted(ObjectAttributes::ETAG) {
        out.e_tag = Some(etag(&meta.etag));
    }
    if wanted(ObjectAttributes::OBJECT_SIZE) {
        out.object_size = Some(meta.size as i64);
    }
    if wanted(ObjectAttributes::STORAGE_CLASS) {
        out.storage_class = Some(StorageClass::from_static(StorageClass::STANDARD));
    }
    if wanted(ObjectAttributes::CHECKSUM) && !meta.checksums.is_empty() {
        let mut checksum = Checksum {
            checksum_type: checksum_type(meta),
            ..Default::default()
        };
        set_checksums!(checksum, &found.checksums());
        out.checksum = Some(checksum);
    }
    if wanted(ObjectAttributes::OBJECT_PARTS)
        && let Data::Parts { parts } = &meta.data
    {
        out.object_parts = Some(object_parts(parts, &input)?);
    }
    Ok(S3Response::new(out))
}

/// One page of a multipart object's parts (`max-parts`, `part-number-marker`).
fn object_parts(
    parts: &[PartRef],
    input: &GetObjectAttributesInput,
) -> S3Result<GetObjectAttributesParts> {
    let max = match input.max_parts {
        None => MAX_PARTS,
        Some(n) if n < 0 => {
            return Err(s3_error!(InvalidArgument, "max-parts must not be negative"));
        }
        Some(n) => (n as usize).min(MAX_PARTS),
    };
    let marker = input.part_number_marker.unwrap_or(0).max(0) as u32;
    let after: Vec<_> = parts.iter().filter(|p| p.number > marker).collect();
    let truncated = after.len() > max;
    let page: Vec<ObjectPart> = after
        .into_iter()
        .take(max)
        .map(|p| {
            let mut part = ObjectPart {
                part_number: Some(p.number as i32),
                size: Some(p.size as i64),
                ..Default::default()
            };
            set_checksums!(part, &checksum::from_stored(&p.checksums));
            part
        })
        .collect();
    Ok(GetObjectAttributesParts {
        total_parts_count: Some(parts.len() as i32),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: page.last().and_then(|p| p.part_number),
        max_parts: Some(max as i32),
        is_truncated: Some(truncated),
        parts: Some(page),
    })
}
