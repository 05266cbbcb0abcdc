//! Properties of the simulated market: determinism (within and across processes), positivity, continuity, bars and
//! their CSV form.

use std::io::Cursor;
use std::process::Command;

use chrono::DateTime;
use strom_sim::{
    read_bars, write_bars, Bar, CsvErrorKind, Decimal, PriceObserved, PricePath, CSV_HEADER, SCALES,
};

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600;
/// Marks the lines the child process prints, so the test harness's own output can be told apart.
const MARK: &str = "PRICE ";
/// Set in the child process started by `the_same_seed_gives_the_same_prices_in_another_process`.
const CHILD_ENV: &str = "STROM_SIM_TEST_CHILD";

fn price_lines() -> Vec<String> {
    let path = PricePath::new(42);
    ["BTC-USD", "ETH-USD", "AAPL"]
        .iter()
        .flat_map(|s| (0..50).map(move |i| (*s, T0 + i * 3_607)))
        .map(|(s, t)| format!("{MARK}{s} {t} {}", path.price_at(s, t)))
        .collect()
}

#[test]
fn child_prints_prices() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return; // only meaningful inside the child process
    }
    for line in price_lines() {
        println!("{line}");
    }
}

fn prices_from_a_child_process() -> Vec<String> {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_prints_prices",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        // The harness may print "test child_prints_prices ... " on the same line as the first price.
        .filter_map(|l| l.find(MARK).map(|i| l[i..].to_owned()))
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_prices_in_another_process() {
    let first = prices_from_a_child_process();
    let second = prices_from_a_child_process();
    assert_eq!(first.len(), 150);
    assert_eq!(first, second);
    assert_eq!(first, price_lines());
}

#[test]
fn the_same_seed_gives_the_same_prices_on_every_call() {
    let (a, b) = (PricePath::new(42), PricePath::new(42));
    for t in (T0..T0 + 86_400).step_by(613) {
        assert_eq!(a.price_at("BTC-USD", t), b.price_at("BTC-USD", t));
        assert_eq!(a.price_at("BTC-USD", t), a.price_at("BTC-USD", t));
    }
}

#[test]
fn prices_are_pinned_so_a_change_of_the_formula_is_noticed() {
    // Golden values: if the noise, scales or rounding change, every recorded backtest and seed changes meaning.
    let path = PricePath::new(42);
    let got: Vec<String> = [T0, T0 + 1, T0 + 3_600, T0 + 86_400 * 30]
        .iter()
        .map(|t| path.price_at("BTC-USD", *t).to_string())
        .collect();
    assert_eq!(got, GOLDEN_BTC_SEED_42);
}

const GOLDEN_BTC_SEED_42: [&str; 4] = ["2412.38", "2412.45", "2407.86", "2122.20"];

#[test]
fn different_seeds_and_symbols_give_different_prices() {
    let times: Vec<i64> = (0..100).map(|i| T0 + i * 60).collect();
    let series = |seed: u64, symbol: &str| -> Vec<Decimal> {
        let path = PricePath::new(seed);
        times.iter().map(|t| path.price_at(symbol, *t)).collect()
    };
    assert_ne!(series(42, "BTC-USD"), series(43, "BTC-USD"));
    assert_ne!(series(42, "BTC-USD"), series(42, "ETH-USD"));
    assert_ne!(
        PricePath::new(42).base_price("BTC-USD"),
        PricePath::new(42).base_price("ETH-USD")
    );
}

#[test]
fn prices_are_positive_cents_near_the_base_price() {
    let path = PricePath::new(7);
    let max_offset_bps: i64 = SCALES.iter().map(|s| s.amplitude_bps).sum();
    for symbol in ["BTC-USD", "X", "A-VERY-LONG-SYMBOL-NAME"] {
        let base = path.base_price(symbol);
        assert!(
            base >= Decimal::from(50) && base <= Decimal::from(5_000),
            "{base}"
        );
        let band =
            base * Decimal::from(max_offset_bps) / Decimal::from(10_000) + Decimal::new(1, 2);
        for t in (-10_000_000..10_000_000).step_by(99_991) {
            let p = path.price_at(symbol, T0 + t);
            assert!(p > Decimal::ZERO, "{symbol} at {t}: {p}");
            assert!(p.scale() <= 2, "{p}");
            assert!(
                (p - base).abs() <= band,
                "{symbol} at {t}: {p} vs base {base}"
            );
        }
    }
}

#[test]
fn adjacent_minutes_move_by_a_bounded_amount() {
    // Per minute each scale moves at most 2 × amplitude × 60 / period; plus one cent of rounding at each end.
    let bound_bps: Decimal = SCALES
        .iter()
        .map(|s| Decimal::from(2 * s.amplitude_bps * 60) / Decimal::from(s.period_s))
        .sum();
    let path = PricePath::new(42);
    let base = path.base_price("BTC-USD");
    let max_move = base * (Decimal::from(10_000) + Decimal::from(1_355)) / Decimal::from(10_000)
        * bound_bps
        / Decimal::from(10_000)
        + Decimal::new(2, 2);
    let mut previous = path.price_at("BTC-USD", T0);
    for minute in 1..10_000 {
        let p = path.price_at("BTC-USD", T0 + minute * 60);
        assert!(
            (p - previous).abs() <= max_move,
            "minute {minute}: {previous} -> {p}"
        );
        previous = p;
    }
}

#[test]
fn bars_chain_open_to_previous_close_and_bracket_their_prices() {
    let path = PricePath::new(42);
    let bars: Vec<Bar> = path.bars("ETH-USD", T0, T0 + 600, 60).unwrap().collect();
    assert_eq!(bars.len(), 10);
    for pair in bars.windows(2) {
        assert_eq!(pair[1].open, pair[0].close);
        assert_eq!(pair[1].ts_unix_s, pair[0].ts_unix_s + 60);
    }
    for bar in &bars {
        assert_eq!(bar.open, path.price_at("ETH-USD", bar.ts_unix_s));
        assert!(bar.low <= bar.open.min(bar.close) && bar.high >= bar.open.max(bar.close));
        assert!(bar.volume >= Decimal::ONE);
    }
}

#[test]
fn bars_survive_a_csv_round_trip() {
    let bars: Vec<Bar> = PricePath::new(9)
        .bars("BTC-USD", T0, T0 + 6_000, 60)
        .unwrap()
        .collect();
    let mut file = Vec::new();
    assert_eq!(write_bars(&mut file, bars.clone()).unwrap(), 100);
    let text = String::from_utf8(file.clone()).unwrap();
    assert!(text.starts_with(&format!("{CSV_HEADER}\n{T0},")), "{text}");
    let back: Vec<Bar> = read_bars(Cursor::new(file))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(back, bars);
}

#[test]
fn the_csv_reader_accepts_crlf_and_blank_lines() {
    let text = format!("{CSV_HEADER}\r\n\r\n60,1,2,0.5,1.5,10\r\n120,1.5,1.5,1.5,1.5,0\r\n\n");
    let bars: Vec<Bar> = read_bars(Cursor::new(text))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(bars.len(), 2);
    assert_eq!(bars[0].low, Decimal::new(5, 1));
}

fn first_error(text: &str) -> (u64, CsvErrorKind, String) {
    let err = read_bars(Cursor::new(text.to_owned()))
        .find_map(Result::err)
        .expect("an error");
    let message = err.to_string();
    (err.line, err.kind, message)
}

#[test]
fn bad_csv_rows_are_reported_with_their_line_number() {
    let h = CSV_HEADER;
    let (line, kind, msg) = first_error("");
    assert!(matches!(kind, CsvErrorKind::Empty) && line == 1, "{msg}");

    let (line, kind, msg) = first_error("time,o,h,l,c,v\n");
    assert!(
        matches!(kind, CsvErrorKind::BadHeader { .. }) && line == 1,
        "{msg}"
    );

    let (line, kind, msg) = first_error(&format!("{h}\n60,1,1,1,1,1\n120,1,1,1\n"));
    assert!(
        matches!(kind, CsvErrorKind::FieldCount { found: 4 }) && line == 3,
        "{msg}"
    );
    assert_eq!(
        msg,
        "line 3: expected 6 fields (ts,open,high,low,close,volume), found 4"
    );

    let (line, kind, msg) = first_error(&format!("{h}\n60,1,abc,1,1,1\n"));
    assert!(
        matches!(kind, CsvErrorKind::BadField { field: "high", .. }) && line == 2,
        "{msg}"
    );
    assert!(msg.starts_with("line 2: field `high` is `abc`"), "{msg}");

    let (line, kind, msg) = first_error(&format!("{h}\n2026-01-01T00:00:00Z,1,1,1,1,1\n"));
    assert!(
        matches!(kind, CsvErrorKind::BadField { field: "ts", .. }) && line == 2,
        "{msg}"
    );

    let (line, kind, msg) = first_error(&format!("{h}\n60,1,0.9,0.8,1,1\n"));
    assert!(
        matches!(kind, CsvErrorKind::Inconsistent(_)) && line == 2,
        "{msg}"
    );

    let (line, kind, msg) = first_error(&format!("{h}\n60,0,0,0,0,1\n"));
    assert!(
        matches!(kind, CsvErrorKind::Inconsistent(_)) && line == 2,
        "{msg}"
    );

    let (line, kind, msg) = first_error(&format!("{h}\n120,1,1,1,1,1\n\n60,1,1,1,1,1\n"));
    assert!(
        matches!(
            kind,
            CsvErrorKind::NotIncreasing {
                ts: 60,
                previous: 120
            }
        ) && line == 4,
        "{msg}"
    );
}

#[test]
fn the_reader_stops_after_the_first_error() {
    let text = format!("{CSV_HEADER}\n60,x,1,1,1,1\n120,1,1,1,1,1\n");
    let results: Vec<_> = read_bars(Cursor::new(text)).collect();
    assert_eq!(results.len(), 1);
    assert!(results[0].is_err());
}

#[test]
fn price_observed_serializes_with_string_price_and_millisecond_time() {
    let obs = PriceObserved {
        symbol: "BTC-USD".into(),
        price: Decimal::new(10_125, 2),
        at: DateTime::from_timestamp(T0, 0).unwrap(),
        seed: 42,
    };
    let json = serde_json::to_value(&obs).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"symbol": "BTC-USD", "price": "101.25", "at": "2026-01-01T00:00:00.000Z", "seed": 42})
    );
    assert_eq!(serde_json::from_value::<PriceObserved>(json).unwrap(), obs);
}
