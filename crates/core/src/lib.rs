//! Domain types shared by every part of ethgate.
//!
//! This crate is pure: no network, no database, no clock. It holds what the
//! other crates must agree on — how a block is referred to, what an event
//! envelope looks like on the wire, how a stream is specified and how a raw
//! log is decoded into named arguments, and how a transaction request moves
//! through its states — so that those agreements are made
//! once and tested without any I/O.

pub mod audit;
pub mod backoff;
pub mod block;
pub mod decode;
pub mod envelope;
pub mod pool;
pub mod revert;
pub mod signature;
pub mod stream;
pub mod tx;
pub mod tx_envelope;

pub use audit::AuditEnvelope;
pub use block::BlockRef;
pub use decode::{DecodeError, Decoded, EventDecoder};
pub use envelope::{EventEnvelope, RawLog, event_id};
pub use pool::{MemberState, RotationStep};
pub use stream::{Confirmations, Factory, StreamSpec};
pub use tx::{Effect, TxEvent, TxState, TxStatus};
pub use tx_envelope::{Envelope, TxEnvelope};
