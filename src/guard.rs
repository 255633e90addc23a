//! What the gateway enforces on a request body underneath s3s, which does not:
//!
//! - a body that stops arriving for the idle timeout fails with 400 `RequestTimeout`, so a
//!   client that sends half a body and goes silent holds nothing for longer than that (the
//!   handler sees its body fail and releases its node streams and temporary blobs);
//! - an S3 *document* (the XML body of DeleteObjects, PutBucketCors, PutObjectTagging,
//!   CompleteMultipartUpload, …) is bounded in size (400 `MaxMessageLengthExceeded`) and its
//!   `Content-MD5` or `x-amz-checksum-*` is verified (400 `BadDigest`) before s3s hands the
//!   parsed document to a handler, so a document damaged in flight never takes effect.
//!
//! Object bodies (PutObject, UploadPart) are only timed: their digests are checked by the
//! upload path itself (`integrity`), which must see every byte anyway.
//!
//! A body left unread when the answer is given (a refused upload, a bad signature, a
//! document refused by its `Content-Length`) is drained for a bounded time and size after
//! the answer went out, so a client still sending it reads the answer instead of a reset
//! connection (closing a socket with unread bytes makes the kernel send RST, which destroys
//! the answer in the client's receive buffer). Bodies beyond the bound are cut off, as S3
//! does.
//!
//! Invariant: the guard records the error it stands for in the request's [`Verdict`]
//! *before* it fails the stream. Whatever the layers above make of a failed stream (s3s
//! turns a failed document read into a 500), the response path answers with the verdict.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use s3s::{S3Error, S3ErrorCode, s3_error};
use tokio::time::{Instant, Sleep};

use sha2::{Digest, Sha256};

use crate::integrity::{BodyDigest, Claims};

/// The largest S3 document accepted (S3 refuses larger XML bodies the same way).
pub const DOCUMENT_MAX: u64 = 20 * 1024 * 1024;
/// The largest CORS configuration S3 accepts.
pub const CORS_MAX: u64 = 64 * 1024;

/// How much of an unread body is drained after the answer, at most.
const LINGER_BYTES: u64 = 64 * 1024 * 1024;
/// How long an unread body is drained after the answer, at most.
const LINGER_TIME: Duration = Duration::from_secs(10);

/// Where the S3 operation name is known once s3s has routed the request (the access check
/// fills it, before any document body is read).
#[derive(Clone, Default)]
pub struct OpSlot(Arc<Mutex<Option<&'static str>>>);

impl OpSlot {
    pub fn set(&self, name: &'static str) {
        if let Ok(mut s) = self.0.lock() {
            *s = Some(name);
        }
    }

    pub fn get(&self) -> Option<&'static str> {
        self.0.lock().ok().and_then(|s| *s)
    }
}

/// The error a refused body stands for, if the guard refused it.
#[derive(Clone, Default)]
pub struct Verdict(Arc<Mutex<Option<S3Error>>>);

impl Verdict {
    fn set(&self, e: S3Error) {
        if let Ok(mut v) = self.0.lock()
            && v.is_none()
        {
            *v = Some(e);
        }
    }

    pub fn take(&self) -> Option<S3Error> {
        self.0.lock().ok().and_then(|mut v| v.take())
    }
}

/// Why the guard failed a body; what [`body_error`] maps it back to.
#[derive(Debug)]
pub enum GuardError {
    /// No byte arrived for the idle timeout.
    Idle(Duration),
    /// A refused document; the error is also in the request's [`Verdict`].
    Refused(S3ErrorCode),
    /// The connection failed.
    Http(hyper::Error),
}

impl std::fmt::Display for GuardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuardError::Idle(d) => write!(f, "no request body bytes for {d:?}"),
            GuardError::Refused(code) => write!(f, "request body refused: {}", code.as_str()),
            GuardError::Http(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for GuardError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GuardError::Http(e) => Some(e),
            _ => None,
        }
    }
}

impl GuardError {
    /// The S3 error the client gets.
    pub fn to_s3_error(&self) -> S3Error {
        match self {
            GuardError::Idle(_) => request_timeout(),
            GuardError::Refused(code) => S3Error::new(code.clone()),
            GuardError::Http(_) => S3Error::new(S3ErrorCode::IncompleteBody),
        }
    }
}

fn request_timeout() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::RequestTimeout,
        "Your socket connection to the server was not read from or written to within the \
         timeout period. Idle connections will be closed.",
    )
}

/// What the request says about its body, read from the headers before s3s sees them.
pub struct BodyFacts {
    /// The announced digests, or the error a malformed one is.
    pub claims: Result<Claims, S3Error>,
    /// The payload's SHA-256 the request was signed with (`x-amz-content-sha256`), hex.
    pub sha256: Option<String>,
    /// `Content-Length`, when given.
    pub length: Option<u64>,
    /// aws-chunked framing: the bytes here are not the payload, so no digest of them means
    /// anything (s3s decodes and verifies the framing above).
    pub chunked: bool,
}

impl BodyFacts {
    pub fn from_headers(headers: &http::HeaderMap) -> BodyFacts {
        let chunked = headers
            .get("x-amz-content-sha256")
            .is_some_and(|v| v.as_bytes().starts_with(b"STREAMING-"));
        let sha256 = headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase);
        BodyFacts {
            claims: Claims::from_headers(headers, None, None),
            sha256,
            length: headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()),
            chunked,
        }
    }
}

enum Mode {
    /// The operation is not known yet: decided at the first poll.
    Undecided(BodyFacts),
    /// Object bytes: timed only.
    Stream,
    /// An S3 document: bounded and, when a digest was announced, verified at its end.
    Document {
        max: u64,
        seen: u64,
        /// `Content-Length`: where the document ends even if nothing says so (s3s stops
        /// reading a signed body once it has that many bytes).
        length: Option<u64>,
        digest: Option<Box<BodyDigest>>,
        /// The signed payload hash, checked here too: s3s reports its mismatch on a
        /// document as a 500.
        sha256: Option<(Sha256, String)>,
    },
    /// Refused or verified: nothing more to check.
    Done,
}

/// The request body as s3s reads it.
pub struct GuardedBody {
    /// Always `Some` until dropped (then handed to [`linger`]).
    inner: Option<Incoming>,
    op: OpSlot,
    verdict: Verdict,
    /// Set once the client's body was read to its end (see `server`: an answer given
    /// before that must close the connection).
    ended: Arc<AtomicBool>,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    waiting: bool,
    mode: Mode,
    /// The body was failed once; it stays ended.
    failed: bool,
    /// The client went silent or broke off: nothing left worth draining.
    gone: bool,
}

impl GuardedBody {
    pub fn new(
        inner: Incoming,
        facts: BodyFacts,
        op: OpSlot,
        verdict: Verdict,
        ended: Arc<AtomicBool>,
        idle: Duration,
    ) -> GuardedBody {
        GuardedBody {
            inner: Some(inner),
            op,
            verdict,
            ended,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
            mode: Mode::Undecided(facts),
            failed: false,
            gone: false,
        }
    }

    /// Picks the mode once s3s has named the operation; `Err` refuses the body outright.
    fn decide(&mut self) -> Result<(), S3Error> {
        let Mode::Undecided(facts) = std::mem::replace(&mut self.mode, Mode::Stream) else {
            return Ok(());
        };
        let op = match self.op.get() {
            // Read before routing (a browser POST form): s3s bounds that itself.
            None | Some("PutObject" | "UploadPart") => return Ok(()),
            Some(op) => op,
        };
        let max = if op == "PutBucketCors" {
            CORS_MAX
        } else {
            DOCUMENT_MAX
        };
        if facts.length.is_some_and(|n| n > max) {
            return Err(too_large(max));
        }
        let claims = facts.claims?;
        let announced = claims.content_md5.is_some() || !claims.checksums.is_empty();
        self.mode = Mode::Document {
            max,
            seen: 0,
            length: facts.length,
            digest: (announced && !facts.chunked).then(|| Box::new(BodyDigest::new(claims))),
            sha256: facts.sha256.map(|want| (Sha256::new(), want)),
        };
        Ok(())
    }

    /// Checks a document chunk, and the whole document once `end` says it is complete or
    /// its declared length has arrived.
    fn check(&mut self, chunk: &[u8], end: bool) -> Result<(), S3Error> {
        let Mode::Document {
            max,
            seen,
            length,
            digest,
            sha256,
        } = &mut self.mode
        else {
            return Ok(());
        };
        *seen += chunk.len() as u64;
        if *seen > *max {
            return Err(too_large(*max));
        }
        if let Some(d) = digest {
            d.update(chunk);
        }
        if let Some((hasher, _)) = sha256 {
            hasher.update(chunk);
        }
        if end || *length == Some(*seen) {
            let Mode::Document { digest, sha256, .. } =
                std::mem::replace(&mut self.mode, Mode::Done)
            else {
                return Ok(());
            };
            if let Some((hasher, want)) = sha256
                && hex::encode(hasher.finalize()) != want
            {
                return Err(sha256_mismatch());
            }
            if let Some(d) = digest {
                d.verify(None)?;
            }
        }
        Ok(())
    }

    fn refuse(&mut self, e: S3Error) -> Poll<Option<Result<Frame<Bytes>, GuardError>>> {
        let code = e.code().clone();
        self.verdict.set(e);
        self.mode = Mode::Done;
        self.failed = true;
        Poll::Ready(Some(Err(GuardError::Refused(code))))
    }
}

/// S3's answer to a body whose SHA-256 is not the one it was signed with.
pub fn sha256_mismatch() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    );
    e.set_status_code(http::StatusCode::BAD_REQUEST);
    e
}

fn too_large(max: u64) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::MaxMessageLengthExceeded,
        format!("Your request was too big: this request body may be at most {max} bytes."),
    )
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = GuardError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, GuardError>>> {
        let this = &mut *self;
        if let Err(e) = this.decide() {
            return this.refuse(e);
        }
        if this.failed {
            return Poll::Ready(None);
        }
        // The idle clock runs only while the reader waits for the client: a handler that
        // stops reading (its nodes are slow) is not the client's fault.
        if !this.waiting {
            let deadline = Instant::now() + this.idle;
            this.timer.as_mut().reset(deadline);
            this.waiting = true;
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(&mut *inner).poll_frame(cx);
        let frame = match polled {
            Poll::Pending => {
                ready!(this.timer.as_mut().poll(cx));
                this.verdict.set(request_timeout());
                this.mode = Mode::Done;
                this.failed = true;
                this.gone = true;
                return Poll::Ready(Some(Err(GuardError::Idle(this.idle))));
            }
            Poll::Ready(frame) => frame,
        };
        this.waiting = false;
        match frame {
            None => {
                this.ended.store(true, Ordering::Release);
                if let Err(e) = this.check(&[], true) {
                    return this.refuse(e);
                }
                Poll::Ready(None)
            }
            // The client broke off (or sent less than it declared): a client error.
            Some(Err(e)) => {
                this.verdict.set(S3Error::with_message(
                    S3ErrorCode::IncompleteBody,
                    "You did not provide the number of bytes specified by the Content-Length \
                     HTTP header.",
                ));
                this.failed = true;
                this.gone = true;
                Poll::Ready(Some(Err(GuardError::Http(e))))
            }
            Some(Ok(frame)) => {
                let end = inner.is_end_stream();
                if end {
                    this.ended.store(true, Ordering::Release);
                }
                let chunk = frame.data_ref().map(|d| &d[..]).unwrap_or_default();
                if let Err(e) = this.check(chunk, end) {
                    return this.refuse(e);
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for GuardedBody {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else {
            return;
        };
        if self.gone || body.is_end_stream() || self.ended.load(Ordering::Acquire) {
            return;
        }
        // hyper keeps reading the body into `body` while it lives, after writing the answer.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(linger(body, self.idle));
        }
    }
}

/// Reads and discards what is left of a body the answer did not need, within
/// [`LINGER_BYTES`] and [`LINGER_TIME`] (and the idle timeout between frames).
async fn linger(mut body: Incoming, idle: Duration) {
    use http_body_util::BodyExt;
    let deadline = Instant::now() + LINGER_TIME;
    let mut left = LINGER_BYTES;
    loop {
        let until = deadline.min(Instant::now() + idle);
        let Ok(Some(Ok(frame))) = tokio::time::timeout_at(until, body.frame()).await else {
            return;
        };
        let n = frame.data_ref().map_or(0, |d| d.len() as u64);
        if n >= left {
            return;
        }
        left -= n;
    }
}

/// Maps a failure of the client's body stream to the S3 error it means: a bad payload
/// hash or chunk signature, a truncated or malformed body, an oversized body, a client that
/// went silent. The cause may sit under layers of wrapping (s3s's decoders wrap what they
/// read from below), so the whole chain is searched. Anything unrecognised is the client
/// going away or sending garbage: `IncompleteBody`, never a 500.
pub fn body_error(e: s3s::StdError) -> S3Error {
    use s3s::stream::aws_chunked_stream::AwsChunkedStreamError;
    use s3s::stream::upload_stream::UploadStreamError;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&*e);
    while let Some(c) = cause {
        if let Some(g) = c.downcast_ref::<GuardError>() {
            return g.to_s3_error();
        }
        let code = if c.is::<s3s::BodySizeLimitExceeded>() {
            Some(S3ErrorCode::EntityTooLarge)
        } else if let Some(x) = c.downcast_ref::<UploadStreamError>() {
            match x {
                UploadStreamError::Underlying(_) => None,
                UploadStreamError::Sha256Mismatch => return sha256_mismatch(),
                x => Some(x.to_s3_error_code()),
            }
        } else if let Some(x) = c.downcast_ref::<AwsChunkedStreamError>() {
            match x {
                AwsChunkedStreamError::Underlying(_) => None,
                // s3s says EntityTooLarge, which tells the client its object is too big.
                AwsChunkedStreamError::ChunkMetaTooLarge(..) => {
                    return s3_error!(
                        InvalidRequest,
                        "A chunk header of the aws-chunked body is too long."
                    );
                }
                x => Some(x.to_s3_error_code()),
            }
        } else {
            None
        };
        if let Some(code) = code {
            return S3Error::with_source(code, e);
        }
        cause = c.source();
    }
    S3Error::with_source(S3ErrorCode::IncompleteBody, e)
}
