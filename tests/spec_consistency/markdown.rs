//! Parsers for the markdown conventions of specs/README.md ("Conventions the checker relies on").

use std::sync::LazyLock;

use regex::Regex;

static TABLE_HEADING: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^### Table `([a-z_][a-z0-9_]*)`\s*$").expect("valid regex"));
static ENDPOINT_ROW: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\|\s*`(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (/[^`\s]*)`\s*\|")
        .expect("valid regex")
});
static BACKTICKED_TYPE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"`([A-Z][A-Za-z0-9]*)`").expect("valid regex"));
static CATALOGUE_ROW: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^`([A-Z][A-Za-z0-9]*)`$").expect("valid regex"));

/// One row of a `| type | version | …` catalogue table in 04-events.md.
#[derive(Debug)]
pub struct CatalogueEntry {
    pub ty: String,
    pub version: u32,
    /// 1-based line number in the markdown file.
    pub line: usize,
    pub row: String,
    /// True for aggregate events (the table has an `aggregate` column): payload is externally tagged.
    pub tagged: bool,
    /// The `aggregate` cell (e.g. "Agent") of aggregate events.
    pub aggregate: Option<String>,
}

impl CatalogueEntry {
    pub fn key(&self) -> String {
        format!("{} v{}", self.ty, self.version)
    }
    pub fn schema_file(&self) -> String {
        format!("{}.v{}.schema.json", self.ty, self.version)
    }
    pub fn example_file(&self) -> String {
        format!("{}.v{}.json", self.ty, self.version)
    }
}

/// Cells of a markdown table row, trimmed, without the outer pipes.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner
        .split('|')
        .map(|cell| cell.trim().to_owned())
        .collect()
}

fn is_separator(line: &str) -> bool {
    line.trim().starts_with("|-") || line.trim().starts_with("| -") || line.trim().starts_with("|:")
}

/// A markdown table: lower-cased header cells and its rows as (1-based line number, raw line).
struct Table {
    header: Vec<String>,
    rows: Vec<(usize, String)>,
}

fn tables(md: &str) -> Vec<Table> {
    let mut out = Vec::new();
    let mut lines = md.lines().enumerate().peekable();
    while let Some((_, line)) = lines.next() {
        let next_is_separator = lines.peek().is_some_and(|(_, next)| is_separator(next));
        if !line.trim_start().starts_with('|') || !next_is_separator {
            continue;
        }
        let header = cells(line).into_iter().map(|c| c.to_lowercase()).collect();
        lines.next();
        let mut rows = Vec::new();
        while let Some((index, row)) = lines.next_if(|(_, l)| l.trim_start().starts_with('|')) {
            rows.push((index + 1, row.to_owned()));
        }
        out.push(Table { header, rows });
    }
    out
}

/// 02: `### Table `name`` headings, with their line numbers.
pub fn table_headings(md: &str) -> Vec<(String, usize)> {
    md.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            TABLE_HEADING
                .captures(line)
                .map(|c| (c[1].to_owned(), i + 1))
        })
        .collect()
}

/// 03: rows whose first cell is `` `METHOD /path` ``, as ("METHOD /path", line).
pub fn endpoints(md: &str) -> Vec<(String, usize)> {
    md.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            ENDPOINT_ROW
                .captures(line)
                .map(|c| (format!("{} {}", &c[1], &c[2]), i + 1))
        })
        .collect()
}

/// 04: rows of every table whose header starts `| type | version |`.
pub fn catalogue(md: &str) -> Vec<CatalogueEntry> {
    let mut out = Vec::new();
    for Table { header, rows } in tables(md) {
        if header.len() < 2 || header[0] != "type" || header[1] != "version" {
            continue;
        }
        let aggregate_column = header.iter().position(|h| h == "aggregate");
        let tagged = aggregate_column.is_some();
        for (line, row) in rows {
            let cells = cells(&row);
            let ty = CATALOGUE_ROW.captures(&cells[0]).map(|c| c[1].to_owned());
            let version = cells.get(1).and_then(|v| v.parse::<u32>().ok());
            let aggregate = aggregate_column.and_then(|i| cells.get(i)).cloned();
            match (ty, version) {
                (Some(ty), Some(version)) => out.push(CatalogueEntry { ty, version, line, row, tagged, aggregate }),
                _ => panic!("04-events.md line {line}: catalogue row must start `| `Type` | <version> |`: {row}"),
            }
        }
    }
    out
}

/// 04: event types named in the `event` column of state-machine tables, with line numbers.
pub fn state_machine_events(md: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for Table { header, rows } in tables(md) {
        let Some(column) = header.iter().position(|h| h == "event") else {
            continue;
        };
        for (line, row) in rows {
            if let Some(cell) = cells(&row).get(column) {
                out.extend(backticked_names(cell).into_iter().map(|name| (name, line)));
            }
        }
    }
    out
}

/// CamelCase names in backticks, e.g. "`AgentStarted` or `OrderRejected`".
fn backticked_names(text: &str) -> Vec<String> {
    BACKTICKED_TYPE
        .captures_iter(text)
        .map(|c| c[1].to_owned())
        .collect()
}

#[test]
fn parses_the_conventions_of_specs_readme() {
    let md = "\
### Table `agents`
### Table `Not A Table`

| endpoint | role |
|---|---|
| `GET /api/v1/agents/{id}` | viewer |
| `POST /api/v1/agents/{id}/start` | trader |

| type | version | aggregate | schema |
|---|---|---|---|
| `AgentStarted` | 1 | Agent | `AgentStarted.v1.schema.json` |

| type | version | schema |
|---|---|---|
| `AgentTick` | 1 | `AgentTick.v1.schema.json` |

| command | from | event | rejected |
|---|---|---|---|
| `StartAgent{at}` | stopped | `AgentStarted` | `agent_archived` |
";
    assert_eq!(table_headings(md), [("agents".to_owned(), 1)]);
    let endpoints: Vec<String> = endpoints(md).into_iter().map(|(e, _)| e).collect();
    assert_eq!(
        endpoints,
        ["GET /api/v1/agents/{id}", "POST /api/v1/agents/{id}/start"]
    );
    let entries = catalogue(md);
    assert_eq!(entries.len(), 2);
    assert!(entries[0].tagged && entries[0].schema_file() == "AgentStarted.v1.schema.json");
    assert_eq!(entries[0].aggregate.as_deref(), Some("Agent"));
    assert!(!entries[1].tagged && entries[1].example_file() == "AgentTick.v1.json");
    assert_eq!(state_machine_events(md), [("AgentStarted".to_owned(), 19)]);
}
