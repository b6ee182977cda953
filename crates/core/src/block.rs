//! Block references: the minimum a reorg-aware reader must remember of a block.

use alloy_primitives::B256;

/// A block as the syncer remembers it. The hash commits to the whole
/// ancestry, so if a remembered block is still canonical, so is everything
/// below it — which is why a sparse window of these is enough to find a fork
/// point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    /// Height of the block.
    pub number: u64,
    /// The block's own hash.
    pub hash: B256,
    /// The hash of its parent, for linking consecutive blocks.
    pub parent_hash: B256,
    /// Unix seconds, copied into every envelope of the block.
    pub timestamp: u64,
}
