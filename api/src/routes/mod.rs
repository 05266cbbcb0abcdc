//! HTTP handlers, one module per resource. Handlers translate HTTP to calls on services and back; the rules live
//! in domain/ and commands/.
//!
//! [`ROUTES`] is the one list of what the server routes: the router is built from it, and the tests check it
//! against specs/openapi.yaml in both directions.

use axum::routing::{get, patch, post, MethodRouter};

use crate::startup::AppState;

pub mod agents;
pub mod docs;
pub mod health;
pub mod market;
pub mod me;
pub mod strategies;
pub mod stream;

/// Every routed path (axum syntax = OpenAPI syntax) with its methods.
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/healthz", &["GET"]),
    ("/readyz", &["GET"]),
    ("/metrics", &["GET"]),
    ("/api/v1/openapi.json", &["GET"]),
    ("/api/v1/docs", &["GET"]),
    ("/api/v1/me", &["GET"]),
    ("/api/v1/strategies", &["GET"]),
    ("/api/v1/agents", &["GET", "POST"]),
    ("/api/v1/agents/{id}", &["GET", "PATCH"]),
    ("/api/v1/agents/{id}/start", &["POST"]),
    ("/api/v1/agents/{id}/stop", &["POST"]),
    ("/api/v1/agents/{id}/archive", &["POST"]),
    ("/api/v1/agents/{id}/runs", &["GET"]),
    ("/api/v1/agents/{id}/stream", &["GET"]),
    ("/api/v1/market/{symbol}", &["GET"]),
];

/// The handlers of `path` for `methods`.
///
/// # Panics
/// When [`ROUTES`] names a (path, method) without a handler here — a programming error the router tests catch on
/// the first server they build.
pub fn method_router(path: &str, methods: &[&str]) -> MethodRouter<AppState> {
    methods
        .iter()
        .map(|method| handler(path, method))
        .fold(MethodRouter::new(), MethodRouter::merge)
}

fn handler(path: &str, method: &str) -> MethodRouter<AppState> {
    match (method, path) {
        ("GET", "/healthz") => get(health::healthz),
        ("GET", "/readyz") => get(health::readyz),
        ("GET", "/metrics") => get(health::metrics),
        ("GET", "/api/v1/openapi.json") => get(docs::openapi),
        ("GET", "/api/v1/docs") => get(docs::docs),
        ("GET", "/api/v1/me") => get(me::me),
        ("GET", "/api/v1/strategies") => get(strategies::list_strategies),
        ("POST", "/api/v1/agents") => post(agents::create_agent),
        ("GET", "/api/v1/agents") => get(agents::list_agents),
        ("GET", "/api/v1/agents/{id}") => get(agents::get_agent),
        ("PATCH", "/api/v1/agents/{id}") => patch(agents::update_agent),
        ("POST", "/api/v1/agents/{id}/start") => post(agents::start_agent),
        ("POST", "/api/v1/agents/{id}/stop") => post(agents::stop_agent),
        ("POST", "/api/v1/agents/{id}/archive") => post(agents::archive_agent),
        ("GET", "/api/v1/agents/{id}/runs") => get(agents::list_runs),
        ("GET", "/api/v1/agents/{id}/stream") => get(stream::stream_agent),
        ("GET", "/api/v1/market/{symbol}") => get(market::get_price),
        _ => panic!("ROUTES lists {method} {path} but routes::handler has no handler for it"),
    }
}
