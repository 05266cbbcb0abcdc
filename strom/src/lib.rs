//! The `strom` binary's library: the command line ([`cli`], one module per subcommand), the config file, telemetry,
//! and the composition of a `strom serve` process ([`startup::Application`]: adapters for the configured services,
//! the projector and the background roles under one stop token, and the HTTP API of strom-api on top).
//!
//! Module layers, each using only those below it: `cli` → `startup` → `background`, `projector`, `demo`,
//! `migrations` → `backtests`, `roles`; `config`, `telemetry` and `shutdown` use none of the others.

pub mod background;
pub mod backtests;
pub mod cli;
pub mod config;
pub mod demo;
pub mod migrations;
pub mod projector;
pub mod roles;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
