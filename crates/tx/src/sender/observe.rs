//! What a tick asks the chain about requests already in flight: where the
//! attempts whose nonce the chain has used were mined, and the canonical
//! hash at each height holding a mined request. Split in two so the reading
//! can run beside the tick's new starts: the plan (which hashes, which
//! heights) needs the sender; the fetch owns what it needs and borrows
//! nothing.
//!
//! Many calls in flight are found with one `eth_getLogs` over the blocks
//! since the last reading: a transaction that left a log was mined and
//! succeeded (a reverted one leaves none), and the log names its block.
//! Only the attempts no log names are read by receipt. Logs only ever
//! confirm: an attempt they miss (no event, an event from another
//! contract, a block outside the range, a node whose log index lags) is
//! read by receipt as before, so the answer is the same either way. The
//! chain's senders share what they read (see `logs`): each block's logs
//! are read once for all of them — one call per block instead of one per
//! transaction, and on a node that rebuilds a receipt from its whole block
//! (anvil) one copy of each block instead of one per transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use alloy_primitives::{Address, B256};
use ethgate_chain::EndpointPool;
use ethgate_core::BlockRef;
use ethgate_core::tx::{Ending, Inclusion, Pending, TxEvent, TxState};
use ethgate_store::TxRow;
use serde::Deserialize;
use serde_json::json;

use super::logs::LOGS_LOOKBACK;
use super::{ChainView, Sender, TickError, table};

/// Receipts read per JSON-RPC batch.
const RECEIPTS_PER_BATCH: usize = 100;

/// Calls to look up at which logs are read first: below it, a receipt
/// each costs no more calls than the log query would.
const LOGS_FROM: usize = 8;

/// The part of a receipt the state machine needs.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Receipt {
    pub(super) block_number: alloy_primitives::U64,
    pub(super) block_hash: B256,
    pub(super) status: Option<alloy_primitives::U64>,
}

/// One tick's reading of the chain.
pub(super) struct Observed {
    /// Receipts by attempt hash (`None`: not mined).
    pub(super) receipts: HashMap<String, Option<Receipt>>,
    /// Canonical block hash by height, for heights holding mined requests
    /// (a height the head's chain could not be read at is absent).
    pub(super) canonical: HashMap<u64, B256>,
    /// Pinned readings of the requests whose nonce the count says is used
    /// while no receipt of theirs was read (see `pinned`).
    pub(super) readings: HashMap<String, ethgate_core::tx::Reading>,
}

/// What to read, with everything needed to read it.
pub(super) struct Reading {
    pool: Arc<EndpointPool>,
    view: Arc<ChainView>,
    head: BlockRef,
    /// Attempt hashes of pending requests whose nonce the chain has used
    /// (a nonce the chain has not reached has nothing to find).
    hashes: Vec<String>,
    /// When the nonce count that chose them had been read, at the latest:
    /// a log query asked before then may have missed the blocks it counts.
    counted: Instant,
    /// The contracts those attempts call, and the first block to read
    /// their logs from (`None`: too few calls to be worth a log query).
    logs: Option<(BTreeSet<Address>, u64)>,
    /// Heights holding mined, confirmed or failed requests.
    heights: BTreeSet<u64>,
}

impl Sender {
    /// What happened to a pending request since the last tick: when the
    /// chain was read (`observed`), its inclusion or its nonce used by
    /// someone else; then a refusal that keeps it from being bumped, a
    /// stall, or only time passing.
    pub(super) fn pending_event(
        &self,
        row: &TxRow,
        p: &Pending,
        observed: Option<&Observed>,
    ) -> TxEvent {
        if let Some(o) = observed {
            let attempts = self.attempts.get(&row.id).map_or(&[][..], Vec::as_slice);
            for a in attempts.iter().filter(|a| a.nonce == p.nonce) {
                if let Some(Some(r)) = o.receipts.get(&a.hash) {
                    let Ok(hash) = a.hash.parse() else {
                        // A stored hash that does not parse names no
                        // transaction: never report one as its inclusion.
                        tracing::error!(tx = %row.id, hash = %a.hash, "a stored attempt's hash does not parse; it is not taken as mined");
                        continue;
                    };
                    return TxEvent::Included(Inclusion {
                        nonce: p.nonce,
                        block_number: r.block_number.to::<u64>(),
                        block_hash: r.block_hash,
                        hash,
                        success: r.status.is_none_or(|s| s.to::<u64>() == 1),
                        noop: a.noop.then(|| p.ending.unwrap_or(Ending::Cancel)),
                    });
                }
            }
            // Only a pinned reading may say the nonce went to another.
            if let Some(reading) = o.readings.get(&row.id) {
                let hashes: Vec<B256> = attempts
                    .iter()
                    .filter_map(|a| a.hash.parse().ok())
                    .collect();
                if let Some(event) = ethgate_core::tx::event_of(reading, &hashes) {
                    return event;
                }
            }
        }
        if self.node.firm_refusals.contains(&row.id) {
            return TxEvent::Refused;
        }
        // The account's next nonce, and the node holds nothing executable
        // there (its pending count has not passed it) though it was sent.
        if p.nonce == self.chain.latest_count && self.chain.pending_count <= p.nonce {
            return TxEvent::Stalled {
                held: self.node.held_stalls.contains(&row.id),
            };
        }
        TxEvent::Tick
    }

    /// Pending requests whose nonce the count says is used while none of
    /// their attempts' receipts was read: they are read again, pinned
    /// (see `pinned`), before anything is decided about them.
    pub(super) fn suspects(
        &self,
        rows: &BTreeMap<i64, table::OpenTx>,
        observed: &Observed,
    ) -> Vec<super::pinned::Suspect> {
        let mined = |h: &String| matches!(observed.receipts.get(h), Some(Some(_)));
        rows.values()
            .filter_map(|open| match &open.state {
                TxState::Pending(p) if p.nonce < self.chain.latest_count => {
                    let hashes: Vec<String> = self
                        .attempts
                        .get(&open.row.id)?
                        .iter()
                        .filter(|a| a.nonce == p.nonce)
                        .map(|a| a.hash.clone())
                        .collect();
                    (!hashes.iter().any(mined)).then(|| super::pinned::Suspect {
                        id: open.row.id.clone(),
                        nonce: p.nonce,
                        hashes,
                        unaccounted_since: p.unaccounted_since,
                    })
                }
                _ => None,
            })
            .collect()
    }

    /// Plans this tick's reading of `rows`.
    pub(super) async fn reading(
        &mut self,
        rows: &BTreeMap<i64, table::OpenTx>,
    ) -> Result<Reading, TickError> {
        let Some(head) = self.chain.tick_head else {
            return Err(TickError::Corrupt(
                "head".into(),
                "observed before the head was read".into(),
            ));
        };
        let mut hashes = Vec::new();
        let mut heights = BTreeSet::new();
        let (mut targets, mut calls) = (BTreeSet::new(), 0);
        for open in rows.values() {
            match &open.state {
                TxState::Pending(p) if p.nonce < self.chain.latest_count => {
                    let call = !open.req.data.is_empty();
                    for a in self.attempts_of(&open.row.id).await? {
                        hashes.push(a.hash.clone());
                        if call && !a.noop {
                            targets.insert(open.req.to);
                            calls += 1;
                        }
                    }
                }
                TxState::Mined(i) | TxState::Confirmed(i) | TxState::Failed(i) => {
                    heights.insert(i.block_number);
                }
                _ => {}
            }
        }
        // From the block after the last one read (that one again after a
        // reorg at the same height), at most LOGS_LOOKBACK back.
        let after = self
            .chain
            .seen_head
            .map_or(0, |(h, _)| (h.number + 1).min(head.number));
        let from = after.max(head.number.saturating_sub(LOGS_LOOKBACK));
        Ok(Reading {
            counted: Instant::now(),
            pool: self.account.pool.clone(),
            view: self.chain.view.clone(),
            head,
            hashes,
            logs: (calls >= LOGS_FROM).then_some((targets, from)),
            heights,
        })
    }
}

impl Reading {
    /// Reads the receipts (a few batches at a time: a node answers one
    /// batch's calls in turn) and the canonical hashes, by parent links
    /// from the head (see `ancestry`) rather than one read per height.
    pub(super) async fn fetch(self) -> Result<Observed, TickError> {
        let mut receipts = HashMap::with_capacity(self.hashes.len());
        if let Some((targets, from)) = &self.logs {
            let ask = super::logs::Ask {
                pool: &self.pool,
                head: self.head,
                targets,
                from: *from,
                counted: self.counted,
            };
            let found = super::logs::logged(&self.view, ask, &self.hashes).await;
            for (h, (block_number, block_hash)) in found {
                // A log: mined, and succeeded.
                let status = Some(alloy_primitives::U64::from(1));
                let r = Receipt {
                    block_number,
                    block_hash,
                    status,
                };
                receipts.insert(h, Some(r));
            }
        }
        let rest: Vec<String> = self
            .hashes
            .iter()
            .filter(|h| !receipts.contains_key(*h))
            .cloned()
            .collect();
        let answers = super::in_batches(&rest, RECEIPTS_PER_BATCH, |chunk| {
            let calls: Vec<(&str, serde_json::Value)> = chunk
                .iter()
                .map(|h| ("eth_getTransactionReceipt", json!([h])))
                .collect();
            let pool = &self.pool;
            async move { pool.batch::<Option<Receipt>>(&calls).await }
        })
        .await;
        for (chunk, answers) in answers {
            for (h, a) in chunk.iter().zip(answers?) {
                receipts.insert(h.clone(), a?);
            }
        }
        let canonical = self
            .view
            .canonical(&self.pool, self.head, &self.heights)
            .await?;
        Ok(Observed {
            receipts,
            canonical,
            readings: HashMap::new(),
        })
    }
}
