//! What operators see: Prometheus metrics (`metrics`), request ids and spans around every HTTP
//! request, WebSocket connection and GraphQL operation (`http`, `graphql`), instrumented
//! upstream calls (`upstream`) and the log subscriber (`logging`).
//!
//! Metrics live in a recorder owned by the app (`AppState::metrics`), not in the `metrics`
//! crate's process-global recorder: tests run many gateways in one process, and each must see
//! its own counters; a global would also be the only global state of the gateway. The cost is
//! that the `counter!`/`histogram!` macros are not used: every series is recorded through the
//! typed methods of `Metrics`, which also keeps the names and labels in one file.
pub mod graphql;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod upstream;

pub use self::{http::RequestId, metrics::Metrics};
