//! Logging and metrics set up once per process (zero2prod's `get_subscriber`): JSON log lines on stderr carrying
//! the fields of the current span (so every line of a request has its `correlation_id`), and the Prometheus
//! recorder behind `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use strom_api::observability::HTTP_LATENCY_METRIC;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Histogram buckets for HTTP latency, in seconds: fine below 5 ms (the API read target) and up to 10 s.
const HTTP_LATENCY_BUCKETS_S: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, with the current span's fields (production, demos, tests).
    Json,
    /// Human-readable lines for a terminal.
    Pretty,
}

/// Installs the global tracing subscriber writing to stderr (stdout stays free for command output such as
/// `strom token`). Calling it twice is harmless: the second call does nothing.
pub fn init_logging(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
    };
    // Err only means a subscriber is already installed (tests call this more than once).
    let _ = result;
}

/// The process-wide Prometheus recorder. The `metrics` facade allows one recorder per process, so every
/// `Application` in a process (several in tests) shares it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(HTTP_LATENCY_METRIC.into()),
                    HTTP_LATENCY_BUCKETS_S,
                )
                .expect("static bucket list is non-empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (e.g. by an embedding program); then ours only renders
            // what is recorded through it, which is nothing — say so instead of failing.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            handle
        })
        .clone()
}
