//! The admin API from tests: JSON calls with the cluster's admin token, and the key and
//! grant helpers the access tests build on.

use aws_sdk_s3::Client;
use bytes::Bytes;
use hyper::Method;
use serde_json::{Value, json};

use super::{Cluster, RawResponse, raw_request};

/// The admin token every test gateway starts with (unless the admin API is turned off).
pub const ADMIN_TOKEN: &str = "s3q-test-admin-token-0123456789";

/// Permissions of a grant.
#[derive(Debug, Clone, Copy, Default)]
pub struct Grant {
    pub read: bool,
    pub write: bool,
    pub owner: bool,
}

impl Cluster {
    /// One admin API call with the admin token (`token`: another, or none).
    pub async fn admin_call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> RawResponse {
        let url = format!("{}{path}", self.admin_url().trim_end_matches('/'));
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        raw_request(method, &url, &headers, body).await
    }

    /// An admin API call that must succeed; its JSON answer.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let what = format!("{method} {path}");
        let resp = self.admin_call(method, path, body, Some(ADMIN_TOKEN)).await;
        assert!(resp.status < 300, "{what}: {} {}", resp.status, resp.text());
        if resp.body.is_empty() {
            Value::Null
        } else {
            resp.json()
        }
    }

    /// Creates an access key; its `(id, secret)`.
    pub async fn create_key(&self, name: &str, extra: Value) -> (String, String) {
        let mut body = json!({ "name": name });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let key = self.admin(Method::POST, "/v1/keys", Some(body)).await;
        let id = key["access_key_id"].as_str().expect("key id").to_owned();
        let secret = key["secret_access_key"]
            .as_str()
            .expect("secret")
            .to_owned();
        (id, secret)
    }

    /// Gives key `id` the permissions `grant` names in `bucket`.
    pub async fn allow(&self, bucket: &str, id: &str, grant: Grant) {
        let body =
            json!({"key": id, "read": grant.read, "write": grant.write, "owner": grant.owner});
        self.admin(
            Method::POST,
            &format!("/v1/buckets/{bucket}/allow"),
            Some(body),
        )
        .await;
    }

    /// A client of the gateway at `s3_url` signing with `(id, secret)`.
    pub fn client_at(&self, s3_url: &str, id: &str, secret: &str) -> Client {
        self.build_client_for(s3_url, id, secret, false)
    }
}
