//! Telemetry: the `tracing` subscriber (logs to stderr, filtered by `RUST_LOG`), an OpenTelemetry
//! pipeline that exports traces over OTLP/HTTP when `DUET_OTLP_ENDPOINT` is set (nothing is
//! exported, and nothing costs, when it is not), and the Prometheus metrics behind `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Metric names, in one place so dashboards and code agree.
pub mod names {
    pub const ONLINE_USERS: &str = "duet_online_users";
    pub const OPEN_CONNECTIONS: &str = "duet_open_connections";
    pub const CALLS_LIVE: &str = "duet_calls_live";
    pub const CALLS_STARTED: &str = "duet_calls_started_total";
    pub const CALLS_ENDED: &str = "duet_calls_ended_total";
    pub const CALL_SETUP: &str = "duet_call_setup_seconds";
    pub const CALL_DURATION: &str = "duet_call_duration_seconds";
    pub const FRAMES_RELAYED: &str = "duet_frames_relayed_total";
    pub const WS_ERRORS: &str = "duet_ws_errors_total";
    pub const ACTOR_RESTARTS: &str = "duet_actor_restarts_total";
    pub const ACTOR_FAILURES: &str = "duet_actor_failures_total";
    pub const WS_CLOSES: &str = "duet_ws_closes_total";
    pub const TURN_ALLOCATIONS: &str = "duet_turn_allocations";
    pub const TURN_ALLOCATIONS_TOTAL: &str = "duet_turn_allocations_total";
    pub const TURN_RELAYED_BYTES: &str = "duet_turn_relayed_bytes_total";
    pub const TURN_AUTH_FAILURES: &str = "duet_turn_auth_failures_total";
    pub const TURN_REFUSALS: &str = "duet_turn_refusals_total";
    pub const CLUSTER_NODES: &str = "duet_cluster_nodes";
    pub const CLUSTER_HEALTHY: &str = "duet_cluster_healthy";
    pub const CLUSTER_DROPPED: &str = "duet_cluster_frames_dropped_total";
    pub const CLUSTER_CALLS_ADOPTED: &str = "duet_cluster_calls_adopted_total";
    pub const CLUSTER_REMOTE_USERS: &str = "duet_cluster_remote_users";
    pub const NODE_INFO: &str = "duet_node_info";
    pub const TURN_DENIED_PACKETS: &str = "duet_turn_denied_packets_total";
    pub const CALL_REPORTS: &str = "duet_call_reports_total";
    pub const ICE_FAILURES: &str = "duet_ice_failures_total";
    pub const HTTP_REQUESTS: &str = "duet_http_requests_total";
    pub const HTTP_REFUSED: &str = "duet_http_connections_refused_total";
    /// Clients closed because they did not read what they were sent (1008).
    pub const SLOW_CONSUMERS: &str = "duet_ws_slow_consumers_total";
    /// Store calls that failed because the database could not be reached in time.
    pub const DATABASE_UNAVAILABLE: &str = "duet_database_unavailable_total";
    /// Call records waiting to be written (they pile up while the database is down).
    pub const CALL_RECORDS_PENDING: &str = "duet_call_records_pending";
    /// Call records the database refused as bad (not an outage), dropped after one try each.
    pub const CALL_RECORDS_DROPPED: &str = "duet_call_records_dropped_total";
}

/// The process's telemetry, to flush and stop at exit.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The Prometheus text of every metric so far.
pub fn render_metrics() -> String {
    PROMETHEUS.get().map(PrometheusHandle::render).unwrap_or_default()
}

/// Installs the metrics recorder, once per process.
pub fn init_metrics() {
    PROMETHEUS.get_or_init(|| {
        let secs = |v: &[f64]| v.to_vec();
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(names::CALL_SETUP.into()),
                &secs(&[0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0]),
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(names::CALL_DURATION.into()),
                    &secs(&[5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0]),
                )
            });
        let recorder = match builder {
            Ok(b) => b.build_recorder(),
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        let handle = recorder.handle();
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    });
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(names::ONLINE_USERS, "Users with at least one open connection");
    describe_gauge!(names::OPEN_CONNECTIONS, "Open WebSocket connections");
    describe_gauge!(names::CALLS_LIVE, "Live calls by state (ringing, active)");
    describe_counter!(names::CALLS_STARTED, "Calls that started ringing");
    describe_counter!(names::CALLS_ENDED, "Calls ended, by final status and failure class");
    describe_histogram!(names::CALL_SETUP, Unit::Seconds, "Time from invite to answer");
    describe_histogram!(names::CALL_DURATION, Unit::Seconds, "Duration of answered calls");
    describe_counter!(names::FRAMES_RELAYED, "Signaling frames forwarded between call parties, by kind");
    describe_counter!(names::WS_ERRORS, "10003 errors sent, by error name");
    describe_counter!(names::ACTOR_RESTARTS, "Actor restarts by supervisors, by actor kind");
    describe_counter!(names::ACTOR_FAILURES, "Actors that failed (an error or a panic, not a normal end such as a peer's close), by actor kind");
    describe_counter!(names::WS_CLOSES, "WebSocket closes the server sent, by close code (1011 is a server failure)");
    describe_gauge!(names::TURN_ALLOCATIONS, "Live allocations on the embedded TURN relay");
    describe_counter!(names::TURN_ALLOCATIONS_TOTAL, "Allocations made by the embedded TURN relay");
    describe_counter!(names::TURN_RELAYED_BYTES, Unit::Bytes, "Bytes relayed by the embedded TURN relay");
    describe_counter!(names::TURN_AUTH_FAILURES, "TURN requests refused for expired, forged or malformed credentials");
    describe_gauge!(names::CLUSTER_NODES, "Live nodes of the cluster this node sees, itself included");
    describe_gauge!(names::CLUSTER_HEALTHY, "1 while Redis answers, 0 while the cluster is degraded");
    describe_counter!(names::CLUSTER_DROPPED, "Cross-node frames and presence changes that could not be handed to Redis");
    describe_counter!(names::CLUSTER_CALLS_ADOPTED, "Calls this node took over from a cluster node that was gone");
    describe_gauge!(names::CLUSTER_REMOTE_USERS, "Users online on other nodes of the cluster");
    describe_gauge!(names::NODE_INFO, "Always 1; the label names this node");
    describe_counter!(names::TURN_REFUSALS, "TURN requests answered with an error, by reason (no_credentials is the usual first 401 of every client)");
    describe_counter!(names::TURN_DENIED_PACKETS, "Datagrams the TURN relay dropped: a peer without permission or in a denied range");
    describe_counter!(names::CALL_REPORTS, "Call/Report link reports, by whether the selected path is relayed");
    describe_counter!(names::ICE_FAILURES, "Call/Report link reports with ICE failed");
    describe_counter!(names::HTTP_REQUESTS, "HTTP requests by route and status");
    describe_counter!(names::HTTP_REFUSED, "HTTP connections closed at accept, by reason (per_address: over DUET_HTTP_MAX_PER_ADDRESS)");
    describe_counter!(names::DATABASE_UNAVAILABLE, "Store calls failed because the database did not answer (down, unreachable or over the timeout)");
    describe_gauge!(names::CALL_RECORDS_PENDING, "Call records queued for the database, written when it answers");
    describe_counter!(names::CALL_RECORDS_DROPPED, "Call records the database refused as invalid and that were dropped");
}

/// Libraries that log whole frames or requests at trace (a welcome's TURN password, a chat
/// message, an SDP): they are capped at debug whatever `RUST_LOG` asks, so no level puts a
/// secret or a user's words into the log.
const CAPPED: &[&str] = &["tungstenite", "tokio_tungstenite", "hyper", "hyper_util", "redis"];

/// `RUST_LOG` (default `info`), with the libraries above capped. The cap is a second filter that
/// an event must pass as well, so it only ever lowers a level: `RUST_LOG=warn` keeps those
/// libraries at warn, `RUST_LOG=trace` holds them at debug.
pub fn log_filter<S>() -> impl tracing_subscriber::layer::Filter<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
    let asked = EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let cap = CAPPED.iter().fold(Targets::new().with_default(LevelFilter::TRACE), |t, lib| t.with_target(*lib, LevelFilter::DEBUG));
    asked.and(cap)
}

/// Logs to stderr under [`log_filter`], for the commands that export nothing (`migrate`,
/// `loadtest`, the user admin).
pub fn init_stderr() {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi).with_filter(log_filter());
    let _ = tracing_subscriber::registry().with(fmt).try_init();
}

/// Sets up logging, tracing export and metrics. `node` names this process in traces.
pub fn init(otlp_endpoint: Option<&str>, node: &str) -> anyhow::Result<Telemetry> {
    init_metrics();
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi).with_filter(log_filter());

    let Some(endpoint) = otlp_endpoint else {
        tracing_subscriber::registry().with(fmt).try_init()?;
        return Ok(Telemetry { provider: None });
    };
    let url = if endpoint.ends_with("/v1/traces") { endpoint.to_string() } else { format!("{}/v1/traces", endpoint.trim_end_matches('/')) };
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().with_endpoint(url.clone()).build()?;
    let resource = Resource::builder()
        .with_service_name("duet")
        .with_attributes([KeyValue::new("service.version", env!("CARGO_PKG_VERSION")), KeyValue::new("service.instance.id", node.to_string())])
        .build();
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    // duet's own spans at info and above go out as OpenTelemetry spans too; call traces are
    // built on the OpenTelemetry API directly (call/trace.rs).
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("duet"))
        .with_filter(tracing_subscriber::filter::Targets::new().with_target("duet", tracing::Level::INFO));
    tracing_subscriber::registry().with(fmt).with(otel).try_init()?;
    tracing::info!(endpoint = %url, node, "exporting traces over OTLP/HTTP");
    Ok(Telemetry { provider: Some(provider) })
}

impl Telemetry {
    /// Flushes spans still queued; the exporter blocks, so this runs on a blocking thread.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let _ = tokio::task::spawn_blocking(move || {
                let _ = provider.force_flush();
                let _ = provider.shutdown();
            })
            .await;
        }
    }
}

/// This machine's name, for the `service.instance.id` of its traces.
pub fn node_name() -> String {
    std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "duet".into())
}
