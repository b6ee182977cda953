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
//! state change writes a status envelope to the chain's `tx.<chain>`
//! stream in the same store transaction. Chains without EIP-1559 get
//! legacy transactions priced by `eth_gasPrice`; an operator can bump past
//! a fee cap or cancel. Every rule lives in `core::tx::step`; this crate
//! is the I/O around it.
//!
//! The chain is not one node. A provider's load balancer answers each
//! call from one of several nodes a few blocks apart, and several
//! endpoints are several views; an empty answer ("no receipt", a lower
//! nonce count, no block) from a node behind the block in question is
//! not evidence. So a tick's readings are used only as far as they prove
//! something: a receipt found is an inclusion, whoever gave it; a reorg is
//! a different hash at a height reached by parent links from the tick's
//! head, never a height the node answering does not have. A request is
//! sent again at a new nonce only on a reading pinned to one block (its
//! header in the same batch as the nonce count and receipts, from a node
//! that holds it): when the transaction that used the nonce is found in
//! that chain and is none of the request's attempts by hash, or failing
//! that, after the finality depth of such readings with none of its
//! attempts found (`core::tx::evidence`, `sender::pinned`).
//!
//! Durability: a request is on disk (fsync'd) before the API answers 202,
//! and a nonce with its signed attempt before the bytes leave the process
//! (the store's journal commits with `synchronous = FULL`), so a power cut
//! neither forgets a nonce nor signs anything twice.

pub mod fees;
mod intake;
mod manager;
pub mod metrics;
pub mod request;
pub mod sender;
mod view;

use std::time::Duration;

pub use manager::{CancelOutcome, SubmitError, Submitted, TxManager};
pub use request::{FieldError, Speed, TxRequest};
pub use sender::{Account, Sender, Shared};
pub use view::{AttemptView, CorruptRow, ReadError, TxView};

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
