//! The integration tests of this crate, linked as one binary: one module
//! per suite (see each module's first lines for what it proves).

mod additions;
mod audit;
mod codec_props;
mod copy;
mod lease;
mod migrate;
mod outbox;
mod transactions;
mod wal;
