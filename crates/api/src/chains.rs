//! `/v1/chains`: each chain's endpoints as the gateway sees them — head,
//! up or down, lag behind the best of them, and whether each answers the
//! configured chain id — so an operator sees a lagging or misrouted
//! provider before it matters.

use axum::Json;
use axum::extract::State;
use ethgate_chain::ChainCheck;

use crate::auth::{Caller, Right};
use crate::error::ErrorBody;
use crate::{ApiError, ApiState};

/// `GET /v1/chains`'s answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ChainsPage {
    /// Every configured chain.
    pub chains: Vec<ChainStatus>,
}

/// One chain as its endpoints see it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ChainStatus {
    /// The `[[chains]]` name.
    pub name: String,
    /// The configured chain id.
    pub chain_id: u64,
    /// The best head of its endpoints.
    pub head: Option<u64>,
    /// Each endpoint, in preference order.
    pub endpoints: Vec<EndpointStatus>,
}

/// One RPC endpoint.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EndpointStatus {
    /// `scheme://host:port` only: never a path, which may hold a key.
    pub endpoint: String,
    /// Answering.
    pub up: bool,
    /// Its head.
    pub head: Option<u64>,
    /// Blocks behind the best head.
    pub lag: Option<u64>,
    /// `null` until it answered `eth_chainId`.
    pub serves_chain: Option<bool>,
    /// The chain id it answered when that is the wrong one.
    pub answered_chain_id: Option<u64>,
    /// Its last error.
    pub error: Option<String>,
    /// Unix milliseconds of the last probe.
    pub probed_at_ms: Option<u64>,
}

/// `GET /v1/chains`.
#[utoipa::path(get, path = "/v1/chains", operation_id = "list_chains", tag = "chains", security(("bearer" = [])),
    summary = "Every chain's endpoints: head, up or down, lag behind the best, chain id check",
    responses((status = 200, body = ChainsPage, description = "chains"),
        (status = 401, body = ErrorBody, description = "missing or unknown token"),
        (status = 403, body = ErrorBody, description = "the token may not read status")))]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<ChainsPage>, ApiError> {
    caller.allow(Right::ReadStatus)?;
    let chains = state
        .chains
        .iter()
        .map(|c| {
            let endpoints: Vec<EndpointStatus> = c
                .pool
                .statuses()
                .into_iter()
                .map(|s| {
                    let (serves_chain, answered_chain_id) = match s.chain {
                        ChainCheck::Unchecked => (None, None),
                        ChainCheck::Matches => (Some(true), None),
                        ChainCheck::Wrong(id) => (Some(false), Some(id)),
                    };
                    EndpointStatus {
                        endpoint: s.endpoint,
                        up: s.up,
                        head: s.head,
                        lag: s.lag,
                        serves_chain,
                        answered_chain_id,
                        error: s.error,
                        probed_at_ms: (s.probed_ms > 0).then_some(s.probed_ms),
                    }
                })
                .collect();
            ChainStatus {
                name: c.name.clone(),
                chain_id: c.chain_id,
                head: endpoints.iter().filter_map(|e| e.head).max(),
                endpoints,
            }
        })
        .collect();
    Ok(Json(ChainsPage { chains }))
}
