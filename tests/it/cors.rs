//! Bucket CORS: the configuration calls with S3's validation, the unauthenticated OPTIONS
//! preflight matched against the bucket's rules, and the CORS headers on actual responses,
//! so a browser can upload with a presigned URL.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use bytes::Bytes;
use hyper::Method;

use crate::harness::*;
use crate::presign::send_presigned;

fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
    let mut b = CorsRule::builder()
        .max_age_seconds(600)
        .expose_headers("ETag");
    for o in origins {
        b = b.allowed_origins(*o);
    }
    for m in methods {
        b = b.allowed_methods(*m);
    }
    for h in headers {
        b = b.allowed_headers(*h);
    }
    b.build().unwrap()
}

fn config(rules: Vec<CorsRule>) -> CorsConfiguration {
    CorsConfiguration::builder()
        .set_cors_rules(Some(rules))
        .build()
        .unwrap()
}

async fn preflight(
    cluster: &Cluster,
    path: &str,
    origin: &str,
    method: &str,
    headers: Option<&str>,
) -> RawResponse {
    let mut h = vec![
        ("origin", origin),
        ("access-control-request-method", method),
    ];
    if let Some(headers) = headers {
        h.push(("access-control-request-headers", headers));
    }
    let url = format!("{}{path}", cluster.s3_url());
    raw_request(Method::OPTIONS, &url, &h, Bytes::new()).await
}

#[tokio::test]
async fn cors_configuration_round_trips_and_is_validated() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "web").await;
    assert_s3_error(
        s3.get_bucket_cors().bucket("web").send().await,
        404,
        "NoSuchCORSConfiguration",
    );
    let rules = vec![
        rule(
            &["https://app.example"],
            &["PUT", "GET"],
            &["content-type", "x-amz-*"],
        ),
        rule(&["*"], &["GET"], &[]),
    ];
    s3.put_bucket_cors()
        .bucket("web")
        .cors_configuration(config(rules.clone()))
        .send()
        .await
        .unwrap();
    let got = s3.get_bucket_cors().bucket("web").send().await.unwrap();
    assert_eq!(got.cors_rules(), rules.as_slice());

    let invalid = [
        (rule(&["*"], &["PATCH"], &[]), "InvalidRequest"),
        (
            rule(&["https://*.*.example"], &["GET"], &[]),
            "InvalidRequest",
        ),
        (rule(&["*"], &["GET"], &["x-*-*"]), "InvalidRequest"),
        (
            CorsRule::builder()
                .allowed_origins("*")
                .allowed_methods("GET")
                .expose_headers("x-*")
                .build()
                .unwrap(),
            "InvalidRequest",
        ),
    ];
    for (bad, code) in invalid {
        assert_s3_error(
            s3.put_bucket_cors()
                .bucket("web")
                .cors_configuration(config(vec![bad]))
                .send()
                .await,
            400,
            code,
        );
    }
    assert_s3_error(
        s3.put_bucket_cors()
            .bucket("web")
            .cors_configuration(config(Vec::new()))
            .send()
            .await,
        400,
        "MalformedXML",
    );
    // Refused means unchanged.
    let got = s3.get_bucket_cors().bucket("web").send().await.unwrap();
    assert_eq!(got.cors_rules(), rules.as_slice());

    s3.delete_bucket_cors().bucket("web").send().await.unwrap();
    assert_s3_error(
        s3.get_bucket_cors().bucket("web").send().await,
        404,
        "NoSuchCORSConfiguration",
    );
    assert_s3_error(
        s3.get_bucket_cors().bucket("nope").send().await,
        404,
        "NoSuchBucket",
    );
}

#[tokio::test]
async fn preflight_is_answered_from_the_bucket_rules() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "web").await;

    // No configuration: every preflight is refused.
    let resp = preflight(&cluster, "/web/k", "https://app.example", "GET", None).await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert!(resp.text().contains("AccessForbidden"), "{}", resp.text());
    assert!(resp.header("x-amz-request-id").is_some());

    s3.put_bucket_cors()
        .bucket("web")
        .cors_configuration(config(vec![
            rule(
                &["https://app.example"],
                &["PUT", "GET"],
                &["content-type", "x-amz-*"],
            ),
            rule(&["*"], &["GET"], &[]),
        ]))
        .send()
        .await
        .unwrap();

    let resp = preflight(
        &cluster,
        "/web/some/key",
        "https://app.example",
        "PUT",
        Some("Content-Type, X-Amz-Date"),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        resp.header("access-control-allow-methods"),
        Some("PUT, GET")
    );
    assert_eq!(
        resp.header("access-control-allow-headers"),
        Some("Content-Type, X-Amz-Date")
    );
    assert_eq!(resp.header("access-control-max-age"), Some("600"));
    assert_eq!(resp.header("access-control-expose-headers"), Some("ETag"));
    assert!(resp.header("vary").is_some_and(|v| v.contains("Origin")));
    assert!(resp.header("x-amz-request-id").is_some());
    assert!(resp.header("x-amz-id-2").is_some());
    assert_eq!(resp.header("server"), Some("s3quorum"));

    // The wildcard rule allows GET from anywhere, and nothing else.
    let resp = preflight(&cluster, "/web/k", "https://other.example", "GET", None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
    for (origin, method, headers) in [
        ("https://other.example", "PUT", None),
        ("https://app.example", "DELETE", None),
        ("https://app.example", "PUT", Some("authorization")),
    ] {
        let resp = preflight(&cluster, "/web/k", origin, method, headers).await;
        assert_eq!(resp.status, 403, "{origin} {method}: {}", resp.text());
        assert!(
            resp.text()
                .contains("CORSResponse: This CORS request is not allowed"),
            "{}",
            resp.text()
        );
    }

    // Bad preflights and unknown buckets.
    let url = format!("{}/web/k", cluster.s3_url());
    let resp = raw_request(Method::OPTIONS, &url, &[], Bytes::new()).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    let resp = preflight(&cluster, "/nope/k", "https://app.example", "GET", None).await;
    assert_eq!(resp.status, 403, "{}", resp.text());
}

#[tokio::test]
async fn a_browser_style_upload_with_a_presigned_url_gets_cors_headers() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "web").await;
    s3.put_bucket_cors()
        .bucket("web")
        .cors_configuration(config(vec![rule(
            &["https://app.example"],
            &["PUT", "GET"],
            &["*"],
        )]))
        .send()
        .await
        .unwrap();
    let expires = PresigningConfig::expires_in(Duration::from_secs(300)).unwrap();
    let put = s3
        .put_object()
        .bucket("web")
        .key("upload.txt")
        .presigned(expires.clone())
        .await
        .unwrap();
    let origin = [("origin", "https://app.example")];
    let resp = send_presigned(&put, &origin, Bytes::from_static(b"from a browser")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(resp.header("access-control-expose-headers"), Some("ETag"));
    assert!(resp.header("vary").is_some_and(|v| v.contains("Origin")));
    assert_eq!(get_bytes(&s3, "web", "upload.txt").await, b"from a browser");

    let get = s3
        .get_object()
        .bucket("web")
        .key("upload.txt")
        .presigned(expires)
        .await
        .unwrap();
    let resp = send_presigned(&get, &origin, Bytes::new()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    // Another origin gets the object (the signature allows it) but no CORS headers, so a
    // browser would not hand it to the page.
    let resp = send_presigned(&get, &[("origin", "https://evil.example")], Bytes::new()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("access-control-allow-origin"), None);
    // Without an Origin, nothing CORS-related is added.
    let resp = send_presigned(&get, &[], Bytes::new()).await;
    assert_eq!(resp.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn a_browser_reads_a_public_object_cross_origin_without_credentials() {
    let cluster = Cluster::start(3).await;
    let s3 = cluster.client();
    create_bucket(&s3, "cdn").await;
    s3.put_object()
        .bucket("cdn")
        .key("app.js")
        .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
        .body(aws_sdk_s3::primitives::ByteStream::from_static(
            b"console.log(1)",
        ))
        .send()
        .await
        .unwrap();
    put_bytes(&s3, "cdn", "private.js", b"secret").await;
    s3.put_bucket_cors()
        .bucket("cdn")
        .cors_configuration(config(vec![rule(&["https://app.example"], &["GET"], &[])]))
        .send()
        .await
        .unwrap();

    let resp = preflight(&cluster, "/cdn/app.js", "https://app.example", "GET", None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let url = format!("{}/cdn/app.js", cluster.s3_url().trim_end_matches('/'));
    let origin = [("origin", "https://app.example")];
    let got = raw_request(Method::GET, &url, &origin, Bytes::new()).await;
    assert_eq!((got.status, &got.body[..]), (200, &b"console.log(1)"[..]));
    assert_eq!(
        got.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(got.header("access-control-expose-headers"), Some("ETag"));
    // CORS opens nothing by itself: a private object stays closed to the same browser.
    let private = format!("{}/cdn/private.js", cluster.s3_url().trim_end_matches('/'));
    let refused = raw_request(Method::GET, &private, &origin, Bytes::new()).await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    // An origin the rules do not name gets the object (it is public) but no CORS grant.
    let other = raw_request(
        Method::GET,
        &url,
        &[("origin", "https://evil.example")],
        Bytes::new(),
    )
    .await;
    assert_eq!(other.status, 200);
    assert!(other.header("access-control-allow-origin").is_none());
}
