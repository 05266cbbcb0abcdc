//! The dashboard's files (ui/, built into `ui/dist` by `make ui`) at every GET path the API does not route.
//!
//! A path whose first segment is one of the API's ([`ROUTES`]: `/api/…`, `/healthz`, `/readyz`, `/metrics`) stays
//! the API's, with its problem+json 404. Any other GET is a file of the built app, or — for a path that names no
//! file and looks like a page (`/agents/abc`: no dot in its last segment) — `index.html`, so a reload or a pasted
//! link of a dashboard page opens the app, which routes it. When the app is not built, those paths answer a small
//! page saying how to build it ([`BUILD_HINT`]); the server still runs.

use std::path::Path;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use tower_http::services::{ServeDir, ServeFile};

use super::ROUTES;
use crate::problem::ApiError;
use crate::state::AppState;

/// Where `strom serve` looks for the built dashboard when `--ui-dir` / `STROM_UI_DIR` is unset: `make run` runs it
/// from the repository root, where `make ui` builds into this directory.
pub const DEFAULT_UI_DIR: &str = "ui/dist";

/// How to build the dashboard: the one sentence the startup log and the not-built page both show.
pub const BUILD_HINT: &str =
    "build it with `make ui` (or `npm --prefix ui ci && npm --prefix ui run build`; needs Node.js 20.19+ with npm)";

/// Built assets carry a content hash in their names (Vite), so they never change under one URL.
const ASSETS_PREFIX: &str = "/assets/";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// index.html names the current assets, so a browser asks again each time.
const REVALIDATE: &str = "no-cache";
/// The dashboard loads only its own files and talks only to this origin (and, in JWKS mode, to the identity
/// provider it signs in at: [`content_security_policy`]): an injected script could neither load nor send the token
/// it keeps in sessionStorage elsewhere. Vite's build has no inline script or style.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; img-src 'self' data:; object-src 'none'; \
    base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// [`CONTENT_SECURITY_POLICY`], plus `connect-src` for the identity provider's origin when there is one (its
/// discovery document and token endpoint are fetched from the page during sign-in).
fn content_security_policy(state: &AppState) -> HeaderValue {
    match super::auth_config::identity_provider_origin(state) {
        Some(origin) => HeaderValue::from_str(&format!(
            "{CONTENT_SECURITY_POLICY}; connect-src 'self' {origin}"
        ))
        .unwrap_or(HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
        None => HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    }
}

/// Whether `dir` holds a built dashboard (its `index.html`).
pub fn is_built(dir: &Path) -> bool {
    dir.join("index.html").is_file()
}

/// The router's fallback: a dashboard file, index.html for a dashboard page, or the API's problem+json 404.
pub async fn fallback(State(state): State<AppState>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    if !matches!(*request.method(), Method::GET | Method::HEAD) || is_api_path(&path) {
        return not_found(&path);
    }
    let dir = &state.settings.ui_dir;
    let index = dir.join("index.html");
    if !tokio::fs::metadata(&index).await.is_ok_and(|m| m.is_file()) {
        return not_built(dir);
    }
    let served = if names_a_file(&path) {
        ServeDir::new(dir).try_call(request).await
    } else {
        ServeDir::new(dir)
            .fallback(ServeFile::new(&index))
            .try_call(request)
            .await
    };
    match served {
        Ok(response) if response.status() == StatusCode::NOT_FOUND => not_found(&path),
        Ok(response) => with_headers(
            &path,
            content_security_policy(&state),
            response.map(axum::body::Body::new),
        ),
        Err(error) => ApiError::Internal(anyhow::Error::new(error).context(format!(
            "Failed to read the dashboard file for {path} from {}",
            dir.display()
        )))
        .into_response(),
    }
}

/// Whether the first segment of `path` is one the API routes (`/api/v1/nope` is the API's, `/apis` is not).
fn is_api_path(path: &str) -> bool {
    let first = |p: &str| {
        p.trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("")
            .to_owned()
    };
    let segment = first(path);
    ROUTES.iter().any(|(route, _)| first(route) == segment)
}

/// A path whose last segment has a dot names a file (`/favicon.svg`, `/assets/index-abc.js`): when it is missing
/// the answer is 404, not index.html, so a stale asset URL fails loudly instead of loading HTML as a script.
fn names_a_file(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'))
}

/// The headers of a dashboard file: how long it may be cached, and what the page may load.
fn with_headers(path: &str, policy: HeaderValue, mut response: Response) -> Response {
    let cache = if path.starts_with(ASSETS_PREFIX) {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn not_found(path: &str) -> Response {
    ApiError::NotFound(format!("no such endpoint: {path}")).into_response()
}

/// The answer in place of the dashboard when `dir` has no index.html: a page a person reads in the browser.
fn not_built(dir: &Path) -> Response {
    let dir = html_escape(&dir.display().to_string());
    let hint = code_spans(&html_escape(BUILD_HINT));
    let page = format!(
        r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>STROM: dashboard not built</title></head>
<body style="font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem">
<h1>The STROM dashboard is not built</h1>
<p>This server looks for it in <code>{dir}</code> (<code>--ui-dir</code> / <code>STROM_UI_DIR</code>), which has no
<code>index.html</code>. To see it here, {hint}, then reload this page.</p>
<p>The API runs meanwhile: <a href="/api/v1/docs">/api/v1/docs</a>.</p>
</body>
</html>
"#
    );
    let mut response = (StatusCode::NOT_FOUND, Html(page)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(REVALIDATE));
    response
}

/// Markdown-style `code` spans as HTML <code> elements (the hint is written once, for the log and the page).
fn code_spans(text: &str) -> String {
    text.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{part}</code>")
            } else {
                part.to_owned()
            }
        })
        .collect()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
