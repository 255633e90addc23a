//! CompleteMultipartUpload: checks the part list (order, ETags, sizes, checksums), derives
//! the multipart ETag and the object checksum from the parts, writes the object's version
//! (through the key's compare-and-set when the request carries a condition) and retires
//! the upload, leaving its result for retries (`completion`). Linear in the number of
//! parts; no byte is read or copied.

use super::completion::Completion;
use super::*;

pub(in crate::s3) async fn complete_multipart_upload(
    gw: &Gateway,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let mut input = req.input;
    let condition = WriteCondition::for_write(input.if_match.clone(), input.if_none_match.clone())?;
    let cluster = &gw.cluster;
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
    let part_list: Vec<(u32, String)> = requested
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
        .collect();
    let (record, replicas) =
        read_upload_record(cluster, &input.bucket, &input.key, &input.upload_id).await?;
    let upload = match Upload::parse(record, replicas, &input.upload_id) {
        Ok(upload) => upload,
        // Completed already: a retry of that completion gets its answer again.
        Err(record) => {
            return match Completion::find(&record) {
                Some(done) if done.parts == part_list => Ok(answer(&req.extensions, &input, &done)),
                _ => Err(no_such_upload()),
            };
        }
    };
    let spec = UploadChecksum::of_upload(&upload.init);
    let mut part_sums: Vec<(u64, String)> = Vec::new();
    let newest = newest_parts(&upload.record);
    let mut parts = Vec::with_capacity(requested.len());
    let mut md5s = Md5::new();
    let mut last_number = 0;
    for p in &requested {
        let number = p.part_number.unwrap_or(0);
        if number <= last_number {
            return Err(s3_error!(
                InvalidPartOrder,
                "The list of parts was not in ascending order."
            ));
        }
        last_number = number;
        let number = u32::try_from(number).unwrap_or(0);
        let found = newest
            .get(&number)
            .map(|p| (p.meta, p.blob))
            .filter(|(m, _)| {
                p.e_tag
                    .as_ref()
                    .is_some_and(|e| e.value().trim_matches('"') == m.md5)
            });
        let Some((meta, blob)) = found else {
            return Err(s3_error!(
                InvalidPart,
                "One or more of the specified parts could not be found: part {number}"
            ));
        };
        // A part checksum named in the request must be the one the part was stored with.
        for (name, stored) in &meta.checksums {
            if get_checksum!(p, name.as_str()).is_some_and(|given| given != stored) {
                return Err(s3_error!(
                    InvalidPart,
                    "The {name} checksum of part {number} does not match the uploaded part."
                ));
            }
        }
        if let Some(spec) = &spec {
            let sum = meta.checksums.get(spec.algorithm).ok_or_else(|| {
                s3_error!(
                    InvalidPart,
                    "Part {number} has no {} checksum.",
                    spec.algorithm
                )
            })?;
            part_sums.push((meta.size, sum.clone()));
        }
        let raw =
            hex::decode(&meta.md5).map_err(|_| s3_error!(InternalError, "bad stored part md5"))?;
        md5s.update(&raw);
        parts.push(PartRef {
            number,
            blob: blob.to_owned(),
            size: meta.size,
            md5: meta.md5.clone(),
            checksums: meta.checksums.clone(),
        });
    }
    // Sizes are checked once every part is known to exist, as S3 does.
    if let Some(p) = parts[..parts.len() - 1]
        .iter()
        .find(|p| p.size < MIN_PART_SIZE)
    {
        return Err(s3_error!(
            EntityTooSmall,
            "Your proposed upload is smaller than the minimum allowed object size: part {}",
            p.number
        ));
    }
    let multipart_etag = format!("{}-{}", hex::encode(md5s.finalize()), parts.len());
    let size: u64 = parts.iter().map(|p| p.size).sum();
    if input
        .mpu_object_size
        .is_some_and(|claimed| u64::try_from(claimed).ok() != Some(size))
    {
        return Err(s3_error!(
            InvalidRequest,
            "The x-amz-mp-object-size you specified does not match the size of the parts."
        ));
    }
    let checksums = object_checksum(spec.as_ref(), &part_sums, &input)?;
    let mut ctx = WriteContext::load(cluster, &input.bucket, &input.key).await?;
    ctx.tags = upload.tags.clone();
    let meta = ObjectMeta {
        size,
        // The MD5 of the whole body is not known without reading it again.
        md5: String::new(),
        etag: multipart_etag.clone(),
        data: Data::Parts { parts },
        headers: upload.init.headers.clone(),
        user_metadata: upload.init.user_metadata.clone(),
        part_number: None,
        checksums: checksums.clone(),
        checksum_type: spec.as_ref().map(|c| c.kind.to_owned()),
        checksum_algorithm: None,
    };
    let version = if condition.is_set() {
        // A refused completion leaves the upload as it is: the client may retry or abort.
        let state = VersionState::Object(meta);
        let (b, k) = (&input.bucket, &input.key);
        let written = commit_if(cluster, b, k, &ctx, state, &condition, None).await?;
        written.version
    } else {
        let version = ctx.new_version(cluster, VersionState::Object(meta));
        let (b, k) = (&input.bucket, &input.key);
        cluster
            .write_version(b, k, version, &upload.replicas)
            .await?
    };
    let done = Completion {
        etag: multipart_etag,
        parts: part_list,
        version_id: ctx.version_id_for(&version),
        checksums,
        checksum_type: spec.map(|c| c.kind.to_owned()),
    };
    finish_upload(
        cluster,
        &input.bucket,
        &input.key,
        &input.upload_id,
        &upload,
        Some(done.to_version(version.stamp.clone())),
    )
    .await?;
    // Parts uploaded but not chosen (re-uploads, left-out numbers) are garbage now, for
    // garbage collection to free.
    Ok(answer(&req.extensions, &input, &done))
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
        checksum_type: done.checksum_type.clone().map(ChecksumType::from),
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
) -> S3Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    let Some(spec) = spec else {
        return Ok(out);
    };
    if let Some(kind) = &input.checksum_type
        && !kind.as_str().eq_ignore_ascii_case(spec.kind)
    {
        return Err(s3_error!(
            InvalidRequest,
            "The upload was created with checksum type {}, not {}",
            spec.kind,
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
                spec.algorithm
            ));
        }
    }
    out.insert(spec.algorithm.to_owned(), value);
    Ok(out)
}
