//! Rust source read as text, the way tidy needs it: which files a crate has, each file's code with comments and
//! literals blanked out (so a rule never matches prose, and line numbers still match the file), and the same code
//! without what only compiles under `#[cfg(test)]`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

/// One `.rs` file of the workspace.
pub struct RustFile {
    /// The path from the repository root, with `/` separators: what a violation names.
    pub path: String,
    pub text: String,
    /// `text` with comments and the contents of string and character literals replaced by spaces.
    pub code: String,
    /// `code` with test-only code blanked too: `#[cfg(test)]` items, and all of a `tests.rs` or `tests/` file.
    pub shipped: String,
}

impl RustFile {
    pub fn read(root: &Path, file: &Path) -> RustFile {
        let text = fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let path = relative(root, file);
        let code = code_only(&text);
        let shipped = if is_test_file(&path) {
            blank(&code)
        } else {
            without_test_code(&code)
        };
        RustFile {
            path,
            text,
            code,
            shipped,
        }
    }

    /// The module path of this file below `src/` ("a" for src/a.rs and src/a/mod.rs, "a/b" for src/a/b.rs); `None`
    /// outside a `src/` or for the crate roots (lib.rs, main.rs).
    pub fn module_below(&self, src: &str) -> Option<String> {
        let rest = self.path.strip_prefix(src)?.strip_prefix('/')?;
        let rest = rest.strip_suffix(".rs")?;
        let rest = rest.strip_suffix("/mod").unwrap_or(rest);
        (rest != "lib" && rest != "main").then(|| rest.to_owned())
    }
}

/// `path` relative to `root`, with `/` separators.
pub fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Every `.rs` file below `dir` (not below `target/` or hidden folders), sorted.
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return files;
    };
    for entry in entries {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if path.is_dir() && name != "target" && !name.starts_with('.') {
            files.extend(rust_files(&path));
        } else if name.ends_with(".rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// A file that only compiles under test: a `tests.rs` module or anything in a `tests/` folder below `src/`.
fn is_test_file(path: &str) -> bool {
    let below_src = path.split_once("/src/").map_or("", |(_, rest)| rest);
    below_src
        .split('/')
        .any(|part| part == "tests" || part == "tests.rs")
}

/// `text` with comments and the contents of string, raw string and character literals replaced by spaces; newlines
/// are kept, so every byte that is left stays on its line.
pub fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        match skipped_until(&chars, i) {
            Some(end) => {
                chars[i..end]
                    .iter()
                    .for_each(|&c| out.push(if c == '\n' { '\n' } else { ' ' }));
                i = end;
            }
            None => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out
}

/// Where the comment or literal that starts at `i` ends (exclusive), if one starts there.
fn skipped_until(chars: &[char], i: usize) -> Option<usize> {
    let at = |k: usize| chars.get(k).copied().unwrap_or('\0');
    let after_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
    match (at(i), at(i + 1)) {
        ('/', '/') => Some(find_from(chars, i, |k| chars[k] == '\n').unwrap_or(chars.len())),
        ('/', '*') => Some(block_comment_end(chars, i)),
        ('"', _) => Some(string_end(chars, i + 1)),
        ('r', '"' | '#') if !after_ident => raw_string_end(chars, i + 1),
        ('b', 'r') if !after_ident => raw_string_end(chars, i + 2),
        ('\'', '\\') => find_from(chars, i + 3, |k| chars[k] == '\'').map(|k| k + 1),
        ('\'', c) if c != '\'' && at(i + 2) == '\'' => Some(i + 3),
        _ => None,
    }
}

fn find_from(chars: &[char], from: usize, found: impl Fn(usize) -> bool) -> Option<usize> {
    (from..chars.len()).find(|&k| found(k))
}

/// The end of a (nesting) block comment opened at `start`.
fn block_comment_end(chars: &[char], start: usize) -> usize {
    let mut depth = 0;
    let mut k = start;
    while k + 1 < chars.len() {
        match (chars[k], chars[k + 1]) {
            ('/', '*') => (depth, k) = (depth + 1, k + 2),
            ('*', '/') if depth == 1 => return k + 2,
            ('*', '/') => (depth, k) = (depth - 1, k + 2),
            _ => k += 1,
        }
    }
    chars.len()
}

/// The end of a string whose contents start at `from` (after the opening quote).
fn string_end(chars: &[char], from: usize) -> usize {
    let mut k = from;
    while k < chars.len() {
        match chars[k] {
            '\\' => k += 2,
            '"' => return k + 1,
            _ => k += 1,
        }
    }
    chars.len()
}

/// The end of a raw string whose `#`s (or opening quote) start at `from`; `None` when it is no raw string after all.
fn raw_string_end(chars: &[char], from: usize) -> Option<usize> {
    let hashes = chars[from..].iter().take_while(|&&c| c == '#').count();
    if chars.get(from + hashes) != Some(&'"') {
        return None;
    }
    let closes = |k: usize| {
        chars[k] == '"'
            && chars[k + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes
    };
    let close = find_from(chars, from + hashes + 1, closes).unwrap_or(chars.len());
    Some((close + 1 + hashes).min(chars.len()))
}

/// Every character but newlines replaced by a space.
fn blank(code: &str) -> String {
    code.chars()
        .map(|c| if c == '\n' { '\n' } else { ' ' })
        .collect()
}

/// `code` (from [`code_only`]) with every item marked `#[cfg(test)]` blanked, up to its `;` or closing brace; a
/// file-wide `#![cfg(test)]` blanks the whole file.
pub fn without_test_code(code: &str) -> String {
    static CFG_TEST: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"#\s*(!?)\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]").unwrap());
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for m in CFG_TEST.captures_iter(code) {
        let whole = m.get(0).expect("match");
        if ranges.last().is_some_and(|&(_, end)| whole.start() < end) {
            continue;
        }
        let end = if &m[1] == "!" {
            code.len()
        } else {
            item_end(code, whole.end())
        };
        ranges.push((whole.start(), end));
    }
    code.char_indices()
        .map(|(at, c)| {
            let inside = ranges.iter().any(|&(s, e)| (s..e).contains(&at));
            if inside && c != '\n' {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// The end of the item that starts at `from`: just past its first `;` outside brackets, or past the brace that
/// closes its first block.
fn item_end(code: &str, from: usize) -> usize {
    let mut nesting = 0i32;
    for (k, b) in code.bytes().enumerate().skip(from) {
        match b {
            b'(' | b'[' => nesting += 1,
            b')' | b']' => nesting -= 1,
            b';' if nesting == 0 => return k + 1,
            b'{' if nesting == 0 => return matching_brace(code, k),
            _ => {}
        }
    }
    code.len()
}

/// `text` split on the commas that stand outside `open`…`close` pairs.
pub fn split_outside(text: &str, open: char, close: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (at, c) in text.char_indices() {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
        } else if c == ',' && depth == 0 {
            parts.push(&text[start..at]);
            start = at + 1;
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Just past the `}` that closes the `{` at `open`.
pub fn matching_brace(code: &str, open: usize) -> usize {
    let mut depth = 0;
    for (k, b) in code.bytes().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' if depth == 1 => return k + 1,
            b'}' => depth -= 1,
            _ => {}
        }
    }
    code.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_and_literals_are_blanked_but_lines_are_kept() {
        let text = "let a = \"Utc::now()\"; // f64\n/* f32 /* nested */ */ let b = r#\"x\"#;\nlet c = '\"'; 'a";
        let code = code_only(text);
        assert_eq!(code.lines().count(), 3);
        assert!(!code.contains("Utc") && !code.contains("f64") && !code.contains("f32"));
        assert!(code.contains("let b =") && code.contains("let c =") && code.ends_with("'a"));
    }

    #[test]
    fn test_items_are_blanked_whole() {
        let code = "fn a() {}\n#[cfg(test)]\nmod tests {\n fn b() { f64 }\n}\nfn c() {}\n#[cfg(test)]\nmod more;\n";
        let shipped = without_test_code(code);
        assert!(shipped.contains("fn a()") && shipped.contains("fn c()"));
        assert!(!shipped.contains("f64") && !shipped.contains("more"));
    }
}
