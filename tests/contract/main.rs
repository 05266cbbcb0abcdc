//! The HTTP contract, checked from outside: schemathesis fuzzes the OpenAPI document a real `strom serve` serves
//! (= specs/openapi.yaml) with all of its checks — no 5xx, every status and body as documented, schema-valid
//! requests accepted, schema-violating ones refused, 401 without a token, ... — over every built operation.
//!
//! - schemathesis and its dependencies are pinned in `requirements.txt` and installed into
//!   `<target>/tools/schemathesis` by scripts/ensure-tools.sh (`make test` runs it; so does .ci/run).
//! - `schemathesis.toml` fixes the seed, the examples per operation and the skipped planned operations, so every
//!   run sends the same requests; `hooks.py` states the two request rules JSON Schema cannot (one Idempotency-Key
//!   per request body; an SMA's slow window longer than its fast one) and lets through the two documented answers
//!   schemathesis cannot tell from a fault (specs/04 §3: 422 for symbol or starting_cash after the first start;
//!   specs/03 §3: 503 while the projection has not caught up with an agent just created).
//! - One server on the embedded adapters and one on Postgres + NATS (own schema and prefix) are fuzzed at once;
//!   everything the run writes lives in a throw-away directory, removed with the servers afterwards.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use strom_tests::{Backing, Server};

/// Bound on one schemathesis run: it takes under a minute on a busy two-core machine; ten means it hangs.
const FUZZ_DEADLINE: Duration = Duration::from_secs(600);

fn contract_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contract")
}

fn openapi() -> serde_yaml::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/openapi.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("Failed to read {}: {e}", path.display()));
    serde_yaml::from_str(&text).expect("specs/openapi.yaml is YAML")
}

/// Where schemathesis loads the document from. It leaves that operation out of the run (api/tests/http/openapi.rs
/// checks it: the served document is the committed one).
const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// (all operations, the built ones: not marked `x-strom-planned: true`) of specs/openapi.yaml that schemathesis
/// takes up, i.e. all but [`OPENAPI_PATH`].
fn operations() -> (BTreeSet<String>, BTreeSet<String>) {
    let doc = openapi();
    let mut all = BTreeSet::new();
    let mut built = BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().expect("paths") {
        if path.as_str() == Some(OPENAPI_PATH) {
            continue;
        }
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(op) = item.get(method) else { continue };
            let name = format!(
                "{} {}",
                method.to_ascii_uppercase(),
                path.as_str().expect("path")
            );
            if op.get("x-strom-planned") != Some(&serde_yaml::Value::Bool(true)) {
                built.insert(name.clone());
            }
            all.insert(name);
        }
    }
    (all, built)
}

/// The schemathesis scripts/ensure-tools.sh installs (`<target>/tools/schemathesis`), or `STROM_SCHEMATHESIS`;
/// either must be the version requirements.txt pins.
fn schemathesis() -> PathBuf {
    let bin = std::env::var_os("STROM_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // target/<profile>/deps/<test>-<hash> → target/tools/schemathesis/bin/schemathesis
            let exe = std::env::current_exe().expect("test binary path");
            let target = exe
                .ancestors()
                .nth(3)
                .expect("test binary lives in target/<profile>/deps");
            target.join("tools/schemathesis/bin/schemathesis")
        });
    let requirements = std::fs::read_to_string(contract_dir().join("requirements.txt"))
        .expect("tests/contract/requirements.txt");
    let pinned = requirements
        .lines()
        .find_map(|line| line.trim().strip_prefix("schemathesis=="))
        .expect("requirements.txt pins schemathesis");
    let version = Command::new(&bin).arg("--version").output();
    let version = match version {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => panic!(
            "schemathesis is not installed at {}: run scripts/ensure-tools.sh (make test does), which installs the \
             version tests/contract/requirements.txt pins",
            bin.display()
        ),
    };
    assert!(
        version.ends_with(&format!("version {pinned}")),
        "{} is `{version}`, not the pinned {pinned}: run scripts/ensure-tools.sh",
        bin.display()
    );
    bin
}

/// A directory of its own for one schemathesis run (it writes `.hypothesis/` and `.schemathesis/` into its working
/// directory); removed on drop, with the process killed if it still runs.
struct Run {
    dir: PathBuf,
    child: Option<Child>,
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs schemathesis against `base` with `token`; returns whether it passed and its report.
fn fuzz(schemathesis: &Path, base: &str, token: &str) -> (bool, String) {
    let dir =
        std::env::temp_dir().join(format!("strom-contract-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut run = Run { dir, child: None };
    let report = run.dir.join("report.txt");
    let out = File::create(&report).expect("report file");
    let child = Command::new(schemathesis)
        .current_dir(&run.dir)
        .env("SCHEMATHESIS_HOOKS", contract_dir().join("hooks.py"))
        .env("COLUMNS", "120")
        .arg("--config-file")
        .arg(contract_dir().join("schemathesis.toml"))
        .args(["run", "--checks", "all", "--no-color"])
        .arg(format!("{base}{OPENAPI_PATH}"))
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"))
        .stdout(out.try_clone().expect("report file"))
        .stderr(out)
        .spawn()
        .expect("schemathesis runs");
    run.child = Some(child);
    let status = wait(run.child.as_mut().expect("child"));
    run.child = None;
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    match status {
        Some(status) => (status.success(), text),
        None => (
            false,
            format!("schemathesis did not finish within {FUZZ_DEADLINE:?}; report so far:\n{text}"),
        ),
    }
}

/// The exit status, or `None` (process killed) after [`FUZZ_DEADLINE`].
fn wait(child: &mut Child) -> Option<ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < FUZZ_DEADLINE {
        if let Some(status) = child.try_wait().expect("wait for schemathesis") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_failure_in_any_built_operation() {
    let schemathesis = schemathesis();
    let (all, built) = operations();
    let embedded = Server::start(Backing::Embedded, &[])
        .await
        .expect("embedded server starts");
    let services = Server::start(Backing::Services, &[])
        .await
        .expect("server on Postgres + NATS starts");
    let runs: Vec<_> = [("embedded", &embedded), ("Postgres + NATS", &services)]
        .into_iter()
        .map(|(name, server)| {
            let (schemathesis, base) = (schemathesis.clone(), server.base.clone());
            let token = server.token("fuzz", "trader");
            (
                name,
                tokio::task::spawn_blocking(move || fuzz(&schemathesis, &base, &token)),
            )
        })
        .collect();
    let mut failed = Vec::new();
    for (name, run) in runs {
        let (passed, report) = run.await.expect("fuzz thread");
        // Guards against a vacuous pass: every built operation was fuzzed, and only those.
        let selected = format!("Selected: {}/{}", built.len(), all.len());
        let tested = format!("Tested: {}", built.len());
        if !passed || !report.contains(&selected) || !report.contains(&tested) {
            failed.push(format!(
                "=== schemathesis against the {name} server (expected `{selected}`, `{tested}`):\n{report}"
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "the served OpenAPI contract has failures:\n{}\n--- embedded server, warnings and errors:\n{}\n--- \
         Postgres + NATS server, warnings and errors:\n{}",
        failed.join("\n"),
        problems(&embedded.log()),
        problems(&services.log()),
    );
}

/// The server's WARN and ERROR lines (the last 40), which explain a 5xx next to schemathesis's report.
fn problems(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(r#""level":"ERROR""#) || line.contains(r#""level":"WARN""#))
        .collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
