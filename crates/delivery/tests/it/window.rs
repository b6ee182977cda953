//! Several batches awaiting their acknowledgements at once: the cursor
//! moves past a batch only once it and every batch before it were
//! acknowledged, and a failed batch is sent again with everything after
//! it. The sink here is a stand-in whose acknowledgements the test
//! releases in any order (a broker's confirms cannot be reordered on
//! demand); the real AMQP window runs in `amqp.rs` and end to end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy_primitives::Address;
use ethgate_core::RawLog;
use ethgate_delivery::{Dispatcher, Pending, Sink, SinkError};
use ethgate_store::{Store, StoredEnvelope, fixtures};
use futures::future::BoxFuture;
use tokio::sync::oneshot;

/// Hands each batch's acknowledgement to the test, keyed by its first seq.
#[derive(Default)]
struct Gated {
    started: Mutex<Vec<(u64, u64)>>,
    acks: Mutex<HashMap<u64, oneshot::Sender<bool>>>,
}

impl Sink for Gated {
    fn name(&self) -> &str {
        "gated"
    }
    fn max_batch(&self) -> usize {
        2
    }
    fn window(&self) -> usize {
        3
    }
    fn send<'a>(&'a self, _: &'a [StoredEnvelope]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async { Err(SinkError::retriable("gated", "send is not used")) })
    }
    fn start<'a>(
        &'a self,
        batch: &'a [StoredEnvelope],
    ) -> BoxFuture<'a, Result<Pending, SinkError>> {
        let (first, last) = (batch[0].seq, batch[batch.len() - 1].seq);
        self.started.lock().expect("lock").push((first, last));
        let (tx, rx) = oneshot::channel();
        self.acks.lock().expect("lock").insert(first, tx);
        Box::pin(async move {
            Ok(Box::pin(async move {
                match rx.await {
                    Ok(true) => Ok(()),
                    _ => Err(SinkError::retriable("gated", "refused")),
                }
            }) as Pending)
        })
    }
}

impl Gated {
    fn release(&self, first: u64, ok: bool) {
        let tx = self.acks.lock().expect("lock").remove(&first);
        let _ = tx.expect("a batch starting there in flight").send(ok);
    }
    fn started(&self) -> Vec<(u64, u64)> {
        self.started.lock().expect("lock").clone()
    }
}

async fn outbox(dir: &tempfile::TempDir, n: u64) -> Store {
    let store = Store::connect(&format!("sqlite://{}/o.db", dir.path().display()))
        .await
        .expect("store");
    store.ensure_stream("s", 1).await.expect("stream");
    let block = fixtures::block(1, 9);
    let logs: Vec<RawLog> = (0..n)
        .map(|i| fixtures::log(Address::repeat_byte(1), &block, i))
        .collect();
    fixtures::record(&store, "s", None, &[block], fixtures::events(&logs, None))
        .await
        .expect("commit");
    store
}

/// Runs one `deliver_once` in the background.
fn deliver(d: &Arc<Dispatcher>) -> tokio::task::JoinHandle<Result<usize, SinkError>> {
    let d = d.clone();
    tokio::spawn(async move { d.deliver_once().await })
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn the_cursor_moves_only_past_acknowledged_batches_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = outbox(&dir, 10).await;
    let sink = Arc::new(Gated::default());
    let d = Arc::new(Dispatcher::new("s", sink.clone(), store.clone()));
    let cursor = || async { store.sink_cursor("s", "gated").await.expect("cursor").seq };

    // Three batches go out before any acknowledgement.
    let first = deliver(&d);
    settle().await;
    assert_eq!(sink.started(), [(1, 2), (3, 4), (5, 6)]);
    // The second and third are acknowledged, the first refused: nothing
    // past the refused batch counts.
    sink.release(3, true);
    sink.release(5, true);
    sink.release(1, false);
    assert!(
        first.await.expect("task").is_err(),
        "the refused batch fails the delivery"
    );
    assert_eq!(
        cursor().await,
        0,
        "the cursor stays before the refused batch"
    );

    // The retry sends the refused batch and what followed it again.
    let retry = deliver(&d);
    settle().await;
    assert_eq!(sink.started()[3..], [(1, 2), (3, 4), (5, 6)]);
    sink.release(1, true);
    assert_eq!(retry.await.expect("task").expect("delivered"), 2);
    // One acknowledged batch, then the window refills behind the others.
    let next = deliver(&d);
    settle().await;
    assert_eq!(sink.started()[6..], [(7, 8)]);
    sink.release(5, true);
    sink.release(3, true);
    assert_eq!(next.await.expect("task").expect("delivered"), 2);
    // The rest, acknowledged as they come.
    let mut delivered = 0;
    loop {
        let once = deliver(&d);
        settle().await;
        let in_flight: Vec<u64> = sink.acks.lock().expect("lock").keys().copied().collect();
        for first in in_flight {
            sink.release(first, true);
        }
        match once.await.expect("task").expect("delivered") {
            0 => break,
            n => delivered += n,
        }
    }
    assert_eq!(delivered, 6, "seqs 5 to 10, each batch once more");
    assert_eq!(sink.started()[6..], [(7, 8), (9, 10)]);
    assert_eq!(cursor().await, 10, "everything acknowledged is saved");
}
