//! Prometheus metrics of the gateway, registered once in a registry of our own (so tests
//! and `dev` can run several gateways in one process), rendered on the admin port.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric the gateway exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `s3_requests_total{op,status}`: S3 requests answered.
    pub requests: IntCounterVec,
    /// `http_request_duration_seconds{op}`: time to the response head of each S3 request.
    pub request_duration: HistogramVec,
    /// `storage_errors_total{node,op}`: failed gateway → node calls.
    pub storage_errors: IntCounterVec,
    /// `quorum_failures_total{op}`: operations that could not reach their quorum (503).
    pub quorum_failures: IntCounterVec,
    /// `replication_lag`: objects known to be below their replication factor.
    pub replication_lag: IntGauge,
    /// `repair_queue_length`: repair hints waiting on the nodes.
    pub repair_queue: IntGauge,
    /// `repairs_total{result}`: replicas repaired (`ok`) or attempts that failed (`failed`).
    pub repairs: IntCounterVec,
    /// `read_repairs_total`: stale replicas found (and repaired) by reads.
    pub read_repairs: IntCounter,
    /// `bitrot_detections_total`: blob replicas a node found corrupt, met on reads or scans.
    pub bitrot_detections: IntCounter,
    /// `anti_entropy_passes_total`: full comparisons of every replica's records.
    pub anti_entropy_passes: IntCounter,
    /// `anti_entropy_keys_total`: keys compared by anti-entropy passes.
    pub anti_entropy_keys: IntCounter,
    /// `node_up{node}`: 1 when the node answered its last health check.
    pub node_up: IntGaugeVec,
    /// `paxos_rounds_total{result}`: compare-and-set rounds of conditional writes, by how
    /// they ended (`done`, `refused`: condition false, `preempted`: a competing writer).
    pub paxos_rounds: IntCounterVec,
    /// `uploads_expired_total`: abandoned multipart uploads aborted by anti-entropy passes.
    pub uploads_expired: IntCounter,
    /// `gc_blobs_deleted_total`: blob files garbage collection deleted.
    pub gc_blobs_deleted: IntCounter,
    /// `gc_bytes_freed_total`: bytes of the blob files garbage collection deleted.
    pub gc_bytes_freed: IntCounter,
    /// `gc_candidates`: unreferenced blob files waiting out the grace, at the last pass.
    pub gc_candidates: IntGauge,
    /// `tombstones_dropped_total`: purge tombstones dropped from every replica.
    pub tombstones_dropped: IntCounter,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("registered once");
    metric
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let metric = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("registered once");
    metric
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let metric = IntGauge::new(name, help).expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("registered once");
    metric
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time from request to response head, by S3 operation",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
            &["op"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(request_duration.clone()))
            .expect("registered once");
        let node_up = IntGaugeVec::new(
            Opts::new(
                "node_up",
                "1 when the data node answered its last health check",
            ),
            &["node"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(node_up.clone()))
            .expect("registered once");
        let r = &registry;
        Metrics {
            requests: counter_vec(
                r,
                "s3_requests_total",
                "S3 requests answered, by operation and HTTP status",
                &["op", "status"],
            ),
            request_duration,
            storage_errors: counter_vec(
                r,
                "storage_errors_total",
                "Failed calls from this gateway to data nodes, by node and operation",
                &["node", "op"],
            ),
            quorum_failures: counter_vec(
                r,
                "quorum_failures_total",
                "Operations that could not reach their quorum, by operation",
                &["op"],
            ),
            replication_lag: gauge(
                r,
                "replication_lag",
                "Objects known to be below their replication factor",
            ),
            repair_queue: gauge(
                r,
                "repair_queue_length",
                "Repair hints waiting on the data nodes",
            ),
            uploads_expired: counter(
                r,
                "uploads_expired_total",
                "Abandoned multipart uploads aborted after the upload expiry",
            ),
            paxos_rounds: counter_vec(
                r,
                "paxos_rounds_total",
                "Compare-and-set rounds of conditional writes, by result (done, refused, preempted)",
                &["result"],
            ),
            repairs: counter_vec(
                r,
                "repairs_total",
                "Replica repairs by result (ok, failed)",
                &["result"],
            ),
            read_repairs: counter(
                r,
                "read_repairs_total",
                "Stale replicas found by reads and repaired",
            ),
            bitrot_detections: counter(
                r,
                "bitrot_detections_total",
                "Blob replicas their node found corrupt, met by reads and anti-entropy passes",
            ),
            anti_entropy_passes: counter(
                r,
                "anti_entropy_passes_total",
                "Completed comparisons of every replica's records",
            ),
            anti_entropy_keys: counter(
                r,
                "anti_entropy_keys_total",
                "Keys compared across replicas by anti-entropy passes",
            ),
            gc_blobs_deleted: counter(
                r,
                "gc_blobs_deleted_total",
                "Blob files no record referred to, deleted by garbage collection",
            ),
            gc_bytes_freed: counter(
                r,
                "gc_bytes_freed_total",
                "Bytes of the blob files garbage collection deleted",
            ),
            gc_candidates: gauge(
                r,
                "gc_candidates",
                "Unreferenced blob files waiting out the garbage-collection grace, at the last pass",
            ),
            tombstones_dropped: counter(
                r,
                "tombstones_dropped_total",
                "Purge tombstones dropped from every replica of their key",
            ),
            node_up,
            registry,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            tracing::error!("metrics encoding failed: {e}");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
