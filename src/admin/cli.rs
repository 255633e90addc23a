//! `s3quorum admin key …` and `s3quorum admin bucket …`: the admin API's client. Each
//! command is one request; `--json` prints the API's answer as it is, otherwise a short
//! text for people.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::config::{AdminConn, BucketCommand, JoiningNode, KeyCommand, LayoutCommand};

/// Sends one admin request; the JSON answer, or the API's error as text.
async fn call(
    conn: &AdminConn,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let token = conn.token()?;
    let url = format!("{}{path}", conn.admin_url.trim_end_matches('/'));
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = Request::builder()
        .method(method)
        .uri(&url)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("bad admin URL {url}: {e}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .map_err(|_| format!("{url}: no answer within 30 s"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .to_bytes();
    let value: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("{url} answered {status} with no JSON ({e})"))?
    };
    if status.is_success() {
        Ok(value)
    } else {
        let why = value["error"].as_str().unwrap_or("no reason given");
        Err(format!("{status}: {why}"))
    }
}

/// A path segment, percent-encoded.
fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

fn key_text(v: &Value) -> String {
    let mut out = format!(
        "access key id: {}\nname: {}\n",
        v["access_key_id"].as_str().unwrap_or_default(),
        v["name"].as_str().unwrap_or_default()
    );
    if let Some(secret) = v["secret_access_key"].as_str() {
        out.push_str(&format!("secret key: {secret}\n"));
    }
    if let Some(t) = v["expires_at"].as_str() {
        out.push_str(&format!("expires at: {t}\n"));
    }
    if v["allow_create_bucket"].as_bool() == Some(true) {
        out.push_str("may create buckets\n");
    }
    if let Some(buckets) = v["buckets"].as_array() {
        for b in buckets {
            out.push_str(&format!(
                "bucket {}: {}\n",
                b["bucket"].as_str().unwrap_or_default(),
                perms_text(b)
            ));
        }
    }
    out
}

fn perms_text(p: &Value) -> String {
    let names: Vec<&str> = ["read", "write", "owner"]
        .into_iter()
        .filter(|n| p[*n].as_bool() == Some(true))
        .collect();
    names.join(" ")
}

/// Runs a `key` command; what to print.
pub async fn key(command: KeyCommand) -> Result<String, String> {
    let path = |id: &str| format!("/v1/keys/{}", segment(id));
    match command {
        KeyCommand::Create {
            conn,
            name,
            expires_at,
            allow_create_bucket,
            json,
        } => {
            let body = json!({
                "name": name,
                "expires_at": expires_at,
                "allow_create_bucket": allow_create_bucket,
            });
            let v = call(&conn, Method::POST, "/v1/keys", Some(body)).await?;
            Ok(if json { pretty(&v) } else { key_text(&v) })
        }
        KeyCommand::Import {
            conn,
            id,
            secret,
            name,
        } => {
            let secret = if secret == "-" {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(|e| format!("secret not read from stdin: {e}"))?;
                line.trim().to_owned()
            } else {
                secret
            };
            let body = json!({"access_key_id": id, "secret_access_key": secret, "name": name});
            let mut v = call(&conn, Method::POST, "/v1/keys/import", Some(body)).await?;
            // The operator gave the secret; it is not echoed back.
            if let Some(o) = v.as_object_mut() {
                o.remove("secret_access_key");
            }
            Ok(key_text(&v))
        }
        KeyCommand::List { conn, json } => {
            let v = call(&conn, Method::GET, "/v1/keys", None).await?;
            if json {
                return Ok(pretty(&v));
            }
            let mut out = String::new();
            for k in v.as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "{}  {}{}\n",
                    k["access_key_id"].as_str().unwrap_or_default(),
                    k["name"].as_str().unwrap_or_default(),
                    if k["expired"].as_bool() == Some(true) {
                        "  (expired)"
                    } else {
                        ""
                    }
                ));
            }
            Ok(out)
        }
        KeyCommand::Info { conn, id, json } => {
            let v = call(&conn, Method::GET, &path(&id), None).await?;
            Ok(if json { pretty(&v) } else { key_text(&v) })
        }
        KeyCommand::Delete { conn, id } => {
            call(&conn, Method::DELETE, &path(&id), None).await?;
            Ok(format!("access key {id} deleted\n"))
        }
    }
}

/// Runs a `bucket` command; what to print.
pub async fn bucket(command: BucketCommand) -> Result<String, String> {
    let (conn, path, body, json) = match command {
        BucketCommand::Allow {
            conn,
            bucket,
            grant,
        } => {
            let path = format!("/v1/buckets/{}/allow", segment(&bucket));
            (conn, path, Some(grant.body()), false)
        }
        BucketCommand::Deny {
            conn,
            bucket,
            grant,
        } => {
            let path = format!("/v1/buckets/{}/deny", segment(&bucket));
            (conn, path, Some(grant.body()), false)
        }
        BucketCommand::Info { conn, bucket, json } => {
            let path = format!("/v1/buckets/{}", segment(&bucket));
            (conn, path, None, json)
        }
    };
    let method = if body.is_some() {
        Method::POST
    } else {
        Method::GET
    };
    let v = call(&conn, method, &path, body).await?;
    if json {
        return Ok(pretty(&v));
    }
    let mut out = format!("bucket {}\n", v["bucket"].as_str().unwrap_or_default());
    for (key, p) in v["grants"].as_object().into_iter().flatten() {
        out.push_str(&format!("  {key}: {}\n", perms_text(p)));
    }
    Ok(out)
}

fn joining(op: &str, id: Option<String>, node: JoiningNode) -> Value {
    json!({
        "op": op,
        "id": id,
        "url": node.url,
        "zone": node.zone,
        "capacity": node.capacity,
    })
}

/// `s3quorum admin layout …`.
pub async fn layout(command: LayoutCommand) -> Result<String, String> {
    let stage = "/v1/layout/stage";
    let (conn, method, path, body, json) = match command {
        LayoutCommand::Show { conn, json } => (conn, Method::GET, "/v1/layout", None, json),
        LayoutCommand::Plan { conn, json } => (conn, Method::GET, "/v1/layout/plan", None, json),
        LayoutCommand::Add { conn, node } => {
            let body = joining("add", None, node);
            (conn, Method::POST, stage, Some(body), false)
        }
        LayoutCommand::Remove { conn, node_id } => {
            let body = json!({ "op": "remove", "id": node_id });
            (conn, Method::POST, stage, Some(body), false)
        }
        LayoutCommand::Replace {
            conn,
            node_id,
            node,
        } => {
            let body = joining("replace", Some(node_id), node);
            (conn, Method::POST, stage, Some(body), false)
        }
        LayoutCommand::Apply { conn } => (conn, Method::POST, "/v1/layout/apply", None, false),
        LayoutCommand::Revert { conn } => (conn, Method::POST, "/v1/layout/revert", None, false),
    };
    let v = call(&conn, method, path, body).await?;
    Ok(if json {
        pretty(&v)
    } else if path.ends_with("/plan") {
        plan_text(&v)
    } else {
        layout_text(&v)
    })
}

fn member_lines(out: &mut String, nodes: &Value) {
    for n in nodes.as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {}  {}",
            n["id"].as_str().unwrap_or_default(),
            n["url"].as_str().unwrap_or_default()
        ));
        if let Some(z) = n["zone"].as_str() {
            out.push_str(&format!("  zone={z}"));
        }
        if let Some(c) = n["capacity"].as_u64() {
            out.push_str(&format!("  capacity={c}"));
        }
        out.push('\n');
    }
}

fn layout_text(v: &Value) -> String {
    let mut out = format!(
        "layout version {} (revision {}), {} replicas\nnodes:\n",
        v["version"], v["revision"], v["replicas"]
    );
    member_lines(&mut out, &v["nodes"]);
    if !v["previous"].is_null() {
        out.push_str("migrating from:\n");
        member_lines(&mut out, &v["previous"]);
    }
    for change in v["staged"].as_array().into_iter().flatten() {
        out.push_str(&format!("staged: {change}\n"));
    }
    out
}

fn plan_text(v: &Value) -> String {
    let mut out = format!(
        "{} keys scanned; {} keys ({} bytes) would move\n",
        v["keys_scanned"], v["keys_moving"], v["bytes_moving"]
    );
    for (id, m) in v["nodes"].as_object().into_iter().flatten() {
        out.push_str(&format!(
            "  {id}: +{} keys (+{} bytes), -{} keys (-{} bytes)\n",
            m["keys_in"], m["bytes_in"], m["keys_out"], m["bytes_out"]
        ));
    }
    out
}
