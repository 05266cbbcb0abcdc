//! Projection tests: the memory read model and queries, the Postgres sink and queries against real Postgres (one
//! schema per test, `STROM_TEST_DATABASE_URL`), the live-vs-rebuild byte-equality check, and the golden replay
//! fixtures (`UPDATE_EXPECT=1` rewrites them).

mod golden;
mod memory;
mod postgres;
mod support;
