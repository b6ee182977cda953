//! Reading chain state: `POST /v1/calls` (contract calls, one or a batch)
//! and `GET /v1/chains/{chain}/accounts/{address}` (balance and nonce).
//!
//! A back end that hears an event usually has to read something before it
//! acts (is this billing still active, when is it due). Every call of a
//! request is read at one block: a tag (`latest`, `safe`, `finalized`) or a
//! number is first pinned to a block hash, and the calls then name that
//! hash (EIP-1898), so a batch that straddles a new block still reads one
//! state. A batch goes to the node as one JSON-RPC batch. Outputs are
//! decoded by name like envelopes' arguments (wide integers as decimal
//! strings); a revert is decoded from its data (`Error(string)`,
//! `Panic(uint256)`, custom errors the configured ABIs declare).

use std::collections::HashMap;

use alloy_dyn_abi::FunctionExt;
use alloy_json_abi::Function;
use alloy_primitives::{Address, B256, Bytes, U64, U256};
use axum::Json;
use axum::body::Bytes as Body;
use axum::extract::{Path, RawQuery, State};
use ethgate_chain::{ChainError, EndpointPool};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::auth::{Caller, Right};
use crate::error::ErrorBody;
use crate::{ApiError, ApiState, params};

/// Most calls in one batch.
pub const MAX_CALLS: usize = 100;

/// What the configured ABIs say of contracts: functions by name, so a
/// call can name one without its signature, and custom errors, so a
/// revert is decoded. Keyed by (chain name, contract address).
#[derive(Debug, Clone, Default)]
pub struct KnownAbis {
    /// Functions of each contract a `[[streams]]` ABI covers.
    pub functions: HashMap<(String, Address), Vec<Function>>,
    /// Custom errors of each contract a `[[streams]]` ABI covers.
    pub errors: ethgate_tx::ContractErrors,
}

/// One call as the document describes it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    /// A `[[chains]]` name.
    pub chain: String,
    /// The contract.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    pub to: String,
    /// A signature with outputs, `"getReserves()(uint112,uint112,uint32)"`
    /// or `"balanceOf(address) returns (uint256)"`, or a function name
    /// found in a `[[streams]]` ABI for the contract.
    #[schema(min_length = 1, max_length = 1000)]
    pub function: String,
    /// The arguments.
    pub args: Option<Vec<Value>>,
    /// `latest` (default), `safe`, `finalized`, a block number or a block
    /// hash.
    #[schema(value_type = Option<BlockAt>)]
    pub block: Option<Value>,
}

/// A block to read at: `latest`, `safe`, `finalized`, a height or a 0x
/// block hash (its schema; calls read it field by field).
#[derive(Debug)]
pub struct BlockAt;

impl utoipa::PartialSchema for BlockAt {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .maximum(Some(i64::MAX)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^(latest|safe|finalized|0x[0-9a-fA-F]{64})$")),
            )
            .description(Some(
                "latest (default), safe, finalized, a height or a block hash",
            ))
            .into()
    }
}

impl utoipa::ToSchema for BlockAt {}

/// `POST /v1/calls`'s body: one call, or `{"calls": [...]}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum CallsBody {
    /// One call.
    One(CallRequest),
    /// Several, read at one block per (chain, block).
    Batch(CallBatch),
}

/// A batch of calls.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallBatch {
    /// The calls, answered in order.
    #[schema(min_items = 1, max_items = 100)]
    pub calls: Vec<CallRequest>,
}

/// One call's answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CallResult {
    /// It returned, and its outputs decoded.
    pub ok: bool,
    /// Outputs by name (by position, `"0"`, `"1"`, … when unnamed); wide
    /// integers as decimal strings.
    pub outputs: Option<Map<String, Value>>,
    /// Why it failed: the decoded revert reason, or why its answer could
    /// not be decoded.
    pub error: Option<String>,
    /// The raw revert data, 0x hex.
    pub revert_data: Option<String>,
    /// The block read at.
    pub block_number: u64,
    /// Its hash.
    pub block_hash: String,
    /// Its time, unix seconds: the chain's "now" for what was read.
    pub block_timestamp: u64,
}

/// A batch's answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CallResults {
    /// One per call, in order.
    pub results: Vec<CallResult>,
}

/// `POST /v1/calls`'s answer: one result, or a batch's.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum CallsAnswer {
    /// For one call.
    One(CallResult),
    /// For a batch.
    Batch(CallResults),
}

/// Where to read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Pin {
    Tag(&'static str),
    Number(u64),
    Hash(B256),
}

/// A call checked and encoded.
struct Call {
    chain: usize,
    to: Address,
    function: Function,
    data: Bytes,
    pin: Pin,
}

fn bad(at: &str, field: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_param(&format!("{at}{field}"), message)
}

fn pin_of(v: Option<&Value>, at: &str) -> Result<Pin, ApiError> {
    let err = || {
        bad(
            at,
            "block",
            "must be latest, safe, finalized, a block number or a 0x block hash",
        )
    };
    match v {
        None | Some(Value::Null) => Ok(Pin::Tag("latest")),
        Some(n @ Value::Number(_)) => params::body_uint(n).map(Pin::Number).ok_or_else(err),
        Some(Value::String(s)) => match s.as_str() {
            "latest" => Ok(Pin::Tag("latest")),
            "safe" => Ok(Pin::Tag("safe")),
            "finalized" => Ok(Pin::Tag("finalized")),
            h if h.len() == 66 => h.parse().map(Pin::Hash).map_err(|_| err()),
            _ => Err(err()),
        },
        Some(_) => Err(err()),
    }
}

/// A signature with outputs: `f(a)(b)` or `f(a) returns (b)`.
fn signature(text: &str, at: &str) -> Result<Function, ApiError> {
    let text = text.trim();
    let normal = match text.find(")(") {
        Some(i) if !text.contains(" returns") => {
            format!("{} returns ({}", &text[..=i], &text[i + 2..])
        }
        _ => text.to_owned(),
    };
    ethgate_core::signature::check(&normal).map_err(|e| bad(at, "function", e.to_string()))?;
    Function::parse(&normal)
        .map_err(|e| bad(at, "function", format!("not a function signature: {e}")))
}

fn parse_call(state: &ApiState, v: &Value, at: &str) -> Result<Call, ApiError> {
    let Some(obj) = v.as_object() else {
        return Err(bad(at, "", "a call must be a JSON object"));
    };
    let allowed = ["chain", "to", "function", "args", "block"];
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(
            at,
            k,
            format!("unknown field; expected one of {allowed:?}"),
        ));
    }
    let text = |f: &str| obj.get(f).and_then(Value::as_str);
    let chain_name = text("chain").ok_or_else(|| bad(at, "chain", "is required"))?;
    let chain = state
        .chains
        .iter()
        .position(|c| c.name == chain_name)
        .ok_or_else(|| bad(at, "chain", format!("no chain named {chain_name:?}")))?;
    let to: Address = text("to")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| bad(at, "to", "must be a 0x contract address"))?;
    let name = text("function").ok_or_else(|| bad(at, "function", "is required"))?;
    if name.len() > 1000 {
        return Err(bad(at, "function", "is longer than 1000 characters"));
    }
    let args = obj.get("args");
    let function = if name.contains('(') {
        signature(name, at)?
    } else {
        let count = args.and_then(Value::as_array).map_or(0, Vec::len);
        let known = state.abis.functions.get(&(chain_name.to_owned(), to));
        known
            .into_iter()
            .flatten()
            .find(|f| f.name == name && f.inputs.len() == count)
            .cloned()
            .ok_or_else(|| {
                bad(
                    at,
                    "function",
                    format!(
                        "no function {name} taking {count} arguments in a [[streams]] ABI for {to:#x}; give its signature, e.g. \"{name}(uint256)(uint256)\""
                    ),
                )
            })?
    };
    let data = ethgate_tx::request::encode_args(&function, args)
        .map_err(|e| bad(at, &e.field, e.message))?;
    Ok(Call {
        chain,
        to,
        function,
        data,
        pin: pin_of(obj.get("block"), at)?,
    })
}

#[derive(Deserialize)]
struct Header {
    number: U64,
    hash: B256,
    timestamp: U64,
}

/// The block a request was read at.
#[derive(Debug, Clone, Copy)]
struct At {
    number: u64,
    hash: B256,
    timestamp: u64,
}

fn chain_error(e: ChainError) -> ApiError {
    ApiError::bad_gateway(e.to_string())
}

/// The block a pin names, read from the chain.
async fn resolve(pool: &EndpointPool, pin: &Pin) -> Result<At, ApiError> {
    let header: Option<Header> = match pin {
        Pin::Tag(t) => pool.call("eth_getBlockByNumber", json!([t, false])).await,
        Pin::Number(n) => {
            let n = format!("{n:#x}");
            pool.call("eth_getBlockByNumber", json!([n, false])).await
        }
        Pin::Hash(h) => pool.call("eth_getBlockByHash", json!([h, false])).await,
    }
    .map_err(chain_error)?;
    let h = header.ok_or_else(|| {
        ApiError::not_found("block", format!("the chain has no such block ({pin:?})"))
    })?;
    Ok(At {
        number: h.number.to::<u64>(),
        hash: h.hash,
        timestamp: h.timestamp.to::<u64>(),
    })
}

/// One call's answer from the node's.
fn result_of(
    state: &ApiState,
    call: &Call,
    answer: Result<Bytes, ChainError>,
    at: At,
) -> Result<CallResult, ApiError> {
    let mut r = CallResult {
        ok: false,
        outputs: None,
        error: None,
        revert_data: None,
        block_number: at.number,
        block_hash: format!("{:#x}", at.hash),
        block_timestamp: at.timestamp,
    };
    match answer {
        Ok(bytes) => match call.function.abi_decode_output(&bytes) {
            Ok(values) => {
                let mut out = Map::new();
                for (i, (v, p)) in values.iter().zip(&call.function.outputs).enumerate() {
                    let key = if p.name.is_empty() {
                        i.to_string()
                    } else {
                        p.name.clone()
                    };
                    out.insert(key, ethgate_core::decode::to_json(v, Some(p)));
                }
                r.ok = true;
                r.outputs = Some(out);
            }
            Err(e) => {
                r.error = Some(format!(
                    "the answer ({} bytes) does not decode as {}: {e}; is {:#x} that contract?",
                    bytes.len(),
                    call.function.signature(),
                    call.to
                ));
            }
        },
        Err(ChainError::Rpc { data, message, .. }) => {
            let chain = &state.chains[call.chain].name;
            let errors = state.abis.errors.get(&(chain.clone(), call.to));
            r.error = Some(match &data {
                Some(d) => ethgate_core::revert::describe(d, errors.map_or(&[], Vec::as_slice)),
                None => message,
            });
            r.revert_data = data.map(|d| d.to_string());
        }
        Err(e) => return Err(chain_error(e)),
    }
    Ok(r)
}

/// `POST /v1/calls`: one call or a batch, each read at one pinned block.
#[utoipa::path(post, path = "/v1/calls", operation_id = "call", tag = "chains", security(("bearer" = [])),
    summary = "Read contract state: one call or a batch, at one block (scope chain:read)",
    request_body = CallsBody,
    responses((status = 200, body = CallsAnswer, description = "the outputs, or the revert reason, with the block read at"),
        (status = 400, body = ErrorBody, description = "a bad call; `field` names it (calls[i].args[j] in a batch)"),
        (status = 401, body = ErrorBody, description = "missing or unknown token"),
        (status = 403, body = ErrorBody, description = "the token may not read this chain"),
        (status = 404, body = ErrorBody, description = "the chain has no such block"),
        (status = 502, body = ErrorBody, description = "no endpoint answered")))]
pub async fn calls(
    State(state): State<ApiState>,
    caller: Caller,
    body: Body,
) -> Result<Json<CallsAnswer>, ApiError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_param("body", format!("not JSON: {e}")))?;
    let batch = v.get("calls").is_some();
    let items: Vec<(&Value, String)> = if batch {
        if let Some(k) = v.as_object().and_then(|o| o.keys().find(|k| *k != "calls")) {
            return Err(ApiError::bad_param(
                k,
                "unknown field; a batch is {\"calls\": [...]}",
            ));
        }
        let list = v["calls"]
            .as_array()
            .filter(|l| !l.is_empty() && l.len() <= MAX_CALLS)
            .ok_or_else(|| {
                ApiError::bad_param(
                    "calls",
                    format!("must be an array of 1 to {MAX_CALLS} calls"),
                )
            })?;
        list.iter()
            .enumerate()
            .map(|(i, c)| (c, format!("calls[{i}].")))
            .collect()
    } else {
        vec![(&v, String::new())]
    };
    let mut calls = Vec::with_capacity(items.len());
    for (c, at) in &items {
        let call = parse_call(&state, c, at)?;
        caller.allow(Right::ReadChain(&state.chains[call.chain].name))?;
        calls.push(call);
    }
    let mut results: Vec<Option<CallResult>> = calls.iter().map(|_| None).collect();
    // One pinned block and one JSON-RPC batch per (chain, block).
    let mut groups: Vec<((usize, Pin), Vec<usize>)> = Vec::new();
    for (i, c) in calls.iter().enumerate() {
        let key = (c.chain, c.pin.clone());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    for ((chain, pin), members) in groups {
        let pool = &state.chains[chain].pool;
        let at = resolve(pool, &pin).await?;
        let rpc: Vec<(&str, Value)> = members
            .iter()
            .map(|&i| {
                let c = &calls[i];
                let tx = json!({"to": c.to, "data": c.data});
                ("eth_call", json!([tx, {"blockHash": at.hash}]))
            })
            .collect();
        let answers = pool.batch::<Bytes>(&rpc).await.map_err(chain_error)?;
        for (&i, answer) in members.iter().zip(answers) {
            results[i] = Some(result_of(&state, &calls[i], answer, at)?);
        }
    }
    let mut results: Vec<CallResult> = results.into_iter().flatten().collect();
    Ok(Json(if batch {
        CallsAnswer::Batch(CallResults { results })
    } else {
        CallsAnswer::One(results.remove(0))
    }))
}

/// An account's balance and nonce at a block.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AccountState {
    /// The `[[chains]]` name.
    pub chain: String,
    /// The account, 0x lowercase.
    pub address: String,
    /// Wei, decimal.
    pub balance: String,
    /// Transactions sent (the next nonce).
    pub nonce: u64,
    /// The block read at.
    pub block_number: u64,
    /// Its hash.
    pub block_hash: String,
    /// Its time, unix seconds.
    pub block_timestamp: u64,
}

/// The account route's query.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountQuery {
    /// `latest` (default), `safe`, `finalized`, a block number or a block
    /// hash.
    #[param(value_type = Option<String>, pattern = "^(latest|safe|finalized|[0-9]{1,18}|0x[0-9a-fA-F]{64})$")]
    pub block: Option<String>,
}

/// `GET /v1/chains/{chain}/accounts/{address}?block=`.
#[utoipa::path(get, path = "/v1/chains/{chain}/accounts/{address}", operation_id = "get_account_state", tag = "chains",
    security(("bearer" = [])),
    summary = "An account's balance and nonce at one block (scope chain:read)",
    params(("chain" = String, Path, description = "a [[chains]] name"),
        ("address" = String, Path, description = "an account", pattern = "^0x[0-9a-fA-F]{40}$"),
        AccountQuery),
    responses((status = 200, body = AccountState, description = "balance and nonce"),
        (status = 400, body = ErrorBody, description = "a bad address or block; `field` names it"),
        (status = 401, body = ErrorBody, description = "missing or unknown token"),
        (status = 403, body = ErrorBody, description = "the token may not read this chain"),
        (status = 404, body = ErrorBody, description = "no such chain, or the chain has no such block"),
        (status = 502, body = ErrorBody, description = "no endpoint answered")))]
pub async fn account(
    State(state): State<ApiState>,
    caller: Caller,
    Path((chain, address)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Json<AccountState>, ApiError> {
    caller.allow(Right::ReadChain(&chain))?;
    let c = state
        .chains
        .iter()
        .find(|c| c.name == chain)
        .ok_or_else(|| ApiError::not_found("chain", format!("no chain named {chain:?}")))?;
    let address: Address = address
        .parse()
        .map_err(|_| ApiError::bad_param("address", "is not a 0x address"))?;
    let p = params::parse(query.as_deref(), &["block"])?;
    let q = AccountQuery {
        block: p.get("block").cloned(),
    };
    let block = match q.block.as_deref() {
        Some(b) if !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) => b
            .parse::<u64>()
            .ok()
            .filter(|n| i64::try_from(*n).is_ok())
            .map(Value::from)
            .ok_or_else(|| ApiError::bad_param("block", "is past the largest block number"))?,
        Some(b) => Value::from(b),
        None => Value::Null,
    };
    let at = resolve(&c.pool, &pin_of(Some(&block), "")?).await?;
    let pinned = json!({"blockHash": at.hash});
    let rpc = [
        ("eth_getBalance", json!([address, pinned])),
        ("eth_getTransactionCount", json!([address, pinned])),
    ];
    let answers = c.pool.batch::<U256>(&rpc).await.map_err(chain_error)?;
    let mut it = answers.into_iter();
    let mut next = || -> Result<U256, ApiError> {
        match it.next() {
            Some(r) => r.map_err(chain_error),
            None => Err(ApiError::bad_gateway("the node's batch answer was short")),
        }
    };
    let (balance, nonce) = (next()?, next()?);
    Ok(Json(AccountState {
        chain,
        address: format!("{address:#x}"),
        balance: balance.to_string(),
        nonce: nonce.saturating_to::<u64>(),
        block_number: at.number,
        block_hash: format!("{:#x}", at.hash),
        block_timestamp: at.timestamp,
    }))
}
