//! The logs of the contracts a chain's senders call, read once per block
//! for all of them. Every sender of a chain waits on the same new blocks
//! for calls to the same contracts; each block's logs are read by the
//! first sender that needs them and kept (back to twice the lookback) for
//! the others, so a block of a thousand calls is one query's answer, not
//! one per sender.
//!
//! What is kept only ever confirms (see `observe`): a transaction a log
//! names was mined in the block the log names. Blocks the chain has since
//! replaced are not trusted: before answering, the kept blocks are checked
//! against the asking sender's head (by parent links, see `ancestry`), and
//! on any difference everything kept is forgotten and read again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use alloy_primitives::{Address, B256, U64};
use ethgate_chain::EndpointPool;
use ethgate_core::BlockRef;
use serde::Deserialize;
use serde_json::json;

use super::ChainView;

/// Where each transaction that left a log was mined, by its hash.
pub(super) type Found = HashMap<String, (U64, B256)>;

/// How many blocks below the head a log query reaches back at most: an
/// attempt mined earlier (after a restart, or a sender that was idle) is
/// read by receipt.
pub(super) const LOGS_LOOKBACK: u64 = 16;

/// The part of a log that names where its transaction was mined.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogPlace {
    block_number: U64,
    block_hash: B256,
    transaction_hash: B256,
}

/// What the chain's senders have read of their contracts' logs.
#[derive(Default)]
pub(super) struct LogRead {
    /// When the last query was asked: it read every block up to the
    /// node's latest then. `None`: nothing read yet.
    asked: Option<Instant>,
    /// The contracts read.
    targets: BTreeSet<Address>,
    /// The first block read.
    from: u64,
    /// Where the next query starts: every block below it was read whole
    /// (one past the highest block a log named; a block after it with no
    /// log is read again, which costs nothing).
    next: u64,
    /// Each block a log named: its hash and the transactions it logged.
    blocks: BTreeMap<u64, (B256, Vec<String>)>,
    /// Where each transaction of `blocks` was mined, for the lookups.
    found: Found,
    /// The head the kept blocks were last checked against.
    checked: Option<B256>,
    /// When each contract was last asked for: a start over reads only
    /// those still in use, so the query does not grow with every
    /// contract ever called.
    asked_for: HashMap<Address, Instant>,
}

/// How long a contract no sender has asked for stays in the query (until
/// the next start over).
const TARGETS_KEPT: std::time::Duration = std::time::Duration::from_secs(60);

/// What one sender asks of the kept logs.
pub(super) struct Ask<'a> {
    /// The sender's endpoints.
    pub pool: &'a EndpointPool,
    /// Its head at this tick.
    pub head: BlockRef,
    /// The contracts its calls went to.
    pub targets: &'a BTreeSet<Address>,
    /// The first block it has not read.
    pub from: u64,
    /// When its nonce count was read: blocks that count reflects must
    /// have been read, so a query asked before it does not do.
    pub counted: Instant,
}

impl LogRead {
    /// Forgets every block read, to read again from `from` for the
    /// contracts asked for within [`TARGETS_KEPT`] of `now`.
    fn start_over(&mut self, from: u64, now: Instant) {
        let mut asked_for = std::mem::take(&mut self.asked_for);
        asked_for.retain(|_, at| now.saturating_duration_since(*at) < TARGETS_KEPT);
        *self = LogRead {
            targets: asked_for.keys().copied().collect(),
            from,
            next: from,
            asked_for,
            ..LogRead::default()
        };
    }

    /// Forgets blocks below `lowest`.
    fn prune(&mut self, lowest: u64) {
        if lowest <= self.from {
            return;
        }
        let kept = self.blocks.split_off(&lowest);
        for (_, (_, hashes)) in std::mem::replace(&mut self.blocks, kept) {
            for h in hashes {
                self.found.remove(&h);
            }
        }
        self.from = lowest;
        self.next = self.next.max(lowest);
    }

    fn add(&mut self, logs: Vec<LogPlace>) {
        for l in logs {
            let number = l.block_number.to::<u64>();
            if number < self.next {
                // Read already (an answer can only reach below `next` if
                // the node went back meanwhile: the check catches that).
                continue;
            }
            let hash = format!("{}", l.transaction_hash);
            let block = self
                .blocks
                .entry(number)
                .or_insert_with(|| (l.block_hash, Vec::new()));
            block.1.push(hash.clone());
            self.found.insert(hash, (l.block_number, l.block_hash));
        }
        if let Some((&highest, _)) = self.blocks.last_key_value() {
            self.next = self.next.max(highest + 1);
        }
    }

    /// Whether the kept blocks at or below `head` are those of its chain
    /// (not when the headers to tell could not be read).
    async fn on_chain_of(&self, view: &ChainView, pool: &EndpointPool, head: BlockRef) -> bool {
        let heights: BTreeSet<u64> = self.blocks.range(..=head.number).map(|(n, _)| *n).collect();
        if heights.is_empty() {
            return true;
        }
        match view.canonical(pool, head, &heights).await {
            Ok(canonical) => heights
                .iter()
                .all(|n| canonical.get(n) == self.blocks.get(n).map(|b| &b.0)),
            Err(e) => {
                tracing::debug!(error = %e, "cannot check the kept logs against the head");
                false
            }
        }
    }
}

/// Where each of `hashes` that left a log of `ask.targets` from block
/// `ask.from` on was mined. Reads only the blocks no sender has read yet,
/// and only if the asking sender's count may reflect blocks read after
/// the last query; a refused query finds nothing new, and what it would
/// have found is read by receipt.
pub(super) async fn logged(view: &ChainView, ask: Ask<'_>, hashes: &[String]) -> Found {
    let mut log = view.logs.lock().await;
    let now = Instant::now();
    for t in ask.targets {
        log.asked_for.insert(*t, now);
    }
    let lowest = ask.head.number.saturating_sub(2 * LOGS_LOOKBACK);
    if log.asked.is_none() || !ask.targets.is_subset(&log.targets) || ask.from < log.from {
        log.start_over(ask.from.max(lowest), now);
    }
    if log.checked != Some(ask.head.hash) {
        if !log.on_chain_of(view, ask.pool, ask.head).await {
            log.start_over(ask.from.max(lowest), now);
        }
        log.checked = Some(ask.head.hash);
    }
    if log.asked.is_none_or(|a| a < ask.counted) {
        let asked = Instant::now();
        let filter = json!({
            "fromBlock": format!("{:#x}", log.next),
            "toBlock": "latest",
            "address": log.targets,
        });
        match ask
            .pool
            .call::<Vec<LogPlace>>("eth_getLogs", json!([filter]))
            .await
        {
            Ok(logs) => {
                log.add(logs);
                log.asked = Some(asked);
                // What it added is checked at the next ask.
                log.checked = None;
            }
            Err(e) => tracing::debug!(error = %e, "log query refused; reading receipts"),
        }
    }
    log.prune(lowest);
    hashes
        .iter()
        .filter_map(|h| log.found.get(h).map(|place| (h.clone(), *place)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_over_reads_only_the_contracts_asked_for_lately() {
        let now = Instant::now();
        let (old, recent) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let mut log = LogRead::default();
        log.asked_for.insert(recent, now);
        let then = now
            .checked_sub(TARGETS_KEPT * 2)
            .expect("a clock older than that");
        log.asked_for.insert(old, then);
        log.targets = BTreeSet::from([old, recent]);
        log.start_over(7, now);
        assert_eq!(log.targets, BTreeSet::from([recent]));
        assert_eq!((log.from, log.next), (7, 7));
        assert!(log.asked.is_none() && log.found.is_empty());
    }
}
