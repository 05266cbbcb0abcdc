//! `strom replay`.
