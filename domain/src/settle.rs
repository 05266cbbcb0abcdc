//! Settle fills into a long-only position and value it at a mark price. Fees are paid out of cash and kept
//! apart from the trading result (users compare gross PnL with what it cost to get). The position keeps its cost
//! basis exactly (the sum of what the units held cost, fees excluded) and derives the average price only for display,
//! so at any mark the identity holds to the last digit (specs/06 §4):
//! `equity = cash + qty × mark = starting_cash + realized_pnl + unrealized_pnl − fees`.
//!
//! Why exact: `cash + cost_basis + fees − realized_pnl = starting_cash` is kept by every fill (a buy moves `q × f` from
//! cash into the cost basis and the fee into fees; a sell takes the sold units' share of the cost basis out and
//! realizes `q × f − share`), so `equity − starting_cash = realized + (qty × mark − cost_basis) − fees` whatever the
//! share was rounded to. The one division, a partial sell's share `cost_basis × q / qty`, is the only rounding; selling
//! everything takes the whole cost basis.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::fill::Fill;
use crate::market::Side;

/// One agent's holding of one symbol plus its cash. A flat position has `qty` 0 and `cost_basis` 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub qty: Decimal,
    /// What the units held cost, fees excluded: `Σ q × f` over buys, less the share each sell took out.
    pub cost_basis: Decimal,
    /// `Σ (q × f − the sold units' share of the cost basis)` over sells, fees excluded.
    pub realized_pnl: Decimal,
    pub cash: Decimal,
    /// Every fee paid, buys and sells.
    pub fees: Decimal,
}

impl Position {
    /// Flat, holding `cash`.
    pub fn opening(cash: Decimal) -> Self {
        Self {
            qty: Decimal::ZERO,
            cost_basis: Decimal::ZERO,
            realized_pnl: Decimal::ZERO,
            cash,
            fees: Decimal::ZERO,
        }
    }

    /// The volume-weighted entry price of the units held (`cost_basis / qty`, 28 significant digits, normalized), for
    /// display; 0 when flat. No amount is computed from it.
    pub fn avg_price(&self) -> Decimal {
        if self.qty.is_zero() {
            return Decimal::ZERO;
        }
        self.cost_basis
            .checked_div(self.qty)
            .map_or(Decimal::ZERO, |avg| avg.normalize())
    }
}

/// A position valued at a mark price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Valuation {
    /// `qty × mark`.
    pub market_value: Decimal,
    /// `qty × mark − cost_basis`.
    pub unrealized_pnl: Decimal,
    /// `cash + market_value`.
    pub equity: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum SettleError {
    #[error("fill qty {qty} is not > 0")]
    QtyNotPositive { qty: Decimal },
    #[error("sell of {qty} exceeds the position of {held} (long-only)")]
    SellExceedsPosition { held: Decimal, qty: Decimal },
    #[error("position arithmetic overflows a decimal")]
    Overflow,
}

/// The position after `fill`. A buy adds `qty` and its notional to the cost basis; a sell takes its units' share of
/// the cost basis out and realizes the difference to its proceeds; both pay the fee out of cash and add it to `fees`.
/// Cash may go negative: the risk check, not this arithmetic, is what refuses unaffordable orders.
///
/// # Errors
/// [`SettleError::QtyNotPositive`] for an empty fill, [`SettleError::SellExceedsPosition`] for selling
/// more than held, [`SettleError::Overflow`] when an amount does not fit a Decimal.
pub fn apply_fill(position: &Position, fill: &Fill) -> Result<Position, SettleError> {
    if fill.qty <= Decimal::ZERO {
        return Err(SettleError::QtyNotPositive { qty: fill.qty });
    }
    match fill.side {
        Side::Buy => buy(position, fill).ok_or(SettleError::Overflow),
        Side::Sell if fill.qty > position.qty => Err(SettleError::SellExceedsPosition {
            held: position.qty,
            qty: fill.qty,
        }),
        Side::Sell => sell(position, fill).ok_or(SettleError::Overflow),
    }
}

fn buy(p: &Position, fill: &Fill) -> Option<Position> {
    let notional = fill.notional()?;
    Some(Position {
        qty: p.qty.checked_add(fill.qty)?,
        cost_basis: p.cost_basis.checked_add(notional)?,
        realized_pnl: p.realized_pnl,
        cash: p.cash.checked_sub(notional)?.checked_sub(fill.fee)?,
        fees: p.fees.checked_add(fill.fee)?,
    })
}

fn sell(p: &Position, fill: &Fill) -> Option<Position> {
    let proceeds = fill.notional()?;
    let qty = p.qty.checked_sub(fill.qty)?;
    let share = if qty.is_zero() {
        p.cost_basis
    } else {
        p.cost_basis.checked_mul(fill.qty)?.checked_div(p.qty)?
    };
    Some(Position {
        qty,
        cost_basis: p.cost_basis.checked_sub(share)?,
        realized_pnl: p.realized_pnl.checked_add(proceeds.checked_sub(share)?)?,
        cash: p.cash.checked_add(proceeds)?.checked_sub(fill.fee)?,
        fees: p.fees.checked_add(fill.fee)?,
    })
}

/// Values `position` at `mark_price`.
///
/// # Errors
/// [`SettleError::Overflow`] when an amount does not fit a Decimal.
#[inline]
pub fn mark_to_market(position: &Position, mark_price: Decimal) -> Result<Valuation, SettleError> {
    let valuation = || -> Option<Valuation> {
        let market_value = position.qty.checked_mul(mark_price)?;
        Some(Valuation {
            market_value,
            unrealized_pnl: market_value.checked_sub(position.cost_basis)?,
            equity: position.cash.checked_add(market_value)?,
        })
    };
    valuation().ok_or(SettleError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn fill(side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> Fill {
        Fill {
            side,
            qty,
            price,
            fee,
        }
    }

    #[test]
    fn a_buy_from_flat_sets_the_entry_price_and_pays_cash_and_fee() {
        let p = apply_fill(
            &Position::opening(dec!(1000)),
            &fill(Side::Buy, dec!(2), dec!(100), dec!(1)),
        )
        .unwrap();
        assert_eq!(
            p,
            Position {
                qty: dec!(2),
                cost_basis: dec!(200),
                realized_pnl: dec!(0),
                cash: dec!(799),
                fees: dec!(1)
            }
        );
    }

    #[test]
    fn a_second_buy_averages_the_entry_price() {
        let p = apply_fill(
            &Position::opening(dec!(1000)),
            &fill(Side::Buy, dec!(1), dec!(100), dec!(0)),
        )
        .unwrap();
        let p = apply_fill(&p, &fill(Side::Buy, dec!(3), dec!(120), dec!(0))).unwrap();
        assert_eq!(p.qty, dec!(4));
        assert_eq!(p.avg_price(), dec!(115));
        assert_eq!(p.cash, dec!(540));
    }

    #[test]
    fn a_partial_sell_realizes_pnl_and_keeps_the_entry_price() {
        let p = Position {
            qty: dec!(4),
            cost_basis: dec!(460),
            realized_pnl: dec!(0),
            cash: dec!(540),
            fees: dec!(0),
        };
        let p = apply_fill(&p, &fill(Side::Sell, dec!(1), dec!(130), dec!(0.5))).unwrap();
        assert_eq!(p.qty, dec!(3));
        assert_eq!(p.avg_price(), dec!(115));
        assert_eq!(p.realized_pnl, dec!(15));
        assert_eq!(p.fees, dec!(0.5));
        assert_eq!(p.cash, dec!(669.5));
    }

    #[test]
    fn selling_everything_goes_flat_with_a_zero_entry_price() {
        let p = apply_fill(
            &Position::opening(dec!(100)),
            &fill(Side::Buy, dec!(1), dec!(50), dec!(0)),
        )
        .unwrap();
        let p = apply_fill(&p, &fill(Side::Sell, dec!(1), dec!(40), dec!(0))).unwrap();
        assert_eq!(
            p,
            Position {
                qty: dec!(0),
                cost_basis: dec!(0),
                realized_pnl: dec!(-10),
                cash: dec!(90),
                fees: dec!(0)
            }
        );
    }

    #[test]
    fn selling_more_than_held_is_an_error() {
        let p = Position {
            qty: dec!(1),
            cost_basis: dec!(10),
            realized_pnl: dec!(0),
            cash: dec!(0),
            fees: dec!(0),
        };
        assert_eq!(
            apply_fill(&p, &fill(Side::Sell, dec!(1.5), dec!(10), dec!(0))),
            Err(SettleError::SellExceedsPosition {
                held: dec!(1),
                qty: dec!(1.5)
            })
        );
        assert!(apply_fill(
            &Position::opening(dec!(5)),
            &fill(Side::Sell, dec!(1), dec!(1), dec!(0))
        )
        .is_err());
    }

    #[test]
    fn a_zero_qty_fill_is_an_error() {
        assert_eq!(
            apply_fill(
                &Position::opening(dec!(5)),
                &fill(Side::Buy, dec!(0), dec!(1), dec!(0))
            ),
            Err(SettleError::QtyNotPositive { qty: dec!(0) })
        );
    }

    #[test]
    fn an_overflowing_fill_is_an_error_not_a_panic() {
        let result = apply_fill(
            &Position::opening(dec!(5)),
            &fill(Side::Buy, Decimal::MAX, dec!(2), dec!(0)),
        );
        assert_eq!(result, Err(SettleError::Overflow));
    }

    #[test]
    fn marking_to_market_values_the_position() {
        let p = Position {
            qty: dec!(3),
            cost_basis: dec!(345),
            realized_pnl: dec!(15),
            cash: dec!(669.5),
            fees: dec!(0.5),
        };
        assert_eq!(
            mark_to_market(&p, dec!(100)).unwrap(),
            Valuation {
                market_value: dec!(300),
                unrealized_pnl: dec!(-45),
                equity: dec!(969.5)
            }
        );
    }

    #[test]
    fn a_flat_position_is_worth_its_cash_at_any_mark() {
        let v = mark_to_market(&Position::opening(dec!(42)), dec!(123.45)).unwrap();
        assert_eq!(
            v,
            Valuation {
                market_value: dec!(0),
                unrealized_pnl: dec!(0),
                equity: dec!(42)
            }
        );
    }

    #[test]
    fn the_identity_is_exact_even_when_the_average_price_does_not_divide() {
        let start = dec!(1000);
        let mut p = Position::opening(start);
        for f in [
            fill(Side::Buy, dec!(1), dec!(100), dec!(0.07)),
            fill(Side::Buy, dec!(2), dec!(101), dec!(0.13)),
            fill(Side::Sell, dec!(1), dec!(99.99), dec!(0.11)),
            fill(Side::Sell, dec!(1), dec!(102.5), dec!(0.03)),
        ] {
            p = apply_fill(&p, &f).unwrap();
            let v = mark_to_market(&p, dec!(100.01)).unwrap();
            assert_eq!(
                v.equity - start,
                p.realized_pnl + v.unrealized_pnl - p.fees,
                "{p:?}"
            );
        }
        // avg 302 / 3 = 100.666…: the display value rounds, the cost basis does not.
        assert_eq!(p.qty, dec!(1));
        assert!(p.avg_price().to_string().starts_with("100.666666"));
        let flat = apply_fill(&p, &fill(Side::Sell, dec!(1), dec!(100), dec!(0))).unwrap();
        assert_eq!((flat.cost_basis, flat.avg_price()), (dec!(0), dec!(0)));
    }

    #[test]
    fn equity_is_starting_cash_plus_realized_plus_unrealized_pnl_minus_fees() {
        let start = dec!(10000);
        let fills = [
            fill(Side::Buy, dec!(2), dec!(101.25), dec!(0.2)),
            fill(Side::Buy, dec!(3), dec!(99.75), dec!(0.3)),
            fill(Side::Sell, dec!(4), dec!(103.5), dec!(0.41)),
            fill(Side::Buy, dec!(1), dec!(98), dec!(0.1)),
        ];
        let mut p = Position::opening(start);
        for f in &fills {
            p = apply_fill(&p, f).unwrap();
            for mark in [dec!(90), dec!(100.35), dec!(111.11)] {
                let v = mark_to_market(&p, mark).unwrap();
                assert_eq!(
                    v.equity,
                    start + p.realized_pnl + v.unrealized_pnl - p.fees,
                    "{p:?} at {mark}"
                );
            }
        }
    }
}
