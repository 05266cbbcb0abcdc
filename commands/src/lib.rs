//! STROM write side: event stores (Postgres, memory), global log reader, command services, the singleton roles that
//! follow the log (`role`: the relay to JetStream and the execution role filling orders), the scheduler (ticks for
//! running agents), the runtime worker (ticks → recorded runs and their orders) and the market-data port.

pub mod bus;
pub mod execution;
pub mod lease;
pub mod log;
pub mod market;
pub mod relay;
pub mod role;
pub mod runtime;
pub mod scheduler;
pub mod service;
pub mod store;
