//! STROM read models as pure folds over the event log, with Postgres and memory sinks, checkpoints, rebuild and verify.
