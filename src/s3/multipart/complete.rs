//! CompleteMultipartUpload: checks the part list (order, ETags, sizes, checksums), derives
//! the multipart ETag and the object checksum from the parts, and has the store write the
//! object's version (through the key's compare-and-set when the request carries a
//! condition) and retire the upload, leaving its result for retries. Linear in the number
//! of parts; no byte is read or copied.

use md5::{Digest, Md5};
use node::proto::ObjectMeta;

use super::*;
use crate::checksum::{Checksums, Kind};
use crate::s3::conditional;
use crate::store::{CompletedObject, Completion, Upload, UploadState};

pub(in crate::s3) async fn complete_multipart_upload(
    gw: &Gateway,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let mut input = req.input;
    let condition = conditional::for_write(input.if_match.as_ref(), input.if_none_match.as_ref());
    let requested = input
        .multipart_upload
        .take()
        .and_then(|m| m.parts)
        .unwrap_or_default();
    if requested.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "You must specify at least one part"
        ));
    }
    let part_list = part_list(&requested);
    let store = &gw.store;
    let upload = match store
        .upload(&input.bucket, &input.key, &input.upload_id)
        .await?
    {
        UploadState::InProgress(upload) => upload,
        // Completed already: a retry of that completion gets its answer again.
        UploadState::Completed(done) if done.parts == part_list => {
            return Ok(answer(&req.extensions, &input, &done));
        }
        _ => return Err(crate::error::Error::NoSuchUpload.into()),
    };
    let spec = UploadChecksum::of_upload(&upload.init);
    let chosen = choose_parts(&upload, &requested, spec.as_ref())?;
    if input
        .mpu_object_size
        .is_some_and(|claimed| u64::try_from(claimed).ok() != Some(chosen.size))
    {
        return Err(s3_error!(
            InvalidRequest,
            "The x-amz-mp-object-size you specified does not match the size of the parts."
        ));
    }
    let checksums = object_checksum(spec.as_ref(), &chosen.sums, &input)?;
    let object = CompletedObject {
        size: chosen.size,
        etag: chosen.etag.clone(),
        checksums: checksums.clone(),
        checksum_type: spec.map(|c| c.kind),
    };
    let done = Completion {
        etag: chosen.etag,
        parts: part_list,
        version_id: None,
        checksums,
        checksum_type: spec.map(|c| c.kind),
    };
    let (_, done) = store
        .complete_upload(&upload, &chosen.numbers, object, &condition, done)
        .await?;
    Ok(answer(&req.extensions, &input, &done))
}

/// The request's part list as a completion records it: `(number, ETag)`, in request order.
fn part_list(requested: &[CompletedPart]) -> Vec<(u32, String)> {
    requested
        .iter()
        .map(|p| {
            let number = p
                .part_number
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0);
            let etag = p
                .e_tag
                .as_ref()
                .map(|e| e.value().trim_matches('"').to_owned());
            (number, etag.unwrap_or_default())
        })
        .collect()
}

/// The parts a completion is made of, checked against the upload.
struct Chosen {
    numbers: Vec<u32>,
    size: u64,
    /// The multipart ETag: the MD5 of the parts' binary MD5s, `-` the part count.
    etag: String,
    /// Each part's size and checksum under the upload's algorithm, if it has one.
    sums: Vec<(u64, String)>,
}

/// Checks the requested parts as S3 does: ascending numbers, each an uploaded part with the
/// ETag (and any checksum) named, and every part but the last at least [`MIN_PART_SIZE`].
fn choose_parts(
    upload: &Upload,
    requested: &[CompletedPart],
    spec: Option<&UploadChecksum>,
) -> S3Result<Chosen> {
    let newest = upload.newest_parts();
    let mut chosen = Chosen {
        numbers: Vec::with_capacity(requested.len()),
        size: 0,
        etag: String::new(),
        sums: Vec::new(),
    };
    let mut sizes = Vec::with_capacity(requested.len());
    let mut md5s = Md5::new();
    let mut last_number = 0;
    for p in requested {
        let number = p.part_number.unwrap_or(0);
        if number <= last_number {
            return Err(s3_error!(
                InvalidPartOrder,
                "The list of parts was not in ascending order."
            ));
        }
        last_number = number;
        let number = u32::try_from(number).unwrap_or(0);
        let named = |m: &&ObjectMeta| {
            p.e_tag
                .as_ref()
                .is_some_and(|e| e.value().trim_matches('"') == m.md5)
        };
        let Some(meta) = newest.get(&number).map(|p| p.meta).filter(named) else {
            return Err(s3_error!(
                InvalidPart,
                "One or more of the specified parts could not be found: part {number}"
            ));
        };
        check_part_checksums(p, meta, number)?;
        if let Some(spec) = spec {
            let sum = meta.checksums.get(spec.algorithm.name()).ok_or_else(|| {
                s3_error!(
                    InvalidPart,
                    "Part {number} has no {} checksum.",
                    spec.algorithm.name()
                )
            })?;
            chosen.sums.push((meta.size, sum.clone()));
        }
        let raw =
            hex::decode(&meta.md5).map_err(|_| s3_error!(InternalError, "bad stored part md5"))?;
        md5s.update(&raw);
        sizes.push((number, meta.size));
        chosen.numbers.push(number);
    }
    // Sizes are checked once every part is known to exist, as S3 does.
    if let Some((n, _)) = sizes[..sizes.len() - 1]
        .iter()
        .find(|(_, size)| *size < MIN_PART_SIZE)
    {
        return Err(s3_error!(
            EntityTooSmall,
            "Your proposed upload is smaller than the minimum allowed object size: part {n}"
        ));
    }
    chosen.size = sizes.iter().map(|(_, size)| size).sum();
    chosen.etag = format!("{}-{}", hex::encode(md5s.finalize()), sizes.len());
    Ok(chosen)
}

/// A part checksum named in the request must be the one the part was stored with.
fn check_part_checksums(requested: &CompletedPart, meta: &ObjectMeta, number: u32) -> S3Result<()> {
    for (algorithm, stored) in checksum::from_stored(&meta.checksums) {
        if get_checksum!(requested, algorithm).is_some_and(|given| given != stored) {
            return Err(s3_error!(
                InvalidPart,
                "The {} checksum of part {number} does not match the uploaded part.",
                algorithm.name()
            ));
        }
    }
    Ok(())
}

/// The answer to a completion (the first, or a retry of it).
fn answer(
    extensions: &http::Extensions,
    input: &CompleteMultipartUploadInput,
    done: &Completion,
) -> S3Response<CompleteMultipartUploadOutput> {
    let mut out = CompleteMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(Escapes::text_in(extensions, input.key.clone())),
        e_tag: Some(etag(&done.etag)),
        location: Some(Escapes::text_in(
            extensions,
            format!("/{}/{}", input.bucket, input.key),
        )),
        version_id: done.version_id.clone(),
        checksum_type: done
            .checksum_type
            .map(|k| ChecksumType::from(k.name().to_owned())),
        ..Default::default()
    };
    set_checksums!(out, &done.checksums);
    S3Response::new(out)
}

/// The completed object's checksum (algorithm → value), derived from the parts' and
/// checked against what the request claims: `x-amz-checksum-type` must be the upload's,
/// and a full-object (or composite) value sent with the request must match.
fn object_checksum(
    spec: Option<&UploadChecksum>,
    part_sums: &[(u64, String)],
    input: &CompleteMultipartUploadInput,
) -> S3Result<Checksums> {
    let mut out = Checksums::new();
    let Some(spec) = spec else {
        return Ok(out);
    };
    if let Some(kind) = &input.checksum_type
        && Kind::parse(kind.as_str()) != Some(spec.kind)
    {
        return Err(s3_error!(
            InvalidRequest,
            "The upload was created with checksum type {}, not {}",
            spec.kind.name(),
            kind.as_str()
        ));
    }
    let parts: Vec<(u64, &str)> = part_sums.iter().map(|(n, s)| (*n, s.as_str())).collect();
    let value = spec.of_parts(&parts)?;
    if let Some(claimed) = get_checksum!(input, spec.algorithm) {
        // A composite claim may come with or without the part count.
        let ours = value.split('-').next().unwrap_or_default();
        if claimed != value && claimed != ours {
            return Err(s3_error!(
                BadDigest,
                "The {} you specified did not match the calculated checksum.",
                spec.algorithm.name()
            ));
        }
    }
    out.insert(spec.algorithm, value);
    Ok(out)
}
