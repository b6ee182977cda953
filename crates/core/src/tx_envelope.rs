//! The transaction status envelope, and the union of what the outbox
//! carries. A status envelope is written (in the same database transaction
//! as the state change) every time a transaction request changes state, so
//! every sink that delivers events also tells services when their
//! transactions are pending, mined, confirmed, reorged back or ended.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::EventEnvelope;

/// `{ "id", "kind": "tx", "tx_id", "idempotency_key", "chain_id", "from",
/// "nonce", "status", "hash", "block_number", "error", "metadata", "seq" }`
/// (DESIGN.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TxEnvelope {
    /// `<tx_id>:<status>`; with `seq` it identifies the outbox entry.
    pub id: String,
    /// Always `"tx"`.
    pub kind: String,
    /// The request's id.
    pub tx_id: String,
    /// The caller's idempotency key.
    pub idempotency_key: String,
    /// Chain id.
    pub chain_id: u64,
    /// Sending account, lower-case hex.
    pub from: String,
    /// Nonce held or used, if any.
    pub nonce: Option<u64>,
    /// The new status.
    pub status: crate::TxStatus,
    /// Hash of the included (or latest) attempt.
    pub hash: Option<String>,
    /// Block of the included attempt.
    pub block_number: Option<u64>,
    /// Revert reason, refusal or other error worth showing.
    pub error: Option<String>,
    /// The caller's metadata, echoed.
    pub metadata: Value,
    /// Outbox position, set when read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// What an outbox entry holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Envelope {
    /// A contract event (or its retraction).
    Event(EventEnvelope),
    /// A transaction status change.
    Tx(TxEnvelope),
    /// An audit entry (stream `audit`).
    Audit(crate::AuditEnvelope),
}

/// On the wire an envelope is one of the three shapes, told apart by
/// `kind` (written by [`Envelope::write_json`], not by a serde tag).
impl utoipa::PartialSchema for Envelope {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::ToSchema;
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name(EventEnvelope::name()))
            .item(utoipa::openapi::Ref::from_schema_name(TxEnvelope::name()))
            .item(utoipa::openapi::Ref::from_schema_name(
                crate::AuditEnvelope::name(),
            ))
            .description(Some(
                "an event, a transaction status or an audit entry, by `kind`",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Envelope {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push((EventEnvelope::name().into(), EventEnvelope::schema()));
        schemas.push((TxEnvelope::name().into(), TxEnvelope::schema()));
        schemas.push((
            crate::AuditEnvelope::name().into(),
            crate::AuditEnvelope::schema(),
        ));
        EventEnvelope::schemas(schemas);
        TxEnvelope::schemas(schemas);
        crate::AuditEnvelope::schemas(schemas);
    }
}

impl Envelope {
    /// Appends the wire JSON.
    pub fn write_json(&self, out: &mut String) {
        match self {
            Envelope::Event(e) => e.write_json(out),
            Envelope::Tx(t) => out.push_str(&serde_json::to_string(t).unwrap_or_default()),
            Envelope::Audit(a) => out.push_str(&serde_json::to_string(a).unwrap_or_default()),
        }
    }

    /// The identity of this outbox entry for deduplicating transports; see
    /// [`EventEnvelope::delivery_id`].
    pub fn delivery_id(&self) -> String {
        match self {
            Envelope::Event(e) => e.delivery_id(),
            Envelope::Tx(t) => format!("{}/{}", t.id, t.seq.unwrap_or(0)),
            Envelope::Audit(a) => a.id.clone(),
        }
    }

    /// The event, if this is one.
    pub fn as_event(&self) -> Option<&EventEnvelope> {
        match self {
            Envelope::Event(e) => Some(e),
            Envelope::Tx(_) | Envelope::Audit(_) => None,
        }
    }
}
