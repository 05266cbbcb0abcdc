//! An agent's orders: market orders decided on one observation and recorded in the agent's own stream
//! (`OrderPlaced`, `OrderRejected`, `OrderFilled`, specs/04 §2). An order is an entity of the Agent aggregate, not an
//! aggregate of its own: the risk check needs the agent's position and cash, and the settle barrier needs its open
//! order, in the same consistency boundary as the run that decides the order (specs/01 §3.2).

use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::fill::{self, Fill, FillModel, FillOverflow};
use crate::market::{ObservedPrice, Side};

/// The id of the order an agent places on tick `tick_no` of `session`: derived, so a redelivered tick finds its
/// run (and the order recorded with it) already there instead of placing a second one.
pub fn paper_order_id(agent_id: &str, session: u64, tick_no: u64) -> String {
    // Written digit by digit rather than through `format!`: a backtest derives one on every signal.
    let mut id = String::with_capacity(agent_id.len() + 2 * (1 + MAX_U64_DIGITS));
    id.push_str(agent_id);
    for n in [session, tick_no] {
        id.push('-');
        push_decimal(&mut id, n);
    }
    id
}

/// Digits of `u64::MAX`.
const MAX_U64_DIGITS: usize = 20;

/// Appends `n` in decimal, as `Display` writes it.
fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; MAX_U64_DIGITS];
    let mut start = MAX_U64_DIGITS;
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[start..] {
        out.push(char::from(d));
    }
}

/// Where an order is: `accepted` (placed, waiting for its fill) is the one open state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Accepted,
    Rejected,
    Filled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 3] = [
        OrderStatus::Accepted,
        OrderStatus::Rejected,
        OrderStatus::Filled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Accepted => "accepted",
            OrderStatus::Rejected => "rejected",
            OrderStatus::Filled => "filled",
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A placed order that has not filled yet: everything its fill needs, as `OrderPlaced` recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenOrder {
    pub order_id: String,
    pub side: Side,
    pub qty: Decimal,
    pub observation: ObservedPrice,
    pub fill_model: FillModel,
    pub placed_at: DateTime<Utc>,
}

impl OpenOrder {
    /// The order's fill: its own fill model over its own observation (never a newer price), so paper trading and
    /// a backtest over the same observations fill alike.
    ///
    /// # Errors
    /// [`FillOverflow`] when an amount does not fit a Decimal.
    pub fn quote(&self) -> Result<Fill, FillOverflow> {
        fill::market_order(
            &self.fill_model,
            self.side,
            self.qty,
            self.observation.price,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rust_decimal_macros::dec;

    #[test]
    fn paper_order_ids_name_the_agent_session_and_tick() {
        assert_eq!(paper_order_id("a1", 2, 17), "a1-2-17");
        assert_eq!(paper_order_id("a1", 0, 10), "a1-0-10");
        assert_eq!(
            paper_order_id("a1", u64::MAX, 1_000_000),
            format!("a1-{}-1000000", u64::MAX)
        );
    }

    #[test]
    fn an_order_quotes_from_its_own_observation_and_fill_model() {
        let order = OpenOrder {
            order_id: "a1-1-1".into(),
            side: Side::Buy,
            qty: dec!(2),
            observation: ObservedPrice {
                price: dec!(100),
                observed_at: Utc.timestamp_opt(0, 0).unwrap(),
            },
            fill_model: FillModel {
                slippage_bps: dec!(10),
                fee_bps: dec!(5),
            },
            placed_at: Utc.timestamp_opt(0, 0).unwrap(),
        };
        let fill = order.quote().unwrap();
        assert_eq!(
            (fill.price, fill.qty, fill.fee),
            (dec!(100.1), dec!(2), dec!(0.1001))
        );
    }

    #[test]
    fn statuses_serialize_as_their_names() {
        for status in OrderStatus::ALL {
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
    }
}
