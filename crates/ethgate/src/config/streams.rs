//! `[[streams]]` → [`StreamSpec`]: the chain, contracts, events (from
//! signatures and ABI files), confirmations and factory of each stream;
//! an ABI file's errors and functions are kept for decoding reverts and
//! naming calls.

use std::path::Path;

use alloy_json_abi::{Event, JsonAbi};
use alloy_primitives::Address;
use ethgate_core::{Confirmations, StreamSpec};

use super::ChainConfig;
use super::raw::RawStream;
use super::validate::{Issues, valid_name};

fn deep(issues: &mut Issues, key: String, signature: &str) -> bool {
    match ethgate_core::signature::check(signature) {
        Ok(()) => true,
        Err(e) => {
            let name = signature.split('(').next().unwrap_or(signature);
            issues.add(key, format!("{name}: the signature {e}"));
            false
        }
    }
}

fn confirmations(issues: &mut Issues, key: String, v: Option<toml::Value>) -> Confirmations {
    match v {
        None => Confirmations::Depth(0),
        Some(toml::Value::Integer(n)) if n >= 0 => Confirmations::Depth(n as u64),
        Some(toml::Value::String(s)) if s == "safe" => Confirmations::Safe,
        Some(toml::Value::String(s)) if s == "finalized" => Confirmations::Finalized,
        Some(other) => {
            issues.add(
                key,
                format!("{other} is not a block count, \"safe\" or \"finalized\""),
            );
            Confirmations::Depth(0)
        }
    }
}

pub(super) fn stream(
    issues: &mut Issues,
    i: usize,
    s: RawStream,
    chains: &[ChainConfig],
    base: &Path,
    abis: &mut ethgate_api::calls::KnownAbis,
) -> Option<StreamSpec> {
    let k = |f: &str| format!("streams[{i}].{f}");
    if !valid_name(&s.name) {
        issues.add(
            k("name"),
            format!("{:?} must be 1-64 letters, digits, '-', '_' or '.'", s.name),
        );
    }
    let chain = chains.iter().find(|c| c.name == s.chain);
    if chain.is_none() {
        let known: Vec<&str> = chains.iter().map(|c| c.name.as_str()).collect();
        issues.add(
            k("chain"),
            format!("unknown chain {:?}; configured chains: {known:?}", s.chain),
        );
    }
    let factory = s
        .factory
        .as_ref()
        .and_then(|f| super::factory::factory(issues, i, f));
    if s.addresses.is_empty() && s.factory.is_none() {
        issues.add(
            k("addresses"),
            "needs at least one contract address (or a `factory`)",
        );
    }
    let addresses = addresses(issues, i, &s.addresses);
    let mut events: Vec<Event> = Vec::new();
    if let Some(path) = &s.abi
        && let Some(abi) = abi_file(issues, k("abi"), &base.join(path))
    {
        for a in &addresses {
            remember(abis, &s.chain, *a, &abi);
        }
        events.extend(abi.events().cloned());
    }
    events.extend(signature_events(issues, i, &s.events));
    if s.abi.is_none() && s.events.is_empty() {
        issues.add(k("events"), "give `events` signatures and/or an `abi` file");
    }
    events.sort_by_key(Event::selector);
    events.dedup_by_key(|e| e.selector());
    let confirmations = confirmations(issues, k("confirmations"), s.confirmations);
    Some(StreamSpec {
        name: s.name,
        chain: s.chain,
        chain_id: chain?.chain_id,
        addresses,
        events,
        from_block: s.from_block.unwrap_or(0),
        confirmations,
        factory,
    })
}

fn addresses(issues: &mut Issues, i: usize, given: &[String]) -> Vec<Address> {
    let mut addresses = Vec::new();
    for (j, a) in given.iter().enumerate() {
        match a.parse::<Address>() {
            Ok(addr) => addresses.push(addr),
            Err(_) => issues.add(
                format!("streams[{i}].addresses[{j}]"),
                format!("{a:?} is not a 20-byte hex address"),
            ),
        }
    }
    addresses
}

/// An ABI file (a bare array or a compiler artifact with an `abi` field)
/// that declares events; signatures nested past the bounds are dropped
/// with an issue (they would overflow the stack when resolved, see
/// `ethgate_core::signature`).
fn abi_file(issues: &mut Issues, key: String, full: &Path) -> Option<JsonAbi> {
    let text = match std::fs::read_to_string(full) {
        Ok(text) => text,
        Err(e) => {
            issues.add(key, format!("cannot read {}: {e}", full.display()));
            return None;
        }
    };
    let parsed = serde_json::from_str::<JsonAbi>(&text).or_else(|_| {
        serde_json::from_str::<serde_json::Value>(&text)
            .and_then(|v| serde_json::from_value::<JsonAbi>(v["abi"].clone()))
    });
    let mut abi = match parsed {
        Ok(abi) => abi,
        Err(e) => {
            let message = format!("{} is not an ABI JSON: {e}", full.display());
            issues.add(key, message);
            return None;
        }
    };
    abi.events.retain(|_, list| {
        list.retain(|e| deep(issues, key.clone(), &e.signature()));
        !list.is_empty()
    });
    abi.errors.retain(|_, list| {
        list.retain(|e| deep(issues, key.clone(), &e.signature()));
        !list.is_empty()
    });
    if abi.events().next().is_none() {
        issues.add(key, format!("{} declares no events", full.display()));
    }
    Some(abi)
}

/// Keeps an ABI's errors (to decode reverts) and functions (to name
/// calls) for a contract.
fn remember(abis: &mut ethgate_api::calls::KnownAbis, chain: &str, at: Address, abi: &JsonAbi) {
    let known = abis.errors.entry((chain.to_owned(), at)).or_default();
    known.extend(abi.errors().cloned());
    known.sort_by_key(|e| e.selector());
    known.dedup_by_key(|e| e.selector());
    let functions = abis.functions.entry((chain.to_owned(), at)).or_default();
    functions.extend(
        abi.functions()
            .filter(|f| ethgate_core::signature::check(&f.signature()).is_ok())
            .cloned(),
    );
    functions.sort_by_key(|f| f.selector());
    functions.dedup_by_key(|f| f.selector());
}

/// The events of `events = [...]` signatures (`event` optional).
fn signature_events(issues: &mut Issues, i: usize, given: &[String]) -> Vec<Event> {
    let mut events = Vec::new();
    for (j, sig) in given.iter().enumerate() {
        let key = format!("streams[{i}].events[{j}]");
        let text = sig.trim();
        let text = if text.starts_with("event ") {
            text.to_owned()
        } else {
            format!("event {text}")
        };
        if let Err(e) = ethgate_core::signature::check(&text) {
            issues.add(key, e.to_string());
            continue;
        }
        match Event::parse(&text) {
            Ok(e) if e.anonymous => {
                issues.add(key, "anonymous events have no selector to filter on")
            }
            Ok(e) => events.push(e),
            Err(e) => issues.add(key, format!("{sig:?} is not an event signature: {e}")),
        }
    }
    events
}
