//! `strom sim`: the deterministic market simulator alone. Publishes prices on NATS until stopped, or writes them
//! out without any bus: `--print` (prices as CSV on stdout) or `--csv FILE` (one-minute bars of one symbol, each
//! stamped with its close time).

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use strom_commands::bus::sim_publisher::SimPublisher;
use strom_commands::bus::validate_price_key;
use strom_sim::{PricePath, SimFeed};

/// Most prices (--print) or bars (--csv) one run produces: 10 million one-minute bars are 19 years, about 500 MB of
/// CSV, far beyond the 1M-bar benchmark workload, yet a typo like `--count 1000000000000` is refused.
const MAX_SIM_COUNT: u64 = 10_000_000;
/// Bars written by --csv are one minute long, the format backtests read.
const CSV_BAR_S: u32 = 60;

#[derive(Args)]
pub struct SimArgs {
    /// Symbols to simulate, comma-separated (--csv takes exactly one).
    #[arg(
        long,
        alias = "symbol",
        value_delimiter = ',',
        default_value = "BTC-USD"
    )]
    symbols: Vec<String>,
    /// Seconds between prices; published prices fall on whole multiples of it in Unix time.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    interval_s: u32,
    /// Seed of the price path: the same seed gives the same prices on every machine, and it is recorded in each
    /// PriceObserved.
    #[arg(long, env = "STROM_SIM_SEED", default_value_t = 42)]
    seed: u64,
    /// NATS URL (JetStream enabled) to publish on. Required unless --print or --csv.
    #[arg(long, env = "STROM_NATS_URL")]
    nats_url: Option<String>,
    /// Prefix of the subjects, streams and KV bucket.
    #[arg(long, env = "STROM_NATS_PREFIX", default_value = "strom")]
    nats_prefix: String,
    /// Print --count prices per symbol from --from, every --interval-s seconds, as CSV (at,symbol,price) on
    /// stdout, and exit. Needs no NATS.
    #[arg(long, requires = "from", conflicts_with = "csv")]
    print: bool,
    /// Write --count one-minute bars of the symbol, the first starting at --from, to FILE as CSV
    /// (ts,open,high,low,close,volume) and exit. ts is each bar's close time (when its close is observed: the first
    /// bar's ts is --from + 1 minute), written as RFC 3339 UTC with milliseconds. Needs no NATS.
    #[arg(long, value_name = "FILE", requires = "from")]
    csv: Option<PathBuf>,
    /// First instant for --print, or start of the first bar for --csv (a whole minute), RFC 3339
    /// (e.g. 2026-01-01T00:00:00Z); fractions of a second are dropped.
    #[arg(long, value_parser = parse_rfc3339)]
    from: Option<DateTime<Utc>>,
    /// How many prices per symbol (--print) or bars (--csv).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=MAX_SIM_COUNT))]
    count: u64,
}

fn parse_rfc3339(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| format!("`{s}` is not an RFC 3339 time like 2026-01-01T00:00:00Z ({e})"))
}

/// Prints, writes or publishes prices (the last until `shutdown` resolves).
///
/// # Errors
/// Invalid settings, an unwritable output, or an unreachable NATS.
pub async fn sim(args: SimArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let feed = SimFeed::new(args.seed, args.symbols.clone(), args.interval_s)
        .context("Invalid simulator settings")?;
    match (args.print, &args.csv, args.from) {
        (true, _, Some(from)) => sim_print(&feed, from, args.count),
        (_, Some(file), Some(from)) => sim_csv(&feed, file, from, args.count),
        _ => sim_publish(args, feed, shutdown).await,
    }
}

fn sim_print(feed: &SimFeed, from: DateTime<Utc>, count: u64) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(out, "at,symbol,price")?;
    let from_s = from.timestamp();
    for i in 0..count {
        let t = i64::try_from(i)
            .ok()
            .and_then(|i| i.checked_mul(i64::from(feed.interval_s())))
            .and_then(|offset| from_s.checked_add(offset))
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .context("--from + --count × --interval-s is beyond the representable time range")?;
        for observed in feed.observations_at(t) {
            let at = observed.at.to_rfc3339_opts(SecondsFormat::Secs, true);
            writeln!(out, "{at},{},{}", observed.symbol, observed.price)?;
        }
    }
    out.flush().context("Failed to write to stdout")
}

fn sim_csv(feed: &SimFeed, file: &Path, from: DateTime<Utc>, count: u64) -> anyhow::Result<()> {
    let [symbol] = feed.symbols() else {
        anyhow::bail!(
            "--csv writes the bars of one symbol; give exactly one with --symbol (got {})",
            feed.symbols().join(",")
        );
    };
    let from_s = from.timestamp();
    anyhow::ensure!(
        from_s % i64::from(CSV_BAR_S) == 0,
        "--from must be a whole minute for one-minute bars (got {from})"
    );
    let to_s = i64::try_from(count)
        .ok()
        .and_then(|n| n.checked_mul(i64::from(CSV_BAR_S)))
        .and_then(|span| from_s.checked_add(span))
        .context("--from + --count minutes is beyond the representable time range")?;
    let bars = PricePath::new(feed.seed()).bars(symbol, from_s, to_s, CSV_BAR_S)?;
    let out = std::fs::File::create(file)
        .with_context(|| format!("Failed to create {}", file.display()))?;
    let written = strom_sim::write_bars(out, bars)
        .with_context(|| format!("Failed to write bars to {}", file.display()))?;
    eprintln!(
        "wrote {written} one-minute bars of {symbol} (seed {}) to {}",
        feed.seed(),
        file.display()
    );
    Ok(())
}

async fn sim_publish(
    args: SimArgs,
    feed: SimFeed,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let Some(url) = args.nats_url else {
        anyhow::bail!(
            "strom sim publishes prices on NATS: set STROM_NATS_URL (or --nats-url) to a NATS server with \
             JetStream, or use --print / --csv to write prices without a bus. (In embedded mode, `strom serve` runs \
             the simulator itself.)"
        );
    };
    for symbol in feed.symbols() {
        validate_price_key(symbol).context("Invalid --symbols")?;
    }
    let bus = super::nats::connect(&url, args.nats_prefix).await?;
    tracing::info!(
        symbols = ?feed.symbols(),
        interval_s = feed.interval_s(),
        seed = feed.seed(),
        "sim publishing prices until Ctrl-C or SIGTERM"
    );
    let publisher = SimPublisher::new(Arc::new(bus), feed)
        .await
        .context("Failed to open the price board")?;
    publisher.run(shutdown).await;
    tracing::info!("sim stopped");
    Ok(())
}
