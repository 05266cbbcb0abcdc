//! Shared helpers for STROM's end-to-end tests: run the real `strom` binary on a free port, with its own Postgres
//! schema and NATS prefix (or embedded), talk to it over HTTP, and clean everything up afterwards; and the
//! deterministic agent scenarios ([`scenario`]) that tests, golden fixtures and the bench record.

pub mod db;
pub mod nats;
pub mod scenario;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

/// How long a spawned server gets to answer `/healthz`: a debug build on a busy 2-core machine starts in well under
/// a second; 30 s means it is broken.
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

pub fn database_url() -> String {
    std::env::var("STROM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn nats_url() -> String {
    std::env::var("STROM_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// The `strom` binary of this build. `cargo test --workspace` (what `make test` runs) builds it alongside the tests.
pub fn strom_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/strom
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join(format!("strom{}", std::env::consts::EXE_SUFFIX)))
        .expect("test binary lives in target/<profile>/deps");
    assert!(
        bin.exists(),
        "{} not found: build it first (cargo build -p strom --bin strom) or run `make test`",
        bin.display()
    );
    bin
}

/// Where a spawned server keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// No database, no NATS: the memory adapters.
    Embedded,
    /// Real Postgres (own schema) and NATS (own prefix).
    Services,
}

/// A running `strom serve` process with its own schema/prefix, killed and cleaned up on drop.
pub struct Server {
    pub base: String,
    pub schema: Option<String>,
    pub prefix: Option<String>,
    dir: PathBuf,
    /// The `STROM_*` settings the process runs with (a restart uses the same).
    env: Vec<(String, String)>,
    child: Option<Child>,
    pub client: reqwest::Client,
    // Dropped after the process is stopped (see `Drop`): the schema and streams outlive every connection to them.
    guards: Option<(db::TestDb, nats::TestNats)>,
}

impl Server {
    /// Starts `strom serve` with `extra_env` on top of the backing's settings, and waits for `/healthz`.
    ///
    /// # Errors
    /// The process exits or does not answer within [`STARTUP_DEADLINE`].
    pub async fn start(backing: Backing, extra_env: &[(&str, &str)]) -> anyhow::Result<Server> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("strom-e2e-{id}"));
        std::fs::create_dir_all(&dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut env: Vec<(String, String)> = vec![
            ("STROM_LISTEN".into(), format!("127.0.0.1:{port}")),
            (
                "STROM_AUTH_DEV_KEY_FILE".into(),
                dir.join("dev.key").display().to_string(),
            ),
            ("STROM_LOG".into(), "info".into()),
        ];
        let guards = if backing == Backing::Services {
            let db = db::TestDb::builder("e2e")
                .without_migrations()
                .try_build()
                .await?;
            let nats = nats::TestNats::new("e2e");
            env.extend([
                ("STROM_DATABASE_URL".into(), db.url().to_owned()),
                ("STROM_DATABASE_SCHEMA".into(), db.schema.clone()),
                ("STROM_NATS_URL".into(), nats.url().to_owned()),
                ("STROM_NATS_PREFIX".into(), nats.prefix().to_owned()),
            ]);
            let migrated = Command::new(strom_bin())
                .arg("migrate")
                .env("STROM_DATABASE_URL", db.url())
                .env("STROM_DATABASE_SCHEMA", &db.schema)
                .output()
                .context("Failed to run strom migrate")?;
            if !migrated.status.success() {
                bail!(
                    "strom migrate failed: {}",
                    String::from_utf8_lossy(&migrated.stderr)
                );
            }
            Some((db, nats))
        } else {
            None
        };
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let mut server = Server {
            base: format!("http://127.0.0.1:{port}"),
            schema: guards.as_ref().map(|(db, _)| db.schema.clone()),
            prefix: guards.as_ref().map(|(_, nats)| nats.prefix().to_owned()),
            dir,
            env,
            child: None,
            client: reqwest::Client::new(),
            guards,
        };
        server.spawn()?;
        server.wait_healthy().await?;
        Ok(server)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new(strom_bin());
        cmd.arg("serve")
            .env_remove("STROM_DATABASE_URL")
            .env_remove("STROM_NATS_URL")
            .env_remove("STROM_VALKEY_URL")
            .env_remove("STROM_AUTH_JWKS_URL")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join("server.log"))?,
            );
        self.child = Some(cmd.spawn().context("Failed to spawn strom serve")?);
        Ok(())
    }

    /// Stops the process (SIGTERM) and starts it again on the same schema, prefix, port and key: every role restarts
    /// from what the store and the bus hold.
    ///
    /// # Errors
    /// The new process does not come up.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.stop(),
            "strom serve did not stop cleanly; log:\n{}",
            self.log()
        );
        self.spawn()?;
        self.wait_healthy().await
    }

    /// The `STROM_*` settings of the process (database, schema, NATS prefix, …), for running other `strom`
    /// commands against the same state.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < STARTUP_DEADLINE {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "strom serve exited with {status} at start-up; log:\n{}",
                    self.log()
                );
            }
            if let Ok(resp) = self
                .client
                .get(format!("{}/healthz", self.base))
                .send()
                .await
            {
                if resp.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "strom serve did not answer /healthz within {STARTUP_DEADLINE:?}; log:\n{}",
            self.log()
        )
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// A dev token signed with this server's key.
    pub fn token(&self, sub: &str, role: &str) -> String {
        let out = Command::new(strom_bin())
            .args(["token", "--sub", sub, "--role", role])
            .env("STROM_AUTH_DEV_KEY_FILE", self.dir.join("dev.key"))
            .env_remove("STROM_AUTH_JWKS_URL")
            .output()
            .expect("strom token runs");
        assert!(
            out.status.success(),
            "strom token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8 token")
            .trim()
            .to_owned()
    }

    /// Sends a JSON request and returns (status, body as JSON or Null).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Stops the server with SIGTERM and returns whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        drop(self.guards.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `check` until it returns `Some`, or fails after `deadline` with `what` in the message.
///
/// # Panics
/// When the deadline passes.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
