//! `GET /api/v1/openapi.json` and `GET /api/v1/docs`: the committed contract (specs/openapi.yaml, embedded at
//! compile time and converted to JSON once) and a self-contained page that renders it. The page loads nothing
//! from elsewhere (no CDN): its small inline script reads openapi.json from this server.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{Html, IntoResponse};

use crate::problem::ApiError;

/// specs/openapi.yaml as committed.
pub const OPENAPI_YAML: &str = include_str!("../../../specs/openapi.yaml");

static OPENAPI_JSON: LazyLock<Result<String, String>> = LazyLock::new(|| {
    serde_yaml::from_str::<serde_json::Value>(OPENAPI_YAML)
        .map_err(|e| format!("specs/openapi.yaml does not parse: {e}"))
        .and_then(|doc| serde_json::to_string(&doc).map_err(|e| e.to_string()))
});

/// The document as JSON text.
///
/// # Errors
/// The embedded YAML does not parse (a build with a broken spec; the tests catch it first).
pub fn openapi_json() -> Result<&'static str, ApiError> {
    OPENAPI_JSON
        .as_deref()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))
}

/// # Errors
/// As [`openapi_json`].
#[tracing::instrument]
pub async fn openapi() -> Result<impl IntoResponse, ApiError> {
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        openapi_json()?,
    ))
}

#[tracing::instrument]
pub async fn docs() -> Html<&'static str> {
    Html(DOCS_HTML)
}

const DOCS_HTML: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>STROM API</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 60rem; padding: 1rem 1.5rem; color: #1d232b; }
  h1 { margin-bottom: .2rem; } .sub { color: #5b6573; margin-top: 0; }
  details { border: 1px solid #d8dee6; border-radius: 6px; margin: .4rem 0; }
  summary { cursor: pointer; padding: .45rem .7rem; list-style: none; display: flex; gap: .7rem; align-items: baseline; }
  summary code { font-weight: 600; }
  .m { font: 700 12px monospace; padding: .15rem .45rem; border-radius: 4px; color: #fff; min-width: 3.6rem; text-align: center; }
  .GET { background: #2f7d4f; } .POST { background: #2f5f9e; } .PATCH { background: #a0682a; } .DELETE { background: #a33a3a; }
  .body { padding: .2rem 1rem .8rem; border-top: 1px solid #eef1f4; }
  table { border-collapse: collapse; } td, th { text-align: left; padding: .15rem .6rem .15rem 0; vertical-align: top; }
  .muted { color: #5b6573; } pre { background: #f5f7fa; padding: .6rem; overflow: auto; font-size: 13px; }
  h2 { margin-top: 1.6rem; text-transform: capitalize; }
</style>
</head>
<body>
<h1 id="title">STROM API</h1>
<p class="sub" id="subtitle">Loading <a href="openapi.json">openapi.json</a>…</p>
<div id="paths"></div>
<script>
"use strict";
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const kid of kids) e.append(kid);
  return e;
};
const refName = (s) => (s && s.$ref ? s.$ref.split("/").pop() : s && s.type ? [].concat(s.type).join(" | ") : "");
function resolve(doc, node) {
  while (node && node.$ref) node = node.$ref.slice(2).split("/").reduce((o, k) => o[k.replace(/~1/g, "/").replace(/~0/g, "~")], doc);
  return node;
}
function operation(doc, path, method, op, shared) {
  const details = el("details", {}, el("summary", {}, el("span", { class: "m " + method.toUpperCase() }, method.toUpperCase()),
    el("code", {}, path), el("span", { class: "muted" }, op.summary || "")));
  const body = el("div", { class: "body" });
  const params = [...(shared || []), ...(op.parameters || [])].map((p) => resolve(doc, p));
  if (params.length) {
    const t = el("table", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"), el("th", {}, "schema")));
    for (const p of params) t.append(el("tr", {}, el("td", {}, el("code", {}, p.name)), el("td", {}, p.in), el("td", {}, refName(p.schema))));
    body.append(el("h4", {}, "Parameters"), t);
  }
  if (op.requestBody) {
    const content = op.requestBody.content || {};
    body.append(el("h4", {}, "Request body"), el("p", {}, Object.entries(content).map(([t, c]) => t + ": " + refName(c.schema)).join(", ")));
  }
  const t = el("table", {}, el("tr", {}, el("th", {}, "status"), el("th", {}, "description"), el("th", {}, "body")));
  for (const [status, raw] of Object.entries(op.responses || {})) {
    const r = resolve(doc, raw);
    const content = Object.entries(r.content || {}).map(([t, c]) => t + " " + refName(c.schema)).join(", ");
    t.append(el("tr", {}, el("td", {}, status), el("td", {}, r.description || ""), el("td", {}, content)));
  }
  body.append(el("h4", {}, "Responses"), t);
  details.append(body);
  return details;
}
fetch("openapi.json").then((r) => r.json()).then((doc) => {
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  document.getElementById("subtitle").textContent = doc.info.description || "";
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of ["get", "post", "put", "patch", "delete"]) {
      if (!item[method]) continue;
      const tag = (item[method].tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(doc, path, method, item[method], item.parameters));
    }
  }
  const root = document.getElementById("paths");
  for (const [tag, ops] of byTag) root.append(el("h2", {}, tag), ...ops);
  const schemas = Object.keys((doc.components || {}).schemas || {});
  root.append(el("h2", {}, "schemas"), el("pre", {}, schemas.join("  ")));
}).catch((e) => { document.getElementById("subtitle").textContent = "Could not load openapi.json: " + e; });
</script>
</body>
</html>
"#;
