//! Watching the server run: the process's Prometheus recorder and `GET /metrics`, per-request
//! chat metrics, the metered ledger that times every database call, and OpenTelemetry traces.
//!
//! Every label value comes from the configuration (model and provider names, with ad-hoc
//! `provider/model` names counted as `model="other"`) or from a fixed set (status codes, key
//! sources, operations), so a client cannot grow the number of series. No key, user id or
//! request id is ever a label.

mod listener;
mod prometheus;
mod redis;
mod requests;
mod store;
mod trace;

pub use listener::bind_metrics_listener;
pub(crate) use listener::serve_metrics;
pub(crate) use prometheus::{CONNECTIONS_REFUSED, scrape};
pub use prometheus::{install_recorder, render};
pub use redis::{MeteredCooldowns, MeteredRateLimiter};
pub(crate) use requests::ChatWatch;
pub use store::{BACKEND_DURATION, BACKEND_ERRORS, MeteredCreditStore};
pub(crate) use trace::RequestTrace;
pub use trace::{SPANS_DROPPED, SPANS_EXPORTED, Traces};
