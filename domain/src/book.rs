//! An agent's trading book on the write side: its position and cash (settled by its own `OrderFilled` events), the
//! order waiting for its fill, and the day's opening equity that `max_daily_loss` is measured from. The Agent
//! aggregate keeps one and decides every order from it, so no command reads a read model and risk never takes a
//! caller-supplied context (specs/01 §3.2).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::check::RiskContext;
use crate::fill::Fill;
use crate::order::OpenOrder;
use crate::settle::{self, Position, SettleError};

/// The UTC day of `t` as days since 1970-01-01: an integer division, where a calendar date costs a conversion on
/// every run.
fn utc_day(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(86_400)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Book {
    position: Position,
    /// The placed order not filled yet; while there is one the agent places no other (the settle barrier).
    open_order: Option<OpenOrder>,
    /// The UTC day (of `scheduled_at`, days since 1970-01-01) of the latest run, and the equity at that day's first
    /// run, marked at its price.
    day: Option<i64>,
    day_start_equity: Decimal,
}

/// An agent not created yet holds nothing.
impl Default for Book {
    fn default() -> Self {
        Self::opening(Decimal::ZERO)
    }
}

impl Book {
    /// Flat, holding `cash`, no run yet.
    pub fn opening(cash: Decimal) -> Self {
        Self {
            position: Position::opening(cash),
            open_order: None,
            day: None,
            day_start_equity: cash,
        }
    }

    pub fn position(&self) -> &Position {
        &self.position
    }

    pub fn open_order(&self) -> Option<&OpenOrder> {
        self.open_order.as_ref()
    }

    /// `cash + qty × price`, or `None` beyond Decimal range.
    fn equity_at(&self, price: Decimal) -> Option<Decimal> {
        self.position
            .qty
            .checked_mul(price)?
            .checked_add(self.position.cash)
    }

    /// What the risk check sees on a run scheduled at `scheduled_at` observing `price`: the position, the cash and
    /// the loss since the UTC day's first run (0 on that first run itself). A loss beyond Decimal range counts as
    /// the largest loss.
    pub fn risk_context(&self, scheduled_at: DateTime<Utc>, price: Decimal) -> RiskContext {
        let day_start = self.day_start_equity_after(scheduled_at, price);
        let daily_loss = day_start
            .zip(self.equity_at(price))
            .and_then(|(start, now)| start.checked_sub(now))
            .unwrap_or(Decimal::MAX);
        RiskContext {
            position_qty: self.position.qty,
            cash: self.position.cash,
            daily_loss,
        }
    }

    /// The day's opening equity once a run at `scheduled_at` observing `price` is recorded.
    fn day_start_equity_after(
        &self,
        scheduled_at: DateTime<Utc>,
        price: Decimal,
    ) -> Option<Decimal> {
        if self.day == Some(utc_day(scheduled_at)) {
            Some(self.day_start_equity)
        } else {
            self.equity_at(price)
        }
    }

    /// A run at `scheduled_at` observed `price`: the first run of a UTC day opens it at the equity marked there.
    pub fn record_run(&mut self, scheduled_at: DateTime<Utc>, price: Decimal) {
        let day = utc_day(scheduled_at);
        if self.day != Some(day) {
            // Beyond Decimal range only from a hand-made store; the previous opening is the safe choice then.
            self.day_start_equity = self.equity_at(price).unwrap_or(self.day_start_equity);
            self.day = Some(day);
        }
    }

    /// The position once `fill` settles; what `OrderFilled` will do.
    ///
    /// # Errors
    /// As [`settle::apply_fill`].
    pub fn settled(&self, fill: &Fill) -> Result<Position, SettleError> {
        settle::apply_fill(&self.position, fill)
    }

    pub fn place(&mut self, order: OpenOrder) {
        debug_assert!(self.open_order.is_none(), "one open order at a time");
        self.open_order = Some(order);
    }

    /// The open order filled as `fill`: the position settles and the barrier lifts.
    pub fn fill(&mut self, fill: &Fill) {
        debug_assert!(self.open_order.is_some(), "only an open order fills");
        match self.settled(fill) {
            Ok(position) => self.position = position,
            // `FillOrder` refuses a fill that does not settle, so only a hand-made store gets here.
            Err(e) => debug_assert!(false, "a recorded fill must settle: {e}"),
        }
        self.open_order = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rust_decimal_macros::dec;

    use crate::market::Side;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, day, hour, 0, 0).unwrap()
    }

    fn buy(qty: Decimal, price: Decimal, fee: Decimal) -> Fill {
        Fill {
            side: Side::Buy,
            qty,
            price,
            fee,
        }
    }

    #[test]
    fn the_daily_loss_runs_from_the_utc_days_first_run_and_resets_the_next_day() {
        let mut book = Book::opening(dec!(1000));
        assert_eq!(book.risk_context(at(1, 9), dec!(100)).daily_loss, dec!(0));
        book.record_run(at(1, 9), dec!(100));
        book.place(OpenOrder {
            order_id: "a-1-1".into(),
            side: Side::Buy,
            qty: dec!(2),
            observation: crate::market::ObservedPrice {
                price: dec!(100),
                observed_at: at(1, 9),
            },
            fill_model: crate::fill::FillModel::default(),
            placed_at: at(1, 9),
        });
        book.fill(&buy(dec!(2), dec!(100), dec!(1.5)));
        assert!(book.open_order().is_none());
        // Equity at 90: 1000 − 200 − 1.5 + 2 × 90 = 978.5, down 21.5 from the day's opening 1000.
        let context = book.risk_context(at(1, 15), dec!(90));
        assert_eq!(
            (context.position_qty, context.cash, context.daily_loss),
            (dec!(2), dec!(798.5), dec!(21.5))
        );
        book.record_run(at(1, 15), dec!(90));
        assert_eq!(
            book.risk_context(at(1, 23), dec!(110)).daily_loss,
            dec!(-18.5)
        );
        // The next day opens at the equity of its first run: no loss yet.
        assert_eq!(book.risk_context(at(2, 0), dec!(80)).daily_loss, dec!(0));
        book.record_run(at(2, 0), dec!(80));
        assert_eq!(book.risk_context(at(2, 1), dec!(70)).daily_loss, dec!(20));
    }

    #[test]
    fn a_loss_beyond_decimal_range_counts_as_the_largest() {
        let mut book = Book::opening(Decimal::MAX);
        book.record_run(at(1, 0), dec!(1));
        book.position.cash = Decimal::MIN;
        assert_eq!(
            book.risk_context(at(1, 1), dec!(1)).daily_loss,
            Decimal::MAX
        );
    }
}
