//! Redelivering a dead letter: the parked batch is sent to its sink again,
//! as it was, and forgotten once acknowledged.

use ethgate_core::{Envelope, EventEnvelope, TxEnvelope};
use ethgate_store::{DeadLetter, Store, StoreError, StoredEnvelope};

use crate::{Sink, SinkError};

/// Why a redelivery did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RedeliverError {
    /// No such dead letter for that sink.
    #[error("sink {sink} has no dead letter {id}")]
    NotFound {
        /// Sink name.
        sink: String,
        /// Requested id.
        id: i64,
    },
    /// The sink refused again; the dead letter stays.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The store failed, or the parked batch is unreadable.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Sends dead letter `id` of `sink` again; deletes it once acknowledged.
pub async fn redeliver(
    store: &Store,
    sink: &dyn Sink,
    id: i64,
) -> Result<DeadLetter, RedeliverError> {
    let dl = store
        .dead_letter_by_id(sink.name(), id)
        .await?
        .ok_or_else(|| RedeliverError::NotFound {
            sink: sink.name().to_owned(),
            id,
        })?;
    let corrupt = |e: serde_json::Error| StoreError::Corrupt {
        what: "dead_letters.payload",
        detail: e.to_string(),
    };
    let values: Vec<serde_json::Value> = serde_json::from_str(&dl.payload).map_err(corrupt)?;
    let mut batch: Vec<StoredEnvelope> = Vec::with_capacity(values.len());
    for (i, v) in values.into_iter().enumerate() {
        let envelope = if v["kind"] == "tx" {
            Envelope::Tx(serde_json::from_value::<TxEnvelope>(v).map_err(corrupt)?)
        } else if v["kind"] == "audit" {
            Envelope::Audit(serde_json::from_value(v).map_err(corrupt)?)
        } else {
            Envelope::Event(serde_json::from_value::<EventEnvelope>(v).map_err(corrupt)?)
        };
        let seq = match &envelope {
            Envelope::Event(e) => e.seq,
            Envelope::Tx(t) => t.seq,
            Envelope::Audit(a) => a.seq,
        };
        batch.push(StoredEnvelope {
            seq: seq.unwrap_or(dl.first_seq + i as u64),
            envelope,
        });
    }
    sink.send(&batch).await?;
    store.delete_dead_letter(dl.id).await?;
    tracing::info!(sink = %sink.name(), id, first = dl.first_seq, last = dl.last_seq, "dead letter redelivered");
    Ok(dl)
}
