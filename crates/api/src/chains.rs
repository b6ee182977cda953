//! `/v1/chains`: each chain's endpoints as the gateway sees them — head,
//! up or down, lag behind the best of them, and whether each answers the
//! configured chain id — so an operator sees a lagging or misrouted
//! provider before it matters.

use axum::Json;
use axum::extract::State;
use ethgate_chain::ChainCheck;
use serde_json::{Value, json};

use crate::auth::{Caller, Right};
use crate::{ApiError, ApiState};

/// `GET /v1/chains`.
pub async fn list(State(state): State<ApiState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.allow(Right::ReadStatus)?;
    let chains: Vec<Value> = state
        .chains
        .iter()
        .map(|c| {
            let endpoints: Vec<Value> = c
                .pool
                .statuses()
                .into_iter()
                .map(|s| {
                    let (serves, other) = match s.chain {
                        ChainCheck::Unchecked => (Value::Null, None),
                        ChainCheck::Matches => (Value::Bool(true), None),
                        ChainCheck::Wrong(id) => (Value::Bool(false), Some(id)),
                    };
                    json!({
                        "endpoint": s.endpoint,
                        "up": s.up,
                        "head": s.head,
                        "lag": s.lag,
                        "serves_chain": serves,
                        "answered_chain_id": other,
                        "error": s.error,
                        "probed_at_ms": (s.probed_ms > 0).then_some(s.probed_ms),
                    })
                })
                .collect();
            let best = endpoints.iter().filter_map(|e| e["head"].as_u64()).max();
            json!({"name": c.name, "chain_id": c.chain_id, "head": best, "endpoints": endpoints})
        })
        .collect();
    Ok(Json(json!({ "chains": chains })))
}
