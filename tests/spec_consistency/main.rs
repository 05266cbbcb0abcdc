//! Spec consistency (Gate G0): fails when specs/01–06, specs/openapi.yaml, specs/events/ and migrations/ drift apart.
//!
//! The parse conventions it relies on are listed in specs/README.md; each check names what drifted.

mod domain_events;
mod markdown;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use markdown::{catalogue, endpoints, state_machine_events, table_headings};

/// The spec files every other spec must link to (Gate G0: "specs reference each other coherently").
const SPEC_FILES: [&str; 6] = [
    "01-architecture.md",
    "02-data-model.md",
    "03-apis.md",
    "04-events.md",
    "05-security.md",
    "06-backtesting.md",
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn specs_dir() -> PathBuf {
    repo_root().join("specs")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

fn events_md() -> String {
    read(&specs_dir().join("04-events.md"))
}

/// File names in `dir` ending in `suffix`, sorted.
fn files_ending(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(suffix))
        .collect();
    names.sort();
    names
}

fn fail_if_any(problems: &[String], what: &str) {
    assert!(
        problems.is_empty(),
        "{what}:\n  - {}",
        problems.join("\n  - ")
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 01–06: presence and cross-references

#[test]
fn every_spec_exists_and_links_to_every_other_spec() {
    let mut problems = Vec::new();
    for file in SPEC_FILES {
        let text = read(&specs_dir().join(file));
        for other in SPEC_FILES.iter().filter(|other| **other != file) {
            if !text.contains(&format!("]({other}")) {
                problems.push(format!("specs/{file} has no markdown link to {other}"));
            }
        }
    }
    fail_if_any(&problems, "spec files do not cross-reference each other");
}

#[test]
fn every_relative_link_in_the_specs_points_to_an_existing_file() {
    let link = regex::Regex::new(r"\]\(([^)#:\s]+)(#[^)]*)?\)").expect("valid regex");
    let mut problems = Vec::new();
    for file in SPEC_FILES.iter().copied().chain(["README.md"]) {
        for cap in link.captures_iter(&read(&specs_dir().join(file))) {
            let target = &cap[1];
            if !specs_dir().join(target).exists() {
                problems.push(format!("specs/{file} links to missing `{target}`"));
            }
        }
    }
    fail_if_any(&problems, "broken links in specs/");
}

// ---------------------------------------------------------------------------------------------------------------
// 04: events, schemas, examples

#[test]
fn every_event_in_a_state_machine_is_in_the_catalogue() {
    let md = events_md();
    let catalogued: BTreeSet<String> = catalogue(&md).into_iter().map(|entry| entry.ty).collect();
    let used = state_machine_events(&md);
    assert!(
        !used.is_empty(),
        "specs/04-events.md: found no state-machine table with an `event` column"
    );
    let problems: Vec<String> = used
        .iter()
        .filter(|(ty, _)| !catalogued.contains(ty))
        .map(|(ty, line)| {
            format!("04-events.md line {line}: event `{ty}` has no row in the catalogue")
        })
        .collect();
    fail_if_any(
        &problems,
        "events named in state machines but not catalogued",
    );
}

#[test]
fn every_catalogued_type_has_a_schema_and_an_example() {
    let md = events_md();
    let entries = catalogue(&md);
    assert!(
        entries.len() >= 3,
        "specs/04-events.md: catalogue tables (`| type | version |`) not found"
    );
    let dir = specs_dir().join("events");
    let mut problems = Vec::new();
    for entry in &entries {
        let schema = entry.schema_file();
        if !entry.row.contains(&schema) {
            problems.push(format!(
                "04-events.md line {}: row for {} does not name `{schema}`",
                entry.line,
                entry.key()
            ));
        }
        if !dir.join(&schema).is_file() {
            problems.push(format!(
                "{} (04-events.md line {}): missing specs/events/{schema}",
                entry.key(),
                entry.line
            ));
        }
        if !dir.join("examples").join(entry.example_file()).is_file() {
            let example = entry.example_file();
            problems.push(format!(
                "{}: missing specs/events/examples/{example}",
                entry.key()
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for entry in &entries {
        if !seen.insert(entry.key()) {
            problems.push(format!(
                "{} is catalogued twice (line {})",
                entry.key(),
                entry.line
            ));
        }
    }
    fail_if_any(&problems, "catalogue entries without schema/example");
}

#[test]
fn every_schema_and_example_file_is_catalogued_in_04() {
    let md = events_md();
    let catalogued: BTreeSet<String> = catalogue(&md)
        .iter()
        .map(|entry| entry.schema_file())
        .collect();
    let dir = specs_dir().join("events");
    let mut problems = Vec::new();
    for file in files_ending(&dir, ".schema.json") {
        if !catalogued.contains(&file) {
            problems.push(format!(
                "specs/events/{file} has no catalogue row in 04-events.md"
            ));
        }
        if !md.contains(&file) {
            problems.push(format!(
                "specs/events/{file} is not mentioned in 04-events.md"
            ));
        }
    }
    for file in files_ending(&dir.join("examples"), ".json") {
        let schema = file.replace(".json", ".schema.json");
        if !catalogued.contains(&schema) {
            problems.push(format!(
                "specs/events/examples/{file} has no catalogued schema {schema}"
            ));
        }
    }
    fail_if_any(&problems, "schema/example files not in the 04 catalogue");
}

#[test]
fn every_schema_compiles_and_its_example_validates() {
    let md = events_md();
    let dir = specs_dir().join("events");
    let mut problems = Vec::new();
    for entry in catalogue(&md) {
        let (schema_path, example_path) = (
            dir.join(entry.schema_file()),
            dir.join("examples").join(entry.example_file()),
        );
        if !schema_path.is_file() || !example_path.is_file() {
            continue; // reported by every_catalogued_type_has_a_schema_and_an_example
        }
        let schema = read_json(&schema_path);
        let example = read_json(&example_path);
        if schema["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
            problems.push(format!(
                "{}: `$schema` is not draft 2020-12",
                entry.schema_file()
            ));
        }
        let validator = match jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&schema)
        {
            Ok(validator) => validator,
            Err(e) => {
                problems.push(format!("{} does not compile: {e}", entry.schema_file()));
                continue;
            }
        };
        for error in validator.iter_errors(&example) {
            problems.push(format!(
                "example {} fails its schema at {}: {error}",
                entry.example_file(),
                error.instance_path
            ));
        }
        if entry.tagged {
            problems.extend(check_externally_tagged(
                &entry.ty, &schema, &example, &validator,
            ));
        }
    }
    fail_if_any(&problems, "event schemas and examples disagree");
}

/// Aggregate events are stored as serde's externally tagged form: exactly one key, the event type.
fn check_externally_tagged(
    ty: &str,
    schema: &serde_json::Value,
    example: &serde_json::Value,
    validator: &jsonschema::Validator,
) -> Vec<String> {
    let mut problems = Vec::new();
    if schema["required"] != serde_json::json!([ty]) {
        problems.push(format!(
            "{ty}: schema must require exactly the tag key \"{ty}\""
        ));
    }
    let keys: Vec<&String> = example
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    if keys != [ty] {
        problems.push(format!(
            "{ty}: example must be {{\"{ty}\": {{...}}}}, has keys {keys:?}"
        ));
    }
    let mut wrong_tag = serde_json::Map::new();
    wrong_tag.insert(format!("{ty}X"), example[ty].clone());
    if validator.is_valid(&serde_json::Value::Object(wrong_tag)) {
        problems.push(format!(
            "{ty}: schema accepts a payload with a wrong tag (additionalProperties?)"
        ));
    }
    problems
}

// ---------------------------------------------------------------------------------------------------------------
// 03 ↔ openapi.yaml

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

fn openapi() -> serde_yaml::Value {
    let path = specs_dir().join("openapi.yaml");
    serde_yaml::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("specs/openapi.yaml is not valid YAML: {e}"))
}

fn openapi_endpoints(doc: &serde_yaml::Value) -> BTreeSet<String> {
    let paths = doc["paths"].as_mapping().expect("openapi.yaml has `paths`");
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        let path = path.as_str().expect("path keys are strings");
        for method in item
            .as_mapping()
            .into_iter()
            .flatten()
            .filter_map(|(k, _)| k.as_str())
        {
            if HTTP_METHODS.contains(&method) {
                out.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    out
}

#[test]
fn endpoints_in_03_and_openapi_are_the_same() {
    let md = read(&specs_dir().join("03-apis.md"));
    let listed = endpoints(&md);
    assert!(
        !listed.is_empty(),
        "specs/03-apis.md: no endpoint rows (`| `METHOD /path` | ...`) found"
    );
    let mut problems = Vec::new();
    let mut in_md = BTreeSet::new();
    for (endpoint, line) in &listed {
        if !in_md.insert(endpoint.clone()) {
            problems.push(format!(
                "03-apis.md line {line}: `{endpoint}` is listed twice"
            ));
        }
    }
    let doc = openapi();
    if !doc["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.1"))
    {
        problems.push("openapi.yaml: `openapi` must be 3.1.x".to_owned());
    }
    let in_yaml = openapi_endpoints(&doc);
    problems.extend(
        in_md
            .difference(&in_yaml)
            .map(|e| format!("`{e}` is in 03-apis.md but not in openapi.yaml")),
    );
    problems.extend(
        in_yaml
            .difference(&in_md)
            .map(|e| format!("`{e}` is in openapi.yaml but not in 03-apis.md")),
    );
    fail_if_any(
        &problems,
        "03-apis.md and openapi.yaml list different endpoints",
    );
}

/// Every `$ref` in openapi.yaml names a component that exists.
#[test]
fn every_openapi_ref_resolves() {
    let doc = openapi();
    let mut refs = BTreeSet::new();
    collect_refs(&doc, &mut refs);
    let problems: Vec<String> = refs
        .iter()
        .filter(|r| resolve(&doc, r).is_none())
        .map(|r| format!("openapi.yaml: `$ref: {r}` does not resolve"))
        .collect();
    fail_if_any(&problems, "dangling $ref in openapi.yaml");
}

/// Every 4xx/5xx response of every operation is application/problem+json.
#[test]
fn every_openapi_error_response_is_problem_json() {
    let doc = openapi();
    let mut problems = Vec::new();
    for (path, item) in doc["paths"].as_mapping().expect("paths") {
        for (method, op) in item.as_mapping().into_iter().flatten() {
            let method = method.as_str().unwrap_or_default();
            if !HTTP_METHODS.contains(&method) {
                continue;
            }
            for (status, response) in op["responses"].as_mapping().into_iter().flatten() {
                let status = yaml_key(status);
                let response = match response["$ref"].as_str() {
                    Some(r) => resolve(&doc, r).cloned().unwrap_or_default(),
                    None => response.clone(),
                };
                let is_error = status.starts_with('4') || status.starts_with('5');
                if is_error && response["content"]["application/problem+json"].is_null() {
                    let path = path.as_str().unwrap_or_default();
                    problems.push(format!(
                        "{} {path} → {status} is not application/problem+json",
                        method.to_uppercase()
                    ));
                }
            }
        }
    }
    fail_if_any(&problems, "error responses that are not problem+json");
}

fn yaml_key(key: &serde_yaml::Value) -> String {
    match key {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

fn collect_refs(value: &serde_yaml::Value, out: &mut BTreeSet<String>) {
    match value {
        serde_yaml::Value::Mapping(map) => {
            for (k, v) in map {
                match (k.as_str(), v.as_str()) {
                    (Some("$ref"), Some(target)) => {
                        out.insert(target.to_owned());
                    }
                    _ => collect_refs(v, out),
                }
            }
        }
        serde_yaml::Value::Sequence(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

fn resolve<'a>(doc: &'a serde_yaml::Value, reference: &str) -> Option<&'a serde_yaml::Value> {
    let pointer = reference.strip_prefix("#/")?;
    pointer
        .split('/')
        .try_fold(doc, |node, segment| node.get(segment))
}

// ---------------------------------------------------------------------------------------------------------------
// 02 ↔ migrations

mod database;

fn tables_in_02() -> BTreeMap<String, usize> {
    let md = read(&specs_dir().join("02-data-model.md"));
    let headings = table_headings(&md);
    let mut tables = BTreeMap::new();
    for (name, line) in headings {
        if let Some(first) = tables.insert(name.clone(), line) {
            panic!("02-data-model.md: table `{name}` has two headings (lines {first} and {line})");
        }
    }
    assert!(
        !tables.is_empty(),
        "02-data-model.md: no `### Table `name`` headings found"
    );
    tables
}

#[tokio::test]
async fn every_table_in_02_exists_after_the_migrations() {
    let documented = tables_in_02();
    let migrated = database::tables_after_migrations().await;
    let problems: Vec<String> = documented
        .iter()
        .filter(|(name, _)| !migrated.contains(*name))
        .map(|(name, line)| {
            format!("table `{name}` (02-data-model.md line {line}) is not created by migrations/")
        })
        .collect();
    fail_if_any(
        &problems,
        "tables documented in 02 but missing after migrations",
    );
}

#[tokio::test]
async fn every_migrated_table_is_documented_in_02() {
    let documented = tables_in_02();
    let migrated = database::tables_after_migrations().await;
    let problems: Vec<String> = migrated
        .iter()
        .filter(|name| !documented.contains_key(*name) && !name.starts_with("_sqlx"))
        .map(|name| {
            format!("migrations/ create table `{name}`, which 02-data-model.md does not document")
        })
        .collect();
    fail_if_any(
        &problems,
        "tables created by migrations but missing from 02",
    );
}
