//! The transaction manager: services ask ethgate to publish transactions,
//! and ethgate gets each one mined exactly once.
//!
//! Flow: the API validates a request ([`request`]) and records it `queued`
//! under its idempotency key ([`TxManager::submit`]). The account's
//! [`sender`] task simulates it (a revert ends it `rejected`, no nonce
//! taken), takes the next nonce in the same database transaction that
//! records the first signed attempt, broadcasts it to every endpoint, and
//! from then on watches receipts: re-broadcast when not mined in time,
//! replace with higher [`fees`] when still not mined, `mined` when a
//! receipt appears, `confirmed` at depth with the block hash checked, back
//! to `pending` (and re-broadcast) when a reorg removes the block. Every
//! rule lives in `core::tx::step`; this crate is the I/O around it.
//!
//! What it does not do yet: status envelopes on the outbox, legacy
//! (pre-EIP-1559) chains, and an operator bump past a fee cap.

pub mod fees;
mod intake;
mod manager;
pub mod metrics;
pub mod request;
pub mod sender;

use std::time::Duration;

pub use manager::{CancelOutcome, SubmitError, Submitted, TxManager};
pub use request::{FieldError, Speed, TxRequest};
pub use sender::{Account, Sender, Shared};

/// Custom errors by (chain name, contract address), from ABIs the
/// configuration knows: a request to such a contract that reverts is
/// rejected with the error named and its arguments decoded.
pub type ContractErrors =
    std::collections::HashMap<(String, alloy_primitives::Address), Vec<alloy_json_abi::Error>>;

/// Settings shared by every account's sender.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Re-broadcast a pending attempt after this many seconds.
    pub resubmit_after: u64,
    /// Replace with higher fees after this many seconds unmined.
    pub bump_after: u64,
    /// Seconds before an account's next nonce, sent but not held by the
    /// node as executable, is re-sent, and as long again before it is
    /// replaced (see `ethgate_core::tx::TxEvent::Stalled`): every later
    /// nonce waits behind it, so `bump_after` is too long to wait.
    pub stall_after: u64,
    /// Most nonces in flight (pending or mined) per account.
    pub max_in_flight: usize,
    /// Gas limit = estimate × this / 100.
    pub gas_margin_percent: u64,
    /// Lowest priority fee paid (wei).
    pub min_tip: u128,
    /// How often a sender looks at its requests when not woken.
    pub poll: Duration,
    /// Confirmed transactions are watched for reorgs this many blocks.
    pub finality_depth: u64,
    /// Confirmations when a request gives none.
    pub default_confirmations: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resubmit_after: 12,
            bump_after: 60,
            stall_after: 3,
            max_in_flight: 64,
            gas_margin_percent: 120,
            min_tip: 1_000_000_000,
            poll: Duration::from_millis(500),
            finality_depth: 64,
            default_confirmations: 1,
        }
    }
}
