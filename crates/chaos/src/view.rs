//! A node behind the head, made from one that is not: each call is
//! rewritten to read the chain as it stood at block `V` (the lagging
//! node's head), and each answer that names a later block is answered the
//! way such a node answers — no block, no receipt, a transaction still in
//! the pool, no logs past its head. The transaction pool is the upstream's
//! (a pool spreads between nodes in milliseconds; blocks take seconds to
//! import), so pending counts and sends pass unchanged.

use serde_json::{Value, json};

/// What to do with a forwarded call's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Post {
    /// Leave it.
    Keep,
    /// `null` when the object's field names a block above the view
    /// (receipts, blocks by hash).
    NullAbove(&'static str),
    /// A transaction mined above the view is still pending to this node.
    PendingAbove,
    /// A block asked for by tag (`safe`, `finalized`) above the view is the
    /// view's own head block instead.
    ClampBlock,
    /// Logs above the view are dropped (a filter by block hash above it is
    /// an error).
    LogsAbove,
}

/// A call as the lagging node handles it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Rewritten {
    /// Answered here, with this `result` or `error` object.
    Answer(Result<Value, Value>),
    /// Forwarded (rewritten), and its answer passed through [`Post`].
    Forward(Value, Post),
}

fn quantity(v: &Value) -> Option<u64> {
    v.as_str()
        .and_then(|s| u64::from_str_radix(s.strip_prefix("0x")?, 16).ok())
}

fn hex(n: u64) -> Value {
    json!(format!("{n:#x}"))
}

/// geth's words for state it does not have.
fn header_not_found() -> Value {
    json!({"code": -32000, "message": "header not found"})
}

/// What a block parameter means to a node whose head is `v`: the block to
/// ask the upstream for, or `Err` when the node has no such block.
fn block_param(param: Option<&Value>, v: u64, pending_is_pool: bool) -> Result<Value, ()> {
    match param {
        None => Ok(hex(v)),
        Some(Value::String(tag)) => match tag.as_str() {
            "latest" => Ok(hex(v)),
            "pending" if pending_is_pool => Ok(json!("pending")),
            "pending" => Ok(hex(v)),
            "earliest" | "safe" | "finalized" => Ok(json!(tag)),
            _ => match quantity(&json!(tag)) {
                Some(n) if n > v => Err(()),
                _ => Ok(json!(tag)),
            },
        },
        // EIP-1898 objects ({blockHash} / {blockNumber}) pass unchanged.
        Some(other) => Ok(other.clone()),
    }
}

/// Rewrites `call` (one JSON-RPC call object) for a node whose head is `v`.
pub(crate) fn rewrite(call: &Value, v: u64) -> Rewritten {
    let method = call["method"].as_str().unwrap_or_default();
    let params = call["params"].as_array().cloned().unwrap_or_default();
    let forward = |params: Vec<Value>, post: Post| {
        let mut c = call.clone();
        c["params"] = Value::Array(params);
        Rewritten::Forward(c, post)
    };
    // The position of the block parameter, and whether "pending" reads
    // the pool (which this node shares) rather than the state.
    let at = match method {
        "eth_blockNumber" => return Rewritten::Answer(Ok(hex(v))),
        "eth_getTransactionReceipt" => return forward(params, Post::NullAbove("blockNumber")),
        "eth_getBlockByHash" => return forward(params, Post::NullAbove("number")),
        "eth_getTransactionByHash" => return forward(params, Post::PendingAbove),
        "eth_getLogs" => return logs(call, params, v),
        "eth_getBlockByNumber" => {
            let mut params = params;
            return match block_param(params.first(), v, false) {
                Err(()) => Rewritten::Answer(Ok(Value::Null)),
                Ok(p) => {
                    let post = match p.as_str() {
                        Some("safe" | "finalized") => Post::ClampBlock,
                        _ => Post::Keep,
                    };
                    if params.is_empty() {
                        params.push(p);
                    } else {
                        params[0] = p;
                    }
                    forward(params, post)
                }
            };
        }
        "eth_getTransactionCount" => (1, true),
        "eth_getBalance"
        | "eth_getCode"
        | "eth_call"
        | "eth_estimateGas"
        | "eth_feeHistory"
        | "eth_simulateV1"
        | "eth_createAccessList" => (1, false),
        "eth_getStorageAt" => (2, false),
        _ => return forward(params, Post::Keep),
    };
    let (k, pool) = at;
    let mut params = params;
    match block_param(params.get(k), v, pool) {
        Err(()) => Rewritten::Answer(Err(header_not_found())),
        Ok(p) => {
            while params.len() <= k {
                params.push(Value::Null);
            }
            params[k] = p;
            forward(params, Post::Keep)
        }
    }
}

/// `eth_getLogs` on a node whose head is `v`: a range reaching past the
/// head ends at it, as geth answers (what lies beyond is not an error to
/// it, only absent).
fn logs(call: &Value, mut params: Vec<Value>, v: u64) -> Rewritten {
    let Some(filter) = params.first_mut().and_then(Value::as_object_mut) else {
        return Rewritten::Forward(call.clone(), Post::Keep);
    };
    if filter.contains_key("blockHash") {
        let mut c = call.clone();
        c["params"] = Value::Array(params);
        return Rewritten::Forward(c, Post::LogsAbove);
    }
    let bound = |key: &str, f: &serde_json::Map<String, Value>| match f.get(key) {
        None => Some(v),
        Some(Value::String(t)) if t == "latest" || t == "pending" => Some(v),
        Some(other) => quantity(other),
    };
    let from = bound("fromBlock", filter).unwrap_or(0);
    let to = bound("toBlock", filter).unwrap_or(v).min(v);
    if from > to {
        return Rewritten::Answer(Ok(json!([])));
    }
    filter.insert("fromBlock".into(), hex(from));
    filter.insert("toBlock".into(), hex(to));
    let mut c = call.clone();
    c["params"] = Value::Array(params);
    Rewritten::Forward(c, Post::LogsAbove)
}

/// Applies `post` to a forwarded call's `result`, for a node whose head is
/// `v`. `ClampBlock` is finished by the caller (it needs another read), so
/// here it reports whether one is needed.
pub(crate) fn finish(post: Post, result: &mut Value, v: u64) -> bool {
    match post {
        Post::Keep => {}
        Post::NullAbove(field) => {
            if quantity(&result[field]).is_some_and(|n| n > v) {
                *result = Value::Null;
            }
        }
        Post::PendingAbove => {
            if quantity(&result["blockNumber"]).is_some_and(|n| n > v) {
                for k in ["blockHash", "blockNumber", "transactionIndex"] {
                    result[k] = Value::Null;
                }
            }
        }
        Post::ClampBlock => return quantity(&result["number"]).is_some_and(|n| n > v),
        Post::LogsAbove => {
            if let Some(logs) = result.as_array_mut() {
                logs.retain(|l| quantity(&l["blockNumber"]).is_none_or(|n| n <= v));
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: &str, params: Value) -> Value {
        json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
    }

    fn forwarded(r: Rewritten) -> (Value, Post) {
        match r {
            Rewritten::Forward(c, p) => (c["params"].clone(), p),
            other => panic!("answered here: {other:?}"),
        }
    }

    #[test]
    fn the_head_and_latest_state_are_the_views() {
        assert_eq!(
            rewrite(&call("eth_blockNumber", json!([])), 10),
            Rewritten::Answer(Ok(json!("0xa")))
        );
        let (p, _) = forwarded(rewrite(
            &call("eth_getTransactionCount", json!(["0x1", "latest"])),
            10,
        ));
        assert_eq!(p, json!(["0x1", "0xa"]));
        // The pool is shared: pending counts pass.
        let (p, _) = forwarded(rewrite(
            &call("eth_getTransactionCount", json!(["0x1", "pending"])),
            10,
        ));
        assert_eq!(p, json!(["0x1", "pending"]));
        // A call without a block reads the view's head.
        let (p, _) = forwarded(rewrite(&call("eth_call", json!([{"to": "0x1"}])), 10));
        assert_eq!(p, json!([{"to": "0x1"}, "0xa"]));
    }

    #[test]
    fn blocks_past_the_view_do_not_exist() {
        assert_eq!(
            rewrite(&call("eth_getBlockByNumber", json!(["0xb", false])), 10),
            Rewritten::Answer(Ok(Value::Null))
        );
        assert_eq!(
            rewrite(&call("eth_getBalance", json!(["0x1", "0xb"])), 10),
            Rewritten::Answer(Err(header_not_found()))
        );
        let mut receipt = json!({"blockNumber": "0xb", "status": "0x1"});
        let (_, post) = forwarded(rewrite(
            &call("eth_getTransactionReceipt", json!(["0x12"])),
            10,
        ));
        finish(post, &mut receipt, 10);
        assert_eq!(receipt, Value::Null);
        let mut tx = json!({"blockNumber": "0xb", "blockHash": "0x1", "transactionIndex": "0x0"});
        finish(Post::PendingAbove, &mut tx, 10);
        assert_eq!(tx["blockNumber"], Value::Null);
    }

    #[test]
    fn logs_end_at_the_view() {
        let (p, post) = forwarded(rewrite(
            &call(
                "eth_getLogs",
                json!([{"fromBlock": "0x5", "toBlock": "0x20"}]),
            ),
            10,
        ));
        assert_eq!(p[0]["toBlock"], "0xa");
        let mut logs = json!([{"blockNumber": "0x9"}, {"blockNumber": "0xb"}]);
        finish(post, &mut logs, 10);
        assert_eq!(logs, json!([{"blockNumber": "0x9"}]));
        assert_eq!(
            rewrite(&call("eth_getLogs", json!([{"fromBlock": "0xb"}])), 10),
            Rewritten::Answer(Ok(json!([])))
        );
    }
}
