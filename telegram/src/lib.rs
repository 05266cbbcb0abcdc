//! STROM Telegram bot (`strom telegram`): teloxide with long polling, talking to the REST API only — never to the
//! database or the bus (specs/01 §1, specs/05 §5).
//!
//! - [`command`]: parsing chat messages into commands (pure).
//! - [`format`]: the answers as text, agent lookup by name or id prefix (pure).
//! - [`client`]: the API client (the bot's service credential for linking and sessions; the linked user's session
//!   token for everything else, so ownership and roles apply as to any caller).
//! - [`bot`]: what a message or button does ([`bot::Core`]) and the teloxide dispatcher ([`bot::run`]).
//! - [`notifications`]: the `/notify` subscriptions, kept in a file across restarts.

pub mod bot;
pub mod client;
pub mod command;
pub mod format;
pub mod notifications;
pub mod secrets;
