//! Cargo manifests read as text, keeping line numbers: the workspace members, and each member's package name and
//! dependencies (kind, effective features) — just enough TOML for tidy's dependency rules, no TOML parser.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::source::split_outside;

/// Which table a dependency is declared in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `[dependencies]`, `[build-dependencies]` or a target-specific one: what the shipped crate links.
    Shipped,
    /// `[dev-dependencies]`: only tests, benches and examples link it.
    Dev,
}

/// One dependency line of a manifest.
#[derive(Debug, Clone)]
pub struct Dependency {
    /// The package name (after a `package = "…"` rename).
    pub name: String,
    pub line: usize,
    pub kind: Kind,
    pub default_features: bool,
    /// The features it enables, including those of its `[workspace.dependencies]` entry.
    pub features: Vec<String>,
    workspace: bool,
}

/// A workspace member's manifest.
pub struct Manifest {
    /// The path from the repository root, e.g. `domain/Cargo.toml`.
    pub path: String,
    pub package: String,
    /// The folder of the library's (or binary's) root module from the repository root: `<member>/src` unless a
    /// `[lib] path` says otherwise.
    pub source_root: String,
    pub dependencies: Vec<Dependency>,
}

/// The member folders of the workspace manifest at `root`, in the order listed.
pub fn members(root: &Path) -> Vec<String> {
    let text = read(&root.join("Cargo.toml"));
    let start = text
        .find("members")
        .expect("the workspace manifest lists its members");
    let list = &text[start..];
    let list = &list[list.find('[').expect("members = [")..=list.find(']').expect("]")];
    list.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The manifest of `member`, with `[workspace.dependencies]` entries resolved for features.
pub fn member(root: &Path, member: &str) -> Manifest {
    let workspace = dependencies(&read(&root.join("Cargo.toml")));
    let path = format!("{member}/Cargo.toml");
    let text = read(&root.join(&path));
    let mut dependencies = dependencies(&text);
    for dep in dependencies.iter_mut().filter(|d| d.workspace) {
        if let Some(shared) = workspace.iter().find(|w| w.name == dep.name) {
            dep.default_features &= shared.default_features;
            dep.features.extend(shared.features.iter().cloned());
        }
    }
    Manifest {
        path,
        package: package_name(&text).unwrap_or_else(|| member.to_owned()),
        source_root: match lib_path(&text) {
            Some(lib) => format!(
                "{member}/{}",
                lib.rsplit_once('/').map_or("", |(dir, _)| dir)
            ),
            None => format!("{member}/src"),
        },
        dependencies,
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn package_name(text: &str) -> Option<String> {
    let package = &text[text.find("[package]")?..];
    let line = package
        .lines()
        .find(|l| l.trim_start().starts_with("name"))?;
    Some(line.split('"').nth(1)?.to_owned())
}

/// The `path` of the `[lib]` table, if the manifest moves the library root.
fn lib_path(text: &str) -> Option<String> {
    let lib = &text[text.find("[lib]")? + "[lib]".len()..];
    let table = &lib[..lib.find("\n[").unwrap_or(lib.len())];
    let line = table.lines().find(|l| l.trim_start().starts_with("path"))?;
    Some(line.split('"').nth(1)?.to_owned())
}

/// The dependency table a header opens (with the name, for a `[dependencies.name]` table), if it is one.
fn table(header: &str) -> Option<(Kind, Option<String>)> {
    let parts: Vec<&str> = header.split('.').map(|p| p.trim()).collect();
    let at = parts.iter().position(|p| p.ends_with("dependencies"))?;
    let kind = match parts[at] {
        "dev-dependencies" | "dev_dependencies" => Kind::Dev,
        "dependencies" | "build-dependencies" | "build_dependencies" => Kind::Shipped,
        _ => return None,
    };
    let name = parts.get(at + 1).map(|n| n.trim_matches('"').to_owned());
    Some((kind, name))
}

/// Every dependency declared in `text` (also those of `[workspace.dependencies]`).
pub fn dependencies(text: &str) -> Vec<Dependency> {
    let mut deps: Vec<Dependency> = Vec::new();
    let mut current: Option<(Kind, Option<String>)> = None;
    let mut lines = text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = table(header);
            if let Some((kind, Some(name))) = &current {
                deps.push(Dependency::named(name, index + 1, *kind));
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let mut value = value.to_owned();
        while brackets_open(&value) {
            let Some((_, more)) = lines.next() else { break };
            value.push_str(more);
        }
        match &current {
            Some((kind, None)) => deps.push(Dependency::parse(key, &value, index + 1, *kind)),
            Some((_, Some(_))) => deps.last_mut().expect("table").set(key.trim(), &value),
            None => {}
        }
    }
    deps
}

fn brackets_open(value: &str) -> bool {
    let opens = value.matches(['[', '{']).count();
    opens > value.matches([']', '}']).count()
}

impl Dependency {
    fn named(name: &str, line: usize, kind: Kind) -> Dependency {
        Dependency {
            name: name.to_owned(),
            line,
            kind,
            default_features: true,
            features: Vec::new(),
            workspace: false,
        }
    }

    /// `key = value` in a dependency table: `name = "1"`, `name.workspace = true` or `name = { … }`.
    fn parse(key: &str, value: &str, line: usize, kind: Kind) -> Dependency {
        let (name, field) = match key.trim().split_once('.') {
            Some((name, field)) => (name, Some(field.trim())),
            None => (key.trim(), None),
        };
        let mut dep = Dependency::named(name.trim_matches('"'), line, kind);
        match field {
            Some(field) => dep.set(field, value),
            None => {
                let fields = value.trim().trim_start_matches('{').trim_end_matches('}');
                for (field, value) in inline_fields(fields) {
                    dep.set(field.trim(), &value);
                }
            }
        }
        dep
    }

    fn set(&mut self, field: &str, value: &str) {
        let value = value.trim();
        match field {
            "package" => self.name = value.trim_matches('"').to_owned(),
            "workspace" => self.workspace = value == "true",
            "default-features" | "default_features" => self.default_features = value != "false",
            "features" => self
                .features
                .extend(value.split('"').skip(1).step_by(2).map(str::to_owned)),
            _ => {}
        }
    }
}

/// The `key = value` pairs of an inline table's body, split on the commas outside arrays.
fn inline_fields(body: &str) -> Vec<(&str, String)> {
    split_outside(body, '[', ']')
        .into_iter()
        .filter_map(|field| field.split_once('='))
        .map(|(key, value)| (key, value.to_owned()))
        .collect()
}

/// The strom-* dependencies of every member: crate → (dependency → line of the manifest that declares it).
pub fn strom_graph(manifests: &[Manifest]) -> BTreeMap<String, BTreeMap<String, usize>> {
    let names: Vec<&str> = manifests.iter().map(|m| m.package.as_str()).collect();
    manifests
        .iter()
        .map(|m| {
            let edges = m
                .dependencies
                .iter()
                .filter(|d| d.kind == Kind::Shipped && names.contains(&d.name.as_str()))
                .map(|d| (d.name.clone(), d.line))
                .collect();
            (m.package.clone(), edges)
        })
        .collect()
}
