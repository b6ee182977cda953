//! Group commit for accepted requests: concurrent API calls hand their
//! validated request to one task, which records whatever has queued up in
//! one database transaction. One commit per burst instead of one per
//! request is what keeps the API's latency flat under load.

use std::sync::Arc;

use ethgate_store::{Inserted, NewTx, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// A validated request, owned, on its way to the store.
pub(crate) struct Owned {
    pub id: String,
    pub idempotency_key: String,
    pub body_hash: String,
    pub chain_id: u64,
    pub sender: String,
    pub request: String,
    pub state: ethgate_store::StoredState,
}

/// A request and where its outcome goes: a store error is shared by every
/// request of the commit that failed.
pub(crate) type Job = (Owned, oneshot::Sender<Result<Inserted, Arc<StoreError>>>);

/// Requests recorded per transaction, at most.
const BATCH: usize = 256;

/// Starts the recording task; it ends when every sender is dropped.
pub(crate) fn spawn(store: Store) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel(4 * BATCH);
    tokio::spawn(run(store, rx));
    tx
}

async fn run(store: Store, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        // One turn of the runtime first: requests already being handled
        // beside this one join its commit instead of waiting for the next; the turn costs
        // microseconds.
        tokio::task::yield_now().await;
        let mut jobs = vec![first];
        while jobs.len() < BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let news: Vec<NewTx<'_>> = jobs
            .iter()
            .map(|(o, _)| NewTx {
                id: &o.id,
                idempotency_key: &o.idempotency_key,
                body_hash: &o.body_hash,
                chain_id: o.chain_id,
                sender: &o.sender,
                request: &o.request,
                state: &o.state,
                status: ethgate_core::TxStatus::Queued,
            })
            .collect();
        let result = store.insert_txs(&news).await;
        drop(news);
        match result {
            Ok(answers) => {
                for ((_, reply), a) in jobs.into_iter().zip(answers) {
                    let _ = reply.send(Ok(a));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, requests = jobs.len(), "recording requests failed");
                let e = Arc::new(e);
                for (_, reply) in jobs {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
