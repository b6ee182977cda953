//! The HTTP API: a thin layer over the store and the syncers' progress.
//! It holds no business logic — it validates input, checks the caller's
//! scope, reads, and maps errors to status codes in one place ([`error`]).
//!
//! [`router`] builds the whole app from an [`ApiState`], so tests drive it
//! with `oneshot` and no socket.

pub mod audit;
pub mod auth;
pub mod calls;
pub mod chains;
pub mod cluster;
pub mod dashboard;
pub mod error;
pub mod health;
pub mod limits;
pub mod openapi;
mod params;
pub mod policy;
pub mod pools;
pub mod server;
pub mod sinks;
pub mod stats;
pub mod streams;
pub mod tokens;
pub mod transactions;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use ethgate_chain::EndpointPool;
use ethgate_core::StreamSpec;
use ethgate_delivery::Sink;
use ethgate_events::SyncState;
use ethgate_store::Store;
use tokio::sync::watch;

pub use auth::{Scope, hash_token, new_token};
pub use error::ApiError;
pub use openapi::described_routes;
pub use policy::Policy;
pub use server::Limits;
pub use tokens::new_token_row;

/// Largest request body accepted, in bytes.
pub const MAX_BODY: usize = 1 << 20;

/// A chain as `/readyz` sees it.
#[derive(Clone)]
pub struct ChainHealth {
    /// Chain name.
    pub name: String,
    /// Its configured chain id.
    pub chain_id: u64,
    /// Its endpoint pool (for the time of the last successful call, and
    /// each endpoint's health).
    pub pool: Arc<EndpointPool>,
    /// How old the last success may be before the chain counts as down.
    pub stale_after: Duration,
}

/// Renders the Prometheus exposition text.
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

/// What every handler can read.
#[derive(Clone)]
pub struct ApiState {
    /// The store.
    pub store: Store,
    /// Configured streams.
    pub streams: Arc<Vec<StreamSpec>>,
    /// Configured (stream, sink) deliveries.
    pub routes: Arc<Vec<(String, String)>>,
    /// Built sinks by name, for redelivering dead letters.
    pub sinks: Arc<HashMap<String, Arc<dyn Sink>>>,
    /// Configured chains.
    pub chains: Arc<Vec<ChainHealth>>,
    /// Syncers' progress.
    pub sync: SyncState,
    /// Metrics renderer; `None` when no recorder is installed.
    pub metrics: Option<MetricsRender>,
    /// Longest long-poll wait allowed.
    pub max_wait: Duration,
    /// Tokens checked recently.
    pub tokens: auth::TokenCache,
    /// The transaction manager; `None` when no accounts are configured.
    pub tx: Option<Arc<ethgate_tx::TxManager>>,
    /// Operational account pools; `None` when no accounts are configured.
    pub pools: Option<Arc<ethgate_accounts::Pools>>,
    /// Turns true when the server is stopping, so held long-polls answer at
    /// once instead of delaying shutdown by up to `max_wait`.
    pub stopping: watch::Receiver<bool>,
    /// Timeouts, caps and the per-token rate.
    pub limits: Limits,
    /// Configured policies by name.
    pub policies: Arc<HashMap<String, Arc<Policy>>>,
    /// Accounts no token may send from unless its policy names them: the
    /// pools' funding and master accounts.
    pub guarded: Arc<std::collections::HashSet<alloy_primitives::Address>>,
    /// Metrics access and CORS origins.
    pub exposure: health::Exposure,
    /// The batching writer of accepted requests' audit entries.
    pub audit: audit::AuditWriter,
    /// Functions and errors the configured ABIs declare, for calls.
    pub abis: Arc<calls::KnownAbis>,
    /// The dashboard's per-minute counts.
    pub stats: stats::Stats,
    /// A lease's lifetime: replicas unseen for longer are gone.
    pub lease_ttl: Duration,
}

/// Unix seconds now: token expiry, lifetimes and the daily caps' day.
pub(crate) fn unix_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The whole API.
pub fn router(state: ApiState) -> Router {
    let cors = cors(&state.exposure.cors_origins);
    let (app, _) = openapi::routes().split_for_parts();
    let app = app
        .fallback(health::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::bound,
        ))
        .layer(axum::middleware::from_fn(limits::json_errors))
        .with_state(state);
    match cors {
        Some(layer) => app.layer(layer),
        None => app,
    }
}

/// CORS for the configured origins only; `None` (no CORS headers at all,
/// so browsers refuse cross-origin calls) when there are none.
fn cors(origins: &[axum::http::HeaderValue]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{Method, header};
    if origins.is_empty() {
        return None;
    }
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins.to_vec())
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .max_age(Duration::from_secs(600)),
    )
}
