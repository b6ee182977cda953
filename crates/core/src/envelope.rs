//! The event envelope: the one JSON shape every sink and the pull API carry.
//!
//! Its `id` is stable for a log (`chain_id:block_hash:log_index`), so a
//! consumer can deduplicate; a retraction is the same envelope with
//! `removed: true`. `seq` is assigned by the outbox when the envelope is
//! recorded.

use alloy_primitives::{Address, B256, Bytes, U64};
use serde::{Deserialize, Serialize};

use crate::decode::Decoded;

/// A log as `eth_getLogs` returns it. Quantities stay in their wire types so
/// deserialization is one pass with no intermediate strings.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RawLog {
    /// Contract that emitted the log.
    pub address: Address,
    /// Indexed topics; topic0 is the event selector for non-anonymous events.
    pub topics: Vec<B256>,
    /// ABI-encoded non-indexed arguments.
    pub data: Bytes,
    /// Height of the containing block.
    pub block_number: U64,
    /// Hash of the containing block, checked against the canonical chain.
    pub block_hash: B256,
    /// Present on nodes that include it; otherwise taken from the header.
    #[serde(default)]
    pub block_timestamp: Option<U64>,
    /// Transaction that emitted the log.
    pub transaction_hash: B256,
    /// Position of that transaction in the block.
    pub transaction_index: U64,
    /// Position of the log in the block.
    pub log_index: U64,
    /// Set by nodes for logs dropped by a reorg (subscriptions only).
    #[serde(default)]
    pub removed: bool,
}

impl RawLog {
    /// Height of the containing block as a plain integer.
    pub fn block(&self) -> u64 {
        self.block_number.to::<u64>()
    }

    /// Position in the block as a plain integer.
    pub fn index(&self) -> u64 {
        self.log_index.to::<u64>()
    }
}

/// The stable identity of a log: the same on every delivery and on its
/// retraction, and different for the same log index in a different block.
pub fn event_id(chain_id: u64, block_hash: &B256, log_index: u64) -> String {
    format!("{chain_id}:{block_hash}:{log_index}")
}

/// An event as delivered to consumers. Field order follows DESIGN.md.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct EventEnvelope {
    /// `chain_id:block_hash:log_index`.
    pub id: String,
    /// Always `"event"`; transaction envelopes say `"tx"`.
    pub kind: String,
    /// Stream that recorded the event.
    pub stream: String,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Height of the block.
    pub block_number: u64,
    /// Hash of the block.
    #[schema(value_type = String)]
    pub block_hash: B256,
    /// Block time, unix seconds.
    pub block_timestamp: u64,
    /// Emitting transaction.
    #[schema(value_type = String)]
    pub tx_hash: B256,
    /// Position of the transaction in the block.
    pub tx_index: u64,
    /// Position of the log in the block.
    pub log_index: u64,
    /// Emitting contract, lower-case hex.
    pub address: String,
    /// Event name from the ABI; `null` if the log could not be decoded.
    pub event: Option<String>,
    /// Canonical signature, e.g. `Transfer(address,address,uint256)`.
    pub signature: Option<String>,
    /// The selector topic.
    #[schema(value_type = Option<String>)]
    pub topic0: Option<B256>,
    /// Decoded arguments by parameter name; `null` if decoding failed.
    pub args: serde_json::Value,
    /// Raw topics, for consumers that decode themselves.
    #[schema(value_type = Vec<String>)]
    pub topics: Vec<B256>,
    /// Raw data, hex.
    #[schema(value_type = String)]
    pub data: Bytes,
    /// `true` on a retraction.
    pub removed: bool,
    /// Outbox sequence number; assigned when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

impl EventEnvelope {
    /// The identity of this outbox entry, for transports that deduplicate
    /// (AMQP `message_id`, JetStream `Nats-Msg-Id`): `<id>/<stream>/<seq>`.
    /// A redelivery after a crash or rewind repeats it, so it is dropped;
    /// the retraction of an event, and the event's return when a reorg
    /// flips back, are new entries with their own `seq`, so they are not.
    /// The envelope `id` alone would make JetStream (or any consumer that
    /// deduplicates on the message id) drop every retraction.
    pub fn delivery_id(&self) -> String {
        format!("{}/{}/{}", self.id, self.stream, self.seq.unwrap_or(0))
    }

    /// Builds the envelope for a canonical log. `decoded` is the event name,
    /// signature and named arguments, or `None` when the log did not match
    /// the stream's ABI (it is still recorded: nothing is dropped).
    pub fn from_log(
        stream: &str,
        chain_id: u64,
        log: &RawLog,
        block_timestamp: u64,
        decoded: Option<Decoded<'_>>,
    ) -> Self {
        let (event, signature, args) = match decoded {
            Some(d) => (
                Some(d.name.to_owned()),
                Some(d.signature.to_owned()),
                d.args,
            ),
            None => (None, None, serde_json::Value::Null),
        };
        EventEnvelope {
            id: event_id(chain_id, &log.block_hash, log.index()),
            kind: "event".to_owned(),
            stream: stream.to_owned(),
            chain_id,
            block_number: log.block(),
            block_hash: log.block_hash,
            block_timestamp,
            tx_hash: log.transaction_hash,
            tx_index: log.transaction_index.to::<u64>(),
            log_index: log.index(),
            address: format!("{:#x}", log.address),
            event,
            signature,
            topic0: log.topics.first().copied(),
            args,
            topics: log.topics.clone(),
            data: log.data.clone(),
            removed: false,
            seq: None,
        }
    }

    /// The retraction of this envelope: same id and content, `removed: true`.
    pub fn retraction(&self) -> Self {
        EventEnvelope {
            removed: true,
            seq: None,
            ..self.clone()
        }
    }

    /// Appends this envelope's JSON — exactly what `serde_json::to_string`
    /// gives, `seq` included only if set — without serde's per-character
    /// escape scan of hex strings or intermediate allocations: the outbox
    /// writes one of these per event, so it is the ingest hot path.
    pub fn write_json(&self, out: &mut String) {
        fn quoted(out: &mut String, s: &str) {
            // Names and ids may in principle hold quotes or controls.
            match serde_json::to_string(s) {
                Ok(q) => out.push_str(&q),
                Err(_) => out.push_str("\"\""),
            }
        }
        fn hash(out: &mut String, h: &B256) {
            out.push('"');
            out.push_str(alloy_primitives::hex::Buffer::<32, true>::new().format(&h.0));
            out.push('"');
        }
        fn opt_str(out: &mut String, s: Option<&str>) {
            match s {
                Some(s) => quoted(out, s),
                None => out.push_str("null"),
            }
        }
        use std::fmt::Write;
        out.push_str("{\"id\":");
        quoted(out, &self.id);
        out.push_str(",\"kind\":");
        quoted(out, &self.kind);
        out.push_str(",\"stream\":");
        quoted(out, &self.stream);
        let _ = write!(
            out,
            ",\"chain_id\":{},\"block_number\":{},\"block_hash\":",
            self.chain_id, self.block_number
        );
        hash(out, &self.block_hash);
        let _ = write!(
            out,
            ",\"block_timestamp\":{},\"tx_hash\":",
            self.block_timestamp
        );
        hash(out, &self.tx_hash);
        let _ = write!(
            out,
            ",\"tx_index\":{},\"log_index\":{},\"address\":",
            self.tx_index, self.log_index
        );
        quoted(out, &self.address);
        out.push_str(",\"event\":");
        opt_str(out, self.event.as_deref());
        out.push_str(",\"signature\":");
        opt_str(out, self.signature.as_deref());
        out.push_str(",\"topic0\":");
        match &self.topic0 {
            Some(t) => hash(out, t),
            None => out.push_str("null"),
        }
        out.push_str(",\"args\":");
        out.push_str(&serde_json::to_string(&self.args).unwrap_or_else(|_| "null".to_owned()));
        out.push_str(",\"topics\":[");
        for (i, t) in self.topics.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            hash(out, t);
        }
        out.push_str("],\"data\":\"");
        out.push_str(&alloy_primitives::hex::encode_prefixed(&self.data));
        let _ = write!(out, "\",\"removed\":{}", self.removed);
        if let Some(seq) = self.seq {
            let _ = write!(out, ",\"seq\":{seq}");
        }
        out.push('}');
    }

    /// The emitting address parsed back, for routing.
    pub fn address(&self) -> Option<Address> {
        self.address.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> RawLog {
        serde_json::from_str(
            r#"{"address":"0x5FbDB2315678afecb367f032d93F642f64180aa3",
            "topics":["0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"],
            "data":"0x07","blockHash":"0x2085798f9f4aaf149d776fabb8ae4829d132b97c50b49e79f9988ece88d6ea9e",
            "blockNumber":"0x2","blockTimestamp":"0x6b04d80d",
            "transactionHash":"0x8d0b22c50a20735f0afb2129dbd9a4074a1933ed31f3550a2d91c6107b776945",
            "transactionIndex":"0x0","logIndex":"0x3","removed":false}"#,
        )
        .expect("valid log")
    }

    #[test]
    fn id_is_chain_block_hash_and_log_index() {
        let env = EventEnvelope::from_log("s", 31337, &log(), 1, None);
        assert_eq!(
            env.id,
            "31337:0x2085798f9f4aaf149d776fabb8ae4829d132b97c50b49e79f9988ece88d6ea9e:3"
        );
        assert_eq!(env.address, "0x5fbdb2315678afecb367f032d93f642f64180aa3");
        assert_eq!(env.block_number, 2);
    }

    #[test]
    fn retraction_keeps_id_and_sets_removed() {
        let env = EventEnvelope::from_log("s", 1, &log(), 1, None);
        let r = env.retraction();
        assert_eq!(r.id, env.id);
        assert!(r.removed && !env.removed);
    }

    #[test]
    fn write_json_is_byte_identical_to_serde() {
        let mut env = EventEnvelope::from_log(
            "s\"tricky\n",
            1,
            &log(),
            1,
            Some(Decoded {
                name: "Ev",
                signature: "Ev(string)",
                args: serde_json::json!({"text": "a \"quote\"\n", "n": 1}),
            }),
        );
        for seq in [None, Some(7)] {
            env.seq = seq;
            let mut fast = String::new();
            env.write_json(&mut fast);
            assert_eq!(fast, serde_json::to_string(&env).expect("serializes"));
        }
        let mut bare = EventEnvelope::from_log("s", 1, &log(), 1, None);
        bare.topics.clear();
        bare.topic0 = None;
        bare.data = Bytes::new();
        let mut fast = String::new();
        bare.write_json(&mut fast);
        assert_eq!(fast, serde_json::to_string(&bare).expect("serializes"));
    }

    #[test]
    fn serialized_without_seq_until_assigned() {
        let mut env = EventEnvelope::from_log("s", 1, &log(), 1, None);
        assert!(
            !serde_json::to_string(&env)
                .expect("serializes")
                .contains("\"seq\"")
        );
        env.seq = Some(42);
        let back: EventEnvelope =
            serde_json::from_str(&serde_json::to_string(&env).expect("serializes"))
                .expect("parses");
        assert_eq!(back, env);
    }
}
