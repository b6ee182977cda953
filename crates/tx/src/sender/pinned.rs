//! Readings pinned to one block, for the only decisions that could send a
//! request again at a new nonce (see `ethgate_core::tx::evidence`). A
//! tick's ordinary reading is not pinned: its nonce count, head and
//! receipts may each come from another node of a load balancer, a few
//! blocks apart. A receipt it finds is evidence wherever it came from; a
//! receipt it does not find, for a nonce the count says is used, is not.
//! Such requests (suspects) are read again here, in one batch whose first
//! call is the pinned head's header: if the node answering does not hold
//! that block (number and hash), nothing it said counts.
//!
//! When the pinned reading still finds no receipt, the transaction that
//! used the nonce is looked for: the block where the account's count
//! passed the nonce (probed back from the head, then halved), and in it
//! the account's transaction at that nonce, compared with the request's
//! attempts by hash. Every probe is pinned the same way. A node that
//! cannot answer (no state that old, a block it does not hold) leaves the
//! transaction unfound, and the finality rule decides.

use std::collections::HashMap;

use alloy_primitives::{B256, U64};
use ethgate_core::BlockRef;
use ethgate_core::tx::Reading;
use serde::Deserialize;
use serde_json::{Value, json};

use super::observe::Receipt;
use super::{Sender, TickError};

/// Receipts per pinned batch (besides its header and count).
const RECEIPTS_PER_BATCH: usize = 100;
/// Most pinned probes spent looking for the block where a nonce was used.
const MOST_PROBES: u32 = 48;
/// Blocks a nonce must have stayed used with no receipt of the request's
/// found before the transaction that used it is looked for. A node can
/// count a block's nonces a moment before it answers the block's receipts;
/// looking at once would read whole blocks for every request of a busy
/// account in that moment, only to find its own attempts.
const LOCATE_AFTER: u64 = 2;

/// A pending request whose nonce the count says is used, with no receipt
/// of its attempts read: its id, nonce and attempt hashes.
pub(super) struct Suspect {
    pub id: String,
    pub nonce: u64,
    pub hashes: Vec<String>,
    /// Since when the nonce has been seen used without a receipt of its.
    pub unaccounted_since: Option<u64>,
}

/// What the pinned reading found: receipts of attempts (positive
/// evidence, for the ordinary path), and a reading per suspect.
#[derive(Default)]
pub(super) struct Pinned {
    pub receipts: HashMap<String, Receipt>,
    pub readings: HashMap<String, Reading>,
}

#[derive(Deserialize)]
struct Hashed {
    hash: B256,
}

fn quantity(v: &Value) -> Option<u64> {
    serde_json::from_value::<U64>(v.clone())
        .ok()
        .map(|n| n.to())
}

/// Whether a pinned batch's first answer is the pinned block's header.
fn holds(answer: Option<&Result<Value, ethgate_chain::ChainError>>, head: &BlockRef) -> bool {
    let header = answer
        .and_then(|a| a.as_ref().ok())
        .and_then(|v| serde_json::from_value::<Option<Hashed>>(v.clone()).ok())
        .flatten();
    header.is_some_and(|h| h.hash == head.hash)
}

impl Sender {
    /// Reads `suspects` again, pinned to `head`.
    pub(super) async fn pinned(
        &self,
        head: BlockRef,
        suspects: &[Suspect],
    ) -> Result<Pinned, TickError> {
        let mut out = Pinned::default();
        let hashes: Vec<&str> = suspects
            .iter()
            .flat_map(|s| s.hashes.iter().map(String::as_str))
            .collect();
        let mut count = None;
        for chunk in hashes
            .chunks(RECEIPTS_PER_BATCH)
            .chain(hashes.is_empty().then_some(&[][..]))
        {
            let mut calls = self.pin_calls(head, head.number);
            calls.extend(
                chunk
                    .iter()
                    .map(|h| ("eth_getTransactionReceipt", json!([h]))),
            );
            let answers = self.account.pool.batch::<Value>(&calls).await?;
            if !holds(answers.first(), &head) {
                for s in suspects {
                    out.readings.insert(s.id.clone(), Reading::Behind);
                }
                return Ok(out);
            }
            let mut answers = answers.into_iter().skip(1);
            count = answers
                .next()
                .and_then(|c| c.ok())
                .as_ref()
                .and_then(quantity);
            for (h, a) in chunk.iter().zip(answers) {
                if let Ok(Some(r)) = serde_json::from_value::<Option<Receipt>>(a?) {
                    out.receipts.insert((*h).to_owned(), r);
                }
            }
        }
        let Some(count) = count else {
            return Ok(out);
        };
        let mut located: HashMap<u64, Option<B256>> = HashMap::new();
        for s in suspects {
            if s.hashes.iter().any(|h| out.receipts.contains_key(h)) {
                continue;
            }
            let due = s
                .unaccounted_since
                .is_some_and(|since| head.number >= since + LOCATE_AFTER);
            let reading = if count <= s.nonce {
                Reading::Unused { head: head.number }
            } else if !due {
                Reading::Used {
                    head: head.number,
                    by: None,
                }
            } else {
                let by = match located.get(&s.nonce) {
                    Some(by) => *by,
                    None => {
                        let by = self.locate(head, s.nonce).await;
                        located.insert(s.nonce, by);
                        by
                    }
                };
                Reading::Used {
                    head: head.number,
                    by,
                }
            };
            out.readings.insert(s.id.clone(), reading);
        }
        Ok(out)
    }

    /// The first calls of a pinned batch: the pinned head's header, and
    /// the account's nonce count at block `at`.
    fn pin_calls(&self, head: BlockRef, at: u64) -> Vec<(&'static str, Value)> {
        vec![
            (
                "eth_getBlockByNumber",
                json!([format!("{:#x}", head.number), false]),
            ),
            (
                "eth_getTransactionCount",
                json!([self.address, format!("{at:#x}")]),
            ),
        ]
    }

    /// The account's nonce count at block `at`, read pinned to `head`
    /// (`None`: the node does not hold `head`, or cannot answer).
    async fn count_at(&self, head: BlockRef, at: u64) -> Option<u64> {
        let answers = self
            .account
            .pool
            .batch::<Value>(&self.pin_calls(head, at))
            .await
            .ok()?;
        if !holds(answers.first(), &head) {
            return None;
        }
        answers.get(1)?.as_ref().ok().and_then(quantity)
    }

    /// The transaction that used `nonce` in the chain `head` ends (whose
    /// count at `head` has passed it), found by probing counts back from
    /// the head and halving, then reading the block where it passed.
    async fn locate(&self, head: BlockRef, nonce: u64) -> Option<B256> {
        let (mut lo, mut hi) = (None, head.number);
        let (mut step, mut probes) = (1u64, 0u32);
        while lo.is_none() {
            probes += 1;
            let n = hi.checked_sub(step)?;
            if probes > MOST_PROBES {
                return None;
            }
            match self.count_at(head, n).await? {
                c if c <= nonce => lo = Some(n),
                _ => hi = n,
            }
            step = step.saturating_mul(2);
        }
        let mut lo = lo?;
        while hi - lo > 1 {
            probes += 1;
            if probes > MOST_PROBES {
                return None;
            }
            let mid = lo + (hi - lo) / 2;
            match self.count_at(head, mid).await? {
                c if c <= nonce => lo = mid,
                _ => hi = mid,
            }
        }
        let calls = [
            self.pin_calls(head, head.number).remove(0),
            ("eth_getBlockByNumber", json!([format!("{hi:#x}"), true])),
        ];
        let answers = self.account.pool.batch::<Value>(&calls).await.ok()?;
        if !holds(answers.first(), &head) {
            return None;
        }
        let block = answers.get(1)?.as_ref().ok()?;
        let txs = block["transactions"].as_array()?;
        let from = |t: &Value| t["from"].as_str().map(str::to_lowercase);
        let used = txs.iter().find(|t| {
            from(t).as_deref() == Some(self.addr.as_str()) && quantity(&t["nonce"]) == Some(nonce)
        })?;
        serde_json::from_value::<B256>(used["hash"].clone()).ok()
    }
}
