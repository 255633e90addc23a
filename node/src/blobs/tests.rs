//! Blob store behaviour: round trips at block-size edges, ranged reads, and that nothing
//! is kept or served when a digest, a body or a stored block is wrong.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};

use super::*;

const BS: u64 = BLOB_BLOCK_SIZE;
const ID: &str = "0123456789abcdef0123456789abcdef";

fn store(dir: &tempfile::TempDir) -> BlobStore {
    BlobStore::open(dir.path(), true).expect("open blob store")
}

/// Deterministic, non-repeating-per-block test data.
fn data(len: u64) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 977) as u8).collect()
}

/// The body as a stream of uneven chunks, so blocks straddle chunk boundaries.
fn body(bytes: &[u8]) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + use<> {
    let chunks: Vec<Result<Bytes, Infallible>> = bytes
        .chunks(7_777)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks)
}

/// All bytes of a read and the error that ended it, if any.
async fn drain(mut stream: BlobStream) -> (Vec<u8>, Option<Error>) {
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(b) => out.extend_from_slice(&b),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

async fn read(store: &BlobStore, range: Option<(u64, u64)>) -> (Vec<u8>, Option<Error>) {
    let (_, stream) = store.get(ID, range).await.expect("open blob");
    drain(stream).await
}

fn tmp_is_empty(dir: &tempfile::TempDir) -> bool {
    std::fs::read_dir(dir.path().join("tmp"))
        .expect("read tmp")
        .next()
        .is_none()
}

fn blob_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("blobs").join(&ID[..2]).join(ID)
}

#[tokio::test]
async fn round_trips_at_block_size_edges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir);
    for len in [0, 1, BS - 1, BS, BS + 1, 9 * BS + 12_345] {
        let bytes = data(len);
        let reply = store.put(ID, body(&bytes), None).await.expect("put");
        assert_eq!(reply.size, len);
        assert_eq!(reply.md5, hex::encode(Md5::digest(&bytes)));
        let on_disk = std::fs::metadata(blob_path(&dir)).expect("stat").len();
        assert_eq!(on_disk, len + len.div_ceil(BS) * 4 + FOOTER_LEN);
        let (size, stream) = store.get(ID, None).await.expect("get");
        assert_eq!(size, len);
        let (got, err) = drain(stream).await;
        assert!(err.is_none(), "len {len}: {err:?}");
        assert!(got == bytes, "len {len}: contents differ");
    }
    assert!(tmp_is_empty(&dir));
}

#[tokio::test]
async fn ranges_across_block_and_read_batch_boundaries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir);
    let len = 9 * BS + 12_345;
    let bytes = data(len);
    store.put(ID, body(&bytes), None).await.expect("put");
    let ranges = [
        (0, 1),
        (BS - 10, BS + 10),
        (BS, 2 * BS),
        (3 * BS - 3, 8 * BS + 7),
        (len - 1, len),
        (9 * BS, len),
        (0, len),
    ];
    for (start, end) in ranges {
        let (got, err) = read(&store, Some((start, end))).await;
        assert!(err.is_none(), "{start}..{end}: {err:?}");
        assert!(got == bytes[start as usize..end as usize], "{start}..{end}");
    }
    for bad in [(0, 0), (5, 5), (len, len + 1), (10, len + 1)] {
        let blob = store.open_blob(ID).await.expect("open");
        assert!(matches!(
            blob.read(Some(bad)),
            Err(Error::RangeNotSatisfiable { size }) if size == len
        ));
    }
}

#[tokio::test]
async fn any_range_of_an_empty_blob_is_unsatisfiable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir);
    store.put(ID, body(&[]), None).await.expect("put");
    let blob = store.open_blob(ID).await.expect("open");
    assert!(matches!(
        blob.read(Some((0, 1))),
        Err(Error::RangeNotSatisfiable { size: 0 })
    ));
}

#[tokio::test]
async fn md5_mismatch_keeps_nothing_and_match_is_case_insensitive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir);
    let bytes = data(3 * BS);
    let wrong = "00000000000000000000000000000000".to_string();
    let err = store.put(ID, body(&bytes), Some(wrong)).await;
    assert!(matches!(err, Err(Error::DigestMismatch { .. })), "{err:?}");
    assert!(matches!(store.open_blob(ID).await, Err(Error::NotFound)));
    assert!(tmp_is_empty(&dir));

    let right = hex::encode(Md5::digest(&bytes)).to_uppercase();
    let reply = store.put(ID, body(&bytes), Some(right)).await.expect("put");
    assert_eq!(reply.size, 3 * BS);
}

#[tokio::test]
async fn aborted_body_keeps_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir);
    let items: Vec<Result<Bytes, &str>> = vec![
        Ok(Bytes::from(data(BS + 5))),
        Err("connection reset by gateway"),
    ];
    let err = store.put(ID, futures::stream::iter(items), None).await;
    assert!(matches!(err, Err(Error::BodyAborted(_))), "{err:?}");
    assert!(matches!(store.open_blob(ID).await, Err(Error::NotFound)));
    assert!(tmp_is_empty(&dir));
}

#[tokio::test]
async fn dropped_upload_removes_its_temp_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir);
    // The first chunk arrives, then the sender goes silent and the request is dropped, as
    // when hyper drops a handler whose connection closed.
    let stalled = futures::stream::iter([Ok::<_, Infallible>(Bytes::from(data(100)))])
        .chain(futures::stream::pending());
    let put = store.put(ID, stalled, None);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), put)
            .await
            .is_err()
    );
    for _ in 0..100 {
        if tmp_is_empty(&dir) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(tmp_is_empty(&dir));
    assert!(matches!(store.open_blob(ID).await, Err(Error::NotFound)));
}

#[tokio::test]
async fn flipped_byte_is_caught_in_its_block_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir);
    let len = 3 * BS + 100;
    let bytes = data(len);
    store.put(ID, body(&bytes), None).await.expect("put");
    let path = blob_path(&dir);
    let mut raw = std::fs::read(&path).expect("read blob file");
    let flipped = (BS + 4_000) as usize;
    raw[flipped] ^= 0x40;
    std::fs::write(&path, &raw).expect("write blob file");

    // Full read: block 0 is served, then the stream fails at block 1.
    let (got, err) = read(&store, None).await;
    assert!(matches!(err, Some(Error::Corrupt(_))), "{err:?}");
    assert!(got == bytes[..BS as usize]);
    // A range inside the damaged block fails before yielding a byte.
    let (got, err) = read(&store, Some((BS + 10, BS + 20))).await;
    assert!(matches!(err, Some(Error::Corrupt(_))) && got.is_empty());
    // A range that touches the damaged block only through its unflipped bytes still fails:
    // the whole block is checked.
    let (_, err) = read(&store, Some((BS, BS + 1))).await;
    assert!(matches!(err, Some(Error::Corrupt(_))));
    // Other blocks read fine.
    let (got, err) = read(&store, Some((2 * BS + 1, len))).await;
    assert!(err.is_none(), "{err:?}");
    assert!(got == bytes[(2 * BS + 1) as usize..]);
}

#[tokio::test]
async fn damaged_footer_or_length_is_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir);
    store.put(ID, body(&data(BS + 1)), None).await.expect("put");
    let path = blob_path(&dir);
    let raw = std::fs::read(&path).expect("read");

    let mut bad_magic = raw.clone();
    let last = bad_magic.len() - 1;
    bad_magic[last] = b'X';
    std::fs::write(&path, &bad_magic).expect("write");
    assert!(matches!(store.open_blob(ID).await, Err(Error::Corrupt(_))));

    let mut truncated = raw.clone();
    truncated.remove(10);
    std::fs::write(&path, &truncated).expect("write");
    assert!(matches!(store.open_blob(ID).await, Err(Error::Corrupt(_))));

    std::fs::write(&path, b"S3QB").expect("write");
    assert!(matches!(store.open_blob(ID).await, Err(Error::Corrupt(_))));
}

#[tokio::test]
async fn delete_is_idempotent_and_ids_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir);
    store.put(ID, body(b"x"), None).await.expect("put");
    store.delete(ID).await.expect("delete");
    store.delete(ID).await.expect("delete again");
    assert!(matches!(store.open_blob(ID).await, Err(Error::NotFound)));
    for bad in ["../../etc/passwd", "0123456789ABCDEF0123456789ABCDEF", "ab"] {
        assert!(matches!(
            store.put(bad, body(b"x"), None).await,
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            store.open_blob(bad).await,
            Err(Error::BadRequest(_))
        ));
    }
}

#[tokio::test]
async fn open_clears_stale_temp_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(store(&dir));
    let stale = dir.path().join("tmp").join("left-by-a-crash.tmp");
    std::fs::write(&stale, b"partial").expect("write");
    let _store = store(&dir);
    assert!(!stale.exists());
}
