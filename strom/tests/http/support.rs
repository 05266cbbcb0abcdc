//! Test support: a real server on port 0 per test (memory or a fresh Postgres schema), HTTP helpers that check
//! every JSON body against specs/openapi.yaml, and a throwaway schema guard.

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde_json::{json, Value};
use strom::startup::{Application, Handles, ServeConfig};
use strom_api::auth::{AuthMode, AuthSettings, DevKey, Role, DEFAULT_AUDIENCE, DEV_ISSUER};
use strom_api::routes::ROUTES;
use strom_tests::db::TestDb;

pub use strom_tests::database_url;

pub fn valkey_url() -> String {
    std::env::var("STROM_TEST_VALKEY_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Which event store a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Postgres,
}

/// A fresh schema (dropped with the guard) for a server that migrates it at startup.
pub struct TestSchema(TestDb);

impl TestSchema {
    pub async fn new() -> Self {
        Self(TestDb::builder("api").without_migrations().build().await)
    }

    pub fn name(&self) -> &str {
        &self.0.schema
    }
}

pub struct TestApp {
    pub base: String,
    pub key_file: PathBuf,
    pub client: reqwest::Client,
    pub handles: Handles,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    // Dropped after the server: the schema outlives every connection to it.
    _schema: Option<TestSchema>,
}

fn dev_auth(key_file: &std::path::Path) -> AuthSettings {
    AuthSettings {
        mode: AuthMode::Dev {
            key_file: key_file.to_owned(),
        },
        audience: DEFAULT_AUDIENCE.into(),
        issuer: Some(DEV_ISSUER.into()),
        session_key_file: key_file.with_extension("session.key"),
    }
}

impl TestApp {
    /// A server built from the embedded config, changed by `configure`.
    pub async fn spawn_with(configure: impl FnOnce(&mut ServeConfig)) -> TestApp {
        Self::try_spawn_with(configure, None)
            .await
            .expect("server builds")
    }

    pub async fn try_spawn_with(
        configure: impl FnOnce(&mut ServeConfig),
        schema: Option<TestSchema>,
    ) -> anyhow::Result<TestApp> {
        let dir = std::env::temp_dir().join(format!("strom-http-{}", uuid::Uuid::new_v4()));
        let key_file = dir.join("dev.key");
        let mut config = ServeConfig::new("127.0.0.1:0", dev_auth(&key_file));
        if let Some(schema) = &schema {
            config.database_url = Some(database_url());
            config.database_schema = Some(schema.name().to_owned());
            config.migrate = true;
        }
        configure(&mut config);
        let app = Application::build(config).await?;
        let base = format!("http://127.0.0.1:{}", app.port());
        let handles = app.handles();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        Ok(TestApp {
            base,
            key_file,
            client: reqwest::Client::new(),
            handles,
            stop: Some(tx),
            server: Some(server),
            _schema: schema,
        })
    }

    pub async fn embedded() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// A server on `backend` (Postgres: a fresh schema, migrated at startup).
    pub async fn on(backend: Backend) -> TestApp {
        let schema = match backend {
            Backend::Memory => None,
            Backend::Postgres => Some(TestSchema::new().await),
        };
        Self::try_spawn_with(|_| {}, schema)
            .await
            .expect("server builds")
    }

    /// The Postgres schema this server runs in (`None` in embedded mode).
    pub fn schema_name(&self) -> Option<&str> {
        self._schema.as_ref().map(TestSchema::name)
    }

    pub fn token(&self, sub: &str, roles: &[Role]) -> String {
        DevKey::load_or_create(&self.key_file)
            .unwrap()
            .mint(sub, roles, now_s(), 600, DEFAULT_AUDIENCE)
            .unwrap()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    /// Sends a request and returns the status and JSON body, after checking the body against the response
    /// schema of the operation in specs/openapi.yaml.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        Response::read(method, path, req.send().await.unwrap()).await
    }

    pub async fn get_json(&self, path: &str, token: &str) -> Response {
        self.call(Method::GET, path, token, None, &[]).await
    }

    pub async fn post_json(&self, path: &str, token: &str, body: Option<Value>) -> Response {
        self.call(Method::POST, path, token, body, &[]).await
    }

    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        self.server.take().unwrap().await.unwrap()
    }

    /// Records tick `tick_no` of session 1 of running agent `id` at `price` (BTC-USD) as the runtime would, with
    /// `fill_model` recorded on any order; returns the id of the order the run placed, if any.
    pub async fn record_run(
        &self,
        id: &str,
        tick_no: u64,
        price: &str,
        fill_model: strom_domain::FillModel,
    ) -> Option<String> {
        use strom_domain::{AgentCommand, AgentEvent};
        let services = &self.handles.commands;
        let (state, _) = services.agents.load(id).await.unwrap();
        let scheduled_at = state.tick_scheduled_at(tick_no).unwrap();
        let ctx =
            strom_commands::service::CommandContext::system("runtime", format!("tick-{tick_no}"));
        let executed = services
            .agents
            .execute(
                id,
                || AgentCommand::RecordRun {
                    session: 1,
                    tick_no,
                    scheduled_at,
                    started_at: scheduled_at,
                    completed_at: scheduled_at,
                    observation: strom_domain::market::Observation {
                        symbol: strom_domain::Symbol::parse("BTC-USD").unwrap(),
                        price: price.parse().unwrap(),
                        observed_at: scheduled_at,
                    },
                    fill_model: fill_model.clone(),
                    correlation_id: format!("tick-{tick_no}"),
                },
                &ctx,
            )
            .await
            .unwrap();
        executed.events.into_iter().find_map(|e| match e {
            AgentEvent::OrderPlaced { order_id, .. } => Some(order_id),
            _ => None,
        })
    }

    /// Polls `GET path` until `done` holds for the body (the read models lag commands by the projector lag).
    pub async fn eventually(
        &self,
        path: &str,
        token: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + READ_MODEL_DEADLINE;
        loop {
            let resp = self.get_json(path, token).await;
            if resp.status == 200 && done(&resp.body) {
                return resp.body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "GET {path} did not reach the expected state within {READ_MODEL_DEADLINE:?}: {} {}",
                resp.status,
                resp.body
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// How long a test waits for the projector to show a command's effect; it takes milliseconds, the rest is slack
/// for a loaded CI machine.
pub const READ_MODEL_DEADLINE: Duration = Duration::from_secs(10);

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some(dir) = self.key_file.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A response whose JSON body was checked against the contract.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Response {
    pub async fn read(method: Method, path: &str, resp: reqwest::Response) -> Response {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| {
                panic!("{method} {path} → {status}: body is not JSON ({e}): {text}")
            })
        };
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if !text.is_empty() {
            contract().check(method.as_str(), path, status, &content_type, &body);
        }
        Response {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json error with this status and code.
    pub fn assert_problem(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["code"], code, "{}", self.body);
        assert_eq!(self.body["status"], status);
        assert!(
            self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{}",
            self.body
        );
        &self.body
    }
}

/// specs/openapi.yaml as JSON.
pub fn openapi_doc() -> &'static Value {
    static DOC: LazyLock<Value> = LazyLock::new(|| {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs/openapi.yaml");
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    });
    &DOC
}

/// Checks response bodies against the operation's response schema in openapi.yaml.
pub struct Contract {
    doc: &'static Value,
}

pub fn contract() -> Contract {
    Contract { doc: openapi_doc() }
}

/// The ROUTES template (`/api/v1/agents/{id}`) that a concrete path (`/api/v1/agents/1b…`) matches.
pub fn template_of(path: &str) -> Option<&'static str> {
    let path = path.split('?').next().unwrap_or(path);
    let parts: Vec<&str> = path.split('/').collect();
    ROUTES.iter().map(|(t, _)| *t).find(|template| {
        let tparts: Vec<&str> = template.split('/').collect();
        tparts.len() == parts.len()
            && tparts
                .iter()
                .zip(&parts)
                .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}')))
    })
}

fn pointer_token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

impl Contract {
    fn resolve(&self, mut node: &'static Value) -> &'static Value {
        while let Some(reference) = node.get("$ref").and_then(Value::as_str) {
            node = self
                .doc
                .pointer(reference.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling $ref {reference}"));
        }
        node
    }

    /// The JSON pointer of the schema documented for (`path` template, `method`, `status`, `media`).
    pub fn schema_pointer(&self, template: &str, method: &str, status: u16, media: &str) -> String {
        let op = format!(
            "/paths/{}/{}",
            pointer_token(template),
            method.to_ascii_lowercase()
        );
        let responses = self
            .doc
            .pointer(&format!("{op}/responses"))
            .unwrap_or_else(|| panic!("{method} {template} is not documented in openapi.yaml"));
        let status_key = status.to_string();
        let response = responses.get(&status_key).unwrap_or_else(|| {
            panic!("{method} {template} answered {status}, which openapi.yaml does not document")
        });
        let (base, response) = match response.get("$ref").and_then(Value::as_str) {
            Some(reference) => (
                reference.trim_start_matches('#').to_owned(),
                self.resolve(response),
            ),
            None => (format!("{op}/responses/{status_key}"), response),
        };
        assert!(
            response["content"].get(media).is_some(),
            "{method} {template} {status}: openapi.yaml documents no `{media}` body (has {})",
            response["content"]
        );
        format!("{base}/content/{}/schema", pointer_token(media))
    }

    /// Validates `body` against the documented schema.
    pub fn check(&self, method: &str, path: &str, status: u16, content_type: &str, body: &Value) {
        let template = template_of(path).unwrap_or_else(|| panic!("{path} matches no route"));
        let media = content_type.split(';').next().unwrap_or_default().trim();
        let pointer = self.schema_pointer(template, method, status, media);
        self.validate_at(&pointer, body).unwrap_or_else(|e| {
            panic!("{method} {path} → {status}: body does not match {pointer}: {e}\n{body}")
        });
    }

    /// Validates `value` against the schema at `pointer` (e.g. `/components/schemas/Agent`).
    pub fn validate_at(&self, pointer: &str, value: &Value) -> Result<(), String> {
        let mut root = self.doc.clone();
        let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
        root["$ref"] = json!(format!("#{fragment}"));
        root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&root)
            .map_err(|e| format!("schema does not compile: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}
