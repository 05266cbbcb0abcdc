//! STROM deterministic market-data simulator: price at time t is a pure function of (seed, symbol, t).
