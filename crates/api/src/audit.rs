//! The audit trail's API side: recording what callers did, and
//! `GET /v1/audit` to read it back.
//!
//! Accepted transaction requests — the busy path — are queued to a writer
//! that records them in batches, off the durable commit that takes the
//! request (one audit commit per request cost a third of the API's
//! throughput). Everything else is written before the answer.

use axum::Json;
use axum::extract::{RawQuery, State};
use ethgate_store::{Action, AuditEntry, Outcome};

use std::sync::{Arc, OnceLock};

use ethgate_store::Store;
use tokio::sync::{mpsc, oneshot};

use crate::auth::{Caller, Right};
use crate::error::ErrorBody;
use crate::{ApiError, ApiState, params};

enum Msg {
    Entry(AuditEntry),
    Flush(oneshot::Sender<()>),
}

/// The batching writer of accepted requests' entries; started on first
/// use, it ends when the last handle is dropped.
#[derive(Clone, Default)]
pub struct AuditWriter(Arc<OnceLock<mpsc::Sender<Msg>>>);

/// Entries recorded per transaction, at most.
const BATCH: usize = 2048;

impl AuditWriter {
    fn sender(&self, store: &Store) -> &mpsc::Sender<Msg> {
        self.0.get_or_init(|| {
            let (tx, rx) = mpsc::channel(4 * BATCH);
            tokio::spawn(write(store.clone(), rx));
            tx
        })
    }

    /// Queues an entry (waiting while the queue is full).
    pub async fn push(&self, store: &Store, e: AuditEntry) {
        if self.sender(store).send(Msg::Entry(e)).await.is_err() {
            tracing::error!("the audit writer stopped; an entry was not recorded");
        }
    }

    /// Returns once every entry queued before the call is recorded.
    pub async fn flush(&self, store: &Store) {
        let (done, wait) = oneshot::channel();
        if self.sender(store).send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// How long an entry waits for others to share its commit: a few commits
/// a second at most, so the trail takes SQLite's one write lock from the
/// requests' own commits as little as it can.
const LINGER: std::time::Duration = std::time::Duration::from_millis(200);

async fn write(store: Store, mut rx: mpsc::Receiver<Msg>) {
    while let Some(first) = rx.recv().await {
        if matches!(first, Msg::Entry(_)) {
            tokio::time::sleep(LINGER).await;
        }
        let mut msgs = vec![first];
        while msgs.len() < BATCH {
            match rx.try_recv() {
                Ok(m) => msgs.push(m),
                Err(_) => break,
            }
        }
        let mut entries = Vec::with_capacity(msgs.len());
        let mut flushes = Vec::new();
        for m in msgs {
            match m {
                Msg::Entry(e) => entries.push(e),
                Msg::Flush(done) => flushes.push(done),
            }
        }
        if let Err(e) = store.audit_many(&entries).await {
            tracing::error!(error = %e, entries = entries.len(), "recording audit entries failed");
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// The entry of an accepted request, queued to the batching writer.
pub async fn accepted(
    state: &ApiState,
    caller: &Caller,
    action: Action,
    target: &str,
    detail: &str,
) {
    let entry = entry(caller, action, target, Outcome::Accepted, detail);
    state.audit.push(&state.store, entry).await;
}

fn entry(
    caller: &Caller,
    action: Action,
    target: &str,
    outcome: Outcome,
    detail: &str,
) -> AuditEntry {
    AuditEntry {
        id: 0,
        at_ms: 0,
        token_id: Some(caller.token_id.clone()),
        label: caller.label.clone(),
        action,
        target: target.chars().take(200).collect(),
        outcome,
        detail: detail.chars().take(500).collect(),
    }
}

/// Records one entry; a failure is logged, never turned into the answer
/// (the action itself has happened or been refused already).
pub async fn record(
    state: &ApiState,
    caller: &Caller,
    action: Action,
    target: &str,
    outcome: Outcome,
    detail: &str,
) {
    let entry = entry(caller, action, target, outcome, detail);
    if let Err(e) = state.store.audit(&entry).await {
        tracing::error!(error = %e, action = action.as_str(), "recording an audit entry failed");
    }
}

/// Records a refusal and hands the error back, for `?`-style use.
pub async fn refused(
    state: &ApiState,
    caller: &Caller,
    action: Action,
    target: &str,
    err: ApiError,
) -> ApiError {
    record(
        state,
        caller,
        action,
        target,
        Outcome::Refused,
        &err.message(),
    )
    .await;
    err
}

/// `GET /v1/audit`'s answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Entries after `after`, oldest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `after` for the next page.
    pub next: i64,
}

/// The audit page's query.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries after this id (default 0).
    #[param(minimum = 0, maximum = 9223372036854775807_u64)]
    pub after: Option<u64>,
    /// Page size (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

/// `GET /v1/audit?after=ID&limit=N`: entries after `after`, oldest first.
#[utoipa::path(get, path = "/v1/audit", operation_id = "list_audit", tag = "audit", security(("bearer" = [])),
    summary = "The audit trail: every admin action and transaction request, with who, when and the outcome",
    params(AuditQuery),
    responses((status = 200, body = AuditPage, description = "entries after `after`, oldest first"),
        (status = 400, body = ErrorBody, description = "a parameter is invalid"),
        (status = 401, body = ErrorBody, description = "missing, unknown, revoked or expired token"),
        (status = 403, body = ErrorBody, description = "the token may not read the audit trail (admin scope or a policy with audit)")))]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<AuditPage>, ApiError> {
    caller.allow(Right::ReadAudit)?;
    state.audit.flush(&state.store).await;
    let p = params::parse(query.as_deref(), &["after", "limit"])?;
    let q = AuditQuery {
        after: Some(params::int(&p, "after", 0, 0, i64::MAX as u64)?),
        limit: Some(params::int(&p, "limit", 100, 1, 1_000)?),
    };
    let after = q.after.unwrap_or(0) as i64;
    let rows = state
        .store
        .audit_since(after, q.limit.unwrap_or(100) as u32)
        .await?;
    let next = rows.last().map_or(after, |r| r.id);
    Ok(Json(AuditPage {
        entries: rows,
        next,
    }))
}
