//! Tests of the real `strom` binary as a process: JSON logs with the correlation id on every line of a request,
//! `strom token` output, and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

fn strom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strom"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn serve_logs_json_with_correlation_ids_and_exits_cleanly_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("strom-proc-{}", uuid::Uuid::new_v4()));
    let key_file = dir.join("dev.key");
    let token = strom()
        .args([
            "token",
            "--sub",
            "alice",
            "--role",
            "trader",
            "--dev-key-file",
        ])
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8(token.stdout).unwrap();
    assert_eq!(token.lines().count(), 1, "the token alone on stdout");
    let token = token.trim().to_owned();

    let port = free_port();
    let mut child = strom()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--dev-key-file",
        ])
        .arg(&key_file)
        .env_remove("STROM_DATABASE_URL")
        .env_remove("STROM_NATS_URL")
        .env("STROM_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/v1/me");
    let mut answered = false;
    for _ in 0..100 {
        if let Ok(resp) = client
            .get(&url)
            .bearer_auth(&token)
            .header("x-request-id", "proc-test-1")
            .send()
            .await
        {
            assert_eq!(resp.status(), 200);
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "server did not come up");

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let stderr = child.stderr.take().unwrap();
    let lines: Vec<String> = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .collect();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "exit status {status}; logs:\n{}",
        lines.join("\n")
    );

    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .collect();
    let of_request: Vec<&Value> = parsed
        .iter()
        .filter(|v| v["span"]["correlation_id"] == "proc-test-1")
        .collect();
    assert!(
        !of_request.is_empty(),
        "no log line carries the correlation id:\n{}",
        lines.join("\n")
    );
    assert!(of_request
        .iter()
        .any(|v| v["message"] == "request completed" && v["status"] == 200));
    assert!(parsed.iter().any(|v| v["message"]
        .as_str()
        .is_some_and(|m| m.contains("EMBEDDED MODE"))));
    let _ = std::fs::remove_dir_all(dir);
}

/// JWKS mode needs the issuer: tokens' `iss` is checked against it and the dashboard signs in there.
#[test]
fn serve_refuses_jwks_mode_without_an_issuer() {
    let out = strom()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--jwks-url",
            "http://127.0.0.1:9/certs",
        ])
        .env_remove("STROM_AUTH_ISSUER")
        .env_remove("STROM_DATABASE_URL")
        .env_remove("STROM_NATS_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("STROM_AUTH_ISSUER (--issuer) is required with STROM_AUTH_JWKS_URL"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "no Dashboard line for a server that did not start"
    );
}

#[test]
fn token_rejects_an_unknown_role_with_a_clear_message() {
    let out = strom()
        .args(["token", "--sub", "a", "--role", "god"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role `god`"));
    assert!(out.stdout.is_empty());
}

#[test]
fn a_config_file_supplies_settings_and_the_environment_wins_over_it() {
    let dir = std::env::temp_dir().join(format!("strom-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let from_file = dir.join("from-file.key");
    let from_env = dir.join("from-env.key");
    let config = dir.join("strom.env");
    std::fs::write(
        &config,
        format!("STROM_AUTH_DEV_KEY_FILE={}\n", from_file.display()),
    )
    .unwrap();

    let out = strom()
        .arg("--env-file")
        .arg(&config)
        .args(["token", "--sub", "a", "--role", "viewer"])
        .env_remove("STROM_AUTH_DEV_KEY_FILE")
        .env_remove("STROM_AUTH_JWKS_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        from_file.exists(),
        "the dev key went where the config file said"
    );

    let out = strom()
        .args(["token", "--sub", "a", "--role", "viewer"])
        .env("STROM_CONFIG", &config)
        .env("STROM_AUTH_DEV_KEY_FILE", &from_env)
        .env_remove("STROM_AUTH_JWKS_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(from_env.exists(), "the environment wins over the file");

    let out = strom()
        .args([
            "--env-file",
            "/nonexistent/strom.env",
            "token",
            "--sub",
            "a",
            "--role",
            "viewer",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/strom.env"));
    let _ = std::fs::remove_dir_all(dir);
}

/// `strom serve` in dev mode prints a one-time link to the dashboard on stdout; its code signs the dev user `demo` in
/// once (the token it buys works on the API), and a second use is refused.
#[tokio::test]
async fn serve_prints_a_one_time_sign_in_link_that_works_once() {
    let dir = std::env::temp_dir().join(format!("strom-proc-{}", uuid::Uuid::new_v4()));
    let port = free_port();
    let mut child = strom()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--dev-key-file",
        ])
        .arg(dir.join("dev.key"))
        .env_remove("STROM_DATABASE_URL")
        .env_remove("STROM_NATS_URL")
        .stderr(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (found, link) = std::sync::mpsc::channel();
    // Reads stdout to its end (the server may write more after the link), handing on the link line.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(link) = line.strip_prefix("Dashboard: ") {
                let _ = found.send(link.to_owned());
            }
        }
    });
    let link = tokio::task::spawn_blocking(move || link.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap()
        .expect("a `Dashboard: <link>` line on stdout");
    let prefix = format!("http://127.0.0.1:{port}/sign-in#code=");
    let code = link
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{link} does not start with {prefix}"))
        .to_owned();
    assert_eq!(code.len(), 64, "32 random bytes, hex");

    let client = reqwest::Client::new();
    let redeem = || {
        client
            .post(format!("http://127.0.0.1:{port}/api/v1/auth/dev-sign-in"))
            .json(&serde_json::json!({ "code": code }))
            .send()
    };
    let mut first = None;
    for _ in 0..100 {
        if let Ok(resp) = redeem().await {
            first = Some(resp);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = first.expect("server did not come up");
    assert_eq!(first.status(), 200);
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["sub"], "demo");
    assert_eq!(body["roles"], serde_json::json!(["trader"]));
    let me = client
        .get(format!("http://127.0.0.1:{port}/api/v1/me"))
        .bearer_auth(body["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(me.json::<Value>().await.unwrap()["sub"], "demo");
    let again = redeem().await.unwrap();
    assert_eq!(again.status(), 401, "a link signs in once");

    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
}
