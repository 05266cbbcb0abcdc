//! What the simulator publishes: `PriceObserved` messages for a set of symbols at every whole multiple of an
//! interval. Pure: the caller (the sim publisher in `strom-commands`) owns the clock and the bus.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::path::PricePath;

/// Longest publishing interval: one day, the same ceiling as an agent's `frequency_s`.
pub const MAX_INTERVAL_S: u32 = 86_400;

/// One simulated price observation, as published on `<prefix>.md.<symbol>` and stored in the price board.
/// `seed` is recorded so anyone can recompute the price with `PricePath::new(seed).price_at(symbol, at)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceObserved {
    pub symbol: String,
    pub price: Decimal,
    #[serde(with = "strom_domain::time::rfc3339_millis")]
    pub at: DateTime<Utc>,
    pub seed: u64,
}

/// Why a feed could not be configured.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SimFeedError {
    #[error("no symbols to simulate; give at least one (e.g. BTC-USD)")]
    NoSymbols,
    #[error("symbol `{0}` is given twice")]
    DuplicateSymbol(String),
    #[error("symbol must not be empty")]
    EmptySymbol,
    #[error("interval must be 1..={MAX_INTERVAL_S} seconds, got {0}")]
    BadInterval(u32),
}

/// The publishing schedule: which symbols, how often, from which seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimFeed {
    path: PricePath,
    symbols: Vec<String>,
    interval_s: u32,
}

impl SimFeed {
    /// # Errors
    /// No symbols, an empty or repeated symbol, or an interval outside 1..=[`MAX_INTERVAL_S`].
    pub fn new(seed: u64, symbols: Vec<String>, interval_s: u32) -> Result<Self, SimFeedError> {
        if symbols.is_empty() {
            return Err(SimFeedError::NoSymbols);
        }
        if !(1..=MAX_INTERVAL_S).contains(&interval_s) {
            return Err(SimFeedError::BadInterval(interval_s));
        }
        for (i, symbol) in symbols.iter().enumerate() {
            if symbol.is_empty() {
                return Err(SimFeedError::EmptySymbol);
            }
            if symbols[..i].contains(symbol) {
                return Err(SimFeedError::DuplicateSymbol(symbol.clone()));
            }
        }
        Ok(Self {
            path: PricePath::new(seed),
            symbols,
            interval_s,
        })
    }

    pub fn seed(&self) -> u64 {
        self.path.seed()
    }

    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }

    pub fn interval_s(&self) -> u32 {
        self.interval_s
    }

    /// The first publishing instant (a whole multiple of the interval in Unix seconds) at or after `t_unix_s`.
    pub fn next_tick_at_or_after(&self, t_unix_s: i64) -> i64 {
        let interval = i64::from(self.interval_s);
        t_unix_s.div_euclid(interval) * interval
            + if t_unix_s.rem_euclid(interval) == 0 {
                0
            } else {
                interval
            }
    }

    /// The observations to publish at `at`, one per symbol in configuration order. Sub-second parts of `at` are
    /// ignored by the price (the path has one value per second).
    pub fn observations_at(&self, at: DateTime<Utc>) -> impl Iterator<Item = PriceObserved> + '_ {
        self.symbols.iter().map(move |symbol| PriceObserved {
            symbol: symbol.clone(),
            price: self.path.price_at(symbol, at.timestamp()),
            at,
            seed: self.path.seed(),
        })
    }

    /// The bus message id of an observation: `<symbol>/<unix seconds>`, so a restarted publisher re-sending the same
    /// instant is deduplicated.
    pub fn msg_id(observation: &PriceObserved) -> String {
        format!("{}/{}", observation.symbol, observation.at.timestamp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(interval_s: u32) -> SimFeed {
        SimFeed::new(42, vec!["BTC-USD".into(), "ETH-USD".into()], interval_s).unwrap()
    }

    #[test]
    fn ticks_fall_on_whole_multiples_of_the_interval() {
        let f = feed(5);
        assert_eq!(f.next_tick_at_or_after(100), 100);
        assert_eq!(f.next_tick_at_or_after(101), 105);
        assert_eq!(f.next_tick_at_or_after(-3), 0);
    }

    #[test]
    fn observations_carry_the_seed_and_a_per_instant_msg_id() {
        let at = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
        let obs: Vec<_> = feed(1).observations_at(at).collect();
        assert_eq!(obs.len(), 2);
        assert_eq!(obs[0].seed, 42);
        assert_eq!(
            obs[1].price,
            PricePath::new(42).price_at("ETH-USD", 1_767_225_600)
        );
        assert_eq!(SimFeed::msg_id(&obs[0]), "BTC-USD/1767225600");
    }

    #[test]
    fn bad_feeds_are_rejected() {
        assert_eq!(SimFeed::new(1, vec![], 1), Err(SimFeedError::NoSymbols));
        assert_eq!(
            SimFeed::new(1, vec!["A".into(), "A".into()], 1),
            Err(SimFeedError::DuplicateSymbol("A".into()))
        );
        assert_eq!(
            SimFeed::new(1, vec!["A".into()], 0),
            Err(SimFeedError::BadInterval(0))
        );
    }
}
