//! Tests of `strom sim` as a process: deterministic `--print` across processes, `--csv` bars, the clear error
//! without a bus, and publishing on real NATS until SIGTERM (own prefix, deleted afterwards).

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use strom_commands::bus::nats::NatsBus;
use strom_commands::bus::{Bus, ConsumerSpec, StreamKind};
use strom_sim::{PriceObserved, PricePath};
use strom_tests::nats::TestNats;
use strom_tests::nats_url;

fn strom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strom"))
}

fn print_prices() -> Output {
    strom()
        .args(["sim", "--print", "--symbols", "BTC-USD,ETH-USD"])
        .args([
            "--from",
            "2026-01-01T00:00:00Z",
            "--count",
            "5",
            "--seed",
            "42",
        ])
        .env_remove("STROM_NATS_URL")
        .output()
        .unwrap()
}

#[test]
fn sim_print_gives_the_same_prices_in_every_process() {
    let (first, second) = (print_prices(), print_prices());
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(first.stdout, second.stdout);
    let text = String::from_utf8(first.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 11, "header + 5 instants × 2 symbols:\n{text}");
    assert_eq!(lines[0], "at,symbol,price");
    let path = PricePath::new(42);
    assert_eq!(
        lines[1],
        format!(
            "2026-01-01T00:00:00Z,BTC-USD,{}",
            path.price_at("BTC-USD", 1_767_225_600)
        )
    );
    assert_eq!(
        lines[10],
        format!(
            "2026-01-01T00:00:04Z,ETH-USD,{}",
            path.price_at("ETH-USD", 1_767_225_604)
        )
    );
}

#[test]
fn sim_without_a_nats_url_says_to_set_it() {
    let out = strom()
        .args(["sim", "--symbols", "BTC-USD"])
        .env_remove("STROM_NATS_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("set STROM_NATS_URL"), "{stderr}");
}

#[test]
fn sim_csv_writes_one_minute_bars_that_read_back() {
    let file = std::env::temp_dir().join(format!("strom-bars-{}.csv", uuid::Uuid::new_v4()));
    let out = strom()
        .args(["sim", "--csv"])
        .arg(&file)
        .args([
            "--symbol",
            "BTC-USD",
            "--from",
            "2026-01-01T00:00:00Z",
            "--count",
            "30",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    // Each bar is stamped with its close time: the first one, over 00:00–00:01, with 00:01.
    assert!(
        text.starts_with("ts,open,high,low,close,volume\n2026-01-01T00:01:00.000Z,"),
        "{text}"
    );
    let bars: Vec<_> = strom_sim::read_bars(text.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let expected: Vec<_> = PricePath::new(42)
        .bars("BTC-USD", 1_767_225_600, 1_767_225_600 + 30 * 60, 60)
        .unwrap()
        .collect();
    assert_eq!(bars, expected);

    let two = strom()
        .args([
            "sim",
            "--csv",
            "unused.csv",
            "--symbols",
            "A,B",
            "--from",
            "2026-01-01T00:00:00Z",
        ])
        .output()
        .unwrap();
    assert!(!two.status.success());
    assert!(String::from_utf8_lossy(&two.stderr).contains("exactly one"));
}

/// Stops the child (started by this test, by its pid); then the prefix's streams go with the guard, also if the
/// test panics.
struct Running {
    child: Child,
    _nats: TestNats,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn sim_publishes_prices_on_nats_until_sigterm() {
    let nats = TestNats::new("t");
    let subjects = nats.subjects().clone();
    let child = strom()
        .args([
            "sim",
            "--symbols",
            "SIM",
            "--interval-s",
            "1",
            "--seed",
            "7",
        ])
        .env("STROM_NATS_URL", nats.url())
        .env("STROM_NATS_PREFIX", nats.prefix())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running { child, _nats: nats };
    let bus = NatsBus::connect(&nats_url(), subjects.clone())
        .await
        .unwrap();

    // The process creates the streams at startup; wait for them (bounded).
    let mut consumer = None;
    for _ in 0..100 {
        match bus
            .consumer(ConsumerSpec::new(StreamKind::MarketData, "test"))
            .await
        {
            Ok(c) => {
                consumer = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let mut consumer = consumer.expect("strom sim created the MD stream");
    let d = consumer
        .next(Duration::from_secs(10))
        .await
        .unwrap()
        .expect("a price within 10 s");
    let observed: PriceObserved = serde_json::from_slice(&d.payload).unwrap();
    let t = observed.at.timestamp();
    assert_eq!(d.subject, subjects.market_data("SIM").unwrap());
    assert_eq!(d.msg_id, Some(format!("SIM/{t}")));
    assert_eq!(observed.price, PricePath::new(7).price_at("SIM", t));
    assert_eq!(observed.seed, 7);
    // The publisher puts the price on the board right after publishing it on the stream: wait for it (bounded).
    let board = bus.price_board().await.unwrap();
    let mut on_board = false;
    for _ in 0..100 {
        if board.get("SIM").await.unwrap().is_some() {
            on_board = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(on_board, "the latest price reached the price board");

    let pid = running.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = running.child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
}
