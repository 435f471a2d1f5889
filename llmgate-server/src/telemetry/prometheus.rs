//! The process's Prometheus recorder: installed once, before any gateway is built (the gateway
//! takes its metric handles when it is built), and rendered by `GET /metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use llmgate_core::Gateway;

use crate::response_body::Body;

/// Histogram buckets in seconds: from 100 µs (the gateway's own overhead) to 5 minutes (long
/// completions).
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Deployments cooling down after failures, summed over the configured ones.
const COOLING_DOWN: &str = "llmgate_deployments_cooling_down";
/// Per configured deployment: 1 while it cools down.
const DEPLOYMENT_COOLING_DOWN: &str = "llmgate_deployment_cooling_down";
/// Per configured deployment: upstream calls in flight.
const DEPLOYMENT_IN_FLIGHT: &str = "llmgate_deployment_in_flight";
/// Requests whose ledger work is not written yet.
const PENDING_SETTLEMENTS: &str = "llmgate_pending_settlements";
/// Counter: connections refused at `server.max_connections`.
pub(crate) const CONNECTIONS_REFUSED: &str = "llmgate_connections_refused_total";

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the Prometheus recorder as the process's metrics recorder (once; later calls return
/// the same handle). `None` when another recorder was installed first (an application embedding
/// the server with its own exporter): metrics then go there and `/metrics` is empty.
pub fn install_recorder() -> Option<&'static PrometheusHandle> {
    RECORDER.get_or_init(build).as_ref()
}

fn build() -> Option<PrometheusHandle> {
    let builder = match PrometheusBuilder::new().set_buckets(SECONDS_BUCKETS) {
        Ok(builder) => builder,
        Err(error) => {
            tracing::error!(%error, "the metrics buckets are invalid; metrics are off");
            return None;
        }
    };
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        tracing::warn!("another metrics recorder is installed; /metrics stays empty");
        return None;
    }
    llmgate_core::metrics::describe_metrics();
    super::requests::describe();
    super::store::describe();
    super::trace::describe();
    describe();
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("llmgate-metrics-upkeep".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "no metrics upkeep thread; histograms are folded at scrape time");
    }
    Some(handle)
}

fn describe() {
    metrics::describe_gauge!(COOLING_DOWN, "Deployments cooling down after failures.");
    metrics::describe_gauge!(
        DEPLOYMENT_COOLING_DOWN,
        "1 while the deployment cools down after failures."
    );
    metrics::describe_gauge!(
        DEPLOYMENT_IN_FLIGHT,
        "Upstream calls in flight per deployment."
    );
    metrics::describe_counter!(
        CONNECTIONS_REFUSED,
        "Client connections refused with 503 at server.max_connections."
    );
    metrics::describe_gauge!(
        PENDING_SETTLEMENTS,
        "Requests whose ledger work (settle, release, usage) is not written yet."
    );
}

/// The metrics in Prometheus' text format (empty when the recorder is not ours).
pub fn render() -> String {
    install_recorder()
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

/// `GET /metrics`: refresh the gauges read from live state, then render.
pub(crate) fn scrape(gateway: &Gateway) -> Response<Body> {
    let mut cooling = 0u32;
    for (deployment, live) in gateway.deployment_states() {
        let labels = [
            ("provider", deployment.provider.clone()),
            ("model", deployment.name.clone()),
        ];
        cooling += u32::from(live.cooling_down);
        metrics::gauge!(DEPLOYMENT_COOLING_DOWN, &labels)
            .set(f64::from(u8::from(live.cooling_down)));
        metrics::gauge!(DEPLOYMENT_IN_FLIGHT, &labels).set(f64::from(live.in_flight));
    }
    metrics::gauge!(COOLING_DOWN).set(f64::from(cooling));
    metrics::gauge!(PENDING_SETTLEMENTS).set(gateway.pending_settlements() as f64);

    let mut response = Response::new(Full::new(Bytes::from(render())).boxed_unsync());
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
