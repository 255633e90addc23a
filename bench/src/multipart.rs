//! The large-object run: one multipart upload (CreateMultipartUpload, UploadPart ×N with
//! `concurrency` parts in flight, CompleteMultipartUpload) and one download of the result,
//! each reported with the peak RSS of every process.
//!
//! Parts are generated while they are sent and signed with `UNSIGNED-PAYLOAD`; the download is
//! streamed and every byte compared with the pattern. The generator therefore holds at most a
//! few 256 KiB chunks per part in flight, whatever the object size: its own peak RSS, reported
//! as `s3bench`, shows it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use tokio::time::timeout;

use crate::body::ReqBody;
use crate::client::{self, Conn, EMPTY_SHA256, Payload};
use crate::ops;
use crate::stats::{Recorder, WorkloadResult};
use crate::workloads::{Ctx, run_workers};

/// Uploads a `size`-byte object in `part_size` parts and downloads it again; returns the
/// results of the upload (`mpu-put`, ops are parts) and of the download (`mpu-get`).
pub async fn run(
    ctx: &Arc<Ctx>,
    size: u64,
    part_size: u64,
    concurrency: usize,
) -> Vec<WorkloadResult> {
    let key = format!("{}/mpu/object", ctx.prefix);
    let seed = ctx.nonce ^ (0x33 << 56);
    let mut results = Vec::new();

    let mark = ctx.watch.start();
    let start = Instant::now();
    let mut rec = Recorder::new();
    let mut conn = Conn::new(ctx.target.clone());
    let uploaded = match upload(ctx, &mut conn, &key, seed, size, part_size, concurrency).await {
        Ok(r) => {
            rec.merge(r);
            rec.errors == 0
        }
        Err(e) => {
            rec.error(e);
            false
        }
    };
    let wall = start.elapsed();
    let cost = ctx.watch.finish(&mark);
    let r = WorkloadResult::new(&ctx.run, "mpu-put", size, concurrency, wall, &rec, &cost);
    eprintln!(
        "s3bench: mpu-put    {} parts {:.1} MiB/s errors {}",
        r.ops, r.mib_per_s, r.errors
    );
    results.push(r);
    if !uploaded {
        return results;
    }

    let mark = ctx.watch.start();
    let start = Instant::now();
    let mut rec = Recorder::new();
    let mut scratch = Vec::new();
    // Generous: 60 s plus 5 MiB/s.
    let limit = Duration::from_secs(60 + size / (5 << 20));
    let get = ops::get(
        &mut conn,
        &ctx.pattern,
        &key,
        seed,
        size,
        true,
        &mut scratch,
    );
    let r = timeout(limit, get).await;
    match ops::settle(&mut conn, limit, r) {
        Ok(d) => {
            rec.ok(d.lat, d.bytes);
            if let Some(t) = d.ttfb {
                rec.first_byte(t);
            }
        }
        Err(e) => rec.error(e),
    }
    let wall = start.elapsed();
    let cost = ctx.watch.finish(&mark);
    let r = WorkloadResult::new(&ctx.run, "mpu-get", size, 1, wall, &rec, &cost);
    eprintln!(
        "s3bench: mpu-get    {:.1} MiB/s errors {}",
        r.mib_per_s, r.errors
    );
    results.push(r);

    let r = timeout(ctx.op_timeout, ops::delete(&mut conn, &key)).await;
    match ops::settle(&mut conn, ctx.op_timeout, r) {
        Ok(_) => ctx.setup_ok(),
        Err(e) => ctx.setup_error(e),
    }
    results
}

/// The multipart upload proper; part errors are in the returned recorder, a failure to create
/// or complete the upload is the `Err`.
async fn upload(
    ctx: &Arc<Ctx>,
    conn: &mut Conn,
    key: &str,
    seed: u64,
    size: u64,
    part_size: u64,
    concurrency: usize,
) -> Result<Recorder, String> {
    let path = ctx.target.object_path(key);
    let upload_id = create(conn, &path).await?;
    let parts = size.div_ceil(part_size).max(1);
    let etags: Arc<Mutex<Vec<Option<String>>>> = Arc::new(Mutex::new(vec![None; parts as usize]));
    let next = Arc::new(AtomicU64::new(1));
    let (c, e, n, p, id) = (
        ctx.clone(),
        etags.clone(),
        next.clone(),
        path.clone(),
        upload_id.clone(),
    );
    let (rec, _) = run_workers(ctx, concurrency, None, move |_, mut conn, _| {
        let (ctx, etags, next) = (c.clone(), e.clone(), n.clone());
        let (p, id) = (p.clone(), client::encode_query(&id));
        async move {
            let mut rec = Recorder::new();
            loop {
                let number = next.fetch_add(1, Relaxed);
                if number > parts {
                    break;
                }
                let offset = (number - 1) * part_size;
                let len = part_size.min(size - offset);
                let path = format!("{p}?partNumber={number}&uploadId={id}");
                let op = ops::put(&mut conn, &ctx.pattern, &path, seed, offset, len);
                let r = timeout(ctx.op_timeout, op).await;
                match ops::settle(&mut conn, ctx.op_timeout, r) {
                    Ok((d, etag)) => {
                        rec.ok(d.lat, d.bytes);
                        etags.lock().expect("etags lock")[(number - 1) as usize] = Some(etag);
                    }
                    Err(e) => rec.error(e),
                }
            }
            rec.reconnects = conn.reconnects;
            rec
        }
    })
    .await;
    let etags: Vec<String> = etags
        .lock()
        .expect("etags lock")
        .iter()
        .map(|e| e.clone().unwrap_or_default())
        .collect();
    if rec.errors > 0 || etags.iter().any(String::is_empty) {
        abort(conn, &path, &upload_id).await;
        return Ok(rec);
    }
    complete(conn, &path, &upload_id, &etags).await?;
    Ok(rec)
}

async fn create(conn: &mut Conn, path: &str) -> Result<String, String> {
    let url = format!("{path}?uploads");
    let (resp, _) = conn
        .send(
            Method::POST,
            &url,
            &[],
            ReqBody::Empty,
            Payload::Sha256(EMPTY_SHA256),
        )
        .await?;
    let status = resp.status();
    let body = client::collect(resp.into_body()).await?;
    let what = format!("CreateMultipartUpload {path}");
    if status != StatusCode::OK {
        return Err(client::status_error(&what, status, &body));
    }
    client::xml_value(&String::from_utf8_lossy(&body), "UploadId")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| format!("{what}: no UploadId in the answer"))
}

async fn complete(
    conn: &mut Conn,
    path: &str,
    upload_id: &str,
    etags: &[String],
) -> Result<(), String> {
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (i, etag) in etags.iter().enumerate() {
        let etag = etag.replace('&', "&amp;").replace('"', "&quot;");
        xml.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{etag}</ETag></Part>",
            i + 1
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    let hash = client::sha256_hex(xml.as_bytes());
    let url = format!("{path}?uploadId={}", client::encode_query(upload_id));
    let body = ReqBody::Full(Some(xml.into()));
    let limit = Duration::from_secs(600);
    let send = conn.send(Method::POST, &url, &[], body, Payload::Sha256(&hash));
    let (resp, _) = timeout(limit, send)
        .await
        .map_err(|_| format!("CompleteMultipartUpload {path}: no answer in 600 s"))??;
    let status = resp.status();
    let body = client::collect(resp.into_body()).await?;
    let what = format!("CompleteMultipartUpload {path}");
    let text = String::from_utf8_lossy(&body);
    // S3 may answer 200 and still report an error in the body.
    if status != StatusCode::OK || text.contains("<Error>") {
        return Err(client::status_error(&what, status, &body));
    }
    if !text.contains("CompleteMultipartUploadResult") {
        return Err(format!("{what}: unexpected answer {text:?}"));
    }
    Ok(())
}

async fn abort(conn: &mut Conn, path: &str, upload_id: &str) {
    let url = format!("{path}?uploadId={}", client::encode_query(upload_id));
    if let Ok((resp, _)) = conn
        .send(
            Method::DELETE,
            &url,
            &[],
            ReqBody::Empty,
            Payload::Sha256(EMPTY_SHA256),
        )
        .await
    {
        let _ = client::collect(resp.into_body()).await;
    }
}
