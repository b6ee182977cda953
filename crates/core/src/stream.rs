//! Stream specifications: which logs of which chain a stream records, and
//! how deep a block must be before it is recorded.

use std::fmt;

use alloy_json_abi::Event;
use alloy_primitives::{Address, B256};

/// How deep a block must be before its events are recorded. A depth of 0
/// records at once (and retracts on reorg); `Safe` and `Finalized` follow the
/// node's own tags, for chains that have them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Confirmations {
    /// Record blocks this many blocks below the head.
    Depth(u64),
    /// Record up to the node's `safe` block.
    Safe,
    /// Record up to the node's `finalized` block.
    Finalized,
}

impl fmt::Display for Confirmations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Confirmations::Depth(n) => write!(f, "{n}"),
            Confirmations::Safe => f.write_str("safe"),
            Confirmations::Finalized => f.write_str("finalized"),
        }
    }
}

/// A validated stream: the syncer trusts every field of it, because the
/// config layer has already refused anything malformed.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// Unique stream name; appears in every envelope and in API paths.
    pub name: String,
    /// Name of the chain (as configured) the stream reads.
    pub chain: String,
    /// EIP-155 chain id, copied into envelopes and ids.
    pub chain_id: u64,
    /// Contracts whose logs are recorded. Never empty.
    pub addresses: Vec<Address>,
    /// Events recorded, by their ABI; only logs whose topic0 is one of these
    /// selectors are fetched.
    pub events: Vec<Event>,
    /// First block to read.
    pub from_block: u64,
    /// Depth before a block is recorded.
    pub confirmations: Confirmations,
}

impl StreamSpec {
    /// A fingerprint of what the stream records: chain, addresses, event
    /// selectors and start block (not its name or confirmation depth, which
    /// may change without leaving history unread).
    pub fn fingerprint(&self) -> String {
        let mut addresses = self.addresses.clone();
        addresses.sort();
        addresses.dedup();
        let mut text = format!("v1|{}|{}|", self.chain_id, self.from_block);
        for a in &addresses {
            text.push_str(&format!("{a:#x},"));
        }
        text.push('|');
        for s in self.selectors() {
            text.push_str(&format!("{s},"));
        }
        format!("{}", alloy_primitives::keccak256(text.as_bytes()))
    }

    /// The topic0 values the `eth_getLogs` filter asks for.
    pub fn selectors(&self) -> Vec<B256> {
        let mut s: Vec<B256> = self.events.iter().map(Event::selector).collect();
        s.sort();
        s.dedup();
        s
    }
}
