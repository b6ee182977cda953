//! `/v1/cluster`: the replicas sharing this store and which of them runs
//! each work unit under which lease epoch — where to look when a stream or
//! an account seems stuck, and proof that a failover happened.

use axum::Json;
use axum::extract::State;

use crate::auth::{Caller, Right};
use crate::error::ErrorBody;
use crate::{ApiError, ApiState};

/// `GET /v1/cluster`'s answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ClusterPage {
    /// The database's clock when read (Unix ms): compare expiries to it.
    pub now_ms: i64,
    /// Replicas that heartbeat within a lease's lifetime, oldest first.
    pub replicas: Vec<ReplicaStatus>,
    /// Every work unit's lease.
    pub units: Vec<UnitStatus>,
}

/// One replica.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ReplicaStatus {
    /// Its id (`[cluster] replica_id`, else host and API port).
    pub id: String,
    /// Its API's listen address, as configured.
    pub api: String,
    /// When it joined (Unix ms, database clock).
    pub started_ms: i64,
    /// Its last heartbeat (Unix ms, database clock).
    pub seen_ms: i64,
    /// How many units it holds.
    pub units: u64,
}

/// One work unit's lease.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct UnitStatus {
    /// `stream:NAME`, `route:STREAM→SINK`, `account:CHAIN:ADDRESS` or `pools`.
    pub unit: String,
    /// The replica running it; `null` when released or never taken.
    pub holder: Option<String>,
    /// Grows with each change of holder.
    pub epoch: i64,
    /// When another replica may take it (Unix ms, database clock).
    pub expires_ms: i64,
}

/// `GET /v1/cluster`.
#[utoipa::path(get, path = "/v1/cluster", operation_id = "get_cluster", tag = "cluster", security(("bearer" = [])),
    summary = "The replicas sharing the store and which one runs each work unit",
    responses((status = 200, body = ClusterPage, description = "replicas and leases"),
        (status = 401, body = ErrorBody, description = "missing or unknown token"),
        (status = 403, body = ErrorBody, description = "the token may not read status"),
        (status = 503, body = ErrorBody, description = "the store is unavailable")))]
pub async fn get(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<Json<ClusterPage>, ApiError> {
    caller.allow(Right::ReadStatus)?;
    let store = &state.store;
    let now_ms = store.db_now_ms().await?;
    let ttl = state.lease_ttl.as_millis() as i64;
    let leases = store.leases().await?;
    let replicas = store
        .replicas(ttl)
        .await?
        .into_iter()
        .map(|r| ReplicaStatus {
            units: leases.iter().filter(|l| l.holder == r.id).count() as u64,
            id: r.id,
            api: r.api,
            started_ms: r.started_ms,
            seen_ms: r.seen_ms,
        })
        .collect();
    let units = leases
        .into_iter()
        .map(|l| UnitStatus {
            unit: l.unit,
            holder: (!l.holder.is_empty()).then_some(l.holder),
            epoch: l.epoch,
            expires_ms: l.expires_ms,
        })
        .collect();
    Ok(Json(ClusterPage {
        now_ms,
        replicas,
        units,
    }))
}
