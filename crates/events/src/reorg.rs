//! Reorg handling: find the fork point in the stored window and retract
//! everything above it. The undo of a recorded range has the same shape as
//! recording it — one store transaction that moves envelopes and cursor
//! together — so a crash mid-reorg leaves either the old or the new state.

use ethgate_chain::headers;
use ethgate_core::BlockRef;

use crate::metrics as m;
use crate::syncer::{Step, SyncError, Syncer};

/// Window blocks compared with the chain per batch while walking back.
const WALK_BATCH: usize = 64;
/// Most window blocks read when walking back.
const WALK_LIMIT: u32 = 8_192;

impl Syncer {
    /// The cursor block `cursor` is no longer canonical: walk the stored
    /// window back (highest first) to the highest block still canonical,
    /// and rewind the stream there. If none is, the reorg is deeper than the
    /// window and the stream restarts from `from_block` — exact, if slow.
    pub(crate) async fn handle_reorg(&mut self, cursor: u64) -> Result<Step, SyncError> {
        let window = self
            .recorder
            .store
            .window(&self.spec.name, WALK_LIMIT)
            .await?;
        let fork = match self.find_fork(&window).await? {
            Fork::At(b) => Some(b),
            Fork::BeforeWindow => None,
            Fork::Unknown => return Ok(Step::Retry("a node behind answered the walk to the fork")),
        };
        if fork.is_none() {
            tracing::error!(stream = %self.spec.name, cursor, window = window.len(), "reorg deeper than the stored window; re-syncing the stream from its start");
        }
        let retracted = self
            .recorder
            .store
            .rewind(&self.spec.name, Some(cursor), fork)
            .await?;
        let depth = cursor - fork.map_or(self.spec.from_block.saturating_sub(1), |f| f.number);
        tracing::warn!(stream = %self.spec.name, cursor, fork = fork.map(|f| f.number), depth, retracted, "reorg: retracted orphaned events");
        metrics::counter!(m::REORGS, "stream" => self.spec.name.clone()).increment(1);
        metrics::counter!(m::RETRACTIONS, "stream" => self.spec.name.clone()).increment(retracted);
        metrics::histogram!(m::REORG_DEPTH, "stream" => self.spec.name.clone())
            .record(depth as f64);
        Ok(Step::Reorged {
            fork: fork.map(|f| f.number),
            retracted,
        })
    }

    /// The highest stored block whose hash is still canonical. A block
    /// the node has no header for is not evidence of a reorg (the node is
    /// behind it): the walk is then `Unknown`, never a deeper fork.
    async fn find_fork(&self, window: &[BlockRef]) -> Result<Fork, SyncError> {
        for chunk in window.chunks(WALK_BATCH) {
            let numbers: Vec<u64> = chunk.iter().map(|b| b.number).collect();
            let canon = headers::headers(&self.fetcher.pool, &numbers).await?;
            for (stored, canon) in chunk.iter().zip(canon) {
                match canon {
                    Some(c) if c.hash == stored.hash => return Ok(Fork::At(*stored)),
                    Some(_) => {}
                    None => return Ok(Fork::Unknown),
                }
            }
        }
        Ok(Fork::BeforeWindow)
    }
}

/// Where a walk back found the chain and the stored window to part.
enum Fork {
    /// At this stored block, the highest still canonical.
    At(BlockRef),
    /// Below the whole window.
    BeforeWindow,
    /// A node without one of the window's blocks answered: nothing known.
    Unknown,
}
