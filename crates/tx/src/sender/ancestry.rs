//! The canonical chain below the head, for the reorg check of mined
//! requests. A head names its parent, and the sender reads a head each
//! time the height moves, so the hashes of the heights below are known
//! by walking parent links through headers already read — instead of one
//! header per height holding a mined request at every new block (on a
//! busy chain a header lists thousands of transactions). A link missing
//! (the head moved more than one block between ticks) is read by hash, so
//! the walk names exactly the chain the head sees. The senders of a chain
//! share what they read, the fee market read at the head and the logs
//! read below it as well.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use alloy_primitives::B256;
use ethgate_chain::{ChainError, EndpointPool};
use ethgate_core::BlockRef;

/// What the senders of one chain know of its recent blocks, shared: the
/// head header last read, headers by hash, and the fee market at the head.
/// Every sender reads the same head at each block; one reading serves them
/// all.
#[derive(Default)]
pub struct ChainView {
    head: Mutex<Option<(BlockRef, Instant)>>,
    by_hash: Mutex<HashMap<B256, BlockRef>>,
    /// Fee markets by (legacy pricing, speed), with the head they were
    /// read at: a market moves only with the chain, so one reading per
    /// block serves every tick of every sender of the chain (a busy node
    /// answers each call late, and the tick waits on it before signing).
    markets: Mutex<HashMap<(bool, crate::Speed), (B256, crate::fees::Fees)>>,
    /// The logs read for the chain's senders (see `logs`), held while a
    /// query runs: every sender reads the same new blocks for the same
    /// contracts, and the others wait for one query and share it.
    pub(super) logs: tokio::sync::Mutex<super::logs::LogRead>,
    /// The chain's senders woken by requests at their last wait: how long
    /// a woken one gathers before its tick (see `Busy` in the sender).
    pub(super) busy: std::sync::atomic::AtomicUsize,
    /// Wakes the chain's idle senders when one of them reads a head higher
    /// than any read before: each would otherwise learn of the block only
    /// at its own next poll, so a block's confirmations were reported as
    /// late as the slowest sender's poll.
    pub(super) new_head: tokio::sync::Notify,
    /// The highest head number read so far.
    highest: std::sync::atomic::AtomicU64,
}

impl ChainView {
    /// The head at `number` if one was read less than `fresh` ago.
    pub(super) fn head(&self, number: u64, fresh: Duration) -> Option<BlockRef> {
        let head = self.head.lock().ok()?;
        head.filter(|(h, read)| h.number == number && read.elapsed() < fresh)
            .map(|(h, _)| h)
    }

    /// Remembers a head just read, and forgets headers below `lowest`
    /// (past the finality depth).
    pub(super) fn record_head(&self, head: BlockRef, lowest: u64) {
        if let Ok(mut h) = self.head.lock() {
            *h = Some((head, Instant::now()));
        }
        if let Ok(mut map) = self.by_hash.lock() {
            map.retain(|_, h| h.number >= lowest);
            map.insert(head.hash, head);
        }
        let before = self
            .highest
            .fetch_max(head.number, std::sync::atomic::Ordering::Relaxed);
        if head.number > before {
            self.new_head.notify_waiters();
        }
    }

    /// The market for `speed` read at `head`, if any.
    pub(super) fn market(
        &self,
        head: B256,
        legacy: bool,
        speed: crate::Speed,
    ) -> Option<crate::fees::Fees> {
        let markets = self.markets.lock().ok()?;
        markets
            .get(&(legacy, speed))
            .filter(|(at, _)| *at == head)
            .map(|(_, f)| *f)
    }

    /// Remembers the market for `speed` read at `head`.
    pub(super) fn record_market(
        &self,
        head: B256,
        legacy: bool,
        speed: crate::Speed,
        fees: crate::fees::Fees,
    ) {
        if let Ok(mut m) = self.markets.lock() {
            m.insert((legacy, speed), (head, fees));
        }
    }

    fn known(&self, hash: &B256) -> Option<BlockRef> {
        self.by_hash.lock().ok()?.get(hash).copied()
    }

    fn record(&self, header: BlockRef) {
        if let Ok(mut map) = self.by_hash.lock() {
            map.insert(header.hash, header);
        }
    }

    /// The canonical hash, as `head` sees the chain, at each of `heights`,
    /// by parent links from `head` only: a header by hash is the same
    /// whichever node gives it, so the walk names exactly the chain `head`
    /// ends. A height the walk cannot reach — above the head (a receipt
    /// read from a node ahead of the head reading), or past a parent no
    /// node answering could name (a node behind) — is left out, and the
    /// caller knows nothing of it: a node that lacks a block is not
    /// evidence that it was replaced.
    pub(super) async fn canonical(
        &self,
        pool: &EndpointPool,
        head: BlockRef,
        heights: &BTreeSet<u64>,
    ) -> Result<HashMap<u64, B256>, ChainError> {
        let mut out = HashMap::new();
        let Some(&lowest) = heights.first() else {
            return Ok(out);
        };
        let mut at = head;
        loop {
            if heights.contains(&at.number) {
                out.insert(at.number, at.hash);
            }
            if at.number <= lowest || at.number == 0 {
                break;
            }
            let parent = match self.known(&at.parent_hash) {
                Some(p) => p,
                None => match self.parent_of(pool, at).await? {
                    Some(p) => p,
                    None => break,
                },
            };
            if parent.number + 1 != at.number {
                // Not a parent: the node answered something else.
                break;
            }
            at = parent;
        }
        Ok(out)
    }

    /// The parent header of `child`, read by hash: asked again when the
    /// node answering does not know it (behind a load balancer, the next
    /// call may reach a node that does).
    async fn parent_of(
        &self,
        pool: &EndpointPool,
        child: BlockRef,
    ) -> Result<Option<BlockRef>, ChainError> {
        for _ in 0..PARENT_TRIES {
            if let Some(p) = ethgate_chain::headers::header_by_hash(pool, child.parent_hash).await?
            {
                self.record(p);
                return Ok(Some(p));
            }
        }
        Ok(None)
    }
}

/// How many times a parent header is asked for before the walk stops.
const PARENT_TRIES: usize = 3;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn head(number: u64) -> BlockRef {
        BlockRef {
            number,
            hash: B256::with_last_byte(number as u8),
            parent_hash: B256::with_last_byte(number.saturating_sub(1) as u8),
            timestamp: number,
        }
    }

    /// Whether a waiter registered now is woken by `record`.
    async fn wakes(view: &ChainView, record: impl FnOnce()) -> bool {
        let waiting = view.new_head.notified();
        record();
        tokio::time::timeout(Duration::from_millis(50), waiting)
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn idle_senders_are_woken_by_a_higher_head_only() {
        let view = ChainView::default();
        assert!(wakes(&view, || view.record_head(head(5), 0)).await);
        // The same head read again by another sender, or an older one read
        // late, says nothing new.
        assert!(!wakes(&view, || view.record_head(head(5), 0)).await);
        assert!(!wakes(&view, || view.record_head(head(4), 0)).await);
        assert!(wakes(&view, || view.record_head(head(6), 0)).await);
    }
}
