//! The canonical chain below the head, for the reorg check of mined
//! requests. A head names its parent, and the sender reads a head each
//! time the height moves, so the hashes of the heights below are known
//! by walking parent links through headers already read — instead of one
//! header per height holding a mined request at every new block (on a
//! busy chain a header lists thousands of transactions). A link missing
//! (the head moved more than one block between ticks) is read by hash, so
//! the walk names exactly the chain the head sees.

use std::collections::{BTreeSet, HashMap};

use alloy_primitives::B256;
use ethgate_chain::{ChainError, EndpointPool};
use ethgate_core::BlockRef;

/// Headers read recently, by hash.
#[derive(Default)]
pub(super) struct Ancestry {
    by_hash: HashMap<B256, BlockRef>,
}

impl Ancestry {
    /// Remembers a header read (a head).
    pub fn record(&mut self, header: BlockRef) {
        self.by_hash.insert(header.hash, header);
    }

    /// Forgets headers below `lowest` (past the finality depth).
    pub fn prune(&mut self, lowest: u64) {
        self.by_hash.retain(|_, h| h.number >= lowest);
    }

    /// The canonical hash, as `head` sees the chain, at each of `heights`.
    /// Heights the walk cannot reach (above the head — a receipt read
    /// just after a block the head reading missed — or past a link the
    /// node could not name) are read by number, as the node sees them
    /// now; a height the node has no block at is left out, which the
    /// caller treats as reorganised away.
    pub async fn canonical(
        &mut self,
        pool: &EndpointPool,
        head: BlockRef,
        heights: &BTreeSet<u64>,
    ) -> Result<HashMap<u64, B256>, ChainError> {
        let mut out = HashMap::new();
        if let Some(&lowest) = heights.first() {
            let mut at = head;
            loop {
                if heights.contains(&at.number) {
                    out.insert(at.number, at.hash);
                }
                if at.number <= lowest || at.number == 0 {
                    break;
                }
                let parent = match self.by_hash.get(&at.parent_hash) {
                    Some(p) => *p,
                    None => {
                        match ethgate_chain::headers::header_by_hash(pool, at.parent_hash).await? {
                            Some(p) => {
                                self.record(p);
                                p
                            }
                            None => break,
                        }
                    }
                };
                if parent.number + 1 != at.number {
                    // Not a parent: the node answered something else.
                    break;
                }
                at = parent;
            }
        }
        let rest: Vec<u64> = heights
            .iter()
            .filter(|n| !out.contains_key(n))
            .copied()
            .collect();
        if !rest.is_empty() {
            let headers = ethgate_chain::headers::headers(pool, &rest).await?;
            for (n, h) in rest.iter().zip(headers) {
                if let Some(h) = h {
                    out.insert(*n, h.hash);
                }
            }
        }
        Ok(out)
    }
}
