//! Per-request correlation, tracing span and HTTP metrics.
//!
//! The correlation id comes from `x-request-id` (or is made), is echoed back, sits on the request's span (hence on
//! every log line of the request) and is handed to command handlers through the `CorrelationId` extension so it ends
//! up in event metadata and NATS headers.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The HTTP latency histogram (seconds, labelled by method and route); the process's metrics recorder gives it
/// buckets fine enough for the API's read target.
pub const HTTP_LATENCY_METRIC: &str = "http_request_duration_seconds";
/// Longest client-supplied request id we adopt; longer ones are replaced, so logs cannot be flooded through it.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The correlation id of the current request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationId(pub String);

/// The route template that matched (`/api/v1/agents/{id}`), passed from the inner to the outer layer.
#[derive(Debug, Clone)]
struct RouteLabel(String);

fn adopt_request_id(value: Option<&HeaderValue>) -> Option<String> {
    let s = value?.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= MAX_REQUEST_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b));
    ok.then(|| s.to_owned())
}

/// Outer middleware: correlation id, span, access log line and metrics for every request (matched or not).
pub async fn correlate(mut req: Request, next: Next) -> Response {
    let id = adopt_request_id(req.headers().get(&REQUEST_ID))
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = req.method().clone();
    let span = tracing::info_span!(
        "http_request",
        correlation_id = %id,
        method = %method,
        path = %req.uri().path(),
        route = tracing::field::Empty,
        sub = tracing::field::Empty,
    );
    req.extensions_mut().insert(CorrelationId(id.clone()));
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let route = response
        .extensions()
        .get::<RouteLabel>()
        .map_or("unmatched", |r| r.0.as_str())
        .to_owned();
    let status = response.status().as_u16();
    span.record("route", route.as_str());
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!(HTTP_LATENCY_METRIC, &labels[..2]).record(elapsed.as_secs_f64());
    tracing::info!(parent: &span, status, latency_ms = elapsed.as_secs_f64() * 1000.0, "request completed");
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    response
}

/// Inner (route) middleware: tells the outer layer which route template matched, for low-cardinality labels.
pub async fn label_route(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let mut response = next.run(req).await;
    if let Some(route) = route {
        response.extensions_mut().insert(RouteLabel(route));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_request_ids_are_adopted_only_when_short_and_plain() {
        let ok = HeaderValue::from_static("demo-m0-1");
        assert_eq!(adopt_request_id(Some(&ok)).as_deref(), Some("demo-m0-1"));
        let spaces = HeaderValue::from_static("a b");
        assert_eq!(adopt_request_id(Some(&spaces)), None);
        let long = HeaderValue::from_str(&"x".repeat(MAX_REQUEST_ID_LEN + 1)).unwrap();
        assert_eq!(adopt_request_id(Some(&long)), None);
        assert_eq!(adopt_request_id(None), None);
    }
}
