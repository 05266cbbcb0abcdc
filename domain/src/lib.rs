//! STROM's pure core: aggregates (Agent, Order, Backtest), their commands and events, value types and the
//! deterministic trading functions. Nothing here does I/O, reads a clock or draws unseeded randomness.
