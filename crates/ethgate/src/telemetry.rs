//! Structured logs on stderr (text or JSON), filtered by `ETHGATE_LOG`
//! (default `info`, without PostgreSQL's notices such as a migration
//! table that already exists), and the Prometheus recorder.

use std::io::IsTerminal;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Installs the log subscriber once.
pub fn init(format: &str) {
    let filter = EnvFilter::try_from_env("ETHGATE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Installs the global metrics recorder and returns its renderer.
pub fn metrics() -> anyhow::Result<PrometheusHandle> {
    Ok(PrometheusBuilder::new().install_recorder()?)
}
