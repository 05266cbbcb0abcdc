//! Which top-level module of a crate uses which: edges from `crate::b…`, `super::…::b` and root re-exports
//! (`crate::Name` where lib.rs has `pub use b::Name`) in module a's shipped code to module b.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use regex::Regex;

use crate::graph::Graph;
use crate::source::{line_of, matching_brace, split_outside, RustFile};

/// The items of a `{…}` use group's body, split on its top-level commas.
pub fn group_items(body: &str) -> Vec<String> {
    split_outside(body, '{', '}')
        .into_iter()
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The first path segment of a use-group item: `log` for `log::{A, B}` and for `log as l`.
pub fn first_segment(item: &str) -> &str {
    item.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .next()
        .unwrap_or("")
}

/// The top-level modules of a crate and what uses what: module → (module it uses → the file and line of the
/// first use). Test code is left out: tests reach across modules by design.
pub fn top_level_uses(source_root: &str, files: &[&RustFile]) -> Graph<(String, usize)> {
    let owner = |file: &RustFile| {
        let module = file.module_below(source_root)?;
        let top = module.split('/').next()?.to_owned();
        (top != "bin").then_some((top, module))
    };
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| owner(f))
        .map(|(top, _)| top)
        .collect();
    let reexports = root_reexports(source_root, files, &modules);
    let mut graph: Graph<(String, usize)> = modules
        .iter()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    for file in files {
        let Some((top, module)) = owner(file) else {
            continue;
        };
        let depth = module.split('/').count();
        for (offset, name) in root_paths(&file.shipped, depth) {
            let used = if modules.contains(&name) {
                Some(&name)
            } else {
                reexports.get(&name)
            };
            if let Some(used) = used.filter(|&used| *used != top) {
                let place = (file.path.clone(), line_of(&file.shipped, offset));
                graph
                    .get_mut(&top)
                    .expect("module")
                    .entry(used.clone())
                    .or_insert(place);
            }
        }
    }
    graph
}

/// The names lib.rs (or main.rs) re-exports from a module: `pub use fold::{AgentFold, Folded}` maps both to `fold`.
fn root_reexports(
    source_root: &str,
    files: &[&RustFile],
    modules: &BTreeSet<String>,
) -> BTreeMap<String, String> {
    static PUB_USE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\bpub\s*(\([^)]*\))?\s+use\s+(?:(?:self|crate)\s*::\s*)?(\w+)([^;]*);")
            .unwrap()
    });
    static NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b[A-Za-z_]\w*\b").unwrap());
    let roots = [
        format!("{source_root}/lib.rs"),
        format!("{source_root}/main.rs"),
    ];
    let mut names = BTreeMap::new();
    for file in files.iter().filter(|f| roots.contains(&f.path)) {
        for statement in PUB_USE.captures_iter(&file.shipped) {
            let module = &statement[2];
            if !modules.contains(module) {
                continue;
            }
            for name in NAME.find_iter(&statement[3]).map(|m| m.as_str()) {
                if !["as", "self", "crate", "super"].contains(&name) {
                    names.insert(name.to_owned(), module.to_owned());
                }
            }
        }
    }
    names
}

/// The first segment of every path in `code` that starts at the crate root (`crate::x`, or `super::x` climbing out
/// of a file `depth` modules deep, counting the inline modules around it), with where it stands.
fn root_paths(code: &str, depth: usize) -> Vec<(usize, String)> {
    static PATH: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\b(crate|super(?:\s*::\s*super)*)\s*::\s*(\w+|\{)").unwrap());
    let inline = inline_modules(code);
    let mut found = Vec::new();
    for path in PATH.captures_iter(code) {
        let start = path.get(0).expect("match").start();
        let supers = path[1].matches("super").count();
        let around = inline
            .iter()
            .filter(|(s, e)| (*s..*e).contains(&start))
            .count();
        if supers > 0 && supers != depth + around {
            continue;
        }
        let first = path.get(2).expect("segment");
        if first.as_str() == "{" {
            let body = &code[first.end()..matching_brace(code, first.start()) - 1];
            for item in group_items(body) {
                found.push((start, first_segment(&item).to_owned()));
            }
        } else {
            found.push((start, first.as_str().to_owned()));
        }
    }
    found
}

/// The spans of the inline `mod name { … }` blocks in `code`.
fn inline_modules(code: &str) -> Vec<(usize, usize)> {
    static MOD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\bmod\s+\w+\s*\{").unwrap());
    MOD.find_iter(code)
        .map(|m| (m.start(), matching_brace(code, m.end() - 1)))
        .collect()
}
