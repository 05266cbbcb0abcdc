//! Properties of the simulated market: determinism (within and across processes), positivity, continuity, bars and
//! their CSV form.

mod csv;

use std::process::Command;

use chrono::DateTime;
use strom_sim::{Bar, Decimal, PriceObserved, PricePath, SCALES};

/// 2026-01-01T00:00:00Z.
pub(crate) const T0: i64 = 1_767_225_600;
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
fn bars_carry_their_close_time_chain_open_to_previous_close_and_bracket_their_prices() {
    let path = PricePath::new(42);
    let bars: Vec<Bar> = path.bars("ETH-USD", T0, T0 + 600, 60).unwrap().collect();
    assert_eq!(bars.len(), 10);
    // The bar over [T0, T0 + 60) closes, and is observed, at T0 + 60.
    assert_eq!(bars[0].ts, DateTime::from_timestamp(T0 + 60, 0).unwrap());
    assert_eq!(bars[9].ts, DateTime::from_timestamp(T0 + 600, 0).unwrap());
    for pair in bars.windows(2) {
        assert_eq!(pair[1].open, pair[0].close);
        assert_eq!(pair[1].ts, pair[0].ts + chrono::TimeDelta::seconds(60));
    }
    for bar in &bars {
        let close_time = bar.ts.timestamp();
        assert_eq!(bar.open, path.price_at("ETH-USD", close_time - 60));
        assert_eq!(bar.close, path.price_at("ETH-USD", close_time));
        assert!(bar.low <= bar.open.min(bar.close) && bar.high >= bar.open.max(bar.close));
        assert!(bar.volume >= Decimal::ONE);
    }
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
