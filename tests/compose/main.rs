//! Checks of the development stack definition (docker-compose.yml and the files it mounts) that need no Docker engine:
//! the compose tool accepts the file, every service reports health, strom waits for all of its dependencies, and the
//! Keycloak realm import carries the realm and roles the API expects.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

/// The services strom needs before it can start; each must be healthy first.
const STROM_DEPENDENCIES: [&str; 5] = ["postgres", "nats", "valkey", "keycloak", "openbao"];

/// Environment every strom container needs to reach the rest of the stack (names fixed in the design contract).
const STROM_ENV: [&str; 7] = [
    "STROM_DATABASE_URL",
    "STROM_NATS_URL",
    "STROM_VALKEY_URL",
    "STROM_AUTH_JWKS_URL",
    "STROM_AUTH_ISSUER",
    "STROM_AUTH_AUDIENCE",
    "STROM_LISTEN",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives inside the repository root")
        .to_path_buf()
}

fn compose_file() -> PathBuf {
    repo_root().join("docker-compose.yml")
}

fn compose() -> Value {
    let path = compose_file();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("Failed to read {}: {e}", path.display()));
    serde_yaml::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
}

fn services(compose: &Value) -> &serde_yaml::Mapping {
    compose
        .get("services")
        .and_then(Value::as_mapping)
        .expect("docker-compose.yml has a `services` mapping")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    services(compose)
        .get(name)
        .unwrap_or_else(|| panic!("docker-compose.yml has no service `{name}`"))
}

#[test]
fn docker_compose_accepts_the_stack_definition() {
    let output = match Command::new("docker-compose")
        .arg("--file")
        .arg(compose_file())
        .args(["config", "-q"])
        .current_dir(repo_root())
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "docker-compose is not installed, so docker-compose.yml cannot be validated: \
             apt-get install docker-compose (or run .ci/run, which installs it)"
        ),
        Err(e) => panic!("Failed to run docker-compose: {e}"),
    };
    assert!(
        output.status.success(),
        "`docker-compose config -q` rejected docker-compose.yml ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

#[test]
fn every_service_has_a_healthcheck() {
    let compose = compose();
    let missing: Vec<&str> = services(&compose)
        .iter()
        .filter(|(_, spec)| {
            let test = spec.get("healthcheck").and_then(|h| h.get("test"));
            test.is_none_or(|t| t.is_null())
        })
        .filter_map(|(name, _)| name.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "services without a healthcheck test: {missing:?}"
    );
}

#[test]
fn strom_waits_for_every_dependency_to_be_healthy() {
    let compose = compose();
    let depends_on = service(&compose, "strom")
        .get("depends_on")
        .and_then(Value::as_mapping)
        .expect("strom has `depends_on` in long form (service: {condition: ...})");
    for dependency in STROM_DEPENDENCIES {
        let condition = depends_on
            .get(dependency)
            .and_then(|d| d.get("condition"))
            .and_then(Value::as_str);
        assert_eq!(
            condition,
            Some("service_healthy"),
            "strom must depend on `{dependency}` with condition service_healthy"
        );
    }
    let others: BTreeSet<&str> = services(&compose)
        .keys()
        .filter_map(Value::as_str)
        .filter(|name| *name != "strom")
        .collect();
    let expected: BTreeSet<&str> = STROM_DEPENDENCIES.into_iter().collect();
    assert_eq!(
        others, expected,
        "a new service must be added to strom's depends_on (and here)"
    );
}

#[test]
fn strom_is_configured_for_the_full_stack() {
    let compose = compose();
    let strom = service(&compose, "strom");
    let environment = strom
        .get("environment")
        .and_then(Value::as_mapping)
        .expect("strom has an `environment` mapping");
    for name in STROM_ENV {
        let value = environment
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert!(!value.is_empty(), "strom's environment lacks {name}");
    }
    let jwks = environment["STROM_AUTH_JWKS_URL"]
        .as_str()
        .unwrap_or_default();
    assert!(
        jwks.ends_with("/realms/strom/protocol/openid-connect/certs"),
        "STROM_AUTH_JWKS_URL must point at the strom realm's certs: {jwks}"
    );
    assert_eq!(
        environment["STROM_AUTH_AUDIENCE"].as_str(),
        Some("strom-api")
    );
    assert!(
        strom.get("build").is_some(),
        "strom is built from the repository's Dockerfile"
    );
}

#[test]
fn keycloak_realm_has_strom_roles_clients_and_demo_user() {
    let path = repo_root().join("deploy/keycloak/strom-realm.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("Failed to read {}: {e}", path.display()));
    let realm: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));

    assert_eq!(realm["realm"], "strom");

    let roles: BTreeSet<&str> = realm["roles"]["realm"]
        .as_array()
        .expect("realm roles are listed under roles.realm")
        .iter()
        .filter_map(|role| role["name"].as_str())
        .collect();
    for role in ["viewer", "trader", "admin"] {
        assert!(
            roles.contains(role),
            "realm role `{role}` is missing: {roles:?}"
        );
    }

    let clients = realm["clients"]
        .as_array()
        .expect("realm lists its clients");
    let client = |id: &str| {
        clients
            .iter()
            .find(|c| c["clientId"] == id)
            .unwrap_or_else(|| panic!("client `{id}` is missing"))
    };
    assert_eq!(client("strom-api")["publicClient"], false);
    let dashboard = client("strom-dashboard");
    assert_eq!(dashboard["publicClient"], true);
    assert_eq!(
        dashboard["attributes"]["pkce.code.challenge.method"],
        "S256"
    );
    let audience_mapped = dashboard["protocolMappers"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|m| {
            m["protocolMapper"] == "oidc-audience-mapper"
                && m["config"]["included.client.audience"] == "strom-api"
        });
    assert!(
        audience_mapped,
        "strom-dashboard tokens must carry aud=strom-api"
    );
    // The dashboard of the compose stack (port 8080, as localhost or 127.0.0.1) signs in there: Keycloak must
    // accept its redirect back to /sign-in/callback and its token request from that origin (CORS).
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let redirects = strings(&dashboard["redirectUris"]);
    let origins = strings(&dashboard["webOrigins"]);
    for origin in ["http://localhost:8080", "http://127.0.0.1:8080"] {
        let callback = format!("{origin}/sign-in/callback");
        assert!(
            redirects
                .iter()
                .any(|r| r == &callback
                    || r.strip_suffix('*').is_some_and(|p| callback.starts_with(p))),
            "strom-dashboard must allow the redirect to {callback}: {redirects:?}"
        );
        assert!(
            origins.iter().any(|o| o == origin),
            "strom-dashboard must allow the origin {origin}: {origins:?}"
        );
    }

    let demo = realm["users"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|u| u["username"] == "demo")
        .expect("demo user is missing");
    let demo_roles = demo["realmRoles"]
        .as_array()
        .expect("demo user has realm roles");
    assert!(
        demo_roles.iter().any(|r| r == "trader"),
        "demo user must be a trader"
    );
}

#[test]
fn openbao_policy_grants_strom_secrets_only() {
    let path = repo_root().join("deploy/openbao/strom-policy.hcl");
    let policy = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("Failed to read {}: {e}", path.display()));
    assert!(
        policy.contains(r#"path "secret/data/strom/*""#),
        "the policy must cover secret/data/strom/*"
    );
    let paths: Vec<&str> = policy
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("path "))
        .collect();
    for line in &paths {
        assert!(
            line.contains("/strom/") || line.contains("auth/token/lookup-self"),
            "policy grants more than STROM's own secrets: {line}"
        );
    }
}
