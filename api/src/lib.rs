//! STROM REST API, auth and observability; the `strom` binary's commands are wired in main.rs.
