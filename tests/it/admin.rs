//! The gateway's admin port: health, readiness and Prometheus metrics, separate from the
//! S3 port.

use bytes::Bytes;
use hyper::Method;

use crate::harness::*;

/// Sum of every `s3_requests_total` sample (all label sets).
fn s3_requests_total(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("s3_requests_total"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn admin_port_serves_health_ready_and_metrics() {
    let cluster = Cluster::start(3).await;
    let admin = cluster.admin_url();
    for path in ["/health", "/ready"] {
        let resp = raw_request(Method::GET, &format!("{admin}{path}"), &[], Bytes::new()).await;
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
    }

    let metrics_url = format!("{admin}/metrics");
    let before = raw_request(Method::GET, &metrics_url, &[], Bytes::new()).await;
    assert_eq!(before.status, 200);
    assert!(
        before
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "Prometheus text format: {:?}",
        before.header("content-type")
    );

    let s3 = cluster.client();
    create_bucket(&s3, "counted").await;
    for i in 0..5 {
        put_bytes(&s3, "counted", &format!("k{i}"), b"x").await;
    }
    let after = raw_request(Method::GET, &metrics_url, &[], Bytes::new()).await;
    let text = after.text();
    assert!(
        text.contains("s3_requests_total"),
        "no s3_requests_total:\n{text}"
    );
    let (was, now) = (s3_requests_total(&before.text()), s3_requests_total(&text));
    assert!(
        now >= was + 6.0,
        "s3_requests_total went from {was} to {now} after 6 requests"
    );

    // The admin routes are not on the S3 port: there they are unsigned S3 requests.
    let on_s3 = raw_request(
        Method::GET,
        &format!("{}/metrics", cluster.s3_url()),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(on_s3.status, 403, "{}", on_s3.text());
}
