//! What a tick asks the chain about requests already in flight: receipts
//! of the attempts whose nonce the chain has used, and the canonical hash
//! at each height holding a mined request. Split in two so the reading can
//! run beside the tick's new starts: the plan (which hashes, which heights)
//! needs the sender; the fetch owns what it needs and borrows nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use alloy_primitives::B256;
use ethgate_chain::EndpointPool;
use ethgate_core::BlockRef;
use ethgate_core::tx::{Ending, Inclusion, Pending, TxEvent, TxState};
use ethgate_store::TxRow;
use serde::Deserialize;
use serde_json::json;

use super::{ChainView, Sender, TickError, table};

/// Receipts read per JSON-RPC batch.
const RECEIPTS_PER_BATCH: usize = 100;

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
    /// Canonical block hash by height, for heights holding mined requests.
    pub(super) canonical: HashMap<u64, B256>,
}

/// What to read, with everything needed to read it.
pub(super) struct Reading {
    pool: Arc<EndpointPool>,
    view: Arc<ChainView>,
    head: BlockRef,
    /// Attempt hashes of pending requests whose nonce the chain has used
    /// (a nonce the chain has not reached has nothing to find).
    hashes: Vec<String>,
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
                    return TxEvent::Included(Inclusion {
                        nonce: p.nonce,
                        block_number: r.block_number.to::<u64>(),
                        block_hash: r.block_hash,
                        hash: a.hash.parse().unwrap_or_default(),
                        success: r.status.is_none_or(|s| s.to::<u64>() == 1),
                        noop: a.noop.then(|| p.ending.unwrap_or(Ending::Cancel)),
                    });
                }
            }
            if self.latest_count > p.nonce {
                // The nonce is used on chain and none of our attempts is
                // the one that used it (their receipts were read after the
                // count).
                return TxEvent::NonceTakenElsewhere;
            }
        }
        if self.firm_refusals.contains(&row.id) {
            return TxEvent::Refused;
        }
        // The account's next nonce, and the node holds nothing executable
        // there (its pending count has not passed it) though it was sent.
        if p.nonce == self.latest_count && self.pending_count <= p.nonce {
            return TxEvent::Stalled {
                held: self.held_stalls.contains(&row.id),
            };
        }
        TxEvent::Tick
    }

    /// Plans this tick's reading of `rows`.
    pub(super) async fn reading(
        &mut self,
        rows: &BTreeMap<i64, table::OpenTx>,
    ) -> Result<Reading, TickError> {
        let Some(head) = self.tick_head else {
            return Err(TickError::Corrupt(
                "head".into(),
                "observed before the head was read".into(),
            ));
        };
        let mut hashes = Vec::new();
        let mut heights = BTreeSet::new();
        for open in rows.values() {
            match &open.state {
                TxState::Pending(p) if p.nonce < self.latest_count => {
                    for a in self.attempts_of(&open.row.id).await? {
                        hashes.push(a.hash.clone());
                    }
                }
                TxState::Mined(i) | TxState::Confirmed(i) | TxState::Failed(i) => {
                    heights.insert(i.block_number);
                }
                _ => {}
            }
        }
        Ok(Reading {
            pool: self.account.pool.clone(),
            view: self.view.clone(),
            head,
            hashes,
            heights,
        })
    }
}

impl Reading {
    /// Reads the receipts (a few batches at a time: a node answers one
    /// batch's calls in turn) and the canonical hashes, by parent links
    /// from the head (see `ancestry`) rather than one read per height.
    pub(super) async fn fetch(self) -> Result<Observed, TickError> {
        let answers = super::in_batches(&self.hashes, RECEIPTS_PER_BATCH, |chunk| {
            let calls: Vec<(&str, serde_json::Value)> = chunk
                .iter()
                .map(|h| ("eth_getTransactionReceipt", json!([h])))
                .collect();
            let pool = &self.pool;
            async move { pool.batch::<Option<Receipt>>(&calls).await }
        })
        .await;
        let mut receipts = HashMap::with_capacity(self.hashes.len());
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
        })
    }
}
