//! What the market tells an agent: order sides and observed prices. Observations are inputs to the
//! domain (from the simulator, a feed or a CSV bar), never fetched by it.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::symbol::Symbol;

/// Which way an order trades. STROM is long-only: a sell only ever reduces a long position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One observed price of one symbol, as a run records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observation {
    pub symbol: Symbol,
    pub price: Decimal,
    #[serde(with = "crate::time::rfc3339_millis")]
    pub observed_at: DateTime<Utc>,
}

/// The observation an order was decided on (the symbol lives on the order itself). The fill price is
/// computed from this, never from a later price: that is what makes paper and backtest fills agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedPrice {
    pub price: Decimal,
    #[serde(with = "crate::time::rfc3339_millis")]
    pub observed_at: DateTime<Utc>,
}

impl Observation {
    /// The price and time without the symbol, as an order records it.
    pub fn observed_price(&self) -> ObservedPrice {
        ObservedPrice {
            price: self.price,
            observed_at: self.observed_at,
        }
    }
}

/// # Errors
/// A [`ValidationError`] on field `price` when `price` is zero or negative.
pub fn validate_price(price: Decimal) -> Result<(), ValidationError> {
    if !price.is_zero() && price.is_sign_positive() {
        Ok(())
    } else {
        Err(ValidationError::new(
            "price",
            format!("must be > 0 (got {price})"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn sides_serialize_lowercase() {
        assert_eq!(serde_json::to_string(&Side::Buy).unwrap(), r#""buy""#);
        assert_eq!(
            serde_json::from_str::<Side>(r#""sell""#).unwrap(),
            Side::Sell
        );
    }

    #[test]
    fn observations_carry_prices_as_strings() {
        let observation = Observation {
            symbol: Symbol::parse("BTC-USD").unwrap(),
            price: dec!(101.25),
            observed_at: "2026-11-22T10:00:00Z".parse().unwrap(),
        };
        assert_eq!(
            serde_json::to_value(&observation).unwrap(),
            serde_json::json!({"symbol": "BTC-USD", "price": "101.25", "observed_at": "2026-11-22T10:00:00.000Z"})
        );
    }

    #[test]
    fn only_positive_prices_are_valid() {
        assert!(validate_price(dec!(0.0001)).is_ok());
        assert_eq!(validate_price(dec!(0)).unwrap_err().field, "price");
        assert!(validate_price(dec!(-1)).is_err());
    }
}
