//! The node end to end: [`crate::serve`] on a loopback port, spoken to over raw HTTP/1.1
//! (no client library, so the bytes on the wire are exactly what the test says). The
//! self-healing routes and background work (hints, blob checks, quarantine, scrubber,
//! leases, metrics) are in `healing`.

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;
use crate::proto::{BlobPutReply, ErrorBody, ListPage, ObjectRecord};

const SECRET: &str = "test-secret";

/// The `x-s3q-auth` value of a request, as a gateway signs it (fresh time and nonce).
fn sign(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> String {
    sign_as(SECRET, 0, method, path, headers, body)
}

/// [`sign`] with `secret`, `age_ms` in the past.
fn sign_as(
    secret: &str,
    age_ms: u64,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> String {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| *v)
    };
    let target = proto::auth::Target {
        method,
        path_and_query: path,
        expected_md5: header(proto::EXPECTED_MD5_HEADER),
        check: header(proto::CHECK_HEADER),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let body = proto::auth::body_digest(body);
    proto::auth::header_value(secret.as_bytes(), &target, now - age_ms, &nonce, &body)
}
const ID: &str = "00112233445566778899aabbccddeeff";
const BLOCK: usize = proto::BLOB_BLOCK_SIZE as usize;

struct Node {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), Error>>,
}

impl Node {
    async fn start_in(dir: tempfile::TempDir) -> Node {
        Node::start_with(dir, |_| {}).await
    }

    /// Starts a node on `dir` with the default configuration changed by `configure`.
    async fn start_with(dir: tempfile::TempDir, configure: impl FnOnce(&mut Config)) -> Node {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let mut config = Config::new(dir.path().join("data"), SECRET);
        configure(&mut config);
        let task = tokio::spawn(serve(config, listener, async move {
            let _ = stopped.await;
        }));
        Node {
            addr,
            dir,
            stop: Some(stop),
            task,
        }
    }

    async fn start() -> Node {
        Node::start_in(tempfile::tempdir().expect("tempdir")).await
    }

    async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = (&mut self.task).await.expect("serve task");
        assert!(served.is_ok(), "{served:?}");
        self.dir
    }

    fn blob_path(&self, id: &str) -> std::path::PathBuf {
        self.dir.path().join("data/blobs").join(&id[..2]).join(id)
    }

    /// One request on a fresh connection, signed with the right secret.
    async fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let auth = sign(method, path, headers, body);
        let mut all = vec![(proto::auth::AUTH_HEADER, auth.as_str())];
        all.extend_from_slice(headers);
        self.call_as(method, path, &all, body).await
    }

    /// One request on a fresh connection, with exactly `headers`.
    async fn call_as(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let stream = TcpStream::connect(self.addr).await.expect("connect");
        let mut stream = BufReader::new(stream);
        send(&mut stream, method, path, headers, body).await;
        read_reply(&mut stream).await
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The body ended before Content-Length bytes arrived.
    cut_short: bool,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    fn code(&self) -> String {
        self.json::<ErrorBody>().code
    }
}

async fn send(
    stream: &mut BufReader<TcpStream>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) {
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: node\r\n");
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body).await.expect("write body");
}

async fn read_reply(stream: &mut BufReader<TcpStream>) -> Reply {
    let mut line = String::new();
    stream.read_line(&mut line).await.expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        stream.read_line(&mut line).await.expect("header line");
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':').expect("header");
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
        cut_short: false,
    };
    let length: usize = reply
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut taken = stream.take(length as u64);
    // A connection reset while reading counts as a short body, like an EOF.
    let _ = taken.read_to_end(&mut reply.body).await;
    reply.cut_short = reply.body.len() < length;
    reply
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(bytes))
}

fn record_json() -> Vec<u8> {
    let record = ObjectRecord::single(proto::Version {
        stamp: proto::Stamp {
            ts: 1,
            id: "v1".into(),
        },
        null: false,
        state: proto::VersionState::DeleteMarker,
        tags: None,
        acl: None,
        follows: None,
    });
    serde_json::to_vec(&record).expect("encode record")
}

fn bucket_json(name: &str) -> Vec<u8> {
    let stamp = proto::Stamp {
        ts: 1,
        id: "g".into(),
    };
    let record = proto::BucketRecord {
        name: name.into(),
        exists: proto::Lww { stamp, value: true },
        versioning: None,
        tags: None,
        cors: None,
        grants: Default::default(),
        policy: None,
        public_read: None,
        public_access_block: None,
    };
    serde_json::to_vec(&record).expect("encode bucket")
}

#[tokio::test]
async fn unsigned_replayed_stale_or_wrongly_signed_requests_are_refused_and_change_nothing() {
    let node = Node::start().await;
    let blob = format!("/blobs/{ID}");
    let captured = sign("PUT", &blob, &[], b"keep me");
    let captured = [(proto::auth::AUTH_HEADER, captured.as_str())];
    let stored = node.call_as("PUT", &blob, &captured, b"keep me").await;
    assert_eq!(stored.status, 200);
    // A captured request sent again, as it was or with another body, is refused.
    for body in [&b"keep me"[..], b"intruder"] {
        let replayed = node.call_as("PUT", &blob, &captured, body).await;
        assert_eq!(replayed.status, 401);
    }

    let other_blob = "/blobs/ffeeddccbbaa99887766554433221100";
    let attempts: [(&str, &str, Vec<u8>); 11] = [
        ("PUT", other_blob, b"intruder".to_vec()),
        ("DELETE", &blob, vec![]),
        ("GET", &blob, vec![]),
        ("POST", "/records/b/k", record_json()),
        ("POST", "/buckets/b", bucket_json("b")),
        ("GET", "/buckets", vec![]),
        ("GET", "/no/such/route", vec![]),
        ("POST", "/hints", b"[]".to_vec()),
        ("GET", "/hints", vec![]),
        ("POST", "/hints/delete", b"[]".to_vec()),
        (
            "POST",
            "/lease/repair",
            br#"{"holder":"x","ttl_ms":1000}"#.to_vec(),
        ),
    ];
    for (method, path, body) in &attempts {
        let wrong = sign_as("wrong-secret", 0, method, path, &[], body);
        let stale = sign_as(
            SECRET,
            2 * proto::auth::MAX_SKEW_MS,
            method,
            path,
            &[],
            body,
        );
        for headers in [
            vec![],
            // The secret itself on the wire is no longer how a gateway authenticates.
            vec![("x-s3q-secret", SECRET)],
            vec![(proto::auth::AUTH_HEADER, wrong.as_str())],
            vec![(proto::auth::AUTH_HEADER, stale.as_str())],
        ] {
            let reply = node.call_as(method, path, &headers, body).await;
            assert_eq!(reply.status, 401, "{method} {path}");
            assert_eq!(reply.code(), "Unauthorized");
        }
    }
    let kept = node.call("GET", &blob, &[], &[]).await;
    assert_eq!((kept.status, kept.body.as_slice()), (200, &b"keep me"[..]));
    assert_eq!(node.call("GET", other_blob, &[], &[]).await.status, 404);
    assert_eq!(node.call("GET", "/records/b/k", &[], &[]).await.status, 404);
    assert_eq!(node.call("GET", "/buckets", &[], &[]).await.body, b"[]");
    // Health (and metrics, see `healing`) are the open routes.
    let health = node.call_as("GET", "/health", &[], &[]).await;
    assert_eq!((health.status, health.body.as_slice()), (200, &b"ok"[..]));
    node.stop().await;
}

#[tokio::test]
async fn blobs_round_trip_with_ranges_and_digest_checks() {
    let node = Node::start().await;
    let bytes = data(3 * BLOCK + 10);
    let path = format!("/blobs/{ID}");
    let md5 = md5_hex(&bytes);
    let put = node
        .call("PUT", &path, &[(proto::EXPECTED_MD5_HEADER, &md5)], &bytes)
        .await;
    assert_eq!(put.status, 200);
    assert_eq!(
        put.json::<BlobPutReply>(),
        BlobPutReply {
            md5,
            size: bytes.len() as u64,
            block_crcs: None,
        }
    );

    let full = node.call("GET", &path, &[], &[]).await;
    assert_eq!(full.status, 200);
    assert!(full.body == bytes && !full.cut_short);

    let size = bytes.len();
    let cases = [
        ("bytes=1-3", 1, 4),
        ("bytes=65530-65545", 65530, 65546),
        ("bytes=-5", size - 5, size),
        ("bytes=196600-", 196600, size),
    ];
    for (spec, start, end) in cases {
        let part = node.call("GET", &path, &[("range", spec)], &[]).await;
        assert_eq!(part.status, 206, "{spec}");
        assert!(part.body == bytes[start..end], "{spec}");
        let expected = format!("bytes {start}-{}/{size}", end - 1);
        assert_eq!(part.header("content-range"), Some(expected.as_str()));
    }
    let outside = node
        .call("GET", &path, &[("range", &format!("bytes={size}-"))], &[])
        .await;
    assert_eq!(
        (outside.status, outside.code().as_str()),
        (416, "InvalidRange")
    );
    assert_eq!(
        outside.header("content-range"),
        Some(format!("bytes */{size}").as_str())
    );

    let other = "/blobs/ffeeddccbbaa99887766554433221100";
    let wrong = node
        .call(
            "PUT",
            other,
            &[(proto::EXPECTED_MD5_HEADER, &md5_hex(b"else"))],
            b"data",
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.code().as_str()),
        (400, "DigestMismatch")
    );
    assert_eq!(node.call("GET", other, &[], &[]).await.status, 404);
    let malformed = node
        .call(
            "PUT",
            other,
            &[(proto::EXPECTED_MD5_HEADER, "xyz")],
            b"data",
        )
        .await;
    assert_eq!(malformed.status, 400);
    assert_eq!(
        node.call("GET", "/blobs/..%2F..%2Fetc", &[], &[])
            .await
            .status,
        400
    );

    // Only garbage collection deletes blobs (see `gc`).
    assert_eq!(node.call("DELETE", &path, &[], &[]).await.status, 405);
    assert_eq!(node.call("GET", &path, &[], &[]).await.status, 200);
    node.stop().await;
}

#[tokio::test]
async fn records_and_buckets_round_trip_and_survive_a_restart() {
    let node = Node::start().await;
    let key = proto::encode_segment("dir/é & x.txt");
    let record_path = format!("/records/photos/{key}");
    assert_eq!(
        node.call("POST", &record_path, &[], &record_json())
            .await
            .status,
        204
    );
    assert_eq!(
        node.call("POST", "/buckets/photos", &[], &bucket_json("photos"))
            .await
            .status,
        204
    );

    let mismatch = node
        .call("POST", "/buckets/other", &[], &bucket_json("photos"))
        .await;
    assert_eq!(mismatch.status, 400);
    let bad_json = node.call("POST", &record_path, &[], b"{not json").await;
    assert_eq!(
        (bad_json.status, bad_json.code().as_str()),
        (400, "BadRequest")
    );
    let huge = format!("{}", proto::MAX_RECORD_BODY + 1);
    let too_large = node
        .call_as(
            "POST",
            &record_path,
            &[
                (
                    proto::auth::AUTH_HEADER,
                    &sign("POST", &record_path, &[], &[]),
                ),
                ("content-length", &huge),
            ],
            &[],
        )
        .await;
    assert_eq!(
        (too_large.status, too_large.code().as_str()),
        (413, "TooLarge")
    );
    assert_eq!(node.call("PUT", "/buckets", &[], &[]).await.status, 405);
    let unknown = node.call("GET", "/nothing/here", &[], &[]).await;
    assert_eq!(
        (unknown.status, unknown.code().as_str()),
        (404, "NoSuchRoute")
    );

    let id = node
        .call("GET", "/info", &[], &[])
        .await
        .json::<proto::NodeInfo>();
    assert!(proto::valid_node_id(&id.node_id), "{id:?}");
    let dir = node.stop().await;
    let node = Node::start_in(dir).await;
    let again = node
        .call("GET", "/info", &[], &[])
        .await
        .json::<proto::NodeInfo>();
    assert_eq!(again, id, "the id is the data directory's");
    let got = node.call("GET", &record_path, &[], &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json::<ObjectRecord>().versions.len(), 1);
    let page = node
        .call("GET", "/list/photos?prefix=dir%2F&limit=10", &[], &[])
        .await;
    let page: ListPage = page.json();
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].key, "dir/é & x.txt");
    let buckets = node.call("GET", "/buckets/photos", &[], &[]).await;
    assert_eq!(buckets.json::<proto::BucketRecord>().name, "photos");
    let dir = node.stop().await;
    // The directory is that node's: started under another id, it refuses to serve.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut config = Config::new(dir.path().join("data"), SECRET);
    config.node_id = Some("someone-else".into());
    let refused = serve(config, listener, async {}).await;
    assert!(matches!(refused, Err(Error::Config(_))), "{refused:?}");
}

/// A record holding two small versions whose bodies travel inside it.
fn inline_record(bodies: [&[u8]; 2]) -> ObjectRecord {
    let version = |ts: u64, body: &[u8]| proto::Version {
        stamp: proto::Stamp {
            ts,
            id: format!("v{ts}"),
        },
        null: false,
        state: proto::VersionState::Object(
            serde_json::from_value(serde_json::json!({
                "size": body.len(),
                "md5": md5_hex(body),
                "etag": md5_hex(body),
                "data": proto::Data::Inline { bytes: body.to_vec() },
            }))
            .expect("a minimal ObjectMeta"),
        ),
        tags: None,
        acl: None,
        follows: None,
    };
    ObjectRecord {
        versions: vec![version(1, bodies[0]), version(2, bodies[1])],
    }
}

#[tokio::test]
async fn record_reads_leave_out_the_bodies_not_asked_for_and_such_records_are_refused() {
    let node = Node::start().await;
    let full = inline_record([b"first", b"second"]);
    let body = serde_json::to_vec(&full).expect("encode");
    assert_eq!(
        node.call("POST", "/records/b/k", &[], &body).await.status,
        204
    );
    let read = |query: &'static str| {
        let node = &node;
        async move {
            let reply = node
                .call("GET", &format!("/records/b/k{query}"), &[], &[])
                .await;
            assert_eq!(reply.status, 200, "{query}");
            let record: ObjectRecord = reply.json();
            record
                .versions
                .iter()
                .map(|v| match &v.state {
                    proto::VersionState::Object(m) => m.data.clone(),
                    other => panic!("{query}: {other:?}"),
                })
                .collect::<Vec<_>>()
        }
    };
    let (first, second) = (
        proto::Data::Inline {
            bytes: b"first".to_vec(),
        },
        proto::Data::Inline {
            bytes: b"second".to_vec(),
        },
    );
    let omitted = proto::Data::InlineOmitted;
    assert_eq!(read("").await, [first.clone(), second.clone()]);
    assert_eq!(
        read("?bodies=none").await,
        [omitted.clone(), omitted.clone()]
    );
    assert_eq!(
        read("?bodies=current").await,
        [omitted.clone(), second.clone()]
    );
    assert_eq!(
        read("?bodies=version&version=v1").await,
        [first.clone(), omitted.clone()]
    );
    let bad = node
        .call("GET", "/records/b/k?bodies=maybe", &[], &[])
        .await;
    assert_eq!((bad.status, bad.code().as_str()), (400, "BadRequest"));

    // What a reader got without bodies can never be stored: the bytes would be lost.
    let mut without = inline_record([b"first", b"second"]);
    without.omit_bodies(&proto::Bodies::None);
    let body = serde_json::to_vec(&without).expect("encode");
    for path in ["/records/b/k", "/records/b/other"] {
        let refused = node.call("POST", path, &[], &body).await;
        assert_eq!(
            (refused.status, refused.code().as_str()),
            (400, "BadRequest"),
            "{path}"
        );
    }
    let proposal = serde_json::json!({
        "ballot": { "ts": 5, "id": "p" },
        "value": without,
    });
    let proposal = serde_json::to_vec(&proposal).expect("encode");
    for step in ["accept", "commit"] {
        let refused = node
            .call("POST", &format!("/paxos/b/k/{step}"), &[], &proposal)
            .await;
        assert_eq!(
            refused.status,
            400,
            "{step}: {}",
            String::from_utf8_lossy(&refused.body)
        );
    }
    // The same proposal with its bodies is well-formed and accepted.
    let whole = serde_json::json!({
        "ballot": { "ts": 5, "id": "p" },
        "value": full,
    });
    let whole = serde_json::to_vec(&whole).expect("encode");
    let accepted = node.call("POST", "/paxos/b/k/accept", &[], &whole).await;
    assert_eq!(accepted.status, 200);
    assert_eq!(read("").await, [first, second]);
    assert_eq!(
        node.call("GET", "/records/b/other", &[], &[]).await.status,
        404
    );
    node.stop().await;
}

#[tokio::test]
async fn keeps_connections_alive_between_requests() {
    let node = Node::start().await;
    let stream = TcpStream::connect(node.addr).await.expect("connect");
    let mut stream = BufReader::new(stream);
    for _ in 0..3 {
        let auth = sign("GET", "/buckets", &[], &[]);
        let auth = [(proto::auth::AUTH_HEADER, auth.as_str())];
        send(&mut stream, "GET", "/buckets", &auth, &[]).await;
        let reply = read_reply(&mut stream).await;
        assert_eq!(reply.status, 200);
    }
    drop(stream);
    node.stop().await;
}

#[tokio::test]
async fn refuses_to_start_with_an_empty_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let result = serve(Config::new(dir.path(), ""), listener, async {}).await;
    assert!(matches!(result, Err(Error::Config(_))));
}

mod gc;
mod healing;
mod layout;
