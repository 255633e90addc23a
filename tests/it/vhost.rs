//! Virtual-hosted-style addressing with `--domain`: `bucket.DOMAIN` names the bucket,
//! while path style keeps working for the domain itself, IP addresses and other hosts.
//!
//! The requests are signed by aws-sdk-s3 (presigned, with `force_path_style(false)` for
//! the virtual-hosted ones) for a host under the test domain, then sent to the gateway's
//! loopback address with that `Host` header, so no DNS is involved.

use std::time::Duration;

use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use bytes::Bytes;
use hyper::Method;

use crate::harness::*;

const DOMAIN: &str = "s3.example.test";

fn presigning() -> PresigningConfig {
    PresigningConfig::expires_in(Duration::from_secs(300)).unwrap()
}

/// Sends `req` (signed for a host under the test domain) to the gateway on loopback,
/// keeping the signed `Host`.
async fn send_via_loopback(cluster: &Cluster, req: &PresignedRequest, body: Bytes) -> RawResponse {
    let uri: hyper::Uri = req.uri().parse().unwrap();
    let host = uri.authority().unwrap().to_string();
    let path = uri.path_and_query().unwrap().as_str();
    let url = format!("{}{path}", cluster.s3_url());
    let mut headers: Vec<(&str, &str)> = req.headers().collect();
    headers.push(("host", &host));
    let method = Method::from_bytes(req.method().as_bytes()).unwrap();
    raw_request(method, &url, &headers, body).await
}

#[tokio::test]
async fn buckets_are_reachable_by_virtual_host_and_by_path() {
    let cluster = Cluster::start_opts(ClusterOptions::new(3).gateway_arg("--domain", DOMAIN)).await;
    // The usual path-style client on 127.0.0.1 keeps working.
    let s3 = cluster.client();
    create_bucket(&s3, "vbucket").await;
    put_bytes(&s3, "vbucket", "by-path", b"path style").await;

    let port = cluster.s3_url().rsplit(':').next().unwrap().to_owned();
    let endpoint = format!("http://{DOMAIN}:{port}");
    let virtual_hosted = cluster.client_for_endpoint(&endpoint, false);
    let path_style = cluster.client_for_endpoint(&endpoint, true);

    let put = virtual_hosted
        .put_object()
        .bucket("vbucket")
        .key("dir/by-host")
        .presigned(presigning())
        .await
        .unwrap();
    assert!(
        put.uri()
            .starts_with(&format!("http://vbucket.{DOMAIN}:{port}/dir/by-host")),
        "not virtual-hosted: {}",
        put.uri()
    );
    let resp = send_via_loopback(&cluster, &put, Bytes::from_static(b"virtual host")).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(resp.header("x-amz-request-id").is_some());
    assert_eq!(
        get_bytes(&s3, "vbucket", "dir/by-host").await,
        b"virtual host"
    );

    let get = virtual_hosted
        .get_object()
        .bucket("vbucket")
        .key("by-path")
        .presigned(presigning())
        .await
        .unwrap();
    let resp = send_via_loopback(&cluster, &get, Bytes::new()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(&resp.body[..], b"path style");

    let head = virtual_hosted
        .head_object()
        .bucket("vbucket")
        .key("dir/by-host")
        .presigned(presigning())
        .await
        .unwrap();
    let resp = send_via_loopback(&cluster, &head, Bytes::new()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-length"), Some("12"));

    // The domain itself is path style.
    let get = path_style
        .get_object()
        .bucket("vbucket")
        .key("dir/by-host")
        .presigned(presigning())
        .await
        .unwrap();
    assert!(
        get.uri()
            .starts_with(&format!("http://{DOMAIN}:{port}/vbucket/"))
    );
    let resp = send_via_loopback(&cluster, &get, Bytes::new()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(&resp.body[..], b"virtual host");

    // A missing bucket by virtual host is NoSuchBucket.
    let missing = virtual_hosted
        .get_object()
        .bucket("absent")
        .key("k")
        .presigned(presigning())
        .await
        .unwrap();
    let resp = send_via_loopback(&cluster, &missing, Bytes::new()).await;
    assert_eq!(resp.status, 404, "{}", resp.text());
    assert!(resp.text().contains("NoSuchBucket"), "{}", resp.text());

    // A host outside the domain is path style (no host becomes a bucket by accident).
    let other = cluster.client_for_endpoint(&format!("http://gateway.internal:{port}"), true);
    let get = other
        .get_object()
        .bucket("vbucket")
        .key("by-path")
        .presigned(presigning())
        .await
        .unwrap();
    let resp = send_via_loopback(&cluster, &get, Bytes::new()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(&resp.body[..], b"path style");

    let delete = virtual_hosted
        .delete_object()
        .bucket("vbucket")
        .key("by-path")
        .presigned(presigning())
        .await
        .unwrap();
    let resp = send_via_loopback(&cluster, &delete, Bytes::new()).await;
    assert_eq!(resp.status, 204, "{}", resp.text());
    assert_s3_status(
        s3.head_object()
            .bucket("vbucket")
            .key("by-path")
            .send()
            .await,
        404,
    );
}
