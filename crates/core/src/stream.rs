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
    /// Contracts whose logs are recorded. Never empty without a factory.
    pub addresses: Vec<Address>,
    /// Events recorded, by their ABI; only logs whose topic0 is one of these
    /// selectors are fetched.
    pub events: Vec<Event>,
    /// First block to read.
    pub from_block: u64,
    /// Depth before a block is recorded.
    pub confirmations: Confirmations,
    /// A factory whose announced children the stream follows too.
    pub factory: Option<Factory>,
}

/// Contracts a stream follows as a factory announces them: the factory's
/// event names each new contract in one of its arguments (Uniswap's
/// `PairCreated(token0, token1, pair, …)` by `pair`). The stream records
/// the announcements and, from its creation block on, each child's logs
/// of the stream's events.
#[derive(Debug, Clone)]
pub struct Factory {
    /// The factory contract.
    pub address: Address,
    /// The event announcing a child.
    pub event: Event,
    /// Position of the child's address among the event's inputs.
    pub parameter: usize,
}

impl Factory {
    /// The child `log` announces: `None` when it is not the factory's
    /// event or the argument does not decode to an address.
    pub fn child(&self, log: &crate::RawLog) -> Option<Address> {
        use alloy_dyn_abi::EventExt;
        if log.address != self.address || log.topics.first() != Some(&self.event.selector()) {
            return None;
        }
        let input = self.event.inputs.get(self.parameter)?;
        let decoded = self
            .event
            .decode_log_parts(log.topics.iter().copied(), &log.data)
            .ok()?;
        let (list, before) = if input.indexed {
            (&decoded.indexed, &self.event.inputs[..self.parameter])
        } else {
            (&decoded.body, &self.event.inputs[..self.parameter])
        };
        let position = before.iter().filter(|i| i.indexed == input.indexed).count();
        list.get(position)?.as_address()
    }
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
        if let Some(f) = &self.factory {
            // Streams without a factory keep their earlier fingerprints.
            text = format!(
                "v1|{}|{}|factory:{:#x}:{}:{}|",
                self.chain_id,
                self.from_block,
                f.address,
                f.event.selector(),
                f.parameter
            );
        }
        for a in &addresses {
            text.push_str(&format!("{a:#x},"));
        }
        text.push('|');
        for s in self.selectors() {
            text.push_str(&format!("{s},"));
        }
        format!("{}", alloy_primitives::keccak256(text.as_bytes()))
    }

    /// A fingerprint of what the stream records besides its addresses:
    /// when only addresses were added since it recorded, the added ones can
    /// be backfilled alone.
    pub fn core_fingerprint(&self) -> String {
        let mut bare = self.clone();
        bare.addresses.clear();
        bare.fingerprint()
    }

    /// The selectors of the stream's own events (not the factory's
    /// announcement): what a child's logs are filtered on.
    pub fn event_selectors(&self) -> Vec<B256> {
        self.events.iter().map(Event::selector).collect()
    }

    /// The topic0 values the `eth_getLogs` filter asks for (the factory's
    /// announcement included).
    pub fn selectors(&self) -> Vec<B256> {
        let mut s: Vec<B256> = self.events.iter().map(Event::selector).collect();
        s.extend(self.factory.iter().map(|f| f.event.selector()));
        s.sort();
        s.dedup();
        s
    }
}
