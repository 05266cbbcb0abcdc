//! The served contract equals the committed one, and the router and specs/openapi.yaml agree on every endpoint.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;
use strom_api::routes::{is_planned, ROUTES};

use crate::support::{contract, openapi_doc, Response, TestApp};

/// `METHOD /path` of every operation in specs/openapi.yaml whose object satisfies `keep`.
fn documented_where(keep: impl Fn(&Value) -> bool) -> BTreeSet<String> {
    let paths = openapi_doc()["paths"].as_object().unwrap();
    paths
        .iter()
        .flat_map(|(path, item)| {
            ["get", "post", "put", "patch", "delete"]
                .into_iter()
                .filter(|m| item.get(*m).is_some_and(&keep))
                .map(move |m| format!("{} {path}", m.to_ascii_uppercase()))
        })
        .collect()
}

fn documented() -> BTreeSet<String> {
    documented_where(|_| true)
}

/// The operations marked `x-strom-planned: true` (milestone not built yet).
fn documented_as_planned() -> BTreeSet<String> {
    documented_where(|op| op["x-strom-planned"] == Value::Bool(true))
}

/// The routed endpoints without a handler of their own yet.
fn planned() -> BTreeSet<String> {
    ROUTES
        .iter()
        .flat_map(|(path, methods)| {
            methods
                .iter()
                .filter(|m| is_planned(m, path))
                .map(move |m| format!("{m} {path}"))
        })
        .collect()
}

fn routed() -> BTreeSet<String> {
    ROUTES
        .iter()
        .flat_map(|(path, methods)| methods.iter().map(move |m| format!("{m} {path}")))
        .collect()
}

#[test]
fn every_routed_endpoint_is_documented_in_openapi_yaml() {
    let undocumented: Vec<_> = routed().difference(&documented()).cloned().collect();
    assert!(
        undocumented.is_empty(),
        "routed but not in specs/openapi.yaml: {undocumented:?}"
    );
}

#[test]
fn every_documented_endpoint_is_routed() {
    let missing: Vec<_> = documented().difference(&routed()).cloned().collect();
    assert!(missing.is_empty(), "documented but not routed: {missing:?}");
}

#[test]
fn the_planned_endpoints_are_the_ones_openapi_yaml_marks_planned() {
    let planned = planned();
    let documented = documented_as_planned();
    assert_eq!(
        planned, documented,
        "the routes without a handler of their own (routes::is_planned) and the operations with \
         `x-strom-planned: true` in specs/openapi.yaml differ"
    );
    for endpoint in &planned {
        let (method, path) = endpoint.split_once(' ').unwrap();
        let op = &openapi_doc()["paths"][path][method.to_ascii_lowercase()];
        for status in ["401", "501"] {
            assert!(
                op["responses"].get(status).is_some(),
                "{endpoint} is planned but does not document {status}"
            );
        }
    }
}

/// The handler every planned endpoint gets, checked on a route of its own: the assertion below covers the planned
/// endpoints of [`ROUTES`], and holds even while none is planned.
#[tokio::test]
async fn the_planned_handler_authenticates_then_answers_501_not_implemented() {
    use std::sync::Arc;
    use strom_api::auth::{AuthMode, AuthSettings, Authenticator, DEFAULT_AUDIENCE, DEV_ISSUER};

    let app = TestApp::embedded().await;
    let auth = Arc::new(
        Authenticator::new(AuthSettings {
            mode: AuthMode::Dev {
                key_file: app.key_file.clone(),
            },
            audience: DEFAULT_AUDIENCE.into(),
            issuer: Some(DEV_ISSUER.into()),
            session_key_file: app.key_file.with_extension("session.key"),
        })
        .unwrap(),
    );
    let router = axum::Router::new()
        .route(
            "/planned",
            axum::routing::post(strom_api::routes::planned::not_implemented),
        )
        .with_state(auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/planned", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = reqwest::Client::new();
    let anonymous = client.post(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let token = app.token("alice", &[strom_api::auth::Role::Viewer]);
    let with_token = client.post(&url).bearer_auth(token).send().await.unwrap();
    assert_eq!(with_token.status(), 501);
    let body: Value = with_token.json().await.unwrap();
    assert_eq!(body["code"], "not_implemented");
}

#[tokio::test]
async fn a_planned_endpoint_authenticates_then_answers_501_not_implemented() {
    let app = TestApp::embedded().await;
    let token = app.token("alice", &[strom_api::auth::Role::Viewer]);
    let client = reqwest::Client::new();
    for endpoint in planned() {
        let (method, template) = endpoint.split_once(' ').unwrap();
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        // Any value fits the path parameters: the handler looks at nothing but the token.
        let path = template
            .replace("{id}", "d3e00000-0000-4000-8000-000000000001")
            .replace("{chat_id}", "42");
        let url = format!("{}{path}", app.base);
        let anonymous = client.request(method.clone(), &url).send().await.unwrap();
        Response::read(method.clone(), &path, anonymous)
            .await
            .assert_problem(401, "unauthenticated");
        app.call(method, &path, &token, None, &[])
            .await
            .assert_problem(501, "not_implemented");
    }
}

#[test]
fn every_schema_in_openapi_yaml_compiles() {
    let schemas = openapi_doc()["components"]["schemas"].as_object().unwrap();
    for name in schemas.keys() {
        // Validating null compiles the schema; the result itself does not matter here.
        let result = contract().validate_at(&format!("/components/schemas/{name}"), &Value::Null);
        if let Err(e) = result {
            assert!(!e.contains("does not compile"), "{name}: {e}");
        }
    }
}

#[tokio::test]
async fn the_served_openapi_json_is_the_committed_yaml() {
    let app = TestApp::embedded().await;
    let resp = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let served: Value = resp.json().await.unwrap();
    assert_eq!(&served, openapi_doc());
}

#[tokio::test]
async fn the_docs_page_is_self_contained_html() {
    let app = TestApp::embedded().await;
    let resp = app.get("/api/v1/docs", None).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("openapi.json"),
        "the page renders the served document"
    );
    for external in [
        "src=\"http",
        "href=\"http",
        "src=\"//",
        "href=\"//",
        "@import",
        "cdn",
    ] {
        assert!(!html.contains(external), "the page loads `{external}`");
    }
}
