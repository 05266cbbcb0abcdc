//! STROM write side: event stores (Postgres, memory), global log reader, relay to JetStream, command services.

mod canonical;
pub mod store;
