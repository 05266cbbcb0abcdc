//! HTTP handlers, one module per resource. Handlers translate HTTP to calls on services and back; the rules live
//! in domain/ and commands/.

pub mod health;
pub mod me;
