//! The rule for reading a chain that is not one node. A provider's load
//! balancer answers each call from one of several nodes a few blocks
//! apart, and two endpoints are two views: an answer that something is
//! *not* there ("no receipt", a lower nonce count, no block) from a node
//! that has not seen the block in question is not evidence of anything.
//!
//! So the sender pins each reading that could send a request to a new
//! nonce: its answers (the account's nonce count, the attempts' receipts)
//! come in one batch from a node that holds the pinned block, number and
//! hash, or the reading is [`Reading::Behind`] and says nothing. A receipt
//! is positive evidence whoever gives it. A nonce is taken by someone else
//! only when the transaction that used it is found in a block of the
//! pinned chain and is none of the request's attempts, compared by hash;
//! failing that, only after the finality depth of readings that found the
//! nonce used and none of the attempts (see `step`).

use alloy_primitives::B256;

use super::{Inclusion, TxEvent};

/// What one reading of the chain says about a pending request's nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// An attempt of the request has a receipt in this block.
    Found(Inclusion),
    /// The node that answered does not hold the pinned block (it is
    /// behind, or on another fork): nothing is known.
    Behind,
    /// At the pinned height the account's nonce count has not passed the
    /// request's nonce.
    Unused {
        /// The pinned height.
        head: u64,
    },
    /// At the pinned height the nonce is used and no attempt of the
    /// request has a receipt.
    Used {
        /// The pinned height.
        head: u64,
        /// The transaction that used the nonce, if it was found in a block
        /// of the chain the pinned block ends.
        by: Option<B256>,
    },
}

/// The event a reading is for a request whose attempts have the hashes
/// `attempts`, if it is one: `None` leaves the request to its timers (a
/// re-broadcast, a bump, a stall), which never spend a new nonce.
pub fn event_of(reading: &Reading, attempts: &[B256]) -> Option<TxEvent> {
    match reading {
        Reading::Found(i) => Some(TxEvent::Included(i.clone())),
        Reading::Behind | Reading::Unused { .. } => None,
        // Ours after all: a node that gave the nonce's transaction gave
        // no receipt for it yet. The receipt will show.
        Reading::Used { by: Some(h), .. } if attempts.contains(h) => None,
        Reading::Used { by: Some(_), .. } => Some(TxEvent::NonceTakenElsewhere),
        Reading::Used { head, by: None } => Some(TxEvent::NonceUnaccounted { head: *head }),
    }
}
