//! Stream sync: from a stream's `from_block` to the chain's head, then
//! following it, recording every matching log exactly once and retracting
//! what a reorg orphans. It records into the store and delivers nothing.
//!
//! One [`Syncer`] per stream repeats one [`Syncer::step`]:
//!
//! 1. read the cursor (last recorded block) and the target (head minus the
//!    confirmation depth, or the node's `safe`/`finalized` block);
//! 2. fetch the header of the range's last block, then the range's logs;
//! 3. fetch, in one batch, the headers of every block with logs, of the
//!    last block again and of the cursor block;
//! 4. if the cursor block is no longer canonical, walk the stored window
//!    back to the fork point and retract everything above it ([`reorg`]);
//!    if the last block changed during the fetch, or a log's block hash is
//!    not its block's canonical hash, record nothing and try again;
//! 5. otherwise decode, and write envelopes, block window and cursor in one
//!    transaction.
//!
//! Once caught up, a stream with a [`Follower`] stops polling on its own:
//! the chain's follower does steps 1–4 once for all such streams and hands
//! each its part of the range to commit (step 5), so following the tip
//! costs the same calls for one stream or a hundred.
//!
//! Streams can grow: contracts added to a recorded stream are backfilled
//! alone up to its cursor before they join it (`added`), and a stream
//! with a factory follows each child the factory announces from its
//! creation block on (`factory`).
//!
//! Assumption: an endpoint answers one batch from one view of the chain.
//! Blocks without logs in the range are not fetched: a block hash commits
//! to its ancestry, so a canonical last block vouches for all below it.

mod added;
mod factory;
mod fetch;
pub mod follower;
pub mod metrics;
mod record;
pub mod reorg;
pub mod runner;
pub mod syncer;
mod tail;

pub use follower::Follower;
pub use runner::{StreamProgress, SyncState};
pub use syncer::{Step, SyncError, Syncer, SyncerConfig};
