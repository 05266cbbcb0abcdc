//! STROM REST API: routing, authentication, problem+json errors, health and metrics. The `strom` binary
//! (main.rs) wires these and the other crates into subcommands. Handlers hold no business rules.

pub mod auth;
pub mod background;
pub mod demo;
pub mod extract;
pub mod idempotency;
pub mod live;
pub mod migrations;
pub mod observability;
pub mod problem;
pub mod reads;
pub mod roles;
pub mod routes;
pub mod startup;
pub mod telemetry;
