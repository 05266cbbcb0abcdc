//! One-minute bars as CSV, the historical-data format for backtests.
//!
//! Format: the header `ts,open,high,low,close,volume`, then one bar per line. `ts` is the bar's start in Unix seconds
//! (UTC by definition: no time-zone or format ambiguity, and an order of magnitude cheaper to parse than RFC 3339
//! when a backtest reads millions of rows). Prices and volume are plain decimals (`101.25`), never exponents.
//! Rows must have strictly increasing `ts` (gaps are allowed: markets close). Blank lines are ignored; `\r\n` works.
//! The format is fixed and numeric (no quoting, no commas inside fields), so it is parsed by hand rather than with a
//! general CSV crate.

use std::io::{self, BufRead, BufWriter, Write};
use std::str::FromStr;

use rust_decimal::Decimal;
use thiserror::Error;

use crate::path::Bar;

/// The first line of every bar file.
pub const CSV_HEADER: &str = "ts,open,high,low,close,volume";
/// Field names in column order, for error messages.
const FIELDS: [&str; 6] = ["ts", "open", "high", "low", "close", "volume"];

/// A bar file could not be read; `line` is 1-based (the header is line 1).
#[derive(Debug, Error)]
#[error("line {line}: {kind}")]
pub struct CsvError {
    pub line: u64,
    #[source]
    pub kind: CsvErrorKind,
}

#[derive(Debug, Error)]
pub enum CsvErrorKind {
    #[error("cannot read the file: {0}")]
    Io(#[from] io::Error),
    #[error("the file is empty; expected the header `{CSV_HEADER}`")]
    Empty,
    #[error("expected the header `{CSV_HEADER}`, found `{found}`")]
    BadHeader { found: String },
    #[error("expected 6 fields ({CSV_HEADER}), found {found}")]
    FieldCount { found: usize },
    #[error("field `{field}` is `{value}`: {reason}")]
    BadField {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("inconsistent bar: {0}")]
    Inconsistent(&'static str),
    #[error("ts {ts} is not after the previous row's ts {previous}; rows must be in strictly increasing time order")]
    NotIncreasing { ts: i64, previous: i64 },
}

/// Writes the header and `bars`; returns how many bars were written.
///
/// # Errors
/// The writer fails.
pub fn write_bars<W: Write>(out: W, bars: impl IntoIterator<Item = Bar>) -> io::Result<u64> {
    let mut out = BufWriter::new(out);
    writeln!(out, "{CSV_HEADER}")?;
    let mut written = 0;
    for bar in bars {
        writeln!(
            out,
            "{},{},{},{},{},{}",
            bar.ts_unix_s, bar.open, bar.high, bar.low, bar.close, bar.volume
        )?;
        written += 1;
    }
    out.flush()?;
    Ok(written)
}

/// Reads bars lazily (a million-row file is never held in memory). The iterator stops after the first error.
pub fn read_bars<R: BufRead>(input: R) -> BarReader<R> {
    BarReader {
        input,
        line_buf: String::new(),
        line: 0,
        header_seen: false,
        previous_ts: None,
        failed: false,
    }
}

/// Iterator returned by [`read_bars`].
#[derive(Debug)]
pub struct BarReader<R> {
    input: R,
    line_buf: String,
    line: u64,
    header_seen: bool,
    previous_ts: Option<i64>,
    failed: bool,
}

impl<R: BufRead> Iterator for BarReader<R> {
    type Item = Result<Bar, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let result = self.next_bar().transpose()?;
        if let Err(err) = &result {
            self.failed = true;
            debug_assert!(err.line > 0);
        }
        Some(result)
    }
}

impl<R: BufRead> BarReader<R> {
    fn next_bar(&mut self) -> Result<Option<Bar>, CsvError> {
        loop {
            if !self.read_line()? {
                return if self.header_seen {
                    Ok(None)
                } else {
                    Err(self.error(CsvErrorKind::Empty))
                };
            }
            let text = self.line_buf.trim();
            if text.is_empty() {
                continue;
            }
            if !self.header_seen {
                if text != CSV_HEADER {
                    let found = text.to_owned();
                    return Err(self.error(CsvErrorKind::BadHeader { found }));
                }
                self.header_seen = true;
                continue;
            }
            let bar = parse_row(text).map_err(|kind| self.error(kind))?;
            if let Some(previous) = self.previous_ts.filter(|p| bar.ts_unix_s <= *p) {
                let ts = bar.ts_unix_s;
                return Err(self.error(CsvErrorKind::NotIncreasing { ts, previous }));
            }
            self.previous_ts = Some(bar.ts_unix_s);
            return Ok(Some(bar));
        }
    }

    /// Reads the next line into `line_buf`; `false` at end of input.
    fn read_line(&mut self) -> Result<bool, CsvError> {
        self.line_buf.clear();
        self.line += 1;
        match self.input.read_line(&mut self.line_buf) {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(err) => Err(self.error(CsvErrorKind::Io(err))),
        }
    }

    fn error(&self, kind: CsvErrorKind) -> CsvError {
        CsvError {
            line: self.line,
            kind,
        }
    }
}

fn parse_row(text: &str) -> Result<Bar, CsvErrorKind> {
    let fields: Vec<&str> = text.split(',').map(str::trim).collect();
    let [ts, open, high, low, close, volume] = fields[..] else {
        return Err(CsvErrorKind::FieldCount {
            found: fields.len(),
        });
    };
    let bar = Bar {
        ts_unix_s: parse_field(0, ts)?,
        open: parse_field(1, open)?,
        high: parse_field(2, high)?,
        low: parse_field(3, low)?,
        close: parse_field(4, close)?,
        volume: parse_field(5, volume)?,
    };
    check_consistent(&bar)?;
    Ok(bar)
}

fn parse_field<T: FromStr>(index: usize, value: &str) -> Result<T, CsvErrorKind>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|err: T::Err| CsvErrorKind::BadField {
        field: FIELDS[index],
        value: value.to_owned(),
        reason: err.to_string(),
    })
}

fn check_consistent(bar: &Bar) -> Result<(), CsvErrorKind> {
    let checks = [
        (bar.low > Decimal::ZERO, "prices must be > 0"),
        (bar.low <= bar.high, "low is above high"),
        (
            bar.low <= bar.open.min(bar.close),
            "low is above open or close",
        ),
        (
            bar.high >= bar.open.max(bar.close),
            "high is below open or close",
        ),
        (bar.volume >= Decimal::ZERO, "volume is negative"),
    ];
    match checks.iter().find(|(ok, _)| !ok) {
        Some((_, reason)) => Err(CsvErrorKind::Inconsistent(reason)),
        None => Ok(()),
    }
}
