//! HTTP tests of the serve skeleton: a real server on port 0 per test, talked to over HTTP (zero2prod's
//! `spawn_app`). Covers health, readiness, metrics, correlation ids, auth modes and errors, and SIGTERM shutdown.

use std::path::PathBuf;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use strom_api::auth::{AuthMode, AuthSettings, Role, DEFAULT_AUDIENCE, DEV_ISSUER};

mod agents;
mod audit;
mod backtest_cli;
mod backtests;
mod dashboard;
mod idempotency;
mod migrate_cli;
mod openapi;
mod process;
mod replay_cli;
mod sim_cli;
mod stream;
mod support;
mod telegram;
mod trading;

use support::{now_s, TestApp, TestSchema};

impl TestApp {
    fn raw_token(&self, claims: Value) -> String {
        let key = hex::decode(std::fs::read_to_string(&self.key_file).unwrap().trim()).unwrap();
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&key),
        )
        .unwrap()
    }
}

async fn assert_problem(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    body
}

#[tokio::test]
async fn healthz_answers_ok() {
    let app = TestApp::embedded().await;
    let resp = app.get("/healthz", None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"status": "ok"}));
}

#[tokio::test]
async fn readyz_says_embedded_mode_when_no_services_are_configured() {
    let app = TestApp::embedded().await;
    let resp = app.get_json("/readyz", "").await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.body,
        json!({"status": "ok", "storage": "memory", "bus": "memory",
               "checks": {"database": "memory", "nats": "memory"}})
    );
}

#[tokio::test]
async fn readyz_checks_real_postgres_and_nats() {
    let nats = std::env::var("STROM_TEST_NATS_URL").unwrap_or("nats://127.0.0.1:4222".into());
    let app = TestApp::try_spawn_with(|c| c.nats_url = Some(nats), Some(TestSchema::new().await))
        .await
        .expect("server builds");
    let resp = app.get_json("/readyz", "").await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.body,
        json!({"status": "ok", "storage": "postgres", "bus": "nats",
               "checks": {"database": "ok", "nats": "ok"}})
    );
}

#[tokio::test]
async fn serve_refuses_to_start_when_postgres_does_not_answer() {
    // Port 1 on loopback has no Postgres: the startup schema check must fail with a clear message, not hang.
    let result = TestApp::try_spawn_with(
        |c| c.database_url = Some("postgres://postgres@127.0.0.1:1/none".into()),
        None,
    )
    .await;
    let err = format!("{:#}", result.err().expect("build fails"));
    assert!(err.contains("STROM_DATABASE_URL"), "{err}");
}

#[tokio::test]
async fn serve_refuses_to_start_with_pending_migrations_unless_asked_to_apply_them() {
    let schema = TestSchema::new().await;
    let name = schema.name().to_owned();
    let result = TestApp::try_spawn_with(
        |c| {
            c.database_url = Some(support::database_url());
            c.database_schema = Some(name);
        },
        None,
    )
    .await;
    let err = format!("{:#}", result.err().expect("build fails"));
    assert!(
        err.contains("pending migration") && err.contains("strom migrate"),
        "{err}"
    );
    // The same schema, migrated at startup.
    let app = TestApp::try_spawn_with(|_| {}, Some(schema))
        .await
        .expect("server builds with --migrate");
    assert_eq!(app.get("/healthz", None).await.status(), 200);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_record_latency_histograms() {
    let app = TestApp::embedded().await;
    app.get("/healthz", None).await;
    app.get("/api/v1/me", None).await;
    let text = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total{")
            && l.contains(r#"route="/healthz""#)
            && l.contains(r#"status="200""#)),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total{")
            && l.contains(r#"route="/api/v1/me""#)
            && l.contains(r#"status="401""#)),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket{"),
        "{text}"
    );
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = TestApp::embedded().await;
    let resp = app
        .client
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
    let resp = app.get("/healthz", None).await;
    let generated = resp.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");
}

#[tokio::test]
async fn me_returns_the_callers_subject_and_roles() {
    let app = TestApp::embedded().await;
    let token = app.token("alice", &[Role::Trader]);
    let resp = app.get_json("/api/v1/me", &token).await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.body,
        json!({"sub": "alice", "roles": ["trader"], "role": "trader", "auth_mode": "dev", "telegram_links": 0})
    );
}

#[tokio::test]
async fn a_missing_token_is_401_problem_json() {
    let app = TestApp::embedded().await;
    let resp = app.get("/api/v1/me", None).await;
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    assert_problem(resp, 401, "unauthenticated").await;
    let resp = app
        .client
        .get(format!("{}/api/v1/me", app.base))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_problem(resp, 401, "unauthenticated").await;
}

#[tokio::test]
async fn expired_wrongly_signed_and_wrong_audience_tokens_are_401() {
    let app = TestApp::embedded().await;
    let base = json!({"sub": "alice", "roles": ["admin"], "iss": DEV_ISSUER, "aud": DEFAULT_AUDIENCE, "exp": now_s() + 600});
    let mut expired = base.clone();
    expired["exp"] = json!(now_s() - 3600);
    let body = assert_problem(
        app.get("/api/v1/me", Some(&app.raw_token(expired))).await,
        401,
        "unauthenticated",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("expired"),
        "{body}"
    );

    let mut wrong_aud = base.clone();
    wrong_aud["aud"] = json!("someone-else");
    let body = assert_problem(
        app.get("/api/v1/me", Some(&app.raw_token(wrong_aud))).await,
        401,
        "unauthenticated",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("audience"),
        "{body}"
    );

    let mut wrong_iss = base.clone();
    wrong_iss["iss"] = json!("evil");
    assert_problem(
        app.get("/api/v1/me", Some(&app.raw_token(wrong_iss))).await,
        401,
        "unauthenticated",
    )
    .await;

    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &base,
        &EncodingKey::from_secret(&[9u8; 32]),
    )
    .unwrap();
    let body = assert_problem(
        app.get("/api/v1/me", Some(&forged)).await,
        401,
        "unauthenticated",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("signature"),
        "{body}"
    );

    assert_problem(
        app.get("/api/v1/me", Some("not.a.jwt")).await,
        401,
        "unauthenticated",
    )
    .await;
    // Sanity: the same claims, properly signed, pass.
    assert_eq!(
        app.get("/api/v1/me", Some(&app.raw_token(base)))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_token_without_a_strom_role_is_403() {
    let app = TestApp::embedded().await;
    let token = app.raw_token(json!({"sub": "mallory", "roles": ["offline_access"], "iss": DEV_ISSUER, "aud": DEFAULT_AUDIENCE, "exp": now_s() + 600}));
    assert_problem(app.get("/api/v1/me", Some(&token)).await, 403, "forbidden").await;
}

#[tokio::test]
async fn unknown_routes_are_404_problem_json() {
    let app = TestApp::embedded().await;
    assert_problem(app.get("/api/v1/nope", None).await, 404, "not_found").await;
}

#[tokio::test]
async fn rs256_tokens_are_verified_against_the_jwks_url() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/http/fixtures");
    let jwks: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("jwks.json")).unwrap())
            .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/certs", listener.local_addr().unwrap());
    let idp = axum::Router::new().route(
        "/certs",
        axum::routing::get(move || async move { axum::Json(jwks) }),
    );
    let idp = tokio::spawn(async move { axum::serve(listener, idp).await });

    let issuer = "http://keycloak:8080/realms/strom";
    let app = TestApp::spawn_with(|c| {
        c.auth = AuthSettings {
            mode: AuthMode::Jwks { url: jwks_url },
            audience: DEFAULT_AUDIENCE.into(),
            issuer: Some(issuer.into()),
            session_key_file: c.auth.session_key_file.clone(),
        }
    })
    .await;
    let key =
        EncodingKey::from_rsa_pem(&std::fs::read(fixtures.join("rs256-test.key.pem")).unwrap())
            .unwrap();
    let sign = |kid: &str, claims: &Value| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    };
    let claims = json!({"sub": "kc-user", "iss": issuer, "aud": DEFAULT_AUDIENCE, "exp": now_s() + 600,
        "realm_access": {"roles": ["viewer", "default-roles-strom"]}});
    let resp = app
        .get("/api/v1/me", Some(&sign("strom-test-1", &claims)))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"sub": "kc-user", "roles": ["viewer"], "role": "viewer", "auth_mode": "keycloak", "telegram_links": 0})
    );

    assert_problem(
        app.get("/api/v1/me", Some(&sign("unknown-kid", &claims)))
            .await,
        401,
        "unauthenticated",
    )
    .await;
    // An HS256 token (e.g. a dev token) must not pass in JWKS mode.
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&[1u8; 32]),
    )
    .unwrap();
    assert_problem(
        app.get("/api/v1/me", Some(&hs)).await,
        401,
        "unauthenticated",
    )
    .await;
    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = json!("account");
    assert_problem(
        app.get("/api/v1/me", Some(&sign("strom-test-1", &wrong_aud)))
            .await,
        401,
        "unauthenticated",
    )
    .await;
    idp.abort();
}

#[tokio::test]
async fn the_server_stops_cleanly_when_asked() {
    let app = TestApp::embedded().await;
    assert_eq!(app.get("/healthz", None).await.status(), 200);
    app.shutdown().await.expect("clean shutdown");
}
