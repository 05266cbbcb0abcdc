//! The dashboard at `/`: the built app's files from `--ui-dir`, index.html for its pages (SPA routes), the API's
//! problem+json 404s kept under its own paths, and an explanatory page when the app is not built.

use std::path::{Path, PathBuf};

use crate::assert_problem;
use crate::support::TestApp;

const INDEX: &str = "<!doctype html><title>STROM</title><div id=\"root\"></div>";
const SCRIPT: &str = "console.log('strom');";

/// A throwaway ui/dist: index.html, a hashed script and a stylesheet.
struct UiDir(PathBuf);

impl UiDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("strom-ui-{}", uuid::Uuid::new_v4()));
        Self(dir)
    }

    fn built() -> Self {
        let ui = Self::new();
        ui.build();
        ui
    }

    fn build(&self) {
        std::fs::create_dir_all(self.0.join("assets")).unwrap();
        std::fs::write(self.0.join("index.html"), INDEX).unwrap();
        std::fs::write(self.0.join("assets/index-abc123.js"), SCRIPT).unwrap();
        std::fs::write(self.0.join("assets/index-abc123.css"), "body{margin:0}").unwrap();
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for UiDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn serving(ui: &UiDir) -> TestApp {
    let dir = ui.path().to_owned();
    TestApp::spawn_with(|c| c.ui_dir = dir).await
}

async fn assert_index(resp: reqwest::Response) {
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/html");
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert_eq!(resp.text().await.unwrap(), INDEX);
}

#[tokio::test]
async fn the_root_serves_the_dashboards_index_html() {
    let ui = UiDir::built();
    let app = serving(&ui).await;
    assert_index(app.get("/", None).await).await;
}

#[tokio::test]
async fn a_dashboard_page_falls_back_to_index_html() {
    let ui = UiDir::built();
    let app = serving(&ui).await;
    for page in ["/agents", "/agents/abc", "/sign-in", "/apis"] {
        assert_index(app.get(page, None).await).await;
    }
}

#[tokio::test]
async fn an_asset_is_served_with_its_content_type_and_cached_for_good() {
    let ui = UiDir::built();
    let app = serving(&ui).await;
    let resp = app.get("/assets/index-abc123.js", None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/javascript");
    assert_eq!(
        resp.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(resp.text().await.unwrap(), SCRIPT);
    let css = app.get("/assets/index-abc123.css", None).await;
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css");
}

#[tokio::test]
async fn a_missing_file_is_a_404_not_index_html() {
    let ui = UiDir::built();
    let app = serving(&ui).await;
    assert_problem(
        app.get("/assets/index-old.js", None).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn api_paths_keep_their_problem_json_404s() {
    let ui = UiDir::built();
    let app = serving(&ui).await;
    for path in ["/api/v1/nonexistent", "/api", "/healthz/more", "/metrics/x"] {
        assert_problem(app.get(path, None).await, 404, "not_found").await;
    }
    // Only GET and HEAD reach the dashboard.
    let post = app
        .client
        .post(format!("{}/agents", app.base))
        .send()
        .await
        .unwrap();
    assert_problem(post, 404, "not_found").await;
}

#[tokio::test]
async fn without_a_built_dashboard_the_root_says_how_to_build_it() {
    let ui = UiDir::new();
    let app = serving(&ui).await;
    for path in ["/", "/agents/abc"] {
        let resp = app.get(path, None).await;
        assert_eq!(resp.status(), 404);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let page = resp.text().await.unwrap();
        assert!(page.contains("not built"), "{page}");
        assert!(page.contains("make ui"), "{page}");
        assert!(page.contains("npm --prefix ui ci"), "{page}");
        assert!(page.contains(&ui.path().display().to_string()), "{page}");
    }
    assert_problem(app.get("/api/v1/nonexistent", None).await, 404, "not_found").await;
    assert_eq!(app.get("/healthz", None).await.status(), 200);

    // Built while the server runs: the next request gets it, no restart needed.
    ui.build();
    assert_index(app.get("/", None).await).await;
}

mod dev_sign_in {
    use serde_json::{json, Value};
    use strom_api::auth::{AuthMode, AuthSettings, Role, DEFAULT_AUDIENCE};

    use crate::assert_problem;
    use crate::support::TestApp;

    async fn redeem(app: &TestApp, body: Value) -> reqwest::Response {
        app.client
            .post(format!("{}/api/v1/auth/dev-sign-in", app.base))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_code_buys_a_token_of_its_user_and_role_once() {
        let app = TestApp::embedded().await;
        let code = app
            .handles
            .dev_sign_in
            .issue("carol", &[Role::Viewer], chrono::Utc::now());
        let resp = redeem(&app, json!({ "code": code })).await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["expires_in_s"], 3600);
        let me = app.get("/api/v1/me", body["token"].as_str()).await;
        assert_eq!(
            me.json::<Value>().await.unwrap()["role"],
            "viewer",
            "the token carries the code's role, not more"
        );
        assert_problem(
            redeem(&app, json!({ "code": code })).await,
            401,
            "unauthenticated",
        )
        .await;
    }

    #[tokio::test]
    async fn expired_unknown_and_malformed_codes_are_refused() {
        let app = TestApp::embedded().await;
        let stale = app.handles.dev_sign_in.issue(
            "demo",
            &[Role::Trader],
            chrono::Utc::now() - chrono::Duration::minutes(16),
        );
        assert_problem(
            redeem(&app, json!({ "code": stale })).await,
            401,
            "unauthenticated",
        )
        .await;
        assert_problem(
            redeem(&app, json!({ "code": "0".repeat(64) })).await,
            401,
            "unauthenticated",
        )
        .await;
        let resp = redeem(&app, json!({ "token": "x" })).await;
        assert_eq!(resp.status(), 422, "a body without `code`");
    }

    #[tokio::test]
    async fn there_is_no_dev_sign_in_when_an_identity_provider_issues_tokens() {
        let app = TestApp::spawn_with(|c| {
            c.auth = AuthSettings {
                mode: AuthMode::Jwks {
                    url: "http://127.0.0.1:9/certs".into(),
                },
                audience: DEFAULT_AUDIENCE.into(),
                issuer: None,
                session_key_file: c.auth.session_key_file.clone(),
            }
        })
        .await;
        let code = app
            .handles
            .dev_sign_in
            .issue("demo", &[Role::Admin], chrono::Utc::now());
        assert_problem(
            redeem(&app, json!({ "code": code })).await,
            404,
            "not_found",
        )
        .await;
    }
}

/// `GET /api/v1/auth/config` and the pages' Content-Security-Policy in both modes: what the dashboard needs to sign
/// in at an identity provider (the browser round trip itself: ui/e2e/oidc.e2e.ts).
mod sign_in_config {
    use serde_json::{json, Value};
    use strom_api::auth::{AuthMode, AuthSettings, DEFAULT_AUDIENCE};

    use super::{assert_index, UiDir};
    use crate::support::TestApp;

    const ISSUER: &str = "http://127.0.0.1:8180/realms/strom";

    async fn keycloak(ui: &UiDir) -> TestApp {
        let dir = ui.path().to_owned();
        TestApp::spawn_with(|c| {
            c.ui_dir = dir;
            c.dashboard_client_id = "strom-dashboard-test".into();
            c.auth = AuthSettings {
                mode: AuthMode::Jwks {
                    url: "http://127.0.0.1:9/certs".into(),
                },
                audience: DEFAULT_AUDIENCE.into(),
                issuer: Some(ISSUER.into()),
                session_key_file: c.auth.session_key_file.clone(),
            }
        })
        .await
    }

    #[tokio::test]
    async fn dev_mode_says_dev_and_names_no_provider() {
        let ui = UiDir::built();
        let app = super::serving(&ui).await;
        // No token: it is asked before there is one.
        let resp = app.get("/api/v1/auth/config", None).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({"mode": "dev", "oidc": null})
        );
        let page = app.get("/sign-in", None).await;
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!csp.contains("connect-src"), "{csp}");
        assert_index(page).await;
    }

    #[tokio::test]
    async fn jwks_mode_names_the_issuer_and_the_dashboards_client_and_lets_pages_fetch_from_it() {
        let ui = UiDir::built();
        let app = keycloak(&ui).await;
        let resp = app.get("/api/v1/auth/config", None).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({"mode": "keycloak", "oidc": {"issuer": ISSUER, "client_id": "strom-dashboard-test",
                "scope": "openid", "redirect_path": "/sign-in/callback"}})
        );
        // The provider's origin (not its realm path) may be fetched from the pages; nothing else.
        let page = app.get("/sign-in/callback", None).await;
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.ends_with("; connect-src 'self' http://127.0.0.1:8180"),
            "{csp}"
        );
        assert!(csp.contains("default-src 'self'"), "{csp}");
        assert_index(page).await;
    }
}
