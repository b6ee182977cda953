//! A transaction request as the API receives it, validated into the form
//! the sender works from. Every error names the field; nothing is stored
//! until the whole request is valid.

use alloy_dyn_abi::{DynSolType, DynSolValue, JsonAbiExt};
use alloy_json_abi::Function;
use alloy_primitives::{Address, Bytes, U256};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A request refused at intake: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The offending field.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

pub(crate) fn bad(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// How urgently a transaction should be mined: the priority-fee percentile
/// of recent blocks it pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Speed {
    /// 10th percentile tip.
    Slow,
    /// Median tip.
    Normal,
    /// 90th percentile tip.
    Fast,
}

/// A validated request, stored as JSON with the transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxRequest {
    /// Chain name from the config.
    pub chain: String,
    /// Sending account.
    pub from: Address,
    /// Called contract or recipient.
    pub to: Address,
    /// Calldata.
    pub data: Bytes,
    /// Wei sent.
    pub value: U256,
    /// Fixed gas limit; `None`: estimate × margin.
    pub gas_limit: Option<u64>,
    /// Fee urgency.
    pub speed: Speed,
    /// Cap on max fee per gas (wei) for this request.
    pub max_fee_per_gas: Option<u128>,
    /// Cap on the priority fee per gas (wei) for this request.
    pub max_priority_fee_per_gas: Option<u128>,
    /// Unix seconds after which it is cancelled as `expired`.
    pub valid_until: Option<u64>,
    /// Depth for `confirmed`.
    pub confirmations: u64,
    /// Caller's data, echoed back.
    pub metadata: Value,
    /// The caller's idempotency key.
    pub idempotency_key: String,
    /// Custom errors the called contract may revert with, as signatures
    /// (`"TooEarly(uint256 billingId, uint64 nextChargeAt)"`), so a
    /// rejection names the error and its arguments rather than showing
    /// hex. (Absent in requests stored before the field existed.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl TxRequest {
    /// The custom errors this request's call may revert with (signatures
    /// were checked at intake; one that no longer parses is skipped).
    pub fn known_errors(&self) -> Vec<alloy_json_abi::Error> {
        // A stored request is measured again before anything parses it:
        // one stored before intake bounded signatures must not take the
        // sender down (see `ethgate_core::signature`).
        self.errors
            .iter()
            .filter(|e| ethgate_core::signature::check(e).is_ok())
            .filter_map(|e| alloy_json_abi::Error::parse(e).ok())
            .collect()
    }
}

/// What intake needs from the configuration to validate a request.
pub trait Resolve {
    /// Whether a chain of that name is configured.
    fn has_chain(&self, chain: &str) -> bool;
    /// The account a `from` names on that chain (an address of a
    /// configured account, or a pool name resolved to its least-loaded
    /// account); `Err` explains why not.
    fn account(&self, chain: &str, from: &str) -> Result<Address, String>;
}

fn string<'a>(
    body: &'a serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, FieldError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(bad(field, "must be a string")),
    }
}

/// A non-negative integer given as a JSON number or a decimal/`0x` string.
fn uint(body: &serde_json::Map<String, Value>, field: &str) -> Result<Option<U256>, FieldError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|v| Some(U256::from(v)))
            .ok_or_else(|| bad(field, "must be a non-negative integer")),
        Some(Value::String(s)) => s
            .parse::<U256>()
            .map(Some)
            .map_err(|_| bad(field, "must be a non-negative integer (decimal or 0x hex)")),
        Some(_) => Err(bad(field, "must be an integer or a string of one")),
    }
}

fn small<T: TryFrom<U256>>(v: Option<U256>, field: &str) -> Result<Option<T>, FieldError> {
    v.map(|v| T::try_from(v).map_err(|_| bad(field, "is too large")))
        .transpose()
}

const FIELDS: &[&str] = &[
    "chain",
    "from",
    "to",
    "data",
    "function",
    "args",
    "value",
    "gas_limit",
    "speed",
    "max_fee_per_gas",
    "max_priority_fee_per_gas",
    "valid_until",
    "confirmations",
    "metadata",
    "idempotency_key",
    "errors",
];

/// Custom error signatures a request may carry.
const MAX_ERRORS: usize = 64;

/// Validates a request body. `default_confirmations` applies when the body
/// gives none.
pub fn parse(
    body: &Value,
    resolve: &dyn Resolve,
    default_confirmations: u64,
) -> Result<TxRequest, FieldError> {
    let Some(obj) = body.as_object() else {
        return Err(bad("body", "expected a JSON object"));
    };
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(bad(k, "unknown field"));
    }
    let key =
        string(obj, "idempotency_key")?.ok_or_else(|| bad("idempotency_key", "is required"))?;
    check_key(key)?;
    let chain = string(obj, "chain")?.ok_or_else(|| bad("chain", "is required"))?;
    check_chain(resolve, chain)?;
    let from_s = string(obj, "from")?.ok_or_else(|| bad("from", "is required"))?;
    let from = resolve.account(chain, from_s).map_err(|m| bad("from", m))?;
    let to: Address = string(obj, "to")?
        .ok_or_else(|| bad("to", "is required"))?
        .parse()
        .map_err(|_| bad("to", "is not a 20-byte hex address"))?;
    let data = match (string(obj, "data")?, string(obj, "function")?) {
        (Some(_), Some(_)) => return Err(bad("data", "give data or function, not both")),
        (Some(d), None) => {
            if obj.contains_key("args") {
                return Err(bad("args", "args go with function, not data"));
            }
            d.parse::<Bytes>()
                .map_err(|_| bad("data", "is not 0x-prefixed hex"))?
        }
        (None, Some(f)) => encode_call(f, obj.get("args"))?,
        (None, None) => Bytes::new(),
    };
    let value = uint(obj, "value")?.unwrap_or(U256::ZERO);
    let gas_limit: Option<u64> = small(uint(obj, "gas_limit")?, "gas_limit")?;
    check_gas_limit(gas_limit)?;
    let speed = match string(obj, "speed")?.unwrap_or("normal") {
        "slow" => Speed::Slow,
        "normal" => Speed::Normal,
        "fast" => Speed::Fast,
        other => {
            return Err(bad(
                "speed",
                format!("{other:?} is not slow, normal or fast"),
            ));
        }
    };
    let max_fee_per_gas = small(uint(obj, "max_fee_per_gas")?, "max_fee_per_gas")?;
    let max_priority_fee_per_gas = small(
        uint(obj, "max_priority_fee_per_gas")?,
        "max_priority_fee_per_gas",
    )?;
    check_tip(max_fee_per_gas, max_priority_fee_per_gas)?;
    let valid_until = small(uint(obj, "valid_until")?, "valid_until")?;
    let confirmations =
        small(uint(obj, "confirmations")?, "confirmations")?.unwrap_or(default_confirmations);
    check_confirmations(confirmations)?;
    let metadata = obj.get("metadata").cloned().unwrap_or(Value::Null);
    check_metadata(&metadata)?;
    let errors = error_signatures(obj.get("errors"))?;
    Ok(TxRequest {
        chain: chain.to_owned(),
        from,
        to,
        data,
        value,
        gas_limit,
        speed,
        max_fee_per_gas,
        max_priority_fee_per_gas,
        valid_until,
        confirmations,
        metadata,
        idempotency_key: key.to_owned(),
        errors,
    })
}

/// Validates `errors`: custom error signatures, kept as given (with any
/// parameter names, which a rejection reason shows).
fn error_signatures(errors: Option<&Value>) -> Result<Vec<String>, FieldError> {
    let list = match errors {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(bad("errors", "must be an array of error signatures")),
    };
    if list.len() > MAX_ERRORS {
        return Err(bad("errors", format!("at most {MAX_ERRORS} signatures")));
    }
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let field = format!("errors[{i}]");
            let text = v.as_str().ok_or_else(|| bad(&field, "must be a string"))?;
            error_signature(&field, text)
        })
        .collect()
}

/// One custom error signature (`error` optional), as kept.
fn error_signature(field: &str, text: &str) -> Result<String, FieldError> {
    let text = text.trim();
    let text = text.strip_prefix("error ").unwrap_or(text);
    ethgate_core::signature::check(text).map_err(|e| bad(field, e.to_string()))?;
    alloy_json_abi::Error::parse(text)
        .map_err(|e| bad(field, format!("not an error signature: {e}")))?;
    Ok(text.to_owned())
}

/// Checks a request built in this process (not parsed from a body) by
/// the rules [`parse`] applies: the same fields refused for the same
/// reasons, and `from` a configured account on the chain.
pub(crate) fn check(req: &TxRequest, resolve: &dyn Resolve) -> Result<(), FieldError> {
    check_key(&req.idempotency_key)?;
    check_chain(resolve, &req.chain)?;
    resolve
        .account(&req.chain, &format!("{:#x}", req.from))
        .map_err(|m| bad("from", m))?;
    check_gas_limit(req.gas_limit)?;
    check_tip(req.max_fee_per_gas, req.max_priority_fee_per_gas)?;
    check_confirmations(req.confirmations)?;
    check_metadata(&req.metadata)?;
    if req.errors.len() > MAX_ERRORS {
        return Err(bad("errors", format!("at most {MAX_ERRORS} signatures")));
    }
    for (i, text) in req.errors.iter().enumerate() {
        error_signature(&format!("errors[{i}]"), text)?;
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), FieldError> {
    if key.is_empty() || key.len() > 200 {
        return Err(bad("idempotency_key", "must be 1-200 characters"));
    }
    Ok(())
}

fn check_chain(resolve: &dyn Resolve, chain: &str) -> Result<(), FieldError> {
    if !resolve.has_chain(chain) {
        let message = format!("no chain named {chain:?} is configured");
        return Err(bad("chain", message));
    }
    Ok(())
}

fn check_gas_limit(gas_limit: Option<u64>) -> Result<(), FieldError> {
    if gas_limit.is_some_and(|g| g < 21_000) {
        return Err(bad("gas_limit", "must be at least 21000"));
    }
    Ok(())
}

fn check_tip(fee: Option<u128>, tip: Option<u128>) -> Result<(), FieldError> {
    if let (Some(fee), Some(tip)) = (fee, tip)
        && tip > fee
    {
        return Err(bad(
            "max_priority_fee_per_gas",
            "must not exceed max_fee_per_gas",
        ));
    }
    Ok(())
}

fn check_confirmations(confirmations: u64) -> Result<(), FieldError> {
    if confirmations > 1_000 {
        return Err(bad("confirmations", "must be at most 1000"));
    }
    Ok(())
}

fn check_metadata(metadata: &Value) -> Result<(), FieldError> {
    if serde_json::to_string(metadata).map_or(0, |s| s.len()) > 16 * 1024 {
        return Err(bad("metadata", "must be at most 16 KiB of JSON"));
    }
    Ok(())
}

/// ABI-encodes `function` (e.g. `"charge(uint256)"`) with JSON `args`.
fn encode_call(signature: &str, args: Option<&Value>) -> Result<Bytes, FieldError> {
    ethgate_core::signature::check(signature).map_err(|e| bad("function", e.to_string()))?;
    let f = Function::parse(signature)
        .map_err(|e| bad("function", format!("not a function signature: {e}")))?;
    encode_args(&f, args)
}

/// The calldata of `f` with `args` (a JSON array; numbers as JSON numbers
/// or decimal/0x strings), or the field at fault: `args`, `args[i]`.
pub fn encode_args(f: &Function, args: Option<&Value>) -> Result<Bytes, FieldError> {
    let args = match args {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(bad("args", "must be an array")),
    };
    if args.len() != f.inputs.len() {
        return Err(bad(
            "args",
            format!(
                "{} takes {} arguments, got {}",
                f.signature(),
                f.inputs.len(),
                args.len()
            ),
        ));
    }
    let mut values = Vec::with_capacity(args.len());
    for (i, (param, arg)) in f.inputs.iter().zip(&args).enumerate() {
        let field = format!("args[{i}]");
        let ty: DynSolType = param
            .selector_type()
            .parse()
            .map_err(|e| bad("function", format!("parameter {i}: {e}")))?;
        let text = match arg {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => other.to_string(),
        };
        let v: DynSolValue = ty
            .coerce_str(&text)
            .map_err(|e| bad(&field, format!("not a {}: {e}", param.selector_type())))?;
        values.push(v);
    }
    f.abi_encode_input(&values)
        .map(Bytes::from)
        .map_err(|e| bad("args", e.to_string()))
}

/// Hash of a request body, to tell a retry (same body) from a different
/// request reusing an idempotency key.
pub fn body_hash(body: &Value) -> String {
    hex::encode(Sha256::digest(body.to_string().as_bytes()))
}
