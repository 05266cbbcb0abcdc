//! STROM write side: event stores (Postgres, memory), global log reader, relay to JetStream, command services, the
//! scheduler (ticks for running agents), the runtime worker (ticks → recorded runs) and the market-data port.

pub mod bus;
pub mod lease;
pub mod log;
pub mod market;
pub mod relay;
pub mod runtime;
pub mod scheduler;
pub mod service;
pub mod store;
