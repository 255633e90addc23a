//! Small helpers shared by the test modules: deterministic data, digests, S3 error
//! inspection and polling with a deadline.

use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::{BoxError, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use md5::{Digest, Md5};

/// `len` pseudo-random bytes, the same for the same `seed` (xorshift64*).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

pub fn md5_base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(data))
}

/// The ETag S3 returns for a single-part object: the quoted hex MD5.
pub fn etag_of(data: &[u8]) -> String {
    format!("\"{}\"", md5_hex(data))
}

/// What an S3 call failed with.
#[derive(Debug)]
pub struct S3Failure {
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// The S3 error code from the XML body (`None` for HEAD, which has no body).
    pub code: Option<String>,
    /// The whole error, for assertion messages.
    pub debug: String,
}

/// The failure of `res`; panics if the call succeeded.
#[track_caller]
pub fn failure<T: Debug, E: ProvideErrorMetadata + Debug>(
    res: Result<T, SdkError<E, HttpResponse>>,
) -> S3Failure {
    match res {
        Ok(out) => panic!("expected an S3 error, got success: {out:?}"),
        Err(err) => S3Failure {
            status: err.raw_response().map(|r| r.status().as_u16()),
            code: err.code().map(str::to_owned),
            debug: format!("{err:?}"),
        },
    }
}

/// Sets the versioning state of `bucket`; panics on failure.
pub async fn set_versioning(
    s3: &Client,
    bucket: &str,
    status: aws_sdk_s3::types::BucketVersioningStatus,
) {
    let config = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(status)
        .build();
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(config)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutBucketVersioning {bucket}: {e:?}"));
}

/// Asserts that `res` failed with `status` and S3 error `code`.
#[track_caller]
pub fn assert_s3_error<T: Debug, E: ProvideErrorMetadata + Debug>(
    res: Result<T, SdkError<E, HttpResponse>>,
    status: u16,
    code: &str,
) {
    let f = failure(res);
    assert_eq!(
        (f.status, f.code.as_deref()),
        (Some(status), Some(code)),
        "unexpected error: {}",
        f.debug
    );
}

/// Asserts that `res` failed with `status` (for HEAD requests, which carry no error code).
#[track_caller]
pub fn assert_s3_status<T: Debug, E: ProvideErrorMetadata + Debug>(
    res: Result<T, SdkError<E, HttpResponse>>,
    status: u16,
) {
    let f = failure(res);
    assert_eq!(f.status, Some(status), "unexpected error: {}", f.debug);
}

/// Polls `check` until it returns `Ok`, or panics with its last `Err` after `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(()) => return,
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "{what}: still not true after {timeout:?}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates `bucket`, panicking on failure.
pub async fn create_bucket(client: &Client, bucket: &str) {
    client
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
}

/// Puts `data` at (bucket, key) and checks the returned ETag.
pub async fn put_bytes(client: &Client, bucket: &str, key: &str, data: &[u8]) {
    let out = client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {bucket}/{key}: {e:?}"));
    assert_eq!(out.e_tag(), Some(etag_of(data).as_str()), "ETag of {key}");
}

/// Gets (bucket, key) and returns the whole body, panicking on failure.
pub async fn get_bytes(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {bucket}/{key}: {e:?}"));
    out.body
        .collect()
        .await
        .unwrap_or_else(|e| panic!("read body of {bucket}/{key}: {e:?}"))
        .into_bytes()
        .to_vec()
}

/// Asserts two byte strings are equal without dumping megabytes on failure.
#[track_caller]
pub fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first_diff = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: got {} bytes (md5 {}), want {} bytes (md5 {}); first difference at {:?}",
            got.len(),
            md5_hex(got),
            want.len(),
            md5_hex(want),
            first_diff
        );
    }
}

/// An SDK interceptor that remembers the HTTP status and headers of the last response, for
/// assertions the SDK's output types do not expose (e.g. `204` on DELETE). Attach with
/// `.customize().interceptor(recorder.clone())`.
#[derive(Debug, Clone, Default)]
pub struct ResponseRecorder(Arc<Mutex<Option<Recorded>>>);

/// Status and headers of one response.
type Recorded = (u16, Vec<(String, String)>);

impl ResponseRecorder {
    /// Status of the last response seen; panics if none was.
    pub fn status(&self) -> u16 {
        self.0
            .lock()
            .unwrap()
            .as_ref()
            .expect("no response recorded")
            .0
    }

    /// Value of header `name` in the last response.
    pub fn header(&self, name: &str) -> Option<String> {
        let guard = self.0.lock().unwrap();
        let (_, headers) = guard.as_ref().expect("no response recorded");
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
}

impl Intercept for ResponseRecorder {
    fn name(&self) -> &'static str {
        "ResponseRecorder"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let resp = context.response();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        *self.0.lock().unwrap() = Some((resp.status().as_u16(), headers));
        Ok(())
    }
}

/// Sum of every sample of metric `name` in a Prometheus text exposition: the sample with
/// exactly that series when `name` carries labels (`repairs_total{result="ok"}`), else
/// the samples of every label set. `None` when no sample matches.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let matches = if name.contains('{') {
            series == name
        } else {
            series.split('{').next() == Some(name)
        };
        if let (true, Ok(v)) = (matches, value.parse::<f64>()) {
            found = Some(found.unwrap_or(0.0) + v);
        }
    }
    found
}

/// Flips every bit of the byte at `offset` of the file at `path`, in place.
pub fn flip_byte(path: &std::path::Path, offset: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.read_exact(&mut byte)
        .unwrap_or_else(|e| panic!("read byte {offset} of {}: {e}", path.display()));
    byte[0] ^= 0xff;
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(&byte).unwrap();
    file.sync_all().unwrap();
}
