//! Liveness, readiness and the Prometheus scrape endpoint (no auth: they carry no user data).

use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

use crate::problem::ApiError;
use crate::state::{AppState, Dependencies};

/// A readiness probe answers within this bound even when a dependency hangs.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: the process is up and serving.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// `Readiness` (specs/03): which adapters this process runs on and how each dependency answered.
#[derive(Serialize)]
pub struct Readiness {
    status: &'static str,
    storage: &'static str,
    bus: &'static str,
    checks: Checks,
}

/// Per dependency: `ok`, `failing`, or `memory` (embedded adapter, nothing to check).
#[derive(Serialize)]
struct Checks {
    database: &'static str,
    nats: &'static str,
}

/// `GET /readyz`: 200 `Readiness` when every configured dependency answers; otherwise 503 problem+json
/// `not_ready` whose detail names each failing dependency and why.
pub async fn readyz(State(deps): State<Dependencies>) -> Result<Json<Readiness>, ApiError> {
    let database = match &deps.postgres {
        None => None,
        Some(pool) => {
            Some(probe(async { sqlx::query("select 1").execute(pool).await.map(|_| ()) }).await)
        }
    };
    let nats = match &deps.nats {
        None => None,
        Some(client) => Some(probe(async { client.flush().await }).await),
    };
    let failures: Vec<String> = [("database", &database), ("nats", &nats)]
        .into_iter()
        .filter_map(|(name, result)| match result {
            Some(Err(e)) => Some(format!("{name}: {e}")),
            _ => None,
        })
        .collect();
    if !failures.is_empty() {
        return Err(ApiError::NotReady(failures.join("; ")));
    }
    let state = |r: &Option<Result<(), String>>| if r.is_some() { "ok" } else { "memory" };
    Ok(Json(Readiness {
        status: "ok",
        storage: if database.is_some() {
            "postgres"
        } else {
            "memory"
        },
        bus: if nats.is_some() { "nats" } else { "memory" },
        checks: Checks {
            database: state(&database),
            nats: state(&nats),
        },
    }))
}

async fn probe<E: std::fmt::Display>(
    check: impl std::future::Future<Output = Result<(), E>>,
) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, check).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readyz_is_not_ready_naming_the_dependency_that_does_not_answer() {
        // Port 1 on loopback has no Postgres: the probe fails fast instead of hanging.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(Duration::from_secs(1))
            .connect_lazy("postgres://postgres@127.0.0.1:1/none")
            .unwrap();
        let deps = Dependencies {
            postgres: Some(pool),
            nats: None,
        };
        match readyz(State(deps)).await {
            Err(ApiError::NotReady(detail)) => {
                assert!(detail.starts_with("database: "), "{detail}")
            }
            Err(other) => panic!("wrong error: {other:?}"),
            Ok(_) => panic!("ready without a database"),
        }
    }
}
