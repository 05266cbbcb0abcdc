//! STROM write side: event stores (Postgres, memory), global log reader, relay to JetStream, command services.

pub mod bus;
pub mod relay;
pub mod store;
