//! Shared helpers for STROM's end-to-end tests: spawn the real thing on port 0 with its own schema and stream prefix.
