//! What each S3 operation needs of the caller: a permission on the bucket it addresses
//! (read, write or owner), the right to create buckets, any key at all (ListBuckets, whose
//! answer is filtered), or the root key.

/// A permission an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// GET and HEAD of objects, listings, reading tags, ACLs, attributes and bucket
    /// settings.
    Read,
    /// PUT, DELETE, multipart, copy destination, writing object tags and ACLs.
    Write,
    /// Changing bucket configuration, and DeleteBucket.
    Owner,
    /// CreateBucket: the root key, or a key allowed to create buckets.
    CreateBucket,
    /// ListBuckets: any valid key (it sees only the buckets it may read).
    AnyKey,
    /// Anything not listed: the root key only.
    Root,
}

/// The permission operation `op` (s3s's operation name) needs on the bucket it addresses.
pub fn need(op: &str) -> Need {
    match op {
        "GetObject"
        | "HeadObject"
        | "GetObjectAttributes"
        | "GetObjectTagging"
        | "GetObjectAcl"
        | "ListObjects"
        | "ListObjectsV2"
        | "ListObjectVersions"
        | "ListParts"
        | "ListMultipartUploads"
        | "HeadBucket"
        | "GetBucketLocation"
        | "GetBucketVersioning"
        | "GetBucketTagging"
        | "GetBucketCors"
        | "GetBucketAcl"
        | "GetBucketPolicy"
        | "GetBucketPolicyStatus"
        | "GetPublicAccessBlock" => Need::Read,
        "PutObject"
        | "DeleteObject"
        | "DeleteObjects"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload"
        | "AbortMultipartUpload"
        | "PutObjectTagging"
        | "DeleteObjectTagging"
        | "PutObjectAcl" => Need::Write,
        "PutBucketVersioning"
        | "PutBucketTagging"
        | "DeleteBucketTagging"
        | "PutBucketCors"
        | "DeleteBucketCors"
        | "PutBucketAcl"
        | "PutBucketPolicy"
        | "DeleteBucketPolicy"
        | "PutPublicAccessBlock"
        | "DeletePublicAccessBlock"
        | "DeleteBucket" => Need::Owner,
        "CreateBucket" => Need::CreateBucket,
        "ListBuckets" => Need::AnyKey,
        _ => Need::Root,
    }
}

/// Whether `op` also reads a copy source (`x-amz-copy-source`), which needs `Read` there.
/// Whether `op` reads one object version, which that version's public-read ACL allows
/// anyone to do.
pub fn reads_object_version(op: &str) -> bool {
    matches!(op, "GetObject" | "HeadObject")
}

pub fn reads_copy_source(op: &str) -> bool {
    matches!(op, "CopyObject" | "UploadPartCopy")
}

/// The bucket and key an `x-amz-copy-source` value names (`bucket/key`, optionally with a
/// leading `/` and a `?versionId=`, percent-encoded).
pub fn copy_source_object(header: &str) -> Option<(String, String)> {
    let path = header.trim_start_matches('/');
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let (bucket, key) = path.split_once('/')?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .ok()
            .map(|d| d.into_owned())
    };
    let (bucket, key) = (decode(bucket)?, decode(key)?);
    (!bucket.is_empty() && !key.is_empty()).then_some((bucket, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_need_what_the_model_says() {
        assert_eq!(need("GetObject"), Need::Read);
        assert_eq!(need("HeadBucket"), Need::Read);
        assert_eq!(need("PutObject"), Need::Write);
        assert_eq!(need("UploadPartCopy"), Need::Write);
        assert_eq!(need("PutBucketVersioning"), Need::Owner);
        assert_eq!(need("DeleteBucket"), Need::Owner);
        assert_eq!(need("CreateBucket"), Need::CreateBucket);
        assert_eq!(need("ListBuckets"), Need::AnyKey);
        assert_eq!(need("PutBucketLifecycleConfiguration"), Need::Root);
        assert!(reads_copy_source("CopyObject") && !reads_copy_source("PutObject"));
        assert_eq!(
            copy_source_object("/src%2Dx/a/b%20c?versionId=1"),
            Some(("src-x".into(), "a/b c".into()))
        );
        assert_eq!(
            copy_source_object("src/a"),
            Some(("src".into(), "a".into()))
        );
        assert_eq!(copy_source_object("/"), None);
    }
}
