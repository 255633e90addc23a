//! Blob store behaviour: round trips at block-size edges, ranged reads, and that nothing
//! is kept or served when a digest, a body or a stored block is wrong.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};

use super::*;
use crate::metrics::Metrics;

const BS: u64 = BLOB_BLOCK_SIZE;
const ID: &str = "0123456789abcdef0123456789abcdef";

fn store(dir: &tempfile::TempDir) -> BlobStore {
    store_with(dir, &Metrics::new().expect("metrics"))
}

fn store_with(dir: &tempfile::TempDir, metrics: &Metrics) -> BlobStore {
    BlobStore::open(dir.path(), true, metrics).expect("open blob store")
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

fn quarantine_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("quarantine").join(ID)
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

/// `bytes` as pieces of a `crc32c`-checked upload, ending with `trailer` if given.
fn pieces(
    bytes: &[u8],
    trailer: Option<Trailer>,
) -> impl Stream<Item = Result<Piece, Infallible>> + Send + use<> {
    let mut items: Vec<Result<Piece, Infallible>> = bytes
        .chunks(7_777)
        .map(|c| Ok(Piece::Data(Bytes::copy_from_slice(c))))
        .collect();
    items.extend(trailer.map(|t| Ok(Piece::Trailer(t))));
    futures::stream::iter(items)
}

fn table_of(bytes: &[u8]) -> String {
    let mut crcs = crate::proto::BlockCrcs::default();
    crcs.update(bytes);
    crate::proto::table_digest(&crcs.finish())
}

#[tokio::test]
async fn trailer_checked_upload_keeps_only_a_body_matching_the_senders_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir);
    let bytes = data(3 * BS + 17);
    let md5 = hex::encode(Md5::digest(&bytes));
    let refused = [
        // One byte differs from what the sender hashed: its table does not match.
        Some(Trailer {
            md5: Some(md5.clone()),
            block_crcs: Some(table_of(&data(3 * BS + 16))),
        }),
        // No trailers at all, or only some of them.
        None,
        Some(Trailer {
            md5: Some(md5.clone()),
            block_crcs: None,
        }),
        Some(Trailer {
            md5: Some("xyz".into()),
            block_crcs: Some(table_of(&bytes)),
        }),
    ];
    for trailer in refused {
        let err = store
            .put_pieces(ID, pieces(&bytes, trailer), Verify::Trailer)
            .await;
        assert!(
            matches!(
                err,
                Err(Error::DigestMismatch { .. } | Error::BadRequest(_))
            ),
            "{err:?}"
        );
        assert!(matches!(store.open_blob(ID).await, Err(Error::NotFound)));
        assert!(tmp_is_empty(&dir));
    }

    let trailer = Trailer {
        md5: Some(md5.clone()),
        block_crcs: Some(table_of(&bytes)),
    };
    let reply = store
        .put_pieces(ID, pieces(&bytes, Some(trailer)), Verify::Trailer)
        .await
        .expect("put");
    assert_eq!(reply.md5, md5);
    assert_eq!(reply.size, bytes.len() as u64);
    assert_eq!(reply.block_crcs, Some(table_of(&bytes)));
    let (got, err) = read(&store, None).await;
    assert!(err.is_none() && got == bytes, "{err:?}");
    // The sender's MD5 is the blob's: the scrubber's full check confirms it.
    let mut check = store.open_blob(ID).await.expect("open").full_check();
    while let Checked::More(_) = check.step().expect("sound") {}
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
async fn flipped_byte_is_caught_in_its_block_only_and_quarantines_the_blob() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = Metrics::new().expect("metrics");
    let store = store_with(&dir, &metrics);
    let len = 3 * BS + 100;
    let bytes = data(len);
    store.put(ID, body(&bytes), None).await.expect("put");
    let path = blob_path(&dir);
    let mut raw = std::fs::read(&path).expect("read blob file");
    let flipped = (BS + 4_000) as usize;
    raw[flipped] ^= 0x40;
    // Each read that finds the damage moves the file away: put it back before the next.
    let damage = || std::fs::write(&path, &raw).expect("write blob file");

    // Full read: block 0 is served, then the stream fails at block 1.
    damage();
    let (got, err) = read(&store, None).await;
    assert!(matches!(err, Some(Error::Corrupt(_))), "{err:?}");
    assert!(got == bytes[..BS as usize]);
    assert!(!path.exists(), "a corrupt blob must leave its path");
    let kept = std::fs::read(quarantine_path(&dir)).expect("quarantined copy");
    assert!(kept == raw);
    assert!(matches!(store.open_blob(ID).await, Err(Error::Quarantined)));
    assert_eq!(metrics.blob_corruptions.get(), 1);

    // A range inside the damaged block fails before yielding a byte.
    damage();
    let (got, err) = read(&store, Some((BS + 10, BS + 20))).await;
    assert!(matches!(err, Some(Error::Corrupt(_))) && got.is_empty());
    // A range that touches the damaged block only through its unflipped bytes still fails:
    // the whole block is checked.
    damage();
    let (_, err) = read(&store, Some((BS, BS + 1))).await;
    assert!(matches!(err, Some(Error::Corrupt(_))));
    assert_eq!(metrics.blob_corruptions.get(), 3);
    // Other blocks read fine, and a read that meets no damage quarantines nothing.
    damage();
    let (got, err) = read(&store, Some((2 * BS + 1, len))).await;
    assert!(err.is_none(), "{err:?}");
    assert!(got == bytes[(2 * BS + 1) as usize..]);
    assert!(path.exists());
}

#[tokio::test]
async fn a_rewrite_restores_a_quarantined_blob_and_is_never_quarantined_by_an_old_reader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = Metrics::new().expect("metrics");
    let store = store_with(&dir, &metrics);
    let bytes = data(2 * BS);
    store.put(ID, body(&bytes), None).await.expect("put");
    let path = blob_path(&dir);
    let mut raw = std::fs::read(&path).expect("read blob file");
    raw[3] ^= 1;
    std::fs::write(&path, &raw).expect("write blob file");

    // A reader opens the damaged file; a repair replaces it before the reader gets to the
    // damage. The reader fails, but the good new file stays in place.
    let stale = store.open_blob(ID).await.expect("open");
    store.put(ID, body(&bytes), None).await.expect("repair");
    let (_, err) = drain(stale.read(None).expect("read")).await;
    assert!(matches!(err, Some(Error::Corrupt(_))), "{err:?}");
    assert!(!quarantine_path(&dir).exists());
    assert_eq!(metrics.blob_corruptions.get(), 0);
    let (got, err) = read(&store, None).await;
    assert!(err.is_none() && got == bytes);

    // Once quarantined, a put of the same id makes it readable again.
    std::fs::write(&path, &raw).expect("write blob file");
    let (_, err) = read(&store, None).await;
    assert!(err.is_some());
    assert!(matches!(store.open_blob(ID).await, Err(Error::Quarantined)));
    store.put(ID, body(&bytes), None).await.expect("repair");
    let (got, err) = read(&store, None).await;
    assert!(err.is_none() && got == bytes);
}

#[tokio::test]
async fn full_check_verifies_blocks_and_the_whole_md5() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = Metrics::new().expect("metrics");
    let store = store_with(&dir, &metrics);
    let run = |mut check: FullCheck| {
        let mut read = 0;
        loop {
            match check.step() {
                Ok(Checked::More(n)) => read += n,
                Ok(Checked::Sound) => return Ok(read),
                Err(e) => return Err(e),
            }
        }
    };
    for len in [0, 1, BS, 9 * BS + 7] {
        store.put(ID, body(&data(len)), None).await.expect("put");
        let check = store.open_blob(ID).await.expect("open").full_check();
        assert_eq!(run(check).expect("sound"), len);
    }

    // Damage that block checksums cannot see: a data byte changed and its block's CRC32C
    // rewritten to match. Reads pass; only the whole-data MD5 catches it.
    let len = 2 * BS + 5;
    let mut bytes = data(len);
    store.put(ID, body(&bytes), None).await.expect("put");
    let path = blob_path(&dir);
    let mut raw = std::fs::read(&path).expect("read blob file");
    raw[10] ^= 0x10;
    bytes[10] ^= 0x10;
    let crc = crc32c::crc32c(&bytes[..BS as usize]);
    let table = len as usize;
    raw[table..table + 4].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &raw).expect("write blob file");
    let (got, err) = read(&store, None).await;
    assert!(err.is_none() && got == bytes);
    let check = store.open_blob(ID).await.expect("open").full_check();
    assert!(matches!(run(check), Err(Error::Corrupt(_))));
    assert!(quarantine_path(&dir).exists() && !path.exists());
    assert_eq!(metrics.blob_corruptions.get(), 1);
}

#[tokio::test]
async fn gauges_count_blobs_and_bytes_across_writes_removals_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = Metrics::new().expect("metrics");
    let store = store_with(&dir, &metrics);
    let other = "ffeeddccbbaa99887766554433221100";
    store.put(ID, body(&data(BS + 1)), None).await.expect("put");
    store.put(other, body(&data(10)), None).await.expect("put");
    assert_eq!(
        (metrics.blobs.get(), metrics.blob_bytes.get()),
        (2, BS as i64 + 11)
    );
    // Replacing a blob counts it once, with its new size.
    store.put(ID, body(&data(3 * BS)), None).await.expect("put");
    assert_eq!(
        (metrics.blobs.get(), metrics.blob_bytes.get()),
        (2, 3 * BS as i64 + 10)
    );
    let zero = std::time::Duration::ZERO;
    assert!(store.remove_if_older(other, zero).expect("delete") > 0);
    assert_eq!(store.remove_if_older(other, zero).expect("delete again"), 0);
    assert_eq!(
        (metrics.blobs.get(), metrics.blob_bytes.get()),
        (1, 3 * BS as i64)
    );

    // Reopening counts what is on disk; a stray file is not a blob.
    std::fs::write(dir.path().join("blobs/00/not-a-blob"), b"x").expect("write");
    drop(store);
    let reopened = Metrics::new().expect("metrics");
    let store = store_with(&dir, &reopened);
    assert_eq!(
        (reopened.blobs.get(), reopened.blob_bytes.get()),
        (1, 3 * BS as i64)
    );
    let listed = store.list_shard(0x01).expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, ID);

    // Quarantine takes the blob out of the count.
    let mut raw = std::fs::read(blob_path(&dir)).expect("read");
    raw[0] ^= 1;
    std::fs::write(blob_path(&dir), &raw).expect("write");
    let _ = read(&store, None).await;
    assert_eq!((reopened.blobs.get(), reopened.blob_bytes.get()), (0, 0));
}

#[test]
fn data_size_inverts_the_file_layout() {
    for len in [0, 1, BS - 1, BS, BS + 1, 7 * BS, 7 * BS + 3] {
        let file_len = len + len.div_ceil(BS) * 4 + FOOTER_LEN;
        assert_eq!(data_size(file_len), len, "{len}");
    }
    assert_eq!(data_size(0), 0);
    // Any length, even one no blob file has, yields a size without overflow.
    assert!(data_size(u64::MAX) < u64::MAX);
    assert_eq!(data_size(FOOTER_LEN - 1), 0);
}

#[tokio::test]
async fn missing_reports_absent_blobs_by_stat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir);
    let other = "ffeeddccbbaa99887766554433221100";
    store.put(ID, body(b"x"), None).await.expect("put");
    let asked = vec![
        vec![ID.to_string(), other.to_string()],
        vec![],
        vec!["not-an-id".to_string(), ID.to_string()],
    ];
    let missing = store.missing(asked).await.expect("missing");
    assert_eq!(missing, vec![vec![other.to_string()], vec![], vec![]]);
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
    // Each damaged file was quarantined: the path is empty now.
    assert!(matches!(store.open_blob(ID).await, Err(Error::Quarantined)));
    assert!(dir.path().join("quarantine").join(ID).exists());
}

#[tokio::test]
async fn delete_is_idempotent_waits_out_the_grace_and_ids_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir);
    store.put(ID, body(b"x"), None).await.expect("put");
    let hour = std::time::Duration::from_secs(3600);
    assert_eq!(store.remove_if_older(ID, hour).expect("young"), 0);
    assert!(store.open_blob(ID).await.is_ok());
    let zero = std::time::Duration::ZERO;
    assert!(store.remove_if_older(ID, zero).expect("delete") > 0);
    assert_eq!(store.remove_if_older(ID, zero).expect("delete again"), 0);
    assert!(matches!(store.open_blob(ID).await, Err(Error::NotFound)));
    assert_eq!(
        store
            .remove_if_older("../../etc/passwd", zero)
            .expect("bad id"),
        0
    );
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
