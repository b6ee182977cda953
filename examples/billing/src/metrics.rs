//! The service's own `/metrics` (Prometheus text): what it heard, what it
//! charged, what failed and what it gave up on, and its schedule.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::routing::get;

use crate::Service;

/// A counter.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Every counter the service keeps.
#[derive(Default)]
pub struct Metrics {
    /// Billing events applied.
    pub heard: Counter,
    /// Events undone after a reorg.
    pub retracted: Counter,
    /// Charge transactions submitted.
    pub submitted: Counter,
    /// Charge transactions confirmed.
    pub confirmed: Counter,
    /// Charges that failed and will be retried.
    pub failed: Counter,
    /// Charges given up after their window.
    pub given_up: Counter,
}

async fn render(State(svc): State<Arc<Service>>) -> String {
    let m = &svc.metrics;
    let active = svc.schedule.next_dates().await.map_or(0, |d| d.len());
    let mut out = String::new();
    for (name, help, v) in [
        (
            "billing_events_heard_total",
            "Billing events applied.",
            m.heard.get(),
        ),
        (
            "billing_events_retracted_total",
            "Events undone after a reorg.",
            m.retracted.get(),
        ),
        (
            "billing_charges_submitted_total",
            "Charge transactions submitted.",
            m.submitted.get(),
        ),
        (
            "billing_charges_confirmed_total",
            "Charge transactions confirmed.",
            m.confirmed.get(),
        ),
        (
            "billing_charges_failed_total",
            "Charges failed, to be retried.",
            m.failed.get(),
        ),
        (
            "billing_charges_given_up_total",
            "Charges given up after their window.",
            m.given_up.get(),
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
        ));
    }
    out.push_str(&format!(
        "# HELP billing_active Active billings.\n# TYPE billing_active gauge\nbilling_active {active}\n"
    ));
    out
}

/// Serves `/metrics` on `addr`.
pub async fn serve(svc: Arc<Service>, addr: std::net::SocketAddr) {
    let app = axum::Router::new()
        .route("/metrics", get(render))
        .with_state(svc);
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => {
            if let Err(e) = axum::serve(l, app).await {
                tracing::error!(error = %e, "the metrics server stopped");
            }
        }
        Err(e) => tracing::error!(error = %e, %addr, "cannot listen for /metrics"),
    }
}
