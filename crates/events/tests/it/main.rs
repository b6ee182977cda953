//! The integration tests of this crate, linked as one binary: one module
//! per suite (see each module's first lines for what it proves).

mod common;
mod factory;
mod failover;
mod follower;
mod grow;
mod reorg;
mod sync;
