//! One sender task per account: it observes the chain (head, nonce counts,
//! receipts, the clock), feeds what it saw to `core::tx::step`, and carries
//! out the effects step returns — simulate, take a nonce, sign, record,
//! broadcast, bump, replace with a no-op.
//!
//! Write-ahead: every attempt is signed and stored (with the request's new
//! state, and for the first attempt with the nonce taken) before it is
//! broadcast, so a crash at any instant leaves either no attempt or one
//! that the next start re-broadcasts. Only this task takes the account's
//! nonces, and only through the store's compare-and-set.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use alloy_primitives::Address;
use ethgate_chain::{ChainError, EndpointPool};
use ethgate_core::tx::{Policy, TxState};
use ethgate_keys::Signer;
use ethgate_store::{AttemptRow, StatusEnvelopes, Store, StoreError};
use serde_json::json;
use tokio::sync::{Notify, watch};

mod ancestry;
pub use ancestry::ChainView;
mod batches;
mod busy;
use batches::{BATCHES_AT_ONCE, in_batches};
use busy::Busy;
mod admit;
mod effects;
mod logs;
mod observe;
mod pass;
mod pinned;
mod prepare;
pub use admit::SIMULATION_ERRORS;
mod queued;
mod simulate;
use simulate::Simulation;
mod table;

use crate::Settings;
use crate::fees::{self, Caps, Fees};
use crate::request::TxRequest;

/// Why a tick stopped early; the next tick starts over.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    /// The chain did not answer.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored value did not parse.
    #[error("stored transaction {0}: {1}")]
    Corrupt(String, String),
    /// The signer refused.
    #[error(transparent)]
    Key(#[from] ethgate_keys::KeyError),
    /// A state or status envelope could not be encoded to be stored;
    /// nothing of it was written.
    #[error("encoding for the store: {0}")]
    Encode(#[from] serde_json::Error),
    /// The nodes answering had no block at the head height another had
    /// just reported (they are behind it); the next tick reads again.
    #[error("no node answering holds block {number} yet")]
    Behind {
        /// The height.
        number: u64,
    },
}

/// An account the gateway sends from.
#[derive(Clone)]
pub struct Account {
    /// Chain name.
    pub chain: String,
    /// Chain id signed into every transaction.
    pub chain_id: u64,
    /// Its signer (the address is the signer's).
    pub signer: Arc<dyn Signer>,
    /// The chain's endpoints.
    pub pool: Arc<EndpointPool>,
    /// The account's fee caps.
    pub caps: Caps,
    /// The chain has no EIP-1559: send legacy transactions priced by
    /// `eth_gasPrice` (caps apply to the gas price).
    pub legacy: bool,
}

/// What the API shares with an account's sender.
#[derive(Default)]
pub struct Shared {
    /// Wakes the sender (a new request, a cancel).
    pub wake: Notify,
    /// Requests to cancel, applied by the sender at its next tick so a
    /// cancel never races a nonce being taken.
    pub cancels: std::sync::Mutex<Vec<String>>,
    /// Requests to bump past their fee caps, applied likewise.
    pub bumps: std::sync::Mutex<Vec<String>>,
    /// Open requests at the last tick (pools pick the least loaded).
    pub open: std::sync::atomic::AtomicUsize,
    /// Broadcast refusals, from first broadcasts that ran beside a tick
    /// and from the tick's re-broadcasts, for the next tick's rows.
    pub refused: std::sync::Mutex<Vec<Refusal>>,
}

/// A node's refusal of a request's broadcast.
pub struct Refusal {
    /// The request.
    pub tx: String,
    /// What the request shows: the node's answer.
    pub error: String,
    /// A higher fee would only make the answer worse (the account cannot
    /// pay), so the request is not bumped meanwhile.
    pub firm: bool,
}

pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How many times a head header is asked for before the tick gives up.
const HEAD_TRIES: usize = 3;

/// How long a head header is trusted while the height stays the same.
const HEAD_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// The sender of one account.
pub struct Sender {
    account: Account,
    address: Address,
    addr: String,
    store: Store,
    settings: Settings,
    shared: Arc<Shared>,
    /// The outbox stream of this chain's status envelopes: `tx.<chain>`.
    stream: String,
    /// Custom errors the configuration's ABIs declare, by contract.
    contract_errors: Arc<crate::ContractErrors>,
    /// Attempts per request, loaded once and extended as this task signs.
    attempts: HashMap<String, Vec<AttemptRow>>,
    /// The open requests, kept between ticks.
    table: table::Table,
    /// A lower bound of the account's stored next nonce (`None` until
    /// the first tick has written it).
    nonce_floor: Option<u64>,
    /// The queue of the account's first broadcasts (its task starts with
    /// the first one).
    broadcaster: Option<tokio::sync::mpsc::UnboundedSender<queued::Sends>>,
    /// What this tick decided, written and sent at its end.
    out: TickOut,
    /// What the ticks read of the chain.
    chain: ChainSeen,
    /// What the node has said of particular requests.
    node: NodeSays,
}

/// What a tick decided, written together (and sent, once written) at its
/// end.
#[derive(Default)]
struct TickOut {
    /// State changes, for the table once the tick ends.
    changes: Vec<table::Change>,
    /// State changes, written together.
    saves: Vec<ethgate_store::StateUpdate>,
    /// Status envelopes of the state changes, written with them.
    envelopes: Vec<String>,
    /// Re-broadcasts and replacements (request id, raw bytes), sent
    /// together.
    resends: Vec<(String, Vec<u8>)>,
    /// Replacements signed, recorded together before `resends`.
    replacements: Vec<effects::Replacing>,
}

/// What the ticks read of the chain.
struct ChainSeen {
    /// The chain's recent headers, shared with its other senders.
    view: Arc<ChainView>,
    /// Market fees by speed, read once per tick.
    market: HashMap<crate::Speed, Fees>,
    /// The head whose receipts (or logs) were last read, with the
    /// account's nonce count read beside it.
    seen_head: Option<(ethgate_core::BlockRef, u64)>,
    /// The head header last read.
    tick_head: Option<ethgate_core::BlockRef>,
    /// The last tick's head height.
    head: u64,
    /// The chain's next nonce for the account at the last tick.
    latest_count: u64,
    /// The node's next nonce for the account, with its pool.
    pending_count: u64,
}

/// What the node has said of particular requests, kept across ticks.
struct NodeSays {
    /// Requests whose latest broadcast the node refused because the
    /// account cannot pay (see [`Refusal::firm`]): not bumped meanwhile.
    firm_refusals: std::collections::HashSet<String>,
    /// Requests re-sent this tick because they stalled.
    stall_resends: std::collections::HashSet<String>,
    /// Stalled requests whose re-send the node answered "already known".
    held_stalls: std::collections::HashSet<String>,
    /// Queued requests whose simulation the node answered with an error
    /// that names no failure, in ticks where it simulated others: how
    /// many times (see `admit::SIMULATION_ERRORS`).
    sim_errors: HashMap<String, u32>,
    /// Whether the node may be asked for `eth_simulateV1` (cleared the
    /// first time it says it has no such method, or leaves it unanswered
    /// while it answers `eth_call`).
    simulate_v1: Arc<std::sync::atomic::AtomicBool>,
}

impl Sender {
    /// A sender for `account`.
    pub fn new(
        account: Account,
        store: Store,
        settings: Settings,
        shared: Arc<Shared>,
        view: Arc<ChainView>,
    ) -> Self {
        let address = account.signer.address();
        let stream = format!("tx.{}", account.chain);
        Sender {
            addr: format!("{address:#x}"),
            address,
            account,
            store,
            settings,
            shared,
            stream,
            contract_errors: Arc::default(),
            attempts: HashMap::new(),
            table: table::Table::default(),
            nonce_floor: None,
            broadcaster: None,
            out: TickOut::default(),
            chain: ChainSeen {
                view,
                market: HashMap::new(),
                seen_head: None,
                tick_head: None,
                head: 0,
                latest_count: 0,
                pending_count: 0,
            },
            node: NodeSays {
                firm_refusals: Default::default(),
                stall_resends: Default::default(),
                held_stalls: Default::default(),
                sim_errors: HashMap::new(),
                simulate_v1: Arc::new(true.into()),
            },
        }
    }

    /// Names custom errors in rejection reasons (see
    /// [`crate::ContractErrors`]).
    pub fn with_contract_errors(mut self, errors: Arc<crate::ContractErrors>) -> Self {
        self.contract_errors = errors;
        self
    }

    /// Ticks until `shutdown`, waking early when asked.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(chain = %self.account.chain, account = %self.addr, "sender started");
        let shared = self.shared.clone();
        while let Err(e) = self
            .store
            .ensure_stream(&self.stream, self.account.chain_id)
            .await
        {
            tracing::warn!(stream = %self.stream, error = %e, "cannot register the status stream; retrying");
            tokio::select! {
                _ = tokio::time::sleep(self.settings.poll) => {}
                _ = shutdown.wait_for(|v| *v) => return,
            }
        }
        let mut busy = Busy::new(self.chain.view.clone());
        loop {
            if *shutdown.borrow() {
                break;
            }
            match self.tick().await {
                Ok(()) => {}
                Err(e @ TickError::Behind { .. }) => {
                    tracing::debug!(chain = %self.account.chain, account = %self.addr, error = %e, "nodes behind; reading again");
                }
                Err(e) => {
                    tracing::warn!(chain = %self.account.chain, account = %self.addr, error = %e, "sender tick failed; retrying");
                }
            }
            // An idle sender also ticks when another sender of its chain
            // reads a new head (a busy one ticks often anyway).
            let new_head = async {
                match busy.is_set() {
                    true => std::future::pending().await,
                    false => self.chain.view.new_head.notified().await,
                }
            };
            let woken = tokio::select! {
                _ = shared.wake.notified() => Some(true),
                _ = tokio::time::sleep(self.settings.poll) => Some(false),
                _ = new_head => None,
                _ = shutdown.wait_for(|v| *v) => break,
            };
            let Some(woken) = woken else { continue };
            busy.set(woken);
            if woken {
                // A burst of requests wakes the sender once per request: let
                // it gather, so one tick (one read of the open requests, one
                // nonce transaction) serves the burst.
                busy.gather(&shared.wake).await;
            }
        }
        tracing::info!(chain = %self.account.chain, account = %self.addr, "sender stopped");
    }

    /// One pass over the account's open requests. The state changes it
    /// decided are written even if it stops early: each was decided on
    /// what the chain said.
    pub async fn tick(&mut self) -> Result<(), TickError> {
        let result = self.tick_inner().await;
        let recorded = self.record_replacements().await;
        let sent = self.flush_resends().await;
        let result = result.and(recorded).and(sent);
        let saves = effects::coalesce(std::mem::take(&mut self.out.saves));
        let envelopes = std::mem::take(&mut self.out.envelopes);
        let written = self
            .store
            .set_tx_states(
                &saves,
                StatusEnvelopes {
                    stream: &self.stream,
                    json: &envelopes,
                },
            )
            .await;
        for c in std::mem::take(&mut self.out.changes) {
            self.table.change(c);
        }
        if written.is_err() || result.is_err() {
            // What the table holds may now differ from the store.
            self.table.invalidate();
        }
        for id in self
            .table
            .prune(self.chain.head.saturating_sub(self.settings.finality_depth))
        {
            self.forget_answers(&id);
            self.attempts.remove(&id);
        }
        let load = self
            .table
            .rows
            .values()
            .filter(|o| {
                matches!(
                    o.state,
                    TxState::Queued | TxState::Pending(_) | TxState::Mined(_)
                )
            })
            .count();
        self.shared
            .open
            .store(load, std::sync::atomic::Ordering::Relaxed);
        written?;
        result
    }

    async fn tick_inner(&mut self) -> Result<(), TickError> {
        let pool = self.account.pool.clone();
        self.chain.market.clear();
        // One round trip for the three readings (a busy node answers each
        // call late). Receipts are read after them, so whichever order the
        // node answers in, a nonce the count shows used has its receipt.
        let calls = [
            ("eth_getTransactionCount", json!([self.address, "latest"])),
            ("eth_blockNumber", json!([])),
            ("eth_getTransactionCount", json!([self.address, "pending"])),
        ];
        // New requests are read from the store meanwhile: the two wait on
        // different things. (Confirmed requests are watched for reorgs
        // within the finality depth; after the first tick the last head
        // bounds them closely enough — a row past it is pruned at the
        // tick's end. The first tick reads after the head, so a long
        // history is not loaded whole.)
        let (answers, refreshed) = if self.chain.head > 0 {
            let (answers, refreshed) = tokio::join!(
                pool.batch::<serde_json::Value>(&calls),
                self.refresh_table(self.chain.head)
            );
            (answers, Some(refreshed))
        } else {
            (pool.batch::<serde_json::Value>(&calls).await, None)
        };
        let answers = answers?;
        let [latest_count, number, pending_count]: [Result<serde_json::Value, ChainError>; 3] =
            answers.try_into().map_err(|_| {
                TickError::Corrupt("chain readings".into(), "an answer is missing".into())
            })?;
        let quantity = |v: serde_json::Value| {
            serde_json::from_value::<alloy_primitives::U64>(v)
                .map(|n| n.to::<u64>())
                .map_err(|e| e.to_string())
        };
        let corrupt = |what: &'static str| move |e: String| TickError::Corrupt(what.into(), e);
        self.chain.latest_count = quantity(latest_count?).map_err(corrupt("nonce count"))?;
        let pending_count = quantity(pending_count?).map_err(corrupt("nonce count"))?;
        self.chain.pending_count = pending_count;
        let number = quantity(number?).map_err(corrupt("block number"))?;
        let head = self.head_at(number).await?;
        self.chain.head = head.number;
        // Receipts change only with the chain: read them when the head
        // moved (by number or, after a same-height reorg, by hash), or the
        // count did (read before the head, it can lag a block mined while
        // the node answered). A request signed since cannot have a receipt
        // in an unchanged chain: its nonce is at or above that count.
        let chain_moved = self.chain.seen_head.map(|(h, n)| (h.hash, n))
            != Some((head.hash, self.chain.latest_count));
        // Nonces used by others (or by attempts this store never saw) are
        // skipped; ethgate's own next nonce is never lowered. (A write, so
        // skipped while the stored next nonce is known to be at least the
        // count already: it only grows. The first tick always writes: it
        // also creates the account's row.)
        if self.nonce_floor.is_none_or(|f| pending_count > f) {
            self.nonce_floor = Some(
                self.store
                    .raise_next_nonce(self.account.chain_id, &self.addr, pending_count)
                    .await?,
            );
        }
        match refreshed {
            Some(r) => r?,
            None => self.refresh_table(self.chain.head).await?,
        }
        for u in std::mem::take(&mut self.table.unreadable) {
            self.unreadable(u)?;
        }
        for r in take(&self.shared.refused) {
            match r.firm {
                true => self.node.firm_refusals.insert(r.tx.clone()),
                false => self.node.firm_refusals.remove(&r.tx),
            };
            self.table.set_error(&r.tx, Some(r.error));
        }
        // The rows are lent to the pass and put back whatever it returns.
        let rows = std::mem::take(&mut self.table.rows);
        let result = self.pass(&rows, chain_moved, head).await;
        self.table.rows = rows;
        result
    }

    /// Reads requests accepted since the last tick into the table, with
    /// confirmed ones still watched for reorgs: those within the finality
    /// depth below `head`.
    async fn refresh_table(&mut self, head: u64) -> Result<(), TickError> {
        let watch_from = head.saturating_sub(self.settings.finality_depth);
        self.table
            .refresh(&self.store, self.account.chain_id, &self.addr, watch_from)
            .await
    }

    /// The head block at `number`. A header names every transaction of its
    /// block (a busy chain's is large), so it is read again only when the
    /// number moved, or after [`HEAD_REFRESH`] to see a reorg that kept
    /// the height.
    async fn head_at(&mut self, number: u64) -> Result<ethgate_core::BlockRef, TickError> {
        if let Some(head) = self.chain.view.head(number, HEAD_REFRESH) {
            self.chain.tick_head = Some(head);
            return Ok(head);
        }
        let tag = ethgate_chain::BlockTag::Number(number);
        let mut head = None;
        // The number and its header may come from different nodes behind a
        // load balancer: one behind has no such block yet; ask again.
        for _ in 0..HEAD_TRIES {
            head = ethgate_chain::headers::header(&self.account.pool, tag).await?;
            if head.is_some() {
                break;
            }
        }
        let head = head.ok_or(TickError::Behind { number })?;
        self.chain.tick_head = Some(head);
        let lowest = number.saturating_sub(self.settings.finality_depth.saturating_add(1));
        self.chain.view.record_head(head, lowest);
        Ok(head)
    }

    fn policy(&self, req: &TxRequest) -> Policy {
        Policy {
            resubmit_after: self.settings.resubmit_after,
            bump_after: self.settings.bump_after,
            stall_after: self.settings.stall_after,
            confirmations: req.confirmations,
            valid_until: req.valid_until,
            finality_depth: self.settings.finality_depth,
        }
    }

    async fn attempts_of(&mut self, id: &str) -> Result<&Vec<AttemptRow>, StoreError> {
        if !self.attempts.contains_key(id) {
            let list = self.store.attempts(id).await?;
            self.attempts.insert(id.to_owned(), list);
        }
        Ok(self.attempts.entry(id.to_owned()).or_default())
    }

    /// The market for `speed`, read once per tick, and only once per
    /// head by all the chain's senders.
    async fn market(&mut self, speed: crate::Speed) -> Result<Fees, ChainError> {
        if let Some(f) = self.chain.market.get(&speed) {
            return Ok(*f);
        }
        let (legacy, head) = (self.account.legacy, self.chain.tick_head.map(|h| h.hash));
        if let Some(f) = head.and_then(|h| self.chain.view.market(h, legacy, speed)) {
            self.chain.market.insert(speed, f);
            return Ok(f);
        }
        let f = if legacy {
            fees::legacy_market(&self.account.pool, speed).await?
        } else {
            fees::market(&self.account.pool, speed, self.settings.min_tip).await?
        };
        if let Some(h) = head {
            self.chain.view.record_market(h, legacy, speed, f);
        }
        self.chain.market.insert(speed, f);
        Ok(f)
    }

    fn caps(&self, req: &TxRequest) -> Caps {
        self.account.caps.tighter(Caps {
            max_fee: req.max_fee_per_gas,
            max_priority_fee: req.max_priority_fee_per_gas,
        })
    }
}

/// Empties one of the lists the API shares with the sender.
fn take<T>(list: &std::sync::Mutex<Vec<T>>) -> Vec<T> {
    list.lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default()
}
