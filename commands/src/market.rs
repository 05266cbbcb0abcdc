//! The market-data port the runtime observes prices through, and its simulator adapter.
//!
//! A tick's observation is the price at the tick's *scheduled* time, never "whatever the price is when the worker got
//! round to it": a tick redelivered a minute later, or run by another worker, records the same observation, and a
//! backtest over those observations sees exactly what the live agent saw (specs/06 §1, clock rule §6).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use strom_domain::{Observation, Symbol};
use strom_sim::PricePath;
use thiserror::Error;

/// Why no observation could be made. The runtime retries the tick later (nak with a delay).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MarketError {
    /// The source has no price for the symbol at that time (a live feed that has not caught up yet).
    #[error("no price for {symbol} at {at}")]
    NoPrice { symbol: Symbol, at: DateTime<Utc> },
}

/// Where observations come from. Object-safe: the runtime holds an `Arc<dyn MarketData>` chosen at startup.
#[async_trait]
pub trait MarketData: Send + Sync {
    /// The price of `symbol` at `at`, as a run records it (`observed_at = at`).
    ///
    /// # Errors
    /// [`MarketError::NoPrice`] when the source cannot price the symbol at that time yet.
    async fn observe(&self, symbol: &Symbol, at: DateTime<Utc>)
        -> Result<Observation, MarketError>;
}

/// The deterministic simulated market: the price at `at` is `PricePath::new(seed).price_at(symbol, at)` (whole
/// seconds), the same function the `sim` role publishes from, so with the same `STROM_SIM_SEED` the runtime's
/// observations equal the published prices at those instants. Never fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimMarket {
    path: PricePath,
}

impl SimMarket {
    /// A market priced by the simulator with `seed` (`STROM_SIM_SEED`).
    pub fn new(seed: u64) -> Self {
        Self {
            path: PricePath::new(seed),
        }
    }

    pub fn seed(&self) -> u64 {
        self.path.seed()
    }

    /// The observation at `at`, synchronously (the simulator is a pure function).
    pub fn observation(&self, symbol: &Symbol, at: DateTime<Utc>) -> Observation {
        Observation {
            symbol: symbol.clone(),
            price: self.path.price_at(symbol.as_str(), at.timestamp()),
            observed_at: at,
        }
    }
}

#[async_trait]
impl MarketData for SimMarket {
    async fn observe(
        &self,
        symbol: &Symbol,
        at: DateTime<Utc>,
    ) -> Result<Observation, MarketError> {
        Ok(self.observation(symbol, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_simulated_observation_is_the_price_path_at_that_second() {
        let market = SimMarket::new(42);
        let symbol = Symbol::parse("BTC-USD").unwrap();
        let at = DateTime::from_timestamp(1_767_225_600, 0).unwrap();
        let observation = market.observe(&symbol, at).await.unwrap();
        assert_eq!(
            observation.price,
            PricePath::new(42).price_at("BTC-USD", 1_767_225_600)
        );
        assert_eq!(observation.observed_at, at);
        assert_eq!(observation.symbol, symbol);
        assert_eq!(market.observe(&symbol, at).await.unwrap(), observation);
    }
}
