//! Event store integration tests against real Postgres (one schema per test, `STROM_TEST_DATABASE_URL`) and the
//! memory adapter: the shared conformance suite, Postgres-only behaviour (watermark, rollback, migrations,
//! transactional checkpoints, trigger/Rust hash equality, upcasting), snapshots and constant-cost loading, the log
//! follower, and tamper detection.

mod conformance;
mod follower;
mod postgres;
mod snapshots;
mod support;
mod tamper;
