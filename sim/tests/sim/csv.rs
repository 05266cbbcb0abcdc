//! Bars as CSV: the forms users have (headers, time forms, exchange klines), errors with line and column, and the
//! writer's round trip.

use std::io::Cursor;

use chrono::{DateTime, Utc};
use strom_sim::{
    read_bars, write_bars, Bar, CsvColumn, CsvError, CsvErrorKind, Decimal, PricePath, TimeForm,
    CSV_HEADER,
};

use super::T0;

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
}

fn read(text: &str) -> Vec<Bar> {
    read_bars(Cursor::new(text.to_owned()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|err| panic!("{err}\n{text}"))
}

fn times(text: &str) -> Vec<DateTime<Utc>> {
    read(text).into_iter().map(|bar| bar.ts).collect()
}

fn first_error(text: &str) -> CsvError {
    read_bars(Cursor::new(text.to_owned()))
        .find_map(Result::err)
        .expect("an error")
}

fn message(text: &str) -> String {
    first_error(text).to_string()
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[test]
fn generated_bars_survive_a_csv_round_trip_with_their_close_times() {
    let bars: Vec<Bar> = PricePath::new(9)
        .bars("BTC-USD", T0, T0 + 6_000, 60)
        .unwrap()
        .collect();
    let mut file = Vec::new();
    assert_eq!(write_bars(&mut file, bars.clone()).unwrap(), 100);
    let text = String::from_utf8(file).unwrap();
    // The first bar covers 00:00–00:01 and is written with its close time.
    assert!(
        text.starts_with(&format!("{CSV_HEADER}\n2026-01-01T00:01:00.000Z,")),
        "{text}"
    );
    assert_eq!(read(&text), bars);
}

#[test]
fn millisecond_times_survive_a_csv_round_trip() {
    let bar = |ts: &str| Bar {
        ts: at(ts),
        open: dec("1.5"),
        high: dec("2"),
        low: dec("1.25"),
        close: dec("1.75"),
        volume: dec("0.001"),
    };
    let bars = vec![
        bar("1969-12-31T23:59:59.999Z"),
        bar("2026-01-01T00:00:00.001Z"),
    ];
    let mut file = Vec::new();
    write_bars(&mut file, bars.clone()).unwrap();
    let text = String::from_utf8(file).unwrap();
    assert_eq!(
        text,
        "ts,open,high,low,close,volume\n\
         1969-12-31T23:59:59.999Z,1.5,2,1.25,1.75,0.001\n\
         2026-01-01T00:00:00.001Z,1.5,2,1.25,1.75,0.001\n"
    );
    assert_eq!(read(&text), bars);

    let finer = Bar {
        ts: at("2026-01-01T00:00:00.0001Z"),
        ..bar("2026-01-01T00:00:00Z")
    };
    let err = write_bars(Vec::new(), [finer]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn ts_timestamp_and_date_headers_give_the_close_time_in_any_case() {
    for header in ["ts", "timestamp", "date", "TS", "Timestamp", "DATE"] {
        let text = format!(
            "{header},Open,HIGH,low,Close,volume,extra,columns\n\
             2026-01-01T00:01:00Z,1,2,0.5,1.5,10,x,y\n\
             2026-01-01T00:02:00Z,1.5,1.5,1.5,1.5,0,,\n"
        );
        let bars = read(&text);
        assert_eq!(bars.len(), 2, "{header}");
        assert_eq!(bars[0].ts, at("2026-01-01T00:01:00Z"), "{header}");
        assert_eq!(
            (
                bars[0].open,
                bars[0].high,
                bars[0].low,
                bars[0].close,
                bars[0].volume
            ),
            (dec("1"), dec("2"), dec("0.5"), dec("1.5"), dec("10"))
        );
        assert_eq!(bars[1].ts, at("2026-01-01T00:02:00Z"), "{header}");
    }
}

#[test]
fn seconds_milliseconds_and_rfc3339_give_the_same_bars() {
    let rows = |t1: &str, t2: &str| {
        format!("ts,open,high,low,close,volume\n{t1},1,1,1,1,1\n{t2},1,1,1,1,1\n")
    };
    let seconds = rows("1767225660", "1767225720");
    let millis = rows("1767225660000", "1767225720000");
    let rfc = rows("2026-01-01T00:01:00Z", "2026-01-01T01:02:00+01:00");
    let expected = vec![at("2026-01-01T00:01:00Z"), at("2026-01-01T00:02:00Z")];
    for (text, form) in [
        (seconds, TimeForm::UnixSeconds),
        (millis, TimeForm::UnixMillis),
        (rfc, TimeForm::Rfc3339),
    ] {
        assert_eq!(times(&text), expected, "{text}");
        let mut reader = read_bars(Cursor::new(text));
        assert!(reader.next().unwrap().is_ok());
        assert_eq!(reader.time_form(), Some(form));
    }
    // Fractions up to milliseconds.
    assert_eq!(
        times(&rows("2026-01-01T00:01:00.5Z", "2026-01-01T00:01:00.501Z")),
        vec![
            at("2026-01-01T00:01:00.500Z"),
            at("2026-01-01T00:01:00.501Z")
        ]
    );
}

#[test]
fn a_row_in_another_time_form_is_an_error_naming_both() {
    let h = CSV_HEADER;
    assert_eq!(
        message(&format!("{h}\n1767225660,1,1,1,1,1\n2026-01-01T00:02:00Z,1,1,1,1,1\n")),
        "line 3, column 1 (ts): \"2026-01-01T00:02:00Z\" is RFC 3339, but the first row uses Unix seconds; every \
         row must use the same form"
    );
    let err = first_error(&format!(
        "{h}\n1767225660000,1,1,1,1,1\n1767225720,1,1,1,1,1\n"
    ));
    assert!(
        matches!(
            err.kind,
            CsvErrorKind::MixedTimeForms {
                found: TimeForm::UnixSeconds,
                first: TimeForm::UnixMillis,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn time_values_that_are_not_accepted_say_why() {
    let h = CSV_HEADER;
    assert_eq!(
        message(&format!("{h}\n2026-01-01T00:01:00.0001Z,1,1,1,1,1\n")),
        "line 2, column 1 (ts): \"2026-01-01T00:01:00.0001Z\" has a fraction of a second finer than milliseconds"
    );
    assert!(message(&format!("{h}\n2026-01-01 00:01:00,1,1,1,1,1\n"))
        .starts_with("line 2, column 1 (ts): \"2026-01-01 00:01:00\" is not a time"));
    assert!(message(&format!("{h}\n1767225660000000,1,1,1,1,1\n"))
        .contains("too large for Unix milliseconds"));
}

const BINANCE_1H: &str = "\
1704067200000,42283.58000000,42554.57000000,42261.02000000,42475.23000000,1271.68108000,1704070799999,53957248.97378850,47134,682.57581000,28957416.81514310,0
1704070800000,42475.23000000,42775.00000000,42431.65000000,42613.56000000,1196.37856000,1704074399999,50942299.52000000,44562,594.42900000,25316460.55000000,0
";

#[test]
fn headerless_klines_with_a_close_time_close_one_millisecond_after_it() {
    let bars = read(BINANCE_1H);
    assert_eq!(bars.len(), 2);
    assert_eq!(bars[0].ts, at("2024-01-01T01:00:00Z"));
    assert_eq!(bars[1].ts, at("2024-01-01T02:00:00Z"));
    assert_eq!(bars[0].close, dec("42475.23"));
    assert_eq!(bars[1].volume, dec("1196.37856"));
}

#[test]
fn headerless_klines_without_a_close_time_close_one_interval_after_their_open() {
    // Opens every 60 s, with a gap: the interval comes from the first two rows.
    let text = "1704067200000,1,1,1,1,1\n1704067260000,1,1,1,1,1\n1704067500000,1,1,1,1,1\n";
    assert_eq!(
        times(text),
        vec![
            at("2024-01-01T00:01:00Z"),
            at("2024-01-01T00:02:00Z"),
            at("2024-01-01T00:06:00Z")
        ]
    );
    let err = first_error("1704067200000,1,1,1,1,1\n");
    assert!(matches!(err.kind, CsvErrorKind::NoInterval), "{err}");
    assert_eq!(err.line, 1);
    assert!(
        err.to_string()
            .starts_with("line 1: cannot tell when the only bar closes"),
        "{err}"
    );
    // An error on the second row comes before the first bar, which needs the second row.
    let results: Vec<_> = read_bars(Cursor::new(
        "1704067200000,1,1,1,1,1\n1704067260000,x,1,1,1,1\n",
    ))
    .collect();
    assert_eq!(results.len(), 1);
    assert_eq!(
        results[0].as_ref().unwrap_err().to_string(),
        "line 2, column 2 (open): \"x\" is not a decimal"
    );
}

#[test]
fn open_time_headers_use_a_close_time_column_or_the_interval() {
    let with_close = "open_time,open,high,low,close,volume,Close_Time,quote_volume\n\
                      1704067200000,1,1,1,1,1,1704067259999,5\n\
                      1704067260000,1,1,1,1,1,1704067319999,5\n";
    assert_eq!(
        times(with_close),
        vec![at("2024-01-01T00:01:00Z"), at("2024-01-01T00:02:00Z")]
    );
    let with_interval = "OPEN_TIME,open,high,low,close,volume,quote_volume\n\
                         2024-01-01T00:00:00Z,1,1,1,1,1,1704067259999\n\
                         2024-01-01T00:05:00Z,1,1,1,1,1,1704067319999\n";
    assert_eq!(
        times(with_interval),
        vec![at("2024-01-01T00:05:00Z"), at("2024-01-01T00:10:00Z")]
    );
    let one_row = "open_time,open,high,low,close,volume\n2024-01-01T00:00:00Z,1,1,1,1,1\n";
    let err = first_error(one_row);
    assert!(
        matches!(err.kind, CsvErrorKind::NoInterval) && err.line == 2,
        "{err}"
    );
    let backwards =
        "open_time,open,high,low,close,volume,close_time\n1704067200000,1,1,1,1,1,1704067100000\n";
    assert_eq!(
        message(backwards),
        "line 2, column 7 (close_time): close_time 2023-12-31T23:58:20.000Z is before the bar's open_time \
         2024-01-01T00:00:00.000Z"
    );
}

#[test]
fn a_bom_crlf_and_blank_lines_are_accepted() {
    let text = format!(
        "\u{feff}{CSV_HEADER}\r\n\r\n60,1,2,0.5,1.5,10\r\n  \r\n120,1.5,1.5,1.5,1.5,0\r\n\n"
    );
    let bars = read(&text);
    assert_eq!(bars.len(), 2);
    assert_eq!(bars[0].ts, at("1970-01-01T00:01:00Z"));
    assert_eq!(bars[0].low, dec("0.5"));
    assert_eq!(
        times("\u{feff}1704067200000,1,1,1,1,1,1704067259999\r\n"),
        vec![at("2024-01-01T00:01:00Z")]
    );
}

#[test]
fn a_bad_decimal_names_its_line_and_column() {
    let text = format!("{CSV_HEADER}\n60,1,1,1,1,1\n\n120,1,1,1,1,1\n180,1,1,1,1,1\n240,1,1,1,1,1\n300,1,1,1,abc,1\n");
    let err = first_error(&text);
    assert_eq!(
        err.to_string(),
        "line 7, column 5 (close): \"abc\" is not a decimal"
    );
    assert_eq!(err.line, 7);
    assert_eq!(
        err.column,
        Some(CsvColumn {
            index: 5,
            name: "close"
        })
    );
    assert_eq!(
        message(&format!("{CSV_HEADER}\n60,1,1,1,1,1e3\n")),
        "line 2, column 6 (volume): \"1e3\" is not a plain decimal: exponents are not accepted"
    );
    assert_eq!(
        message("1704067200000,1,1,1,1,1,abc\n"),
        "line 1, column 7 (close_time): \"abc\" is not a close time in Unix milliseconds"
    );
}

#[test]
fn times_must_strictly_increase() {
    let text = format!("{CSV_HEADER}\n120,1,1,1,1,1\n\n120,1,1,1,1,1\n");
    let err = first_error(&text);
    assert_eq!(
        err.to_string(),
        "line 4, column 1 (ts): 1970-01-01T00:02:00.000Z is not after the previous row's \
         1970-01-01T00:02:00.000Z; rows must be in strictly increasing time order"
    );
    let err = first_error(&format!("{CSV_HEADER}\n120,1,1,1,1,1\n60,1,1,1,1,1\n"));
    assert!(
        matches!(err.kind, CsvErrorKind::NotIncreasing { .. }) && err.line == 3,
        "{err}"
    );
    let klines = "1704067260000,1,1,1,1,1,1704067319999\n1704067200000,1,1,1,1,1,1704067259999\n";
    assert!(message(klines)
        .starts_with("line 2, column 7 (close_time): 2024-01-01T00:00:59.999Z is not after"));
}

#[test]
fn prices_must_be_positive_and_bars_consistent() {
    let h = CSV_HEADER;
    assert_eq!(
        message(&format!("{h}\n60,1,1,1,0,1\n")),
        "line 2, column 5 (close): 0 is not > 0"
    );
    assert_eq!(
        message(&format!("{h}\n60,1,1,1,1,-1\n")),
        "line 2, column 6 (volume): -1 is negative"
    );
    assert_eq!(
        message(&format!("{h}\n60,1,0.9,0.8,1,1\n")),
        "line 2, column 3 (high): inconsistent bar: high is below open, low or close"
    );
    assert_eq!(
        message(&format!("{h}\n60,1,2,1.5,1.8,1\n")),
        "line 2, column 4 (low): inconsistent bar: low is above open or close"
    );
}

#[test]
fn bad_files_and_headers_are_reported_with_their_line_number() {
    let err = first_error("");
    assert!(
        matches!(err.kind, CsvErrorKind::Empty) && err.line == 1,
        "{err}"
    );
    let err = first_error("\n\r\n");
    assert!(matches!(err.kind, CsvErrorKind::Empty), "{err}");

    let err = first_error("time,o,h,l,c,v\n");
    assert!(
        matches!(err.kind, CsvErrorKind::BadHeader { .. }) && err.line == 1,
        "{err}"
    );
    assert_eq!(err.column.map(|c| c.index), Some(1));
    let err = first_error("ts,open,high,low,price,volume\n");
    assert_eq!(err.column.map(|c| (c.index, c.name)), Some((5, "close")));
    assert!(
        err.to_string()
            .ends_with("found \"ts,open,high,low,price,volume\""),
        "{err}"
    );

    assert_eq!(
        message(&format!("{CSV_HEADER}\n60,1,1,1,1,1\n120,1,1,1\n")),
        "line 3: expected at least 6 fields, found 4"
    );
    assert_eq!(
        message("1704067200000,1,1,1,1\n"),
        "line 1: expected at least 6 fields, found 5"
    );
    // The header alone is a file without bars, not an error.
    assert!(read(&format!("{CSV_HEADER}\n")).is_empty());
}

#[test]
fn the_reader_stops_after_the_first_error() {
    let text = format!("{CSV_HEADER}\n60,1,1,1,1,1\n120,x,1,1,1,1\n180,1,1,1,1,1\n");
    let results: Vec<_> = read_bars(Cursor::new(text)).collect();
    assert_eq!(results.len(), 2);
    assert!(results[0].is_ok() && results[1].is_err());
}
