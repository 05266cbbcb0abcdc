//! HTTP handlers, one module per resource. Handlers translate HTTP to calls on services and back; the rules live
//! in domain/ and commands/.
//!
//! [`ROUTES`] is the one list of what the server routes: [`router`] is built from it, and the tests check it
//! against specs/openapi.yaml in both directions. An endpoint of [`ROUTES`] that [`handler`] has no handler for yet is
//! planned ([`is_planned`]): it is routed to [`planned::not_implemented`] until its milestone adds its handler.

use axum::routing::{delete, get, patch, post, MethodRouter};
use axum::Router;

use crate::problem::ApiError;
use crate::state::AppState;
use crate::{idempotency, observability};

pub mod agents;
pub mod audit;
pub mod auth_config;
pub mod backtest_stream;
pub mod backtests;
pub mod docs;
pub mod health;
pub mod market;
pub mod me;
pub mod planned;
pub mod sign_in;
pub mod strategies;
pub mod stream;
pub mod telegram;
pub mod trading;
pub mod ui;

/// Every routed path (axum syntax = OpenAPI syntax) with its methods: every endpoint of specs/openapi.yaml.
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/healthz", &["GET"]),
    ("/readyz", &["GET"]),
    ("/metrics", &["GET"]),
    ("/api/v1/openapi.json", &["GET"]),
    ("/api/v1/docs", &["GET"]),
    ("/api/v1/me", &["GET"]),
    ("/api/v1/auth/config", &["GET"]),
    ("/api/v1/auth/dev-sign-in", &["POST"]),
    ("/api/v1/strategies", &["GET"]),
    ("/api/v1/agents", &["GET", "POST"]),
    ("/api/v1/agents/{id}", &["GET", "PATCH"]),
    ("/api/v1/agents/{id}/start", &["POST"]),
    ("/api/v1/agents/{id}/stop", &["POST"]),
    ("/api/v1/agents/{id}/archive", &["POST"]),
    ("/api/v1/agents/{id}/runs", &["GET"]),
    ("/api/v1/agents/{id}/stream", &["GET"]),
    ("/api/v1/agents/{id}/events", &["GET"]),
    ("/api/v1/agents/{id}/chain", &["GET"]),
    ("/api/v1/market/{symbol}", &["GET"]),
    ("/api/v1/agents/{id}/orders", &["GET"]),
    ("/api/v1/agents/{id}/trades", &["GET"]),
    ("/api/v1/agents/{id}/positions", &["GET"]),
    ("/api/v1/agents/{id}/pnl", &["GET"]),
    ("/api/v1/agents/{id}/summary", &["GET"]),
    ("/api/v1/orders/{id}", &["GET"]),
    ("/api/v1/backtests", &["GET", "POST"]),
    ("/api/v1/backtests/stream", &["GET"]),
    ("/api/v1/backtests/{id}", &["GET"]),
    ("/api/v1/backtests/{id}/cancel", &["POST"]),
    ("/api/v1/telegram/link-codes", &["POST"]),
    ("/api/v1/telegram/links", &["GET", "POST"]),
    ("/api/v1/telegram/links/{chat_id}", &["DELETE"]),
    ("/api/v1/telegram/sessions", &["POST"]),
];

/// Whether `method path` of [`ROUTES`] is planned: documented (with `x-strom-planned: true` in specs/openapi.yaml,
/// which the tests check against this), routed, but without a handler of its own yet. It answers 401 without a
/// token and 501 `not_implemented` with one ([`planned::not_implemented`]), and the contract fuzzing (tests/contract)
/// leaves it out.
pub fn is_planned(method: &str, path: &str) -> bool {
    built(method, path).is_none()
}

/// The handlers of `path` for `methods`.
///
/// # Panics
/// When [`ROUTES`] names a method axum cannot route here — a programming error the router tests catch on the first
/// server they build.
pub fn method_router(path: &str, methods: &[&str]) -> MethodRouter<AppState> {
    methods
        .iter()
        .map(|method| handler(path, method))
        .fold(MethodRouter::new(), MethodRouter::merge)
}

fn handler(path: &str, method: &str) -> MethodRouter<AppState> {
    if let Some(built) = built(method, path) {
        return built;
    }
    match method {
        "GET" => get(planned::not_implemented),
        "POST" => post(planned::not_implemented),
        "PATCH" => patch(planned::not_implemented),
        "DELETE" => delete(planned::not_implemented),
        _ => panic!("ROUTES lists {method} {path}, a method routes::handler does not route"),
    }
}

/// The handler of each built endpoint; `None` for a planned one.
fn built(method: &str, path: &str) -> Option<MethodRouter<AppState>> {
    Some(match (method, path) {
        ("GET", "/healthz") => get(health::healthz),
        ("GET", "/readyz") => get(health::readyz),
        ("GET", "/metrics") => get(health::metrics),
        ("GET", "/api/v1/openapi.json") => get(docs::openapi),
        ("GET", "/api/v1/docs") => get(docs::docs),
        ("GET", "/api/v1/me") => get(me::me),
        ("GET", "/api/v1/auth/config") => get(auth_config::auth_config),
        ("POST", "/api/v1/auth/dev-sign-in") => post(sign_in::dev_sign_in),
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
        ("GET", "/api/v1/agents/{id}/events") => get(audit::list_events),
        ("GET", "/api/v1/agents/{id}/chain") => get(audit::check_chain),
        ("GET", "/api/v1/market/{symbol}") => get(market::get_price),
        ("GET", "/api/v1/agents/{id}/orders") => get(trading::list_orders),
        ("GET", "/api/v1/agents/{id}/trades") => get(trading::list_trades),
        ("GET", "/api/v1/agents/{id}/positions") => get(trading::list_positions),
        ("GET", "/api/v1/agents/{id}/pnl") => get(trading::list_pnl),
        ("GET", "/api/v1/agents/{id}/summary") => get(trading::get_summary),
        ("GET", "/api/v1/orders/{id}") => get(trading::get_order),
        ("POST", "/api/v1/backtests") => post(backtests::request_backtest),
        ("GET", "/api/v1/backtests") => get(backtests::list_backtests),
        ("GET", "/api/v1/backtests/stream") => get(backtest_stream::stream_backtests),
        ("GET", "/api/v1/backtests/{id}") => get(backtests::get_backtest),
        ("POST", "/api/v1/backtests/{id}/cancel") => post(backtests::cancel_backtest),
        ("POST", "/api/v1/telegram/link-codes") => post(telegram::create_link_code),
        ("GET", "/api/v1/telegram/links") => get(telegram::list_links),
        ("POST", "/api/v1/telegram/links") => post(telegram::redeem_link_code),
        ("DELETE", "/api/v1/telegram/links/{chat_id}") => delete(telegram::delete_link),
        ("POST", "/api/v1/telegram/sessions") => post(telegram::create_session),
        _ => return None,
    })
}

/// The whole HTTP API on `state`: every route of [`ROUTES`] with its middleware (route labels, idempotency,
/// correlation ids and metrics, panics answered as problem+json); every other GET is the dashboard's
/// ([`ui::fallback`]: its files, index.html for its pages), except under the API's own first path segments,
/// which keep problem+json 404s, as does every other method.
pub fn router(state: AppState) -> Router {
    ROUTES
        .iter()
        .fold(Router::new(), |router, (path, methods)| {
            router.route(path, method_router(path, methods))
        })
        .route_layer(axum::middleware::from_fn(observability::label_route))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotency::<AppState>,
        ))
        .fallback(ui::fallback)
        .layer(axum::middleware::from_fn(observability::correlate))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_to_problem,
        ))
        .with_state(state)
}

fn panic_to_problem(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
}
