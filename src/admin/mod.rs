//! The admin API: JSON over HTTP on the gateway's admin port, under `/v1/`, and its client
//! (`cli`, the `s3quorum admin` commands).
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | POST | `/v1/keys` | `{"name", "expires_at"?, "allow_create_bucket"?}` | the new key, secret included |
//! | POST | `/v1/keys/import` | `{"access_key_id", "secret_access_key", "name"}` | the key |
//! | GET | `/v1/keys` | | every key (no secrets) |
//! | GET | `/v1/keys/{id}` | | the key and its grants (no secret) |
//! | DELETE | `/v1/keys/{id}` | | 204 |
//! | POST | `/v1/buckets/{bucket}/allow` | `{"key", "read"?, "write"?, "owner"?}` | the bucket |
//! | POST | `/v1/buckets/{bucket}/deny` | same | the bucket |
//! | GET | `/v1/buckets/{bucket}` | | the bucket and its grants |
//! | | `/v1/layout...` | | the cluster layout: see `layout` |
//!
//! Every route needs `Authorization: Bearer <admin token>`; without a configured token the
//! API is off (403). `/health`, `/ready`, `/metrics` and `/status` stay open: they change
//! nothing and reveal no secret. A secret leaves the gateway only in the answer to the
//! request that created or imported it.

pub mod cli;
mod layout;
pub mod rfc3339;

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use node::proto::access::{KeyRecord, KeyState, Perms};
use node::proto::{BucketRecord, Lww};
use s3s::Body;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access::Access;
use crate::error::Error;
use crate::layout::Membership;
use crate::store::Store;

/// Largest request body the admin API reads.
const MAX_BODY: usize = 64 * 1024;

/// The admin API's state: keys, bucket records, and the token that guards them.
#[derive(Clone)]
pub struct AdminApi {
    pub access: Access,
    pub store: Store,
    pub token: Option<String>,
    pub membership: Membership,
}

/// A refusal: status and message, answered as `{"error": message}`.
struct Refusal(StatusCode, String);

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        match e {
            Error::NoSuchBucket => Refusal(StatusCode::NOT_FOUND, "no such bucket".into()),
            other => {
                tracing::warn!("admin request failed: {other}");
                Refusal(StatusCode::SERVICE_UNAVAILABLE, other.to_string())
            }
        }
    }
}

fn bad(message: impl Into<String>) -> Refusal {
    Refusal(StatusCode::BAD_REQUEST, message.into())
}

type Answer = Result<(StatusCode, Value), Refusal>;

#[derive(Deserialize)]
struct CreateKey {
    name: String,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    allow_create_bucket: bool,
}

#[derive(Deserialize)]
struct ImportKey {
    access_key_id: String,
    secret_access_key: String,
    name: String,
}

#[derive(Deserialize)]
struct GrantChange {
    key: String,
    #[serde(default)]
    read: bool,
    #[serde(default)]
    write: bool,
    #[serde(default)]
    owner: bool,
}

/// A key as listings show it: never its secret.
#[derive(Serialize)]
struct KeyView {
    access_key_id: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    allow_create_bucket: bool,
    expired: bool,
}

impl KeyView {
    fn of(record: &KeyRecord) -> Self {
        let state = &record.state.value;
        KeyView {
            access_key_id: record.id.clone(),
            name: state.name.clone(),
            expires_at: state.expires_at.map(rfc3339::format),
            allow_create_bucket: state.allow_create_bucket,
            expired: !Access::usable(state),
        }
    }
}

fn random_hex(len: usize) -> String {
    let mut s = String::new();
    while s.len() < len {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(len);
    s
}

impl AdminApi {
    /// Answers a request whose path starts with `/v1/`.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_owned();
        let rest = path.strip_prefix("/v1/").unwrap_or_default().to_owned();
        let answer = match self.authorize(&req) {
            Err(r) => Err(r),
            Ok(()) => self.route(req, &rest).await,
        };
        let (status, body) = match answer {
            Ok(ok) => ok,
            Err(Refusal(status, message)) => (status, json!({ "error": message })),
        };
        let text = if body.is_null() {
            String::new()
        } else {
            serde_json::to_string_pretty(&body).unwrap_or_default() + "\n"
        };
        let mut resp = Response::new(Body::from(text));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        resp
    }

    /// The bearer token must be the configured one (compared in constant time).
    fn authorize<B>(&self, req: &Request<B>) -> Result<(), Refusal> {
        let Some(token) = &self.token else {
            return Err(Refusal(
                StatusCode::FORBIDDEN,
                "the admin API is off: start the gateway with an admin token".into(),
            ));
        };
        let given = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let same = given.len() == token.len()
            && given
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same {
            Ok(())
        } else {
            Err(Refusal(
                StatusCode::UNAUTHORIZED,
                "missing or wrong admin token".into(),
            ))
        }
    }

    async fn route(&self, req: Request<Incoming>, rest: &str) -> Answer {
        let method = req.method().clone();
        let segments: Vec<String> = rest
            .split('/')
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        match (method, segments.as_slice()) {
            (Method::POST, ["keys"]) => self.create_key(read_json(req).await?).await,
            (Method::POST, ["keys", "import"]) => self.import_key(read_json(req).await?).await,
            (Method::GET, ["keys"]) => self.list_keys().await,
            (Method::GET, ["keys", id]) => self.key_info(id).await,
            (Method::DELETE, ["keys", id]) => self.delete_key(id).await,
            (Method::POST, ["buckets", bucket, "allow"]) => {
                self.change_grant(bucket, read_json(req).await?, true).await
            }
            (Method::POST, ["buckets", bucket, "deny"]) => {
                self.change_grant(bucket, read_json(req).await?, false)
                    .await
            }
            (Method::GET, ["buckets", bucket]) => self.bucket_info(bucket).await,
            (Method::GET, ["layout"]) => self.layout_show().await,
            (Method::GET, ["layout", "plan"]) => self.layout_plan().await,
            (Method::POST, ["layout", "stage"]) => self.layout_stage(read_json(req).await?).await,
            (Method::POST, ["layout", "revert"]) => self.layout_revert().await,
            (Method::POST, ["layout", "apply"]) => self.layout_apply().await,
            _ => Err(Refusal(StatusCode::NOT_FOUND, "no such admin route".into())),
        }
    }

    async fn create_key(&self, req: CreateKey) -> Answer {
        let expires_at = match req.expires_at.as_deref() {
            None => None,
            Some(s) => Some(
                rfc3339::parse(s)
                    .ok_or_else(|| bad(format!("expires_at {s:?} is not an RFC 3339 date-time")))?,
            ),
        };
        let id = format!("S3Q{}", random_hex(20).to_uppercase());
        let secret = random_hex(40);
        let state = KeyState {
            name: req.name,
            secret: secret.clone(),
            expires_at,
            allow_create_bucket: req.allow_create_bucket,
            deleted: false,
        };
        let record = self.access.put_key(&id, state).await?;
        tracing::info!(key = %id, name = %record.state.value.name, "access key created");
        Ok((StatusCode::OK, created(&record, &secret)))
    }

    async fn import_key(&self, req: ImportKey) -> Answer {
        if !KeyRecord::valid_id(&req.access_key_id) || self.access.is_root(&req.access_key_id) {
            return Err(bad("invalid access key id"));
        }
        if req.secret_access_key.len() < 8 || !req.secret_access_key.is_ascii() {
            return Err(bad("the secret must be at least 8 ASCII characters"));
        }
        if self.access.key_record(&req.access_key_id).await?.is_some() {
            return Err(Refusal(
                StatusCode::CONFLICT,
                "an access key with that id exists or existed".into(),
            ));
        }
        let state = KeyState {
            name: req.name,
            secret: req.secret_access_key.clone(),
            expires_at: None,
            allow_create_bucket: false,
            deleted: false,
        };
        let record = self.access.put_key(&req.access_key_id, state).await?;
        tracing::info!(key = %record.id, "access key imported");
        Ok((StatusCode::OK, created(&record, &req.secret_access_key)))
    }

    async fn list_keys(&self) -> Answer {
        self.access.refresh().await?;
        let keys: Vec<KeyView> = self
            .access
            .known_keys()
            .iter()
            .filter(|r| !r.state.value.deleted)
            .map(KeyView::of)
            .collect();
        Ok((StatusCode::OK, json!(keys)))
    }

    async fn key_info(&self, id: &str) -> Answer {
        let record = self.live_key(id).await?;
        let buckets: Vec<Value> = self
            .store
            .list_buckets()
            .await?
            .iter()
            .filter_map(|b| {
                let p = b.perms_of(id);
                p.any().then(|| {
                    json!({"bucket": b.name, "read": p.read, "write": p.write, "owner": p.owner})
                })
            })
            .collect();
        let mut view = json!(KeyView::of(&record));
        view["buckets"] = json!(buckets);
        Ok((StatusCode::OK, view))
    }

    async fn delete_key(&self, id: &str) -> Answer {
        let record = self.live_key(id).await?;
        let state = KeyState {
            secret: String::new(),
            deleted: true,
            ..record.state.value
        };
        self.access.put_key(id, state).await?;
        tracing::info!(key = %id, "access key deleted");
        Ok((StatusCode::NO_CONTENT, Value::Null))
    }

    /// Key `id`, which must exist and not be deleted (`404` otherwise).
    async fn live_key(&self, id: &str) -> Result<KeyRecord, Refusal> {
        match self.access.key_record(id).await? {
            Some(r) if !r.state.value.deleted => Ok(r),
            _ => Err(Refusal(StatusCode::NOT_FOUND, "no such access key".into())),
        }
    }

    async fn change_grant(&self, bucket: &str, change: GrantChange, allow: bool) -> Answer {
        self.live_key(&change.key).await?;
        let flags = Perms {
            read: change.read,
            write: change.write,
            owner: change.owner,
        };
        if !flags.any() {
            return Err(bad("name at least one of read, write, owner"));
        }
        let key = change.key.clone();
        let set = move |b: &mut BucketRecord, stamp| {
            let now = b.perms_of(&key);
            let perms = if allow {
                Perms {
                    read: now.read || flags.read,
                    write: now.write || flags.write,
                    owner: now.owner || flags.owner,
                }
            } else {
                Perms {
                    read: now.read && !flags.read,
                    write: now.write && !flags.write,
                    owner: now.owner && !flags.owner,
                }
            };
            b.grants.insert(
                key,
                Lww {
                    stamp,
                    value: perms,
                },
            );
        };
        self.store.update_bucket(bucket, set).await?;
        self.access.forget_bucket(bucket);
        tracing::info!(bucket, key = %change.key, allow, "bucket grant changed");
        self.bucket_info(bucket).await
    }

    async fn bucket_info(&self, bucket: &str) -> Answer {
        let record = self.store.bucket(bucket).await?;
        let mut grants = BTreeMap::new();
        for id in record.grants.keys() {
            let p = record.perms_of(id);
            if p.any() {
                grants.insert(
                    id.clone(),
                    json!({"read": p.read, "write": p.write, "owner": p.owner}),
                );
            }
        }
        let versioning = record.live(&record.versioning).map(|v| format!("{v:?}"));
        Ok((
            StatusCode::OK,
            json!({
                "bucket": record.name,
                "created": rfc3339::format(record.exists.stamp.ts / 1_000_000),
                "versioning": versioning,
                "grants": grants,
            }),
        ))
    }
}

/// The answer to a create or import: the only time the secret is shown.
fn created(record: &KeyRecord, secret: &str) -> Value {
    let mut view = json!(KeyView::of(record));
    view["secret_access_key"] = json!(secret);
    view
}

async fn read_json<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, Refusal> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY);
    let bytes: Bytes = limited
        .collect()
        .await
        .map_err(|e| bad(format!("request body not read: {e}")))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid JSON: {e}")))
}
