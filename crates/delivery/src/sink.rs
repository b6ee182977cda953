//! The one trait every sink implements.

use ethgate_store::StoredEnvelope;
use futures::future::BoxFuture;

/// Why a batch was not acknowledged.
#[derive(Debug, thiserror::Error)]
#[error("sink {sink}: {message}")]
pub struct SinkError {
    /// Sink name.
    pub sink: String,
    /// What went wrong (never a secret or a URL's credentials).
    pub message: String,
    /// Whether the same batch may succeed later (the dispatcher retries
    /// either way; the flag decides logging and, later, dead-lettering).
    pub retriable: bool,
}

impl SinkError {
    /// A failure the same batch may get past later: the broker or receiver
    /// is down, refused, or timed out.
    pub fn retriable(sink: &str, message: impl Into<String>) -> Self {
        SinkError {
            sink: sink.to_owned(),
            message: message.into(),
            retriable: true,
        }
    }
}

/// A batch handed to a destination whose acknowledgement is still to
/// come: it resolves once the destination durably accepted the batch.
pub type Pending = BoxFuture<'static, Result<(), SinkError>>;

/// A destination for envelopes. `send` resolves `Ok` only once the
/// destination has durably accepted the whole batch — that is the ack the
/// dispatcher's cursor waits for.
pub trait Sink: Send + Sync {
    /// Name from the config; keys the sink's cursors.
    fn name(&self) -> &str;

    /// Most envelopes per `send`.
    fn max_batch(&self) -> usize;

    /// Delivers a batch, in order.
    fn send<'a>(&'a self, batch: &'a [StoredEnvelope]) -> BoxFuture<'a, Result<(), SinkError>>;

    /// Hands a batch over and returns its acknowledgement still to come,
    /// so the dispatcher can hand over the next batches meanwhile (see
    /// [`window`](Self::window)). The default sends the whole batch first.
    fn start<'a>(
        &'a self,
        batch: &'a [StoredEnvelope],
    ) -> BoxFuture<'a, Result<Pending, SinkError>> {
        Box::pin(async move {
            self.send(batch).await?;
            Ok(Box::pin(std::future::ready(Ok(()))) as Pending)
        })
    }

    /// Batches that may await their acknowledgement at once; the cursor
    /// still moves only past acknowledged batches, in order. 1 (the
    /// default): each batch is acknowledged before the next is sent.
    fn window(&self) -> usize {
        1
    }

    /// How long one batch may keep failing before it is parked as a dead
    /// letter so the stream moves on; `None` (the default): retry forever,
    /// right for brokers, whose outages end.
    fn dead_letter_after(&self) -> Option<std::time::Duration> {
        None
    }
}
