//! Tidy: the architecture invariants of ARCHITECTURE.md checked against the source tree, read as text (after
//! rust-analyzer's `tidy.rs`). Each rule collects every violation and fails with one `path:line: …` line per
//! violation, naming the rule it breaks, so a rule is kept by the build rather than by memory.

mod graph;
mod manifest;
mod modules;
mod source;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use manifest::{Kind, Manifest};
use source::{line_of, RustFile};

/// The workspace as tidy sees it, read once for all rules.
struct Workspace {
    manifests: Vec<Manifest>,
    /// Every `.rs` file of every member, sorted by path.
    files: Vec<RustFile>,
}

static WORKSPACE: LazyLock<Workspace> = LazyLock::new(|| {
    let root = repo_root();
    let members = manifest::members(&root);
    let manifests = members.iter().map(|m| manifest::member(&root, m)).collect();
    let files = members
        .iter()
        .flat_map(|m| source::rust_files(&root.join(m)))
        .map(|file| RustFile::read(&root, &file))
        .collect();
    Workspace { manifests, files }
});

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives inside the repository root")
        .to_path_buf()
}

impl Workspace {
    fn files_under<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a RustFile> + 'a {
        self.files.iter().filter(move |f| {
            f.path
                .strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    fn manifest(&self, package: &str) -> &Manifest {
        self.manifests
            .iter()
            .find(|m| m.package == package)
            .unwrap_or_else(|| panic!("no workspace member is named {package}"))
    }
}

/// A place that breaks a rule.
struct Violation {
    path: String,
    line: usize,
    what: String,
}

impl Violation {
    fn new(path: &str, line: usize, what: impl Into<String>) -> Violation {
        Violation {
            path: path.to_owned(),
            line,
            what: what.into(),
        }
    }
}

/// Fails with every violation on its own line, `path:line: what — rule`.
fn assert_kept(rule: &str, mut violations: Vec<Violation>) {
    if violations.is_empty() {
        return;
    }
    violations.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
    let mut report = format!("{} violation(s) of: {rule}\n", violations.len());
    for v in &violations {
        let _ = writeln!(report, "{}:{}: {} — {rule}", v.path, v.line, v.what);
    }
    panic!("{report}");
}

/// Fails `rule` at every match of one of `patterns` (regex, what a match is) in the shipped code of `files`.
fn assert_absent_from_shipped_code(rule: &str, files: &[&RustFile], patterns: &[(&str, &str)]) {
    let mut violations = Vec::new();
    for (pattern, what) in patterns {
        let pattern = Regex::new(pattern).expect("a valid pattern");
        for file in files {
            violations.extend(matches_in(file, &file.shipped, &pattern, what));
        }
    }
    assert_kept(rule, violations);
}

/// Every match of `pattern` in `code` (one of a file's blanked texts), as a violation saying `what` it is.
fn matches_in(file: &RustFile, code: &str, pattern: &Regex, what: &str) -> Vec<Violation> {
    pattern
        .find_iter(code)
        .map(|m| {
            let found = m.as_str().split_whitespace().collect::<String>();
            Violation::new(
                &file.path,
                line_of(code, m.start()),
                format!("{what} `{found}`"),
            )
        })
        .collect()
}

/// Crates that do I/O or run an async runtime: what the pure crates never link.
const IO_AND_RUNTIME: &[&str] = &[
    "sqlx*",
    "postgres-es",
    "axum*",
    "tower*",
    "hyper*",
    "async-nats",
    "teloxide*",
    "tokio*",
    "reqwest*",
    "redis*",
];

/// The workspace's own crates, as dependency patterns (`*` ends a prefix).
const STROM_CRATES: &[&str] = &["strom", "strom-*"];

/// What a crate must not depend on, and why.
struct DependencyRule {
    /// The package the rule is about; `*` for every member.
    krate: &'static str,
    forbidden: Vec<&'static str>,
    /// Exceptions to `forbidden`, in every table.
    allowed: &'static [&'static str],
    /// `None`: `[dev-dependencies]` may differ; `Some(allowed)`: they obey the rule too, but for `allowed`.
    dev_allowed: Option<&'static [&'static str]>,
    why: &'static str,
}

fn dependency_rules() -> Vec<DependencyRule> {
    vec![
        DependencyRule {
            krate: "strom-domain",
            forbidden: [IO_AND_RUNTIME, STROM_CRATES].concat(),
            allowed: &[],
            dev_allowed: Some(&["tokio"]),
            why: "domain is the pure core: no I/O, no runtime, no other strom crate (its tests may use tokio)",
        },
        DependencyRule {
            krate: "strom-sim",
            forbidden: [IO_AND_RUNTIME, STROM_CRATES].concat(),
            allowed: &["strom-domain"],
            dev_allowed: Some(&[]),
            why: "the simulator is pure: no I/O, no runtime, and of the strom crates only the pure domain",
        },
        DependencyRule {
            krate: "strom-commands",
            forbidden: vec!["strom-projections", "strom-api", "strom", "axum*", "teloxide*"],
            allowed: &[],
            dev_allowed: None,
            why: "the write side knows no read model, HTTP, bot or binary",
        },
        DependencyRule {
            krate: "strom-projections",
            forbidden: vec!["strom-api", "strom", "axum*", "async-nats", "teloxide*", "clap", "indicatif"],
            allowed: &[],
            dev_allowed: None,
            why: "read models: no HTTP, bus, bot, command line or terminal output",
        },
        DependencyRule {
            krate: "strom-api",
            forbidden: vec!["strom", "clap", "indicatif", "teloxide*"],
            allowed: &[],
            dev_allowed: None,
            why: "the API is HTTP only: no command line, no bot; the binary wires it",
        },
        DependencyRule {
            krate: "strom-telegram",
            forbidden: vec![
                "strom",
                "strom-domain",
                "strom-commands",
                "strom-projections",
                "sqlx*",
                "postgres-es",
                "async-nats",
                "redis*",
            ],
            allowed: &[],
            dev_allowed: None,
            why: "the bot talks to the REST API only, never to the database or the bus",
        },
        DependencyRule {
            krate: "*",
            forbidden: vec!["strom"],
            allowed: &[],
            dev_allowed: Some(&[]),
            why: "the strom binary is wiring only: nothing depends on it",
        },
        DependencyRule {
            krate: "*",
            forbidden: vec!["strom-tests"],
            allowed: &[],
            dev_allowed: None,
            why: "test drivers never ship: only tests may depend on strom-tests",
        },
    ]
}

fn matches_pattern(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    }
}

fn dependency_violations(manifest: &Manifest, rule: &DependencyRule) -> Vec<Violation> {
    let applies = |kind: Kind, name: &str| match (kind, rule.dev_allowed) {
        (Kind::Shipped, _) => true,
        (Kind::Dev, None) => false,
        (Kind::Dev, Some(allowed)) => !allowed.iter().any(|a| matches_pattern(a, name)),
    };
    manifest
        .dependencies
        .iter()
        .filter(|d| d.name != manifest.package && applies(d.kind, &d.name))
        .filter(|d| rule.forbidden.iter().any(|f| matches_pattern(f, &d.name)))
        .filter(|d| !rule.allowed.contains(&d.name.as_str()))
        .map(|d| {
            let table = if d.kind == Kind::Dev { " (dev)" } else { "" };
            let what = format!(
                "{} depends on {}{table}: {}",
                manifest.package, d.name, rule.why
            );
            Violation::new(&manifest.path, d.line, what)
        })
        .collect()
}

/// The pure crates ask chrono for no `clock` (the feature behind `Utc::now`): the manifest says what the code does.
fn chrono_clock_violations(manifest: &Manifest) -> Vec<Violation> {
    manifest
        .dependencies
        .iter()
        .filter(|d| d.kind == Kind::Shipped && d.name == "chrono")
        .filter(|d| d.default_features || d.features.iter().any(|f| f == "clock"))
        .map(|d| {
            let what = format!(
                "{} enables chrono's `clock` feature (directly, by default features or through the workspace entry)",
                manifest.package
            );
            Violation::new(&manifest.path, d.line, what)
        })
        .collect()
}

#[test]
fn crates_depend_only_on_what_the_architecture_allows() {
    let ws = &*WORKSPACE;
    let mut violations = Vec::new();
    for rule in dependency_rules() {
        let manifests = ws
            .manifests
            .iter()
            .filter(|m| rule.krate == "*" || m.package == rule.krate);
        violations.extend(manifests.flat_map(|m| dependency_violations(m, &rule)));
    }
    for pure in ["strom-domain", "strom-sim"] {
        violations.extend(chrono_clock_violations(ws.manifest(pure)));
    }
    assert_kept("the crate dependency rules of ARCHITECTURE.md", violations);
}

/// Each crate's layer: a crate depends only on crates of lower layers. The leaves sit low (telegram on none, sim on
/// the pure domain only); strom-tests above everything, since only tests depend on it.
const LAYERS: &[(&str, u8)] = &[
    ("strom-domain", 0),
    ("strom-telegram", 0),
    ("strom-sim", 1),
    ("strom-commands", 2),
    ("strom-projections", 3),
    ("strom-api", 4),
    ("strom", 5),
    ("strom-tests", 6),
];

fn layer(package: &str) -> Option<u8> {
    LAYERS
        .iter()
        .find(|(name, _)| *name == package)
        .map(|&(_, layer)| layer)
}

#[test]
fn strom_crates_form_an_acyclic_layered_graph() {
    let ws = &*WORKSPACE;
    let graph = manifest::strom_graph(&ws.manifests);
    let mut violations = Vec::new();
    for m in &ws.manifests {
        let Some(own) = layer(&m.package) else {
            let what = format!("{} has no layer: place it in tidy's LAYERS", m.package);
            violations.push(Violation::new(&m.path, 1, what));
            continue;
        };
        for (dep, &line) in &graph[&m.package] {
            if layer(dep).is_some_and(|theirs| theirs >= own) {
                let what = format!(
                    "{} (layer {own}) depends on {dep}, which is not below it",
                    m.package
                );
                violations.push(Violation::new(&m.path, line, what));
            }
        }
    }
    for cycle in &graph::tangles(&graph) {
        for (from, to) in graph::edges_of(cycle) {
            let m = ws.manifest(from);
            let what = format!(
                "{from} depends on {to}, in the cycle {}",
                graph::describe(cycle)
            );
            violations.push(Violation::new(&m.path, graph[from][to], what));
        }
    }
    assert_kept(
        "the strom crates form an acyclic graph in layers domain ← commands ← projections ← api ← strom",
        violations,
    );
}

/// Whether a `strom_commands` path, given the code right after the crate name, goes through the `log` module.
fn through_the_log_port(rest: &str) -> bool {
    static LOG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\s*::\s*log\b").unwrap());
    static GROUP: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\s*::\s*\{").unwrap());
    if LOG.is_match(rest) {
        return true;
    }
    let Some(group) = GROUP.find(rest) else {
        return false;
    };
    let body_end = source::matching_brace(rest, group.end() - 1) - 1;
    modules::group_items(&rest[group.end()..body_end])
        .iter()
        .all(|item| modules::first_segment(item) == "log")
}

#[test]
fn projections_reach_the_write_side_only_through_the_log_port() {
    static CRATE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\bstrom_commands\b").unwrap());
    let ws = &*WORKSPACE;
    let mut violations = Vec::new();
    for file in ws.files_under(&ws.manifest("strom-projections").source_root) {
        for m in CRATE.find_iter(&file.code) {
            if !through_the_log_port(&file.code[m.end()..]) {
                let line = line_of(&file.code, m.start());
                let what = "uses strom_commands beyond `strom_commands::log`";
                violations.push(Violation::new(&file.path, line, what));
            }
        }
    }
    assert_kept(
        "projections depend on the write side only through its log port (`strom_commands::log`)",
        violations,
    );
}

/// The projections' pure folds: a read model is a function of the log alone.
const PROJECTION_FOLDS: &[&str] = &[
    "projections/src/fold.rs",
    "projections/src/fold/",
    "projections/src/model.rs",
    "projections/src/view.rs",
    "projections/src/rebuild.rs",
];

#[test]
fn the_pure_core_reads_no_clock_and_draws_no_unseeded_randomness() {
    let ws = &*WORKSPACE;
    let pure: Vec<&RustFile> = ws
        .files
        .iter()
        .filter(|f| {
            f.path.starts_with("domain/src/")
                || f.path.starts_with("sim/src/")
                || PROJECTION_FOLDS.iter().any(|p| f.path.starts_with(p))
        })
        .collect();
    assert_absent_from_shipped_code(
        "domain, the simulator and the projections' folds take time, ids and randomness as inputs (no clock, no \
         unseeded randomness outside tests)",
        &pure,
        &[
            (
                r"\b(Utc|Local|SystemTime|Instant)\s*::\s*now\b|\bchrono\s*::\s*offset\s*::\s*Local\b",
                "reads the wall clock:",
            ),
            (
                r"\b(thread_rng|from_entropy|OsRng)\b|\brand\s*::\s*(random|rng)\b|\bUuid\s*::\s*(new_v4|now_v7)\b",
                "draws unseeded randomness:",
            ),
        ],
    );
}

#[test]
fn the_pure_core_does_no_io_and_uses_no_runtime() {
    let ws = &*WORKSPACE;
    let pure: Vec<&RustFile> = ws
        .files_under("domain/src")
        .chain(ws.files_under("sim/src"))
        .collect();
    assert_absent_from_shipped_code(
        "domain and the simulator do no I/O and use no tokio (cqrs-es links tokio into domain; only tests may use it)",
        &pure,
        &[(
            r"\btokio\s*::|\bstd\s*::\s*(fs|net|process|thread|env)\b|\b(e?println|e?print|dbg)\s*!",
            "does I/O or uses the runtime:",
        )],
    );
}

/// The one domain file allowed floats: the return statistics behind Sharpe and Sortino (ratios of returns, never money,
/// prices or quantities; specs/06 §8 says how they are computed and why).
const FLOAT_STATISTICS: &str = "domain/src/metrics/returns.rs";

#[test]
fn domain_has_no_floats() {
    let ws = &*WORKSPACE;
    assert!(
        ws.files_under("domain/src")
            .any(|f| f.path == FLOAT_STATISTICS),
        "{FLOAT_STATISTICS} moved: update the exception"
    );
    assert_absent_from_shipped_code(
        "domain has no floats: money, prices and quantities are Decimal (tests aside; the return statistics of \
         Sharpe and Sortino aside)",
        &ws.files_under("domain/src")
            .filter(|f| f.path != FLOAT_STATISTICS)
            .collect::<Vec<_>>(),
        &[(
            r"\bf(32|64)\b|(?:^|[^.\w])\d[\d_]*(\.\d[\d_]*([eE][+-]?\d+)?|[eE][+-]?\d+)",
            "uses a float:",
        )],
    );
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let ws = &*WORKSPACE;
    let violations = ws
        .files
        .iter()
        .filter_map(|file| {
            let (index, first) = file
                .text
                .lines()
                .enumerate()
                .find(|(_, l)| !l.trim().is_empty())
                .unwrap_or((0, ""));
            let what = "the first line is not a `//!` module doc saying the file's job";
            (!first.trim_start().starts_with("//!"))
                .then(|| Violation::new(&file.path, index + 1, what))
        })
        .collect();
    assert_kept("every module opens with `//!`", violations);
}

fn cycle_violations(uses: &graph::Graph<(String, usize)>) -> Vec<Violation> {
    let mut violations = Vec::new();
    for cycle in &graph::tangles(uses) {
        for (from, to) in graph::edges_of(cycle) {
            let (path, line) = &uses[from][to];
            let what = format!(
                "module {from} uses {to}, in the cycle {}",
                graph::describe(cycle)
            );
            violations.push(Violation::new(path, *line, what));
        }
    }
    violations
}

#[test]
fn no_crate_has_an_import_cycle_between_its_top_level_modules() {
    let ws = &*WORKSPACE;
    let mut violations = Vec::new();
    for m in &ws.manifests {
        let files: Vec<&RustFile> = ws.files_under(&m.source_root).collect();
        let uses = modules::top_level_uses(&m.source_root, &files);
        violations.extend(cycle_violations(&uses));
    }
    assert_kept(
        "the top-level modules of a crate use each other without a cycle",
        violations,
    );
}

#[test]
fn no_test_is_ignored_and_nothing_is_left_unimplemented() {
    static IGNORE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"#\s*\[\s*ignore\b").unwrap());
    static TODO: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\b(todo|unimplemented)\s*!").unwrap());
    let ws = &*WORKSPACE;
    let mut violations = Vec::new();
    for file in &ws.files {
        violations.extend(matches_in(file, &file.code, &IGNORE, "ignores a test:"));
    }
    for m in &ws.manifests {
        for file in ws.files_under(&m.source_root) {
            violations.extend(matches_in(
                file,
                &file.code,
                &TODO,
                "leaves code unwritten:",
            ));
        }
    }
    assert_kept(
        "no `#[ignore]`d test, no `todo!`/`unimplemented!` in a crate's source",
        violations,
    );
}
