//! Liveness, readiness and the Prometheus scrape endpoint (no auth: they carry no user data).

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

use crate::startup::{AppState, Dependencies};

/// A readiness probe answers within this bound even when a dependency hangs.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: the process is up and serving.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

#[derive(Serialize)]
pub struct Readiness {
    status: &'static str,
    mode: &'static str,
    checks: Checks,
}

#[derive(Serialize)]
struct Checks {
    postgres: String,
    nats: String,
}

/// `GET /readyz`: 200 when every configured dependency answers, 503 otherwise; in embedded mode says so.
pub async fn readyz(State(deps): State<Dependencies>) -> impl IntoResponse {
    let (postgres, pg_ok) = match &deps.postgres {
        None => ("not configured (embedded memory store)".to_owned(), true),
        Some(pool) => {
            probe(async { sqlx::query("select 1").execute(pool).await.map(|_| ()) }).await
        }
    };
    let (nats, nats_ok) = match &deps.nats {
        None => ("not configured (embedded memory bus)".to_owned(), true),
        Some(client) => probe(async { client.flush().await }).await,
    };
    let ready = pg_ok && nats_ok;
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        mode: if deps.is_embedded() {
            "embedded"
        } else {
            "services"
        },
        checks: Checks { postgres, nats },
    };
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

async fn probe<E: std::fmt::Display>(
    check: impl std::future::Future<Output = Result<(), E>>,
) -> (String, bool) {
    match tokio::time::timeout(PROBE_TIMEOUT, check).await {
        Ok(Ok(())) => ("ok".to_owned(), true),
        Ok(Err(e)) => (format!("error: {e}"), false),
        Err(_) => (format!("error: no answer within {PROBE_TIMEOUT:?}"), false),
    }
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
