//! The one place that reads provider error text.
//!
//! Node software and hosted providers report the same conditions with
//! different codes and words. Everything else in ethgate decides on the
//! [`RpcErrorClass`] returned here, so supporting a new provider's wording is
//! one row in the table test below.

/// What a JSON-RPC error means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcErrorClass {
    /// The log query covered too many blocks or returned too many results.
    /// `hint_to` is the last block of a range the provider says will work;
    /// `max_span` a block-count limit it stated.
    RangeTooLarge {
        /// Provider-suggested last block for the same start.
        hint_to: Option<u64>,
        /// Provider-stated maximum number of blocks per query.
        max_span: Option<u64>,
    },
    /// The endpoint is throttling us: back off and use another endpoint.
    RateLimited,
    /// The request asked for a block past the endpoint's head.
    BlockOutOfRange,
    /// The endpoint cannot answer now (still syncing, internal error);
    /// another endpoint may.
    Transient,
    /// The request itself is wrong or reverted; retrying will not help.
    Permanent,
}

impl RpcErrorClass {
    /// Whether another endpoint, or the same one later, may answer the same
    /// request successfully.
    pub fn is_endpoint_problem(self) -> bool {
        matches!(self, RpcErrorClass::RateLimited | RpcErrorClass::Transient)
    }
}

const RANGE_PHRASES: &[&str] = &[
    "query returned more than",
    "log response size exceeded",
    "block range is too large",
    "block range too large",
    "block range is too wide",
    "block range too wide",
    "range is too large",
    "exceed maximum block range",
    "exceeds max block range",
    "query exceeds max results",
    "exceeds the range allowed",
    "is limited to a",
    "block range limit exceeded",
    "maximum allowed number of requested blocks",
    "too many logs",
    "logs matched by query exceeds",
    "response size should not greater than",
    "response is too big",
    "response too large",
    "query timeout exceeded",
    "max range",
];

const RATE_PHRASES: &[&str] = &[
    "rate limit",
    "too many requests",
    "request rate exceeded",
    "daily request count exceeded",
    "compute units",
    "throughput",
    "capacity exceeded",
    "over rate",
];

const OUT_OF_RANGE_PHRASES: &[&str] = &[
    "blockoutofrange",
    "block range extends beyond current head",
    "requested block is in the future",
    "beyond current head block",
    "block height is",
];

const TRANSIENT_PHRASES: &[&str] = &[
    "header not found",
    "unknown block",
    "internal error",
    "service unavailable",
    "temporarily unavailable",
    "node is syncing",
    "upstream",
    "timeout",
];

/// Classifies a JSON-RPC error by code and message (and `data`, where some
/// providers put the suggested range).
pub fn classify(code: i64, message: &str, data: Option<&serde_json::Value>) -> RpcErrorClass {
    let m = message.to_ascii_lowercase();
    let has = |phrases: &[&str]| phrases.iter().any(|p| m.contains(p));
    if has(RATE_PHRASES) || code == 429 {
        return RpcErrorClass::RateLimited;
    }
    if has(RANGE_PHRASES) {
        return RpcErrorClass::RangeTooLarge {
            hint_to: hint_from_data(data).or_else(|| bracket_hint(message)),
            max_span: stated_span(&m),
        };
    }
    if has(OUT_OF_RANGE_PHRASES) {
        return RpcErrorClass::BlockOutOfRange;
    }
    if code == -32005 {
        // "limit exceeded" without a telling message: Infura uses it for
        // both; on a log query it is almost always the result cap.
        return RpcErrorClass::RangeTooLarge {
            hint_to: hint_from_data(data),
            max_span: None,
        };
    }
    if has(TRANSIENT_PHRASES) || code == -32603 {
        return RpcErrorClass::Transient;
    }
    RpcErrorClass::Permanent
}

/// The revert data in a JSON-RPC error's `data`: a hex string (geth,
/// anvil, reth, Erigon), an object holding one in `data` (some
/// providers wrap it), or Nethermind's and OpenEthereum's
/// `"Reverted 0x…"`. `None` when there is none or it is not hex.
pub fn revert_data(data: Option<&serde_json::Value>) -> Option<alloy_primitives::Bytes> {
    let text = match data? {
        serde_json::Value::String(s) => s.as_str(),
        serde_json::Value::Object(o) => o.get("data")?.as_str()?,
        _ => return None,
    };
    let hex = text.trim().strip_prefix("Reverted ").unwrap_or(text.trim());
    let hex = hex.strip_prefix("0x")?;
    alloy_primitives::hex::decode(hex).ok().map(Into::into)
}

fn parse_quantity(s: &str) -> Option<u64> {
    let s = s.trim().trim_matches('"');
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Infura-style `data: {"from": "0x..", "to": "0x.."}`.
fn hint_from_data(data: Option<&serde_json::Value>) -> Option<u64> {
    data?.get("to")?.as_str().and_then(parse_quantity)
}

/// Alchemy/Infura-style `... should work: [0x1, 0x2]` in the message text.
fn bracket_hint(message: &str) -> Option<u64> {
    let open = message.rfind('[')?;
    let close = open + message[open..].find(']')?;
    let inner = &message[open + 1..close];
    let (from, to) = inner.split_once(',')?;
    parse_quantity(from)?;
    parse_quantity(to)
}

/// A block-count limit such as "limited to a 10,000 range" or
/// "max block range 100000"; result caps ("10000 results") are not spans.
fn stated_span(m: &str) -> Option<u64> {
    if !m.contains("range") || m.contains("result") || m.contains("size") {
        return None;
    }
    m.split(|c: char| !(c.is_ascii_digit() || c == ','))
        .map(|t| t.replace(',', ""))
        .filter_map(|t| t.parse::<u64>().ok())
        .find(|n| *n >= 2)
}

/// What a node's refusal of `eth_sendRawTransaction` means for the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendErrorClass {
    /// The node already has this exact transaction: as good as sent.
    AlreadyKnown,
    /// The nonce is already used on chain: by one of our attempts (look
    /// for its receipt) or by someone else.
    NonceTooLow,
    /// A transaction at this nonce with higher fees is in the pool.
    ReplacementUnderpriced,
    /// The account cannot pay gas × price + value.
    InsufficientFunds,
    /// The fee is below what the node accepts now (base fee, minimum tip).
    FeeTooLow,
    /// Anything else: the request itself is wrong.
    Other,
}

const SEND_PHRASES: &[(&str, SendErrorClass)] = &[
    ("already known", SendErrorClass::AlreadyKnown),
    ("alreadyknown", SendErrorClass::AlreadyKnown),
    ("already imported", SendErrorClass::AlreadyKnown),
    ("known transaction", SendErrorClass::AlreadyKnown),
    ("already exists", SendErrorClass::AlreadyKnown),
    ("nonce too low", SendErrorClass::NonceTooLow),
    ("oldnonce", SendErrorClass::NonceTooLow),
    ("nonce has already been used", SendErrorClass::NonceTooLow),
    (
        "replacement transaction underpriced",
        SendErrorClass::ReplacementUnderpriced,
    ),
    (
        "replacement underpriced",
        SendErrorClass::ReplacementUnderpriced,
    ),
    (
        "replacementnotallowed",
        SendErrorClass::ReplacementUnderpriced,
    ),
    ("insufficient funds", SendErrorClass::InsufficientFunds),
    ("insufficientfunds", SendErrorClass::InsufficientFunds),
    ("insufficient balance", SendErrorClass::InsufficientFunds),
    ("less than block base fee", SendErrorClass::FeeTooLow),
    (
        "fee cap less than block base fee",
        SendErrorClass::FeeTooLow,
    ),
    ("transaction underpriced", SendErrorClass::FeeTooLow),
    ("max fee per gas less than", SendErrorClass::FeeTooLow),
    ("feetoolow", SendErrorClass::FeeTooLow),
];

/// Classifies a node's answer to `eth_sendRawTransaction`.
pub fn classify_send(message: &str) -> SendErrorClass {
    let m = message.to_ascii_lowercase();
    SEND_PHRASES
        .iter()
        .find(|(p, _)| m.contains(p))
        .map_or(SendErrorClass::Other, |(_, c)| *c)
}

#[cfg(test)]
mod tests {
    use super::RpcErrorClass::*;
    use super::*;

    #[test]
    fn revert_data_is_found_in_each_providers_shape() {
        use serde_json::json;
        let want = Some(alloy_primitives::Bytes::from(vec![0x08, 0xc3, 0x79, 0xa0]));
        assert_eq!(revert_data(Some(&json!("0x08c379a0"))), want);
        assert_eq!(revert_data(Some(&json!({"data": "0x08c379a0"}))), want);
        assert_eq!(revert_data(Some(&json!("Reverted 0x08c379a0"))), want);
        assert_eq!(revert_data(Some(&json!("0x"))), Some(Default::default()));
        assert_eq!(revert_data(Some(&json!("not hex"))), None);
        assert_eq!(revert_data(Some(&json!("0xzz"))), None);
        assert_eq!(revert_data(Some(&json!(3))), None);
        assert_eq!(revert_data(None), None);
    }

    #[test]
    fn provider_messages_table() {
        let big = |hint_to, max_span| RangeTooLarge { hint_to, max_span };
        let infura_data = serde_json::json!({"from": "0x1", "to": "0x2a"});
        let rows: &[(i64, &str, Option<&serde_json::Value>, RpcErrorClass)] = &[
            (
                -32005,
                "query returned more than 10000 results",
                None,
                big(None, None),
            ),
            (
                -32005,
                "query returned more than 10000 results. Try with this block range [0x10, 0x1F].",
                None,
                big(Some(0x1f), None),
            ),
            (
                -32005,
                "query returned more than 10000 results",
                Some(&infura_data),
                big(Some(42), None),
            ),
            (
                -32602,
                "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block \
                 range and no limit on the response size, or you can request any block range with a \
                 cap of 10K logs in the response. Based on your parameters, this block range should \
                 work: [0x1, 0x10]",
                None,
                big(Some(16), None),
            ),
            (-32000, "block range is too large", None, big(None, None)),
            (-32000, "Block range too large", None, big(None, None)),
            (-32062, "block range is too wide", None, big(None, None)),
            (
                -32000,
                "exceed maximum block range: 50000",
                None,
                big(None, Some(50000)),
            ),
            (
                -32602,
                "query exceeds max block range 100000",
                None,
                big(None, Some(100000)),
            ),
            (
                -32602,
                "query exceeds max results 20000, retry with the range 1-5",
                None,
                big(None, None),
            ),
            (
                -32614,
                "eth_getLogs is limited to a 10,000 range",
                None,
                big(None, Some(10000)),
            ),
            (
                -32600,
                "Maximum allowed number of requested blocks is 10000",
                None,
                big(None, None),
            ),
            (-32005, "limit exceeded", None, big(None, None)),
            (429, "Too Many Requests", None, RateLimited),
            (
                -32005,
                "daily request count exceeded, request rate limited",
                None,
                RateLimited,
            ),
            (
                429,
                "Your app has exceeded its compute units per second capacity",
                None,
                RateLimited,
            ),
            (-32016, "rate limit exceeded", None, RateLimited),
            (
                -32602,
                "BlockOutOfRangeError: block height is 2 but requested was 16",
                None,
                BlockOutOfRange,
            ),
            (
                -32000,
                "block range extends beyond current head block",
                None,
                BlockOutOfRange,
            ),
            (-32000, "header not found", None, Transient),
            (-32603, "something broke", None, Transient),
            (3, "execution reverted: nope", None, Permanent),
            (
                -32601,
                "the method eth_foo does not exist/is not available",
                None,
                Permanent,
            ),
        ];
        for (code, msg, data, want) in rows {
            assert_eq!(classify(*code, msg, *data), *want, "code {code}: {msg}");
        }
    }

    #[test]
    fn only_rate_limits_and_transients_move_to_another_endpoint() {
        assert!(RateLimited.is_endpoint_problem());
        assert!(Transient.is_endpoint_problem());
        assert!(!Permanent.is_endpoint_problem());
        assert!(!BlockOutOfRange.is_endpoint_problem());
        assert!(
            !RangeTooLarge {
                hint_to: None,
                max_span: None
            }
            .is_endpoint_problem()
        );
    }

    #[test]
    fn send_refusals_of_every_node_we_know() {
        use super::{SendErrorClass as C, classify_send};
        for (message, want) in [
            ("already known", C::AlreadyKnown),                // geth
            ("AlreadyKnown", C::AlreadyKnown),                 // nethermind
            ("transaction already imported", C::AlreadyKnown), // anvil
            ("nonce too low: next nonce 5, tx nonce 3", C::NonceTooLow), // geth
            (
                "OldNonce, Current nonce: 5, nonce of rejected tx: 3",
                C::NonceTooLow,
            ), // nethermind
            (
                "replacement transaction underpriced",
                C::ReplacementUnderpriced,
            ), // geth, anvil
            ("ReplacementNotAllowed", C::ReplacementUnderpriced), // nethermind
            (
                "insufficient funds for gas * price + value: have 1 want 2",
                C::InsufficientFunds,
            ),
            (
                "Insufficient funds for gas * price + value",
                C::InsufficientFunds,
            ),
            (
                "max fee per gas less than block base fee: address 0x.., maxFeePerGas: 1 baseFee: 7",
                C::FeeTooLow,
            ),
            (
                "transaction underpriced: tip needed 1, tip permitted 0",
                C::FeeTooLow,
            ),
            ("FeeTooLow", C::FeeTooLow),
            ("invalid sender", C::Other),
        ] {
            assert_eq!(classify_send(message), want, "{message}");
        }
    }
}
