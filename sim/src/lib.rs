//! STROM deterministic market-data simulator: the price of a symbol at time `t` is a pure function of
//! (seed, symbol, t), computed in O(1) with integers and `Decimal` only, so every machine, process and backtest sees
//! the same market. Also reads and writes OHLCV bars as CSV (historical data for backtests).
//!
//! Nothing here does I/O on its own or reads a clock: callers pass `t`, readers and writers.

mod csv;
mod feed;
mod noise;
mod path;

pub use crate::csv::{
    read_bars, write_bars, BarReader, CsvColumn, CsvError, CsvErrorKind, TimeForm, CSV_HEADER,
    MAX_CSV_BYTES,
};
pub use crate::feed::{PriceObserved, SimFeed, SimFeedError, MAX_INTERVAL_S};
pub use crate::path::{Bar, Bars, Closes, PricePath, Scale, SimError, SCALES};
/// Re-exported so users of the simulator name the same `Decimal` it returns.
pub use rust_decimal::Decimal;
