//! Bucket policies: the subset of the IAM policy language that public-read buckets and
//! per-key exceptions need, parsed completely or refused.
//!
//! Supported: `Version`, `Id`, and `Statement` (one object or a list), each with `Sid`,
//! `Effect` (`Allow` / `Deny`), `Principal` (`"*"`, `{"AWS": "*"}`, or `{"AWS": [ids]}`
//! where an id is an access key id or `arn:aws:iam::ACCOUNT:user/ID`), `Action` (`s3:…`,
//! with `*` and `?` wildcards) and `Resource` (`arn:aws:s3:::BUCKET`,
//! `arn:aws:s3:::BUCKET/PREFIX*` or `arn:aws:s3:::BUCKET/KEY`, of this bucket only).
//! Anything else (`NotAction`, `NotPrincipal`, `Condition`, other buckets, unknown keys) is
//! `400 MalformedPolicy`: a policy is applied whole or not at all. An explicit Deny wins
//! over every Allow and every grant.

use serde_json::Value;

/// Who a statement is about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Principal {
    Anyone,
    Keys(Vec<String>),
}

/// What a statement is about: the bucket itself, or objects by key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resource {
    Bucket,
    Prefix(String),
    Key(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    allow: bool,
    principal: Principal,
    actions: Vec<String>,
    resources: Vec<Resource>,
}

/// A parsed bucket policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    statements: Vec<Statement>,
}

/// What a policy says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
    /// The policy says nothing: grants decide.
    Silent,
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{what} must hold strings"))
            })
            .collect(),
        _ => Err(format!("{what} must be a string or a list of strings")),
    }
}

fn principal(v: &Value) -> Result<Principal, String> {
    let aws = match v {
        Value::String(s) if s == "*" => return Ok(Principal::Anyone),
        Value::Object(m) => {
            if let Some(other) = m.keys().find(|k| *k != "AWS") {
                return Err(format!("principal type {other} is not supported"));
            }
            m.get("AWS").ok_or("Principal needs AWS")?
        }
        _ => return Err("Principal must be \"*\" or {\"AWS\": ...}".into()),
    };
    let ids = strings(aws, "Principal.AWS")?;
    if ids.iter().any(|i| i == "*") {
        return Ok(Principal::Anyone);
    }
    let ids = ids
        .into_iter()
        .map(|id| match id.strip_prefix("arn:aws:iam::") {
            Some(rest) => rest
                .split_once(":user/")
                .map(|(_, user)| user.to_owned())
                .ok_or_else(|| format!("principal {id} is not a user ARN")),
            None => Ok(id),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Principal::Keys(ids))
}

fn resource(arn: &str, bucket: &str) -> Result<Resource, String> {
    let rest = arn
        .strip_prefix("arn:aws:s3:::")
        .ok_or_else(|| format!("resource {arn} is not an S3 ARN"))?;
    let (name, key) = match rest.split_once('/') {
        Some((name, key)) => (name, Some(key)),
        None => (rest, None),
    };
    if name != bucket {
        return Err(format!("resource {arn} is not in bucket {bucket}"));
    }
    match key {
        None => Ok(Resource::Bucket),
        Some(key) => match key.strip_suffix('*') {
            Some(prefix) if !prefix.contains('*') => Ok(Resource::Prefix(prefix.to_owned())),
            None if !key.contains('*') => Ok(Resource::Key(key.to_owned())),
            _ => Err(format!("resource {arn}: only a trailing * is supported")),
        },
    }
}

fn statement(v: &Value, bucket: &str) -> Result<Statement, String> {
    let m = v.as_object().ok_or("each statement must be an object")?;
    for k in m.keys() {
        if !matches!(
            k.as_str(),
            "Sid" | "Effect" | "Principal" | "Action" | "Resource"
        ) {
            return Err(format!("statement element {k} is not supported"));
        }
    }
    let allow = match m.get("Effect").and_then(Value::as_str) {
        Some("Allow") => true,
        Some("Deny") => false,
        _ => return Err("Effect must be Allow or Deny".into()),
    };
    let principal = principal(m.get("Principal").ok_or("a statement needs a Principal")?)?;
    let actions = strings(
        m.get("Action").ok_or("a statement needs an Action")?,
        "Action",
    )?;
    for a in &actions {
        if !(a == "*" || a.starts_with("s3:")) {
            return Err(format!("action {a} is not an S3 action"));
        }
    }
    let resources = strings(
        m.get("Resource").ok_or("a statement needs a Resource")?,
        "Resource",
    )?
    .iter()
    .map(|r| resource(r, bucket))
    .collect::<Result<Vec<_>, _>>()?;
    Ok(Statement {
        allow,
        principal,
        actions,
        resources,
    })
}

/// `*` and `?` wildcards, case-insensitive (action names are).
fn wildcard(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (
        pattern.to_ascii_lowercase().chars().collect(),
        name.to_ascii_lowercase().chars().collect(),
    );
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl Policy {
    /// Parses `text` as a policy of `bucket`; the reason when it is outside the subset.
    pub fn parse(text: &str, bucket: &str) -> Result<Policy, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let m = v.as_object().ok_or("a policy must be a JSON object")?;
        for k in m.keys() {
            if !matches!(k.as_str(), "Version" | "Id" | "Statement") {
                return Err(format!("policy element {k} is not supported"));
            }
        }
        if let Some(version) = m.get("Version")
            && !matches!(version.as_str(), Some("2012-10-17" | "2008-10-17"))
        {
            return Err("Version must be 2012-10-17".into());
        }
        let statements = match m.get("Statement").ok_or("a policy needs a Statement")? {
            Value::Array(items) if !items.is_empty() => items
                .iter()
                .map(|s| statement(s, bucket))
                .collect::<Result<Vec<_>, _>>()?,
            one @ Value::Object(_) => vec![statement(one, bucket)?],
            _ => return Err("Statement must be an object or a non-empty list".into()),
        };
        Ok(Policy { statements })
    }

    /// Whether any statement allows something to anyone (S3's "public" policy).
    pub fn is_public(&self) -> bool {
        self.statements
            .iter()
            .any(|s| s.allow && s.principal == Principal::Anyone)
    }

    /// What the policy says about `action` (`s3:GetObject`, ...) by `who` (an access key
    /// id; `None`: anonymous) on the bucket (`key` `None`) or on object `key`. `public`:
    /// whether statements for anyone count (PublicAccessBlock may neutralise them).
    pub fn verdict(
        &self,
        who: Option<&str>,
        action: &str,
        key: Option<&str>,
        public: bool,
    ) -> Verdict {
        let mut allowed = false;
        for s in &self.statements {
            let about_who = match &s.principal {
                Principal::Anyone => public || !s.allow,
                Principal::Keys(ids) => who.is_some_and(|w| ids.iter().any(|i| i == w)),
            };
            let about_action = s.actions.iter().any(|a| a == "*" || wildcard(a, action));
            let about_resource = s.resources.iter().any(|r| match (r, key) {
                (Resource::Bucket, None) => true,
                (Resource::Prefix(p), Some(k)) => k.starts_with(p.as_str()),
                (Resource::Key(exact), Some(k)) => exact == k,
                _ => false,
            });
            if about_who && about_action && about_resource {
                if !s.allow {
                    return Verdict::Deny;
                }
                allowed = true;
            }
        }
        if allowed {
            Verdict::Allow
        } else {
            Verdict::Silent
        }
    }
}

/// The policy action S3 checks for operation `op`.
pub fn action_of(op: &str) -> String {
    let name = match op {
        "HeadObject" => "GetObject",
        "ListObjects" | "ListObjectsV2" | "HeadBucket" => "ListBucket",
        "ListObjectVersions" => "ListBucketVersions",
        "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload"
        | "CopyObject" => "PutObject",
        "ListParts" => "ListMultipartUploadParts",
        "ListMultipartUploads" => "ListBucketMultipartUploads",
        "DeleteObjects" => "DeleteObject",
        "GetBucketCors" => "GetBucketCORS",
        "PutBucketCors" | "DeleteBucketCors" => "PutBucketCORS",
        "DeleteBucketTagging" => "PutBucketTagging",
        "DeletePublicAccessBlock" => "PutBucketPublicAccessBlock",
        "PutPublicAccessBlock" => "PutBucketPublicAccessBlock",
        "GetPublicAccessBlock" => "GetBucketPublicAccessBlock",
        other => other,
    };
    format!("s3:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"pub","Effect":"Allow",
        "Principal":"*","Action":["s3:GetObject"],"Resource":"arn:aws:s3:::site/public/*"}]}"#;

    #[test]
    fn a_public_read_prefix_allows_anonymous_gets_there_only() {
        let p = Policy::parse(PUBLIC, "site").unwrap();
        assert!(p.is_public());
        let get = |key| p.verdict(None, "s3:GetObject", Some(key), true);
        assert_eq!(get("public/a.html"), Verdict::Allow);
        assert_eq!(get("private/a"), Verdict::Silent);
        assert_eq!(
            p.verdict(None, "s3:PutObject", Some("public/a"), true),
            Verdict::Silent
        );
        assert_eq!(
            p.verdict(None, "s3:GetObject", Some("public/a"), false),
            Verdict::Silent
        );
    }

    #[test]
    fn deny_wins_and_principals_name_keys_or_user_arns() {
        let text = r#"{"Statement":[
            {"Effect":"Allow","Principal":{"AWS":["KEY1","arn:aws:iam::123:user/KEY2"]},
             "Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]},
            {"Effect":"Deny","Principal":"*","Action":"s3:Delete*","Resource":"arn:aws:s3:::b/*"}]}"#;
        let p = Policy::parse(text, "b").unwrap();
        assert!(!p.is_public());
        assert_eq!(
            p.verdict(Some("KEY2"), "s3:GetObject", Some("x"), false),
            Verdict::Allow
        );
        assert_eq!(
            p.verdict(Some("KEY1"), "s3:ListBucket", None, false),
            Verdict::Allow
        );
        assert_eq!(
            p.verdict(Some("KEY1"), "s3:DeleteObject", Some("x"), false),
            Verdict::Deny
        );
        assert_eq!(
            p.verdict(Some("OTHER"), "s3:GetObject", Some("x"), false),
            Verdict::Silent
        );
    }

    #[test]
    fn anything_outside_the_subset_is_refused() {
        for bad in [
            "not json",
            "[]",
            r#"{"Statement":[]}"#,
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject",
                "Resource":"arn:aws:s3:::other/*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Principal":"*","NotAction":"s3:GetObject",
                "Resource":"arn:aws:s3:::b/*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject",
                "Resource":"arn:aws:s3:::b/*","Condition":{}}}"#,
            r#"{"Statement":{"Effect":"Maybe","Principal":"*","Action":"s3:GetObject",
                "Resource":"arn:aws:s3:::b/*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Principal":{"Service":"x"},"Action":"s3:GetObject",
                "Resource":"arn:aws:s3:::b/*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"iam:PassRole",
                "Resource":"arn:aws:s3:::b/*"}}"#,
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject",
                "Resource":"arn:aws:s3:::b/a*b"}}"#,
            r#"{"Version":"1999","Statement":{"Effect":"Allow","Principal":"*",
                "Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#,
        ] {
            assert!(Policy::parse(bad, "b").is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcards_match_like_iam() {
        assert!(wildcard("s3:Get*", "s3:GetObject"));
        assert!(wildcard("s3:*Object", "s3:PutObject"));
        assert!(wildcard("s3:?etObject", "s3:GetObject"));
        assert!(!wildcard("s3:Get*", "s3:PutObject"));
        assert!(wildcard("S3:GETOBJECT", "s3:GetObject"));
        assert_eq!(action_of("HeadObject"), "s3:GetObject");
        assert_eq!(action_of("ListObjectsV2"), "s3:ListBucket");
    }
}
