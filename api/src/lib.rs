//! STROM REST API over HTTP: the router ([`router`]) with its handlers, authentication, problem+json errors,
//! idempotency records, SSE live updates, correlation ids and metrics, health and readiness, and
//! the built dashboard's files at the paths the API does not route ([`routes::ui`]). Handlers hold no
//! business rules. The `strom` binary (strom/) builds the [`AppState`] this serves and runs the process around it.

pub mod auth;
pub mod dev_sign_in;
pub mod extract;
pub mod idempotency;
pub mod live;
pub mod observability;
pub mod problem;
pub mod reads;
pub mod routes;
pub mod state;
pub mod telegram;

pub use routes::router;
pub use state::AppState;
