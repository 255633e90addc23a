//! The node's Prometheus metrics and their text rendering for `GET /metrics`.
//!
//! Invariants: every metric lives in a [`Registry`] owned by one node instance, never in the
//! process-global default registry, because `s3quorum dev` and the tests run several nodes
//! in one process. Metrics are registered once, in [`Metrics::new`]; the stores hold clones
//! of the handles they update (clones share one value). Label values come from fixed sets
//! (route names, status codes), never from request data, so the number of series stays
//! bounded whatever clients send.

use std::time::Duration;

use http::StatusCode;
use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use crate::error::Error;

/// Every metric the node exports.
#[derive(Clone)]
pub(crate) struct Metrics {
    registry: Registry,
    /// `node_requests_total{route,status}`: requests answered, by route and status code.
    pub(crate) requests: IntCounterVec,
    /// `node_request_duration_seconds{route}`: time from request to response head (a blob
    /// body streamed afterwards is not included).
    pub(crate) request_duration: HistogramVec,
    /// `node_blobs`: blob files in the store (quarantined ones excluded).
    pub(crate) blobs: IntGauge,
    /// `node_blob_bytes`: data bytes of those blobs (checksum tables and footers excluded).
    pub(crate) blob_bytes: IntGauge,
    /// `node_blob_corruptions_total`: blobs found corrupt and quarantined.
    pub(crate) blob_corruptions: IntCounter,
    /// `node_scrub_blobs_checked_total`: blobs the scrubber read through.
    pub(crate) scrub_blobs_checked: IntCounter,
    /// `node_scrub_passes_total`: completed scrubber passes over the whole store.
    pub(crate) scrub_passes: IntCounter,
    /// `node_record_commits_total`: record write transactions committed (group commits).
    pub(crate) record_commits: IntCounter,
    pub(crate) disk_free: IntGauge,
}

impl Metrics {
    /// A fresh registry holding every node metric at zero.
    pub(crate) fn new() -> Result<Metrics, Error> {
        let registry = Registry::new();
        let requests = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "node_requests_total",
                    "Requests answered, by route and status",
                ),
                &["route", "status"],
            ),
        )?;
        let request_duration = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "node_request_duration_seconds",
                    "Time from request to response head, by route",
                )
                .buckets(vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
                &["route"],
            ),
        )?;
        let gauge = |name: &str, help: &str| register(&registry, IntGauge::new(name, help));
        let counter = |name: &str, help: &str| register(&registry, IntCounter::new(name, help));
        Ok(Metrics {
            requests,
            request_duration,
            blobs: gauge(
                "node_blobs",
                "Blob files stored (quarantined ones excluded)",
            )?,
            blob_bytes: gauge("node_blob_bytes", "Data bytes of the stored blobs")?,
            blob_corruptions: counter(
                "node_blob_corruptions_total",
                "Blobs found corrupt by a read or the scrubber and quarantined",
            )?,
            scrub_blobs_checked: counter(
                "node_scrub_blobs_checked_total",
                "Blobs read through and verified by the scrubber",
            )?,
            scrub_passes: counter(
                "node_scrub_passes_total",
                "Completed scrubber passes over every blob",
            )?,
            disk_free: gauge(
                "node_disk_free_bytes",
                "Free bytes on the data directory's file system (for unprivileged writers)",
            )?,
            record_commits: counter(
                "node_record_commits_total",
                "Record write transactions committed (each holds a batch of writes)",
            )?,
            registry,
        })
    }

    /// Counts one answered request of `route` (a fixed label) and its latency.
    pub(crate) fn observe_request(&self, route: &str, status: StatusCode, elapsed: Duration) {
        self.requests
            .with_label_values(&[route, status.as_str()])
            .inc();
        self.request_duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// Every metric in the Prometheus text exposition format.
    pub(crate) fn render(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(out)
    }
}

/// Registers a freshly built metric and hands back a handle on it.
fn register<M: Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> Result<M, Error> {
    let metric = metric?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// Gauge value for a count of bytes or files; saturates instead of wrapping.
pub(crate) fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_once_registered_per_instance() {
        // Two instances in one process must not collide (several nodes per process).
        let first = Metrics::new().expect("metrics");
        let second = Metrics::new().expect("second metrics");
        first.blob_corruptions.inc();
        first.observe_request("get_blob", StatusCode::OK, Duration::from_millis(3));
        let text = String::from_utf8(first.render().expect("render")).expect("UTF-8");
        for name in [
            "node_requests_total{route=\"get_blob\",status=\"200\"} 1",
            "node_request_duration_seconds_bucket{route=\"get_blob\"",
            "node_blobs 0",
            "node_blob_bytes 0",
            "node_blob_corruptions_total 1",
            "node_scrub_blobs_checked_total 0",
            "node_scrub_passes_total 0",
            "node_record_commits_total 0",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
        let other = String::from_utf8(second.render().expect("render")).expect("UTF-8");
        assert!(other.contains("node_blob_corruptions_total 0"));
    }
}
