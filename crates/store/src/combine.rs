//! One writer for the transaction senders' frequent writes. Every sender
//! takes nonces and saves state changes several times a second, each in a
//! transaction of its own; with many accounts those small transactions
//! queue for SQLite's one write lock, and under load each holds it for
//! milliseconds (every statement is a hop to the connection's worker
//! thread, which waits for a core). The API's group commit waits behind
//! them. Here the writes that arrive while one is being written are
//! written together: one transaction, one statement per kind of row for
//! all of them (the account compare-and-sets in one `UPDATE … RETURNING`),
//! instead of a transaction each.
//!
//! Each write keeps its own outcome: a nonce taken only if its account's
//! next nonce is still the one the sender read, nothing written for it
//! otherwise. If the combined transaction fails, each write is retried on
//! its own, so one bad write fails only its own sender.

use std::collections::{HashMap, HashSet, VecDeque};

use sqlx::QueryBuilder;
use tokio::sync::{mpsc, oneshot};

use crate::outbox::{WriteTx, begin, begin_durable};
use crate::tx::{NewAttempt, SignedAttempt, StateUpdate, StatusEnvelopes, append_status};
use crate::tx_rows::{NewState, record_attempts, shaped, update_states};
use crate::{Store, StoreError, to_i64};

/// Writes combined into one transaction, at most.
const MAX_WRITES: usize = 32;

/// A first attempt with its request's new state, owned.
pub(crate) struct Signed {
    pub tx_id: String,
    pub attempt: NewAttempt,
    pub state: crate::StoredState,
    pub status: ethgate_core::TxStatus,
}

/// Nonces taken for a batch of requests (see `Store::take_nonces`).
pub(crate) struct Take {
    pub chain_id: u64,
    pub address: String,
    pub first: u64,
    pub items: Vec<Signed>,
}

/// One write, with the envelopes reporting it.
pub(crate) enum Write {
    Take(Take),
    States(Vec<StateUpdate>),
}

/// A write, its status envelopes (stream, JSON each), and where its
/// outcome goes (for a take: whether the nonces were taken).
pub(crate) struct Job {
    pub write: Write,
    pub stream: String,
    pub json: Vec<String>,
    pub reply: oneshot::Sender<Result<bool, StoreError>>,
    /// The lease the writing sender must still hold (see `lease`).
    pub fence: Option<std::sync::Arc<crate::lease::Fence>>,
}

impl Job {
    /// The requests it writes: a combined transaction holds each once.
    fn tx_ids(&self) -> impl Iterator<Item = &str> {
        let (takes, states) = match &self.write {
            Write::Take(t) => (t.items.as_slice(), &[][..]),
            Write::States(u) => (&[][..], u.as_slice()),
        };
        takes
            .iter()
            .map(|s| s.tx_id.as_str())
            .chain(states.iter().map(|u| u.tx_id.as_str()))
    }

    fn account(&self) -> Option<(u64, &str)> {
        match &self.write {
            Write::Take(t) => Some((t.chain_id, t.address.as_str())),
            Write::States(_) => None,
        }
    }
}

/// Hands a write to the store's writer (started with the first write)
/// and waits for its outcome; written alone if the writer is gone (its
/// runtime ended).
pub(crate) async fn write(
    store: &Store,
    write: Write,
    status: StatusEnvelopes<'_>,
) -> Result<bool, StoreError> {
    let (reply, answer) = oneshot::channel();
    let job = Job {
        write,
        stream: status.stream.to_owned(),
        json: status.json.to_vec(),
        reply,
        fence: store.fence.clone(),
    };
    let queue = store.writer.get_or_init(|| {
        let (tx, rx) = mpsc::unbounded_channel();
        // Without the writer's own handle: the task ends when the last
        // handle that could send to it is dropped.
        let own = Store {
            writer: Default::default(),
            ..store.unfenced()
        };
        tokio::spawn(run(own, rx));
        tx
    });
    match queue.send(job) {
        Ok(()) => match answer.await {
            Ok(outcome) => outcome,
            Err(_) => Err(StoreError::Corrupt {
                what: "store writer",
                detail: "the writer stopped before answering".into(),
            }),
        },
        Err(mpsc::error::SendError(job)) => one(store, &job).await,
    }
}

async fn run(store: Store, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut held: VecDeque<Job> = VecDeque::new();
    loop {
        let first = match held.pop_front() {
            Some(j) => j,
            None => match rx.recv().await {
                Some(j) => j,
                None => return,
            },
        };
        // One runtime turn first, so writes being prepared beside this one
        // join its transaction (as the API's group commit does).
        tokio::task::yield_now().await;
        let mut batch = vec![first];
        let (mut ids, mut accounts) = (HashSet::new(), HashSet::new());
        ids.extend(batch[0].tx_ids().map(str::to_owned));
        accounts.extend(batch[0].account().map(|(c, a)| (c, a.to_owned())));
        // Writes that touch a request or an account already in the batch
        // wait for the next one: a statement may name each row once.
        let mut later = VecDeque::new();
        while batch.len() < MAX_WRITES {
            let next = match held.pop_front() {
                Some(j) => j,
                None => match rx.try_recv() {
                    Ok(j) => j,
                    Err(_) => break,
                },
            };
            let account = next.account().map(|(c, a)| (c, a.to_owned()));
            let clash = next.tx_ids().any(|id| ids.contains(id))
                || account.as_ref().is_some_and(|a| accounts.contains(a));
            if clash {
                later.push_back(next);
                continue;
            }
            ids.extend(next.tx_ids().map(str::to_owned));
            accounts.extend(account);
            batch.push(next);
        }
        later.append(&mut held);
        held = later;
        match write_all(&store, &batch).await {
            Ok(outcomes) => {
                for (job, ok) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(ok));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some(job) = batch.pop() {
                    let _ = job.reply.send(Err(e));
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, writes = batch.len(), "combined write failed; writing each alone");
                for job in batch {
                    let outcome = one(&store, &job).await;
                    let _ = job.reply.send(outcome);
                }
            }
        }
    }
}

fn signed(items: &[Signed]) -> Vec<SignedAttempt<'_>> {
    items
        .iter()
        .map(|s| SignedAttempt {
            tx_id: &s.tx_id,
            attempt: &s.attempt,
            state: &s.state,
            status: s.status,
        })
        .collect()
}

fn new_states(updates: &[StateUpdate]) -> impl Iterator<Item = NewState<'_>> {
    updates.iter().map(|u| NewState {
        tx_id: &u.tx_id,
        state: &u.state,
        status: u.status,
        nonce: u.nonce,
        block_number: u.block_number,
        error: u.error.as_deref(),
    })
}

/// One write in a transaction of its own.
async fn one(store: &Store, job: &Job) -> Result<bool, StoreError> {
    let outcomes = write_all(store, std::slice::from_ref(job)).await?;
    Ok(outcomes.first().copied().unwrap_or(false))
}

/// Every write of `batch` in one transaction: each one's outcome.
async fn write_all(store: &Store, batch: &[Job]) -> Result<Vec<bool>, StoreError> {
    // Nonces taken with signed attempts are on disk before they are sent;
    // states alone the chain can tell again.
    let takes = batch.iter().any(|j| matches!(j.write, Write::Take(_)));
    let mut db = match takes {
        true => begin_durable(store).await?,
        false => begin(store).await?,
    };
    let fences: Vec<&crate::lease::Fence> =
        batch.iter().filter_map(|j| j.fence.as_deref()).collect();
    crate::lease::check(&mut db, &fences).await?;
    let moved = take_accounts(&mut db, batch).await?;
    let outcomes: Vec<bool> = batch
        .iter()
        .map(|j| match j.account() {
            Some((c, a)) => moved.contains(&(c, a.to_owned())),
            None => true,
        })
        .collect();
    let written = || batch.iter().zip(&outcomes).filter(|(_, ok)| **ok);
    let attempts: Vec<SignedAttempt<'_>> = written()
        .flat_map(|(j, _)| match &j.write {
            Write::Take(t) => signed(&t.items),
            Write::States(_) => Vec::new(),
        })
        .collect();
    record_attempts(&mut db, &attempts).await?;
    let states: Vec<NewState<'_>> = written()
        .flat_map(|(j, _)| match &j.write {
            Write::States(u) => new_states(u).collect(),
            Write::Take(_) => Vec::new(),
        })
        .collect();
    update_states(&mut db, &states).await?;
    // Envelopes by stream, in the order the writes came.
    let mut streams: Vec<(&str, Vec<String>)> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for (j, _) in written() {
        let k = *at.entry(j.stream.as_str()).or_insert_with(|| {
            streams.push((j.stream.as_str(), Vec::new()));
            streams.len() - 1
        });
        streams[k].1.extend(j.json.iter().cloned());
    }
    let mut appended = false;
    for (stream, json) in &streams {
        let status = StatusEnvelopes { stream, json };
        appended |= append_status(&mut db, status).await?;
    }
    db.commit().await?;
    if appended {
        store.notify();
    }
    Ok(outcomes)
}

/// The accounts of `batch`'s takes whose next nonce was still the one
/// their sender read, moved past the nonces taken: one compare-and-set
/// statement for all of them.
async fn take_accounts(
    db: &mut WriteTx,
    batch: &[Job],
) -> Result<HashSet<(u64, String)>, StoreError> {
    let takes: Vec<&Take> = batch
        .iter()
        .filter_map(|j| match &j.write {
            Write::Take(t) => Some(t),
            Write::States(_) => None,
        })
        .collect();
    if takes.is_empty() {
        return Ok(HashSet::new());
    }
    let mut rows: Vec<(i64, String)> = Vec::with_capacity(takes.len());
    for run in shaped(&takes, MAX_WRITES) {
        let moved: Vec<(i64, String)> = crate::db::on_tx!(db, |ex, DB| {
            let mut q = QueryBuilder::<DB>::new(
                "UPDATE tx_accounts SET next_nonce = next_nonce + v.column3 FROM (",
            );
            q.push_values(run, |mut b, t| {
                b.push_bind(to_i64(t.chain_id))
                    .push_bind(t.address.clone())
                    .push_bind(t.items.len() as i64)
                    .push_bind(to_i64(t.first));
            });
            q.push(
            ") AS v WHERE tx_accounts.chain_id = v.column1 AND tx_accounts.address = v.column2 \
             AND tx_accounts.next_nonce = v.column4 RETURNING tx_accounts.chain_id, tx_accounts.address",
        );
            q.build_query_as::<(i64, String)>().fetch_all(ex).await
        })?;
        rows.extend(moved);
    }
    Ok(rows
        .into_iter()
        .map(|(c, a)| (u64::try_from(c).unwrap_or_default(), a))
        .collect())
}
