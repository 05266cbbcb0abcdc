//! OHLCV bars as CSV, the historical-data format for backtests (spec 06 §5).
//!
//! Each bar becomes one observation: `price = close`, `observed_at = ts`, where `ts` is the bar's **close time** (the
//! instant its close is observed). The reader takes files as users have them:
//!
//! - **With a header**: the first column is named `ts`, `timestamp`, `date` or `open_time`, then `open,high,low,close,
//!   volume` (names case-insensitive; further columns are allowed and ignored).
//! - **Headerless exchange klines** (Binance style: `open_time_ms,open,high,low,close,volume,close_time_ms,…`, at
//!   least 6 columns): recognised when the first line's first field is an integer.
//!
//! Times are Unix seconds, Unix milliseconds (integers: below 1e11 is seconds, from 1e11 on milliseconds — 1e11 s is
//! the year 5138, 1e11 ms is 1973-03-03, so no real bar time is ambiguous; 1e14 and above is refused, it would be
//! microseconds or nanoseconds) or RFC 3339 (`2026-01-01T00:01:00Z`, any offset, at most millisecond fractions). The
//! form is taken from the first data row; every row must use it.
//!
//! Close time: under `ts`, `timestamp` or `date` the value is the close time. Under `open_time` and in headerless
//! klines it is the bar's open: with a close-time column (7th, named `close_time` when there is a header; integer Unix
//! milliseconds, which Binance writes as open + interval − 1 ms) the close time is `close_time + 1 ms`, otherwise
//! `open_time + interval`, the interval being the difference between the first two rows' open times.
//!
//! Why by hand: the format is fixed and numeric (no quoting, no separators inside fields), and a backtest reads
//! millions of rows. A general CSV crate would add quoting logic and per-record buffers it does not need; this reader
//! works on bytes in one reused line buffer, with no allocation per row, and parses decimals and RFC 3339 times
//! directly (a million rows in about 0.3 s in release; see the ignored timing test in `sim/tests`).

use std::fmt;
use std::io::{self, BufRead, BufWriter, Read, Write};
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, SecondsFormat, Timelike, Utc};
use rust_decimal::Decimal;
use thiserror::Error;

use crate::path::Bar;

/// The header [`write_bars`] writes.
pub const CSV_HEADER: &str = "ts,open,high,low,close,volume";
/// Largest bar file the reader accepts: 2 GiB, about 25 million bars of a typical 80-byte row, 25 times the 1M-bar
/// reference workload. Bigger input is refused as soon as the reader gets past this many bytes.
pub const MAX_CSV_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Names the first column may have (compared case-insensitively).
const TIME_COLUMNS: [&str; 4] = ["ts", "timestamp", "date", "open_time"];
/// Names of columns 2..=6.
const VALUE_COLUMNS: [&str; 5] = ["open", "high", "low", "close", "volume"];
const CLOSE_TIME: &str = "close_time";
/// Integers below this are Unix seconds, from it on Unix milliseconds.
const MILLIS_FROM: u64 = 100_000_000_000;
/// Integers from this on are refused (microseconds or nanoseconds; as milliseconds they would be after the year 5138).
const INTEGER_TIME_LIMIT: u64 = 100_000_000_000_000;
/// Longest value quoted in an error message.
const SHOWN_CHARS: usize = 40;

/// How a file writes its times; detected on the first data row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeForm {
    UnixSeconds,
    UnixMillis,
    Rfc3339,
}

impl fmt::Display for TimeForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnixSeconds => "Unix seconds",
            Self::UnixMillis => "Unix milliseconds",
            Self::Rfc3339 => "RFC 3339",
        })
    }
}

/// A field of a row: 1-based `index` and the column's name (canonical, lower case: `ts`, `open_time`, `close`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvColumn {
    pub index: usize,
    pub name: &'static str,
}

/// A bar file could not be read. Displays as `line N, column C (name): problem`, or `line N: problem` when no single
/// field is at fault; `line` is 1-based and counts every line, the header and blank lines included.
#[derive(Debug)]
pub struct CsvError {
    pub line: u64,
    pub column: Option<CsvColumn>,
    pub kind: CsvErrorKind,
}

impl std::error::Error for CsvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

impl fmt::Display for CsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(column) = self.column {
            write!(f, ", column {} ({})", column.index, column.name)?;
        }
        write!(f, ": {}", self.kind)
    }
}

/// What is wrong; see [`CsvError`] for where.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CsvErrorKind {
    #[error("cannot read the file: {0}")]
    Io(#[from] io::Error),
    #[error("the file is larger than {limit} bytes (MAX_CSV_BYTES)")]
    TooLarge { limit: u64 },
    #[error("the file is empty; expected a header such as `{CSV_HEADER}`, or headerless exchange klines")]
    Empty,
    #[error(
        "expected a header `ts,open,high,low,close,volume` (the first column may also be named timestamp, date or \
         open_time; names are case-insensitive; more columns may follow) or a headerless kline row starting with an \
         integer open time, found {found:?}"
    )]
    BadHeader { found: String },
    #[error("expected at least {expected} fields, found {found}")]
    FieldCount { expected: usize, found: usize },
    #[error(
        "{value:?} is not a time: expected Unix seconds, Unix milliseconds or an RFC 3339 date-time with an offset, \
         like 2026-01-01T00:01:00Z"
    )]
    BadTime { value: String },
    #[error("{value:?} has a fraction of a second finer than milliseconds")]
    FinerThanMillis { value: String },
    #[error(
        "{value:?} is too large for Unix milliseconds (from 1e14 on it would be after the year 5138; microseconds or \
         nanoseconds are not accepted)"
    )]
    TimeOutOfRange { value: String },
    #[error(
        "{value:?} is {found}, but the first row uses {first}; every row must use the same form"
    )]
    MixedTimeForms {
        value: String,
        found: TimeForm,
        first: TimeForm,
    },
    #[error("{value:?} is not a close time in Unix milliseconds")]
    BadCloseTime { value: String },
    #[error("close_time {} is before the bar's open_time {}", rfc3339(.close_time), rfc3339(.open_time))]
    CloseBeforeOpen {
        close_time: DateTime<Utc>,
        open_time: DateTime<Utc>,
    },
    #[error(
        "{} is not after the previous row's {}; rows must be in strictly increasing time order",
        rfc3339(.at),
        rfc3339(.previous)
    )]
    NotIncreasing {
        at: DateTime<Utc>,
        previous: DateTime<Utc>,
    },
    #[error(
        "cannot tell when the only bar closes: without a close_time column the close time is open_time + the \
         interval between the first two rows' open times, and the file has one row"
    )]
    NoInterval,
    #[error("{value:?} is not a decimal")]
    BadDecimal { value: String },
    #[error("{value:?} is not a plain decimal: exponents are not accepted")]
    Exponent { value: String },
    #[error("{value} is not > 0")]
    NotPositive { value: Decimal },
    #[error("{value} is negative")]
    NegativeVolume { value: Decimal },
    #[error("inconsistent bar: {0}")]
    Inconsistent(&'static str),
}

fn rfc3339(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Writes [`CSV_HEADER`] and `bars`; returns how many bars were written. `ts` is always written as RFC 3339 UTC with
/// milliseconds (`2026-01-01T00:01:00.000Z`): one form for the whole file whatever the bars' times, readable, and the
/// same text as `observed_at` in events; prices and volume as plain decimals. [`read_bars`] reads it back unchanged.
///
/// # Errors
/// The writer fails, or a bar's `ts` has a fraction finer than milliseconds or a year outside 0000..=9999 (which
/// RFC 3339 cannot write); both are `InvalidInput`.
pub fn write_bars<W: Write>(out: W, bars: impl IntoIterator<Item = Bar>) -> io::Result<u64> {
    let mut out = BufWriter::new(out);
    writeln!(out, "{CSV_HEADER}")?;
    let mut written = 0;
    for bar in bars {
        let ts = bar.ts;
        let nanos = ts.timestamp_subsec_nanos();
        if !(0..=9999).contains(&ts.year()) || nanos % 1_000_000 != 0 || nanos >= 1_000_000_000 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "bar ts {ts:?} cannot be written: it needs a year 0000..=9999 and millisecond precision"
                ),
            ));
        }
        writeln!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z,{},{},{},{},{}",
            ts.year(),
            ts.month(),
            ts.day(),
            ts.hour(),
            ts.minute(),
            ts.second(),
            nanos / 1_000_000,
            bar.open,
            bar.high,
            bar.low,
            bar.close,
            bar.volume
        )?;
        written += 1;
    }
    out.flush()?;
    Ok(written)
}

/// Reads bars lazily (a million-row file is never held in memory); the accepted formats are in the module
/// documentation and spec 06 §5. The iterator yields each bar in file order and stops after the first error (after
/// [`MAX_CSV_BYTES`] at the latest); the caller decides what an error means (a backtest fails as a whole).
pub fn read_bars<R: BufRead>(input: R) -> BarReader<R> {
    read_bars_limited(input, MAX_CSV_BYTES)
}

fn read_bars_limited<R: BufRead>(input: R, max_bytes: u64) -> BarReader<R> {
    BarReader {
        input,
        buf: Vec::new(),
        line: 0,
        bytes_read: 0,
        max_bytes,
        layout: None,
        form: None,
        previous_key: None,
        interval_ms: None,
        pending: None,
        queued: None,
        done: false,
    }
}

/// Where a row's close time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CloseRule {
    /// The first column is the close time (`ts`, `timestamp`, `date`).
    FirstColumn,
    /// Column 7 (integer ms) + 1 ms.
    CloseTimeColumn,
    /// First column (the open time) + the interval between the first two rows.
    Interval,
}

#[derive(Debug, Clone, Copy)]
struct Layout {
    /// Names of columns 1..=7 as reported in errors.
    names: [&'static str; 7],
    close: CloseRule,
}

impl Layout {
    fn fields(&self) -> usize {
        if self.close == CloseRule::CloseTimeColumn {
            7
        } else {
            6
        }
    }
}

/// One data row, parsed; times in Unix milliseconds.
#[derive(Debug, Clone)]
struct Row {
    line: u64,
    time_ms: i64,
    close_time_ms: Option<i64>,
    open: Decimal,
    high: Decimal,
    low: Decimal,
    close: Decimal,
    volume: Decimal,
}

/// A problem with field `index` (0-based) of the current line.
type FieldError = (usize, CsvErrorKind);

/// Iterator returned by [`read_bars`].
#[derive(Debug)]
pub struct BarReader<R> {
    input: R,
    buf: Vec<u8>,
    line: u64,
    bytes_read: u64,
    max_bytes: u64,
    layout: Option<Layout>,
    form: Option<TimeForm>,
    /// Previous row's ordering time (ms): its close_time where the file has that column, else its first column.
    previous_key: Option<i64>,
    /// Under [`CloseRule::Interval`], once two rows are seen.
    interval_ms: Option<i64>,
    /// Under [`CloseRule::Interval`], the first row while the second is not read yet.
    pending: Option<Row>,
    /// The second row's bar, yielded after the first.
    queued: Option<Bar>,
    done: bool,
}

impl<R> BarReader<R> {
    /// The time form of the file, once its first data row is read.
    pub fn time_form(&self) -> Option<TimeForm> {
        self.form
    }
}

impl<R: BufRead> Iterator for BarReader<R> {
    type Item = Result<Bar, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(bar) = self.queued.take() {
            return Some(Ok(bar));
        }
        if self.done {
            return None;
        }
        match self.next_bar() {
            Ok(Some(bar)) => Some(Ok(bar)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }
}

impl<R: BufRead> BarReader<R> {
    fn next_bar(&mut self) -> Result<Option<Bar>, CsvError> {
        loop {
            if !self.read_line()? {
                return match (self.layout, self.pending.take()) {
                    (None, _) => Err(self.error(None, CsvErrorKind::Empty)),
                    (Some(_), Some(row)) => Err(CsvError {
                        line: row.line,
                        column: None,
                        kind: CsvErrorKind::NoInterval,
                    }),
                    (Some(_), None) => Ok(None),
                };
            }
            let mut text = trim_line(&self.buf);
            if self.line == 1 {
                text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
            }
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let layout = match self.layout {
                Some(layout) => layout,
                None => {
                    let (layout, is_header) = detect_layout(text).map_err(|(index, kind)| {
                        let column = index.map(|i| CsvColumn {
                            index: i + 1,
                            name: if i == 0 { "ts" } else { VALUE_COLUMNS[i - 1] },
                        });
                        self.error(column, kind)
                    })?;
                    self.layout = Some(layout);
                    if is_header {
                        continue;
                    }
                    layout
                }
            };
            let row = parse_row(text, &layout, &mut self.form, self.line)
                .map_err(|(index, kind)| self.field_error(&layout, index, kind))?;
            if let Some(bar) = self.bar_for(&layout, row)? {
                return Ok(Some(bar));
            }
        }
    }

    /// Orders the row after the previous one and makes its bar; `None` while the interval is not known yet.
    fn bar_for(&mut self, layout: &Layout, row: Row) -> Result<Option<Bar>, CsvError> {
        let (key, key_index) = match (layout.close, row.close_time_ms) {
            (CloseRule::CloseTimeColumn, Some(close_time)) => (close_time, 6),
            _ => (row.time_ms, 0),
        };
        if let Some(previous) = self.previous_key.filter(|p| key <= *p) {
            let kind = CsvErrorKind::NotIncreasing {
                at: instant(key),
                previous: instant(previous),
            };
            return Err(self.field_error(layout, key_index, kind));
        }
        self.previous_key = Some(key);
        let close_ms = match layout.close {
            CloseRule::FirstColumn => row.time_ms,
            CloseRule::CloseTimeColumn => key + 1,
            CloseRule::Interval => match (self.interval_ms, self.pending.take()) {
                (Some(interval), _) => row.time_ms + interval,
                (None, None) => {
                    self.pending = Some(row);
                    return Ok(None);
                }
                (None, Some(first)) => {
                    let interval = row.time_ms - first.time_ms;
                    self.interval_ms = Some(interval);
                    self.queued = Some(make_bar(&row, row.time_ms + interval));
                    return Ok(Some(make_bar(&first, first.time_ms + interval)));
                }
            },
        };
        Ok(Some(make_bar(&row, close_ms)))
    }

    /// Reads the next line into `buf`; `false` at end of input.
    fn read_line(&mut self) -> Result<bool, CsvError> {
        self.buf.clear();
        self.line += 1;
        // One byte more than allowed, so a file over the limit is noticed without reading all of it.
        let allowed = self.max_bytes - self.bytes_read + 1;
        let read = (&mut self.input)
            .take(allowed)
            .read_until(b'\n', &mut self.buf);
        match read {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.bytes_read += n as u64;
                if self.bytes_read > self.max_bytes {
                    let limit = self.max_bytes;
                    return Err(self.error(None, CsvErrorKind::TooLarge { limit }));
                }
                Ok(true)
            }
            Err(err) => Err(self.error(None, CsvErrorKind::Io(err))),
        }
    }

    fn field_error(&self, layout: &Layout, index: usize, kind: CsvErrorKind) -> CsvError {
        let column =
            (!matches!(kind, CsvErrorKind::FieldCount { .. }) && index < 7).then(|| CsvColumn {
                index: index + 1,
                name: layout.names[index],
            });
        self.error(column, kind)
    }

    fn error(&self, column: Option<CsvColumn>, kind: CsvErrorKind) -> CsvError {
        CsvError {
            line: self.line,
            column,
            kind,
        }
    }
}

fn make_bar(row: &Row, close_ms: i64) -> Bar {
    Bar {
        ts: instant(close_ms),
        open: row.open,
        high: row.high,
        low: row.low,
        close: row.close,
        volume: row.volume,
    }
}

/// Every time the reader makes is within ±(year 10000 + a bar interval), far inside `DateTime`'s range.
fn instant(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The line without its `\n` or `\r\n`.
fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim(field: &[u8]) -> &[u8] {
    field.trim_ascii()
}

/// Reads the first non-blank line: a header (`true`) or the first row of headerless klines (`false`). Errors name the
/// 0-based column at fault when there is one.
fn detect_layout(text: &[u8]) -> Result<(Layout, bool), (Option<usize>, CsvErrorKind)> {
    let mut fields = text.split(|b| *b == b',').map(trim);
    let first = fields.next().unwrap_or_default();
    if parse_digits(first).is_some() {
        let count = 1 + fields.count();
        let close = match count {
            0..=5 => {
                return Err((
                    None,
                    CsvErrorKind::FieldCount {
                        expected: 6,
                        found: count,
                    },
                ));
            }
            6 => CloseRule::Interval,
            _ => CloseRule::CloseTimeColumn,
        };
        return Ok((layout("open_time", close), false));
    }
    let bad_header = |index| {
        let found = shown(text);
        (Some(index), CsvErrorKind::BadHeader { found })
    };
    let Some(time_name) = TIME_COLUMNS
        .iter()
        .find(|name| first.eq_ignore_ascii_case(name.as_bytes()))
    else {
        return Err(bad_header(0));
    };
    for (i, expected) in VALUE_COLUMNS.iter().enumerate() {
        match fields.next() {
            Some(name) if name.eq_ignore_ascii_case(expected.as_bytes()) => {}
            _ => return Err(bad_header(i + 1)),
        }
    }
    let close = if *time_name != "open_time" {
        CloseRule::FirstColumn
    } else if fields
        .next()
        .is_some_and(|name| name.eq_ignore_ascii_case(CLOSE_TIME.as_bytes()))
    {
        CloseRule::CloseTimeColumn
    } else {
        CloseRule::Interval
    };
    Ok((layout(time_name, close), true))
}

fn layout(time_name: &'static str, close: CloseRule) -> Layout {
    let [open, high, low, close_name, volume] = VALUE_COLUMNS;
    Layout {
        names: [time_name, open, high, low, close_name, volume, CLOSE_TIME],
        close,
    }
}

fn parse_row(
    text: &[u8],
    layout: &Layout,
    form: &mut Option<TimeForm>,
    line: u64,
) -> Result<Row, FieldError> {
    let wanted = layout.fields();
    let mut fields: [&[u8]; 7] = [&[]; 7];
    let mut count = 0;
    for field in text.split(|b| *b == b',').take(wanted) {
        fields[count] = trim(field);
        count += 1;
    }
    if count < wanted {
        return Err((
            0,
            CsvErrorKind::FieldCount {
                expected: wanted,
                found: count,
            },
        ));
    }
    let time_ms = parse_time(fields[0], form).map_err(|kind| (0, kind))?;
    let decimal = |i: usize| parse_decimal(fields[i]).map_err(|kind| (i, kind));
    let (open, high, low, close, volume) = (
        decimal(1)?,
        decimal(2)?,
        decimal(3)?,
        decimal(4)?,
        decimal(5)?,
    );
    let close_time_ms = match layout.close {
        CloseRule::CloseTimeColumn => {
            let close_time = parse_close_time(fields[6]).map_err(|kind| (6, kind))?;
            if close_time < time_ms {
                let kind = CsvErrorKind::CloseBeforeOpen {
                    close_time: instant(close_time),
                    open_time: instant(time_ms),
                };
                return Err((6, kind));
            }
            Some(close_time)
        }
        _ => None,
    };
    let row = Row {
        line,
        time_ms,
        close_time_ms,
        open,
        high,
        low,
        close,
        volume,
    };
    check_consistent(&row)?;
    Ok(row)
}

fn check_consistent(row: &Row) -> Result<(), FieldError> {
    for (i, value) in [row.open, row.high, row.low, row.close]
        .into_iter()
        .enumerate()
    {
        if value <= Decimal::ZERO {
            return Err((i + 1, CsvErrorKind::NotPositive { value }));
        }
    }
    if row.volume < Decimal::ZERO {
        return Err((5, CsvErrorKind::NegativeVolume { value: row.volume }));
    }
    if row.high < row.open.max(row.close).max(row.low) {
        return Err((
            2,
            CsvErrorKind::Inconsistent("high is below open, low or close"),
        ));
    }
    if row.low > row.open.min(row.close) {
        return Err((3, CsvErrorKind::Inconsistent("low is above open or close")));
    }
    Ok(())
}

/// A field for an error message: lossy UTF-8, at most [`SHOWN_CHARS`] characters.
fn shown(field: &[u8]) -> String {
    let text = String::from_utf8_lossy(field);
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

/// ASCII digits only (no sign), at most 18 of them.
fn parse_digits(field: &[u8]) -> Option<u64> {
    if field.is_empty() || field.len() > 18 {
        return None;
    }
    field.iter().try_fold(0u64, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

/// A time in Unix milliseconds; the first call fixes `form`, later calls must match it.
fn parse_time(field: &[u8], form: &mut Option<TimeForm>) -> Result<i64, CsvErrorKind> {
    let (ms, found) = if !field.is_empty() && field.iter().all(u8::is_ascii_digit) {
        let value = parse_digits(field)
            .filter(|v| *v < INTEGER_TIME_LIMIT)
            .ok_or_else(|| CsvErrorKind::TimeOutOfRange {
                value: shown(field),
            })?;
        // Both below 1e14, so the casts are exact.
        if value < MILLIS_FROM {
            (value as i64 * 1_000, TimeForm::UnixSeconds)
        } else {
            (value as i64, TimeForm::UnixMillis)
        }
    } else {
        (parse_rfc3339(field)?, TimeForm::Rfc3339)
    };
    match *form {
        None => *form = Some(found),
        Some(first) if first != found => {
            let value = shown(field);
            return Err(CsvErrorKind::MixedTimeForms {
                value,
                found,
                first,
            });
        }
        Some(_) => {}
    }
    Ok(ms)
}

/// Column 7 of klines: integer Unix milliseconds.
fn parse_close_time(field: &[u8]) -> Result<i64, CsvErrorKind> {
    parse_digits(field)
        .filter(|v| (MILLIS_FROM..INTEGER_TIME_LIMIT).contains(v))
        .map(|v| v as i64)
        .ok_or_else(|| CsvErrorKind::BadCloseTime {
            value: shown(field),
        })
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,3}](Z|±HH:MM)` (`t`/`z` lower case or a space for `T` are allowed, as RFC 3339 permits)
/// to Unix milliseconds.
fn parse_rfc3339(field: &[u8]) -> Result<i64, CsvErrorKind> {
    let bad = || CsvErrorKind::BadTime {
        value: shown(field),
    };
    let number = |range: std::ops::Range<usize>| -> Result<u32, CsvErrorKind> {
        let digits = field.get(range).ok_or_else(bad)?;
        digits.iter().try_fold(0u32, |acc, b| {
            b.is_ascii_digit()
                .then(|| acc * 10 + u32::from(b - b'0'))
                .ok_or_else(bad)
        })
    };
    let punct = |at: usize, allowed: &[u8]| -> Result<(), CsvErrorKind> {
        match field.get(at) {
            Some(b) if allowed.contains(b) => Ok(()),
            _ => Err(bad()),
        }
    };
    punct(4, b"-")?;
    punct(7, b"-")?;
    punct(10, b"Tt ")?;
    punct(13, b":")?;
    punct(16, b":")?;
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let mut at = 19;
    let mut millis = 0;
    if field.get(at) == Some(&b'.') {
        let digits = field[at + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 {
            return Err(bad());
        }
        if digits > 3 {
            return Err(CsvErrorKind::FinerThanMillis {
                value: shown(field),
            });
        }
        millis = number(at + 1..at + 1 + digits)? * 10u32.pow(3 - digits as u32);
        at += 1 + digits;
    }
    let offset_minutes = match field.get(at..) {
        Some([b'Z' | b'z']) => 0,
        Some([sign @ (b'+' | b'-'), _, _, b':', _, _]) => {
            let (hours, minutes) = (number(at + 1..at + 3)?, number(at + 4..at + 6)?);
            if hours > 23 || minutes > 59 {
                return Err(bad());
            }
            let total = i64::from(hours * 60 + minutes);
            if *sign == b'-' {
                -total
            } else {
                total
            }
        }
        _ => return Err(bad()),
    };
    let date = NaiveDate::from_ymd_opt(year as i32, month, day).ok_or_else(bad)?;
    let time = NaiveTime::from_hms_milli_opt(hour, minute, second, millis).ok_or_else(bad)?;
    Ok(date.and_time(time).and_utc().timestamp_millis() - offset_minutes * 60_000)
}

/// A plain decimal: optional sign, digits with at most one `.`, at least one digit. Up to 19 digits are accumulated
/// by hand (the common case); longer ones go through `Decimal::from_str` after the same check.
fn parse_decimal(field: &[u8]) -> Result<Decimal, CsvErrorKind> {
    let bad = || {
        let value = shown(field);
        if field.iter().any(|b| matches!(b, b'e' | b'E')) {
            CsvErrorKind::Exponent { value }
        } else {
            CsvErrorKind::BadDecimal { value }
        }
    };
    let (negative, body) = match field.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, field),
    };
    let (mut mantissa, mut digits, mut scale, mut point) = (0u64, 0u32, 0u32, false);
    for &b in body {
        match b {
            b'0'..=b'9' => {
                if digits < 19 {
                    mantissa = mantissa * 10 + u64::from(b - b'0');
                }
                digits += 1;
                scale += u32::from(point);
            }
            b'.' if !point => point = true,
            _ => return Err(bad()),
        }
    }
    if digits == 0 {
        return Err(bad());
    }
    if digits > 19 {
        // Checked above to be a plain decimal, so it is ASCII.
        let text = std::str::from_utf8(field).map_err(|_| bad())?;
        return Decimal::from_str(text).map_err(|_| bad());
    }
    let mut value = Decimal::from_i128_with_scale(i128::from(mantissa), scale);
    value.set_sign_negative(negative);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn dec(s: &str) -> Result<Decimal, String> {
        parse_decimal(s.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn decimals_parse_like_decimal_from_str() {
        for s in [
            "0",
            "1",
            "101.25",
            "-3.5",
            "+7",
            ".5",
            "5.",
            "0.00000001",
            "1234567890123456789",
            "12345678901234567890.5",
            "79228162514264337593543950335",
        ] {
            assert_eq!(
                dec(s).unwrap(),
                Decimal::from_str(s.trim_start_matches('+')).unwrap(),
                "{s}"
            );
        }
        assert_eq!(dec("101.250").unwrap().scale(), 3);
    }

    #[test]
    fn non_decimals_are_refused() {
        for s in ["", "-", ".", "1.2.3", "1,5", "abc", "1 000", "0x10", "NaN"] {
            assert_eq!(dec(s).unwrap_err(), format!("{s:?} is not a decimal"));
        }
        assert_eq!(
            dec("1e5").unwrap_err(),
            "\"1e5\" is not a plain decimal: exponents are not accepted"
        );
    }

    fn time(s: &str) -> Result<(i64, TimeForm), String> {
        let mut form = None;
        let ms = parse_time(s.as_bytes(), &mut form).map_err(|e| e.to_string())?;
        Ok((ms, form.unwrap()))
    }

    #[test]
    fn integer_times_are_seconds_below_1e11_and_milliseconds_from_it() {
        assert_eq!(
            time("1767225660").unwrap(),
            (1_767_225_660_000, TimeForm::UnixSeconds)
        );
        assert_eq!(
            time("99999999999").unwrap(),
            (99_999_999_999_000, TimeForm::UnixSeconds)
        );
        assert_eq!(
            time("100000000000").unwrap(),
            (100_000_000_000, TimeForm::UnixMillis)
        );
        assert_eq!(
            time("1767225660123").unwrap(),
            (1_767_225_660_123, TimeForm::UnixMillis)
        );
        assert!(time("1767225660123000")
            .unwrap_err()
            .contains("too large for Unix milliseconds"));
    }

    #[test]
    fn rfc3339_times_take_offsets_and_at_most_milliseconds() {
        let t0 = 1_767_225_660_000;
        for (s, ms) in [
            ("2026-01-01T00:01:00Z", t0),
            ("2026-01-01t00:01:00z", t0),
            ("2026-01-01 00:01:00Z", t0),
            ("2026-01-01T00:01:00.5Z", t0 + 500),
            ("2026-01-01T00:01:00.12Z", t0 + 120),
            ("2026-01-01T00:01:00.123Z", t0 + 123),
            ("2026-01-01T01:01:00+01:00", t0),
            ("2025-12-31T23:31:00.000-00:30", t0),
        ] {
            assert_eq!(time(s).unwrap(), (ms, TimeForm::Rfc3339), "{s}");
        }
        assert_eq!(
            time("2026-01-01T00:01:00.1234Z").unwrap_err(),
            "\"2026-01-01T00:01:00.1234Z\" has a fraction of a second finer than milliseconds"
        );
        for s in [
            "2026-01-01T00:01:00",
            "2026-01-01",
            "2026-02-30T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:60Z",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00+1:00",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00Zjunk",
            "-5",
        ] {
            assert!(time(s).unwrap_err().contains("is not a time"), "{s}");
        }
    }

    #[test]
    fn a_file_over_the_byte_limit_is_refused() {
        let text = "ts,open,high,low,close,volume\n60,1,1,1,1,1\n120,1,1,1,1,1\n";
        let all: Vec<_> = read_bars_limited(Cursor::new(text), text.len() as u64).collect();
        assert!(all.iter().all(Result::is_ok) && all.len() == 2);
        let cut: Vec<_> = read_bars_limited(Cursor::new(text), text.len() as u64 - 1).collect();
        assert_eq!(cut.len(), 2);
        let err = cut[1].as_ref().unwrap_err();
        assert_eq!(err.line, 3);
        assert_eq!(
            err.to_string(),
            format!(
                "line 3: the file is larger than {} bytes (MAX_CSV_BYTES)",
                text.len() - 1
            )
        );
    }
}
