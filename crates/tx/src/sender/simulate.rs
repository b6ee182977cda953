//! Simulating requests before any nonce is taken, so a call that reverts
//! or an account that cannot pay is refused without spending a nonce.
//!
//! Requests that fix their gas limit need one execution each. A chunk of
//! them goes to the node as one `eth_simulateV1` (the calls run in order
//! on one state, as they will be mined), which costs a node a fraction of
//! the same number of `eth_call`s: the state is set up once, not per call.
//! `eth_call` stays the judge of failures: a call the simulation says
//! fails is run again on its own, so a rejection's reason (and whether
//! there is one) is the same whichever way it was found. Nodes without
//! `eth_simulateV1`, or a chunk it cannot run (an account that cannot pay
//! for every call, gas beyond the node's cap), get `eth_call` per request.
//! Requests without a gas limit are estimated with `eth_estimateGas`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use alloy_primitives::{Address, Bytes, U64, U256};
use ethgate_chain::{ChainError, EndpointPool, RpcErrorClass};
use serde::Deserialize;
use serde_json::json;

use super::Sender;
use crate::fees::Fees;
use crate::request::TxRequest;

/// What simulating an account's requests needs, owned, so a tick's
/// simulations can run in a task of their own while the sender records
/// and broadcasts the requests already simulated.
#[derive(Clone)]
pub(super) struct Simulator {
    pool: Arc<EndpointPool>,
    chain: String,
    legacy: bool,
    address: Address,
    errors: Arc<crate::ContractErrors>,
    /// Whether the node may be asked for `eth_simulateV1` (shared with the
    /// sender: cleared the first time the node says it has no such method,
    /// or leaves it unanswered while it answers `eth_call`).
    v1: Arc<AtomicBool>,
}

impl Sender {
    /// The account's simulator.
    pub(super) fn simulator(&self) -> Simulator {
        Simulator {
            pool: self.account.pool.clone(),
            chain: self.account.chain.clone(),
            legacy: self.account.legacy,
            address: self.address,
            errors: self.contract_errors.clone(),
            v1: self.node.simulate_v1.clone(),
        }
    }
}

/// Gas of the calls in one simulated block: well inside any chain's block
/// gas limit, so a block is never refused for its size.
const SIMULATED_BLOCK_GAS: u64 = 15_000_000;

/// The outcome of a simulation that did not succeed.
pub(super) enum Simulation {
    /// The call reverts (or the account cannot pay): reject the request.
    Reverted(String),
    /// No endpoint answered (the reason): try again next tick.
    Unavailable(String),
    /// The node answered with an error that says neither that the call
    /// fails nor that the node is busy (a code nodes use for internal
    /// errors, in words this classifier does not know), or with something
    /// that is not a gas amount: the request is suspect if the node
    /// simulates other requests meanwhile.
    Erred(String),
}

/// What one `eth_simulateV1` gave.
enum InOrder {
    /// A verdict per request.
    Done(Vec<Result<u64, Simulation>>),
    /// An answer that cannot be used (an error for the whole chunk, a
    /// malformed answer): simulate each request with `eth_call` instead.
    Unusable,
    /// No endpoint answered: `eth_call` tells whether the node is down or
    /// only this method is slow or unserved.
    Unanswered,
}

/// A simulated block, with only what the verdicts need.
#[derive(Deserialize)]
struct SimulatedBlock {
    calls: Vec<SimulatedCall>,
}

#[derive(Deserialize)]
struct SimulatedCall {
    status: U64,
}

/// Calls (with their gas limits) in order, as simulated blocks of at most
/// [`SIMULATED_BLOCK_GAS`] each; a call above it gets a block of its own.
fn blocks(calls: impl IntoIterator<Item = (serde_json::Value, u64)>) -> Vec<serde_json::Value> {
    let mut blocks = Vec::new();
    let (mut open, mut gas) = (Vec::new(), 0u64);
    for (call, limit) in calls {
        if !open.is_empty() && gas.saturating_add(limit) > SIMULATED_BLOCK_GAS {
            blocks.push(json!({"calls": std::mem::take(&mut open)}));
            gas = 0;
        }
        open.push(call);
        gas = gas.saturating_add(limit);
    }
    if !open.is_empty() {
        blocks.push(json!({"calls": open}));
    }
    blocks
}

/// Whether a node's error says it has no `eth_simulateV1` at all.
fn no_such_method(code: i64, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    code == -32601
        || (m.contains("method")
            && [
                "not found",
                "not exist",
                "not supported",
                "unsupported",
                "not available",
            ]
            .iter()
            .any(|p| m.contains(p)))
}

/// Whether an `eth_call`'s error is the call failing in the EVM (out of
/// gas, an invalid opcode) though its code is the one nodes use for
/// internal errors: such a request fails the same way on every retry.
fn evm_failure(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ["out of gas", "outofgas", "evm error", "invalid opcode"]
        .iter()
        .any(|p| m.contains(p))
}

impl Simulator {
    /// The call `req` makes from this account, for `eth_call` and
    /// `eth_estimateGas` (fees and gas are added by the caller).
    pub(super) fn call_of(&self, req: &TxRequest) -> serde_json::Value {
        json!({"from": self.address, "to": req.to, "data": req.data, "value": req.value})
    }

    /// Why a call of `req` failed, from the node's error: decoded here
    /// from the revert data, the same on every node; the node's own
    /// message where it gave no revert data (an account that cannot pay,
    /// say), or empty data with a message that is not about a revert.
    pub(super) fn revert_reason(
        &self,
        req: &TxRequest,
        message: String,
        data: Option<Bytes>,
    ) -> String {
        match data {
            Some(data) if !data.is_empty() || message.to_ascii_lowercase().contains("revert") => {
                ethgate_core::revert::describe(&data, &self.errors_of(req))
            }
            _ => message,
        }
    }

    /// The custom errors a request's call may revert with: those it
    /// names, then those the configuration's ABIs declare for its target.
    fn errors_of(&self, req: &TxRequest) -> Vec<alloy_json_abi::Error> {
        let mut errors = req.known_errors();
        if let Some(known) = self.errors.get(&(self.chain.clone(), req.to)) {
            errors.extend(known.iter().cloned());
        }
        errors
    }

    /// The verdict on each request, in order: its gas limit, or why it
    /// must not take a nonce.
    pub(super) async fn simulate(
        &self,
        items: &[(&TxRequest, Fees)],
    ) -> Vec<Result<u64, Simulation>> {
        if !self.v1.load(Ordering::Relaxed) || items.iter().any(|(req, _)| req.gas_limit.is_none())
        {
            return self.simulate_each(items).await;
        }
        match self.simulate_in_order(items).await {
            InOrder::Done(verdicts) => verdicts,
            InOrder::Unusable => self.simulate_each(items).await,
            InOrder::Unanswered => {
                let verdicts = self.simulate_each(items).await;
                if verdicts
                    .iter()
                    .any(|v| !matches!(v, Err(Simulation::Unavailable(_))))
                {
                    // The node answers eth_call but not eth_simulateV1 (in
                    // time): retrying it every tick would hold every
                    // request back by the time-out.
                    self.v1.store(false, Ordering::Relaxed);
                    tracing::warn!(chain = %self.chain, "eth_simulateV1 went unanswered where eth_call was answered; simulating with eth_call");
                }
                verdicts
            }
        }
    }

    /// The call of `req` with the fees it will pay (a legacy account pays
    /// a gas price).
    fn priced_call(&self, req: &TxRequest, fees: Fees) -> serde_json::Value {
        let mut call = self.call_of(req);
        if self.legacy {
            call["gasPrice"] = json!(U256::from(fees.max_fee));
        } else {
            call["maxFeePerGas"] = json!(U256::from(fees.max_fee));
            call["maxPriorityFeePerGas"] = json!(U256::from(fees.max_priority_fee));
        }
        call
    }

    /// One `eth_simulateV1` for requests that all fix their gas limit.
    /// Calls it says fail are judged by `eth_call`.
    async fn simulate_in_order(&self, items: &[(&TxRequest, Fees)]) -> InOrder {
        let calls = items.iter().map(|(req, fees)| {
            let limit = req.gas_limit.unwrap_or_default();
            let mut call = self.priced_call(req, *fees);
            call["gas"] = json!(U64::from(limit));
            (call, limit)
        });
        let params = json!([{"blockStateCalls": blocks(calls), "validation": false}, "latest"]);
        let answer = self
            .pool
            .call::<Vec<SimulatedBlock>>("eth_simulateV1", params)
            .await;
        let statuses: Vec<bool> = match answer {
            Ok(blocks) => blocks
                .into_iter()
                .flat_map(|b| b.calls)
                .map(|c| c.status.to::<u64>() == 1)
                .collect(),
            Err(ChainError::Unavailable { .. }) => return InOrder::Unanswered,
            Err(ChainError::Rpc { code, message, .. }) => {
                if no_such_method(code, &message) {
                    self.v1.store(false, Ordering::Relaxed);
                    tracing::info!(chain = %self.chain, "the node has no eth_simulateV1; simulating with eth_call");
                }
                return InOrder::Unusable;
            }
            Err(_) => return InOrder::Unusable,
        };
        if statuses.len() != items.len() {
            return InOrder::Unusable;
        }
        let failed: Vec<(&TxRequest, Fees)> = items
            .iter()
            .zip(&statuses)
            .filter(|(_, ok)| !**ok)
            .map(|(item, _)| *item)
            .collect();
        let mut judged = self.simulate_each(&failed).await.into_iter();
        InOrder::Done(
            items
                .iter()
                .zip(statuses)
                .map(|((req, _), ok)| match ok {
                    true => Ok(req.gas_limit.unwrap_or_default()),
                    false => judged
                        .next()
                        .unwrap_or_else(|| Err(Simulation::Unavailable("no verdict".into()))),
                })
                .collect(),
        )
    }

    /// Simulates each request on its own, in one JSON-RPC batch:
    /// `eth_call` when the request fixes its gas limit (one execution is
    /// enough), else `eth_estimateGas` (whose estimate is then the gas
    /// limit's base).
    async fn simulate_each(&self, items: &[(&TxRequest, Fees)]) -> Vec<Result<u64, Simulation>> {
        let calls: Vec<(&str, serde_json::Value)> = items
            .iter()
            .map(|(req, fees)| {
                let mut call = self.priced_call(req, *fees);
                match req.gas_limit {
                    Some(limit) => {
                        call["gas"] = json!(U64::from(limit));
                        ("eth_call", json!([call, "latest"]))
                    }
                    None => ("eth_estimateGas", json!([call])),
                }
            })
            .collect();
        let answers = match self.pool.batch::<serde_json::Value>(&calls).await {
            Ok(a) => a,
            Err(e) => {
                let why = e.to_string();
                return items
                    .iter()
                    .map(|_| Err(Simulation::Unavailable(why.clone())))
                    .collect();
            }
        };
        items
            .iter()
            .zip(answers)
            .map(|((req, _), answer)| match answer {
                Ok(v) => match req.gas_limit {
                    Some(limit) => Ok(limit),
                    None => serde_json::from_value::<U64>(v)
                        .map(|g| g.to::<u64>())
                        .map_err(|e| {
                            Simulation::Erred(format!(
                                "eth_estimateGas answered something that is not a gas amount: {e}"
                            ))
                        }),
                },
                Err(ChainError::Rpc {
                    message,
                    class,
                    data,
                    ..
                }) if class == RpcErrorClass::Permanent || evm_failure(&message) => {
                    Err(Simulation::Reverted(self.revert_reason(req, message, data)))
                }
                Err(e @ ChainError::Rpc { .. }) => Err(Simulation::Erred(e.to_string())),
                Err(e) => Err(Simulation::Unavailable(e.to_string())),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_without_the_method_is_told_apart_from_a_failed_simulation() {
        assert!(no_such_method(
            -32601,
            "the method eth_simulateV1 does not exist"
        ));
        assert!(no_such_method(-32000, "Method not found"));
        assert!(!no_such_method(
            -32003,
            "Insufficient funds for gas * price + value"
        ));
        assert!(!no_such_method(-32000, "block gas limit reached"));
    }

    #[test]
    fn out_of_gas_is_a_failure_of_the_call_not_of_the_node() {
        assert!(evm_failure("EVM error OutOfGas"));
        assert!(evm_failure("out of gas"));
        assert!(!evm_failure("internal error"));
        assert!(!evm_failure("upstream timeout"));
    }

    #[test]
    fn calls_keep_their_order_in_blocks_within_the_gas_budget() {
        let calls = [6_000_000u64, 6_000_000, 6_000_000, 20_000_000, 100_000]
            .into_iter()
            .enumerate()
            .map(|(k, gas)| (json!(k), gas));
        let blocks = blocks(calls);
        let shape: Vec<Vec<u64>> = blocks
            .iter()
            .map(|b| {
                b["calls"]
                    .as_array()
                    .expect("calls")
                    .iter()
                    .map(|c| c.as_u64().expect("index"))
                    .collect()
            })
            .collect();
        // 6M + 6M fit; a third would pass 15M; the 20M call goes alone.
        assert_eq!(shape, vec![vec![0, 1], vec![2], vec![3], vec![4]]);
        assert!(super::blocks(std::iter::empty()).is_empty());
    }

    #[test]
    fn simulated_calls_parse_with_only_their_status() {
        let blocks: Vec<SimulatedBlock> = serde_json::from_str(
            r#"[{"number":"0x1","calls":[{"status":"0x1","returnData":"0x","logs":[]},
                {"status":"0x0","returnData":"0x08c379a0","error":{"code":3}}]}]"#,
        )
        .expect("parse");
        let s: Vec<u64> = blocks[0].calls.iter().map(|c| c.status.to()).collect();
        assert_eq!(s, vec![1, 0]);
    }
}
