//! `[[pools]]`: named sets of operational accounts, with what keeps them
//! funded (a funding account, a minimum balance, a top-up and its daily
//! cap) and what rotates them (an OperatorRegistry, its master, and where
//! new members' keystores go). Errors name the field; the keystore
//! password is read here and never shown.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use alloy_primitives::Address;
use ethgate_accounts::{Master, PoolSettings};

use super::accounts::{AccountConfig, amount};
use super::raw::RawPool;
use super::sinks::secret;
use super::validate::{Issues, duration, valid_name};

/// Validates `[[pools]]` against the accounts already validated.
pub(super) fn pools(
    issues: &mut Issues,
    raw: Vec<RawPool>,
    accounts: &[AccountConfig],
    base: &Path,
) -> Vec<PoolSettings> {
    let mut out: Vec<PoolSettings> = Vec::new();
    let mut seen = HashMap::new();
    for (i, p) in raw.into_iter().enumerate() {
        let k = |f: &str| format!("pools[{i}].{f}");
        if !valid_name(&p.name) || p.name.starts_with("0x") {
            issues.add(
                k("name"),
                format!(
                    "{:?} must be 1-64 letters, digits, '-', '_' or '.', not starting with 0x",
                    p.name
                ),
            );
        }
        if seen.insert(p.name.clone(), i).is_some() {
            issues.add(k("name"), format!("{:?} is configured twice", p.name));
        }
        out.extend(pool(issues, i, p, accounts, base));
    }
    out
}

/// The configured account with that address.
fn account<'a>(accounts: &'a [AccountConfig], a: &str) -> Result<&'a AccountConfig, String> {
    let addr: Address = a.parse().map_err(|_| "is not an address".to_owned())?;
    accounts
        .iter()
        .find(|c| c.signer.address() == addr)
        .ok_or_else(|| format!("{addr:#x} is not in [[accounts]]"))
}

fn pool(
    issues: &mut Issues,
    i: usize,
    p: RawPool,
    accounts: &[AccountConfig],
    base: &Path,
) -> Option<PoolSettings> {
    let k = |f: &str| format!("pools[{i}].{f}");
    let mut initial = Vec::new();
    let mut chain = p.chain.clone();
    for (j, a) in p.accounts.iter().enumerate() {
        match account(accounts, a) {
            Ok(c) => {
                initial.push(c.signer.address());
                chain.get_or_insert_with(|| c.chain.clone());
            }
            Err(e) => issues.add(format!("pools[{i}].accounts[{j}]"), e),
        }
    }
    let Some(chain) = chain else {
        issues.add(k("chain"), "required when the pool lists no accounts");
        return None;
    };
    let mut on_chain = |field: &str, v: Option<&str>| -> Option<Address> {
        match account(accounts, v?) {
            Ok(c) if c.chain == chain => Some(c.signer.address()),
            Ok(c) => {
                let message = format!("is an account on {}, not on {chain}", c.chain);
                issues.add(k(field), message);
                None
            }
            Err(e) => {
                issues.add(k(field), e);
                None
            }
        }
    };
    let funding = on_chain("funding", p.funding.as_deref());
    let master = match p.master.as_deref() {
        None => None,
        Some("external") => Some(Master::External),
        Some(m) => on_chain("master", Some(m)).map(Master::Account),
    };
    let registry = p.registry.as_deref().and_then(|r| match r.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            issues.add(k("registry"), "is not an address");
            None
        }
    });
    if p.master.is_some() != p.registry.is_some() {
        issues.add(k("registry"), "registry and master go together");
    }
    let (min_balance, top_up, daily_cap) = amounts(issues, i, &p);
    let (keystore_dir, password) = keystores(issues, i, &p, base);
    let interval = duration(
        issues,
        k("balance_interval"),
        p.balance_interval.as_deref(),
        Duration::from_secs(15),
    );
    Some(PoolSettings {
        name: p.name,
        chain,
        initial,
        keystore_dir,
        password,
        funding,
        min_balance,
        top_up,
        daily_cap,
        interval,
        registry,
        master,
    })
}

/// `min_balance`, `top_up` and `daily_top_up_cap`, in wei, checked
/// against each other.
fn amounts(
    issues: &mut Issues,
    i: usize,
    p: &RawPool,
) -> (Option<u128>, Option<u128>, Option<u128>) {
    let k = |f: &str| format!("pools[{i}].{f}");
    let min_balance = amount(issues, k("min_balance"), p.min_balance.as_deref());
    let top_up = amount(issues, k("top_up"), p.top_up.as_deref());
    let daily_cap = amount(issues, k("daily_top_up_cap"), p.daily_top_up_cap.as_deref());
    if min_balance.is_some() && (top_up.is_none() || p.funding.is_none()) {
        issues.add(k("min_balance"), "needs top_up and funding to act on it");
    }
    if top_up == Some(0) {
        issues.add(k("top_up"), "must be more than 0");
    }
    if let (Some(t), Some(c)) = (top_up, daily_cap)
        && c < t
    {
        issues.add(k("daily_top_up_cap"), "is less than one top_up");
    }
    (min_balance, top_up, daily_cap)
}

/// Where rotation writes new members' keystores, and their password.
fn keystores(
    issues: &mut Issues,
    i: usize,
    p: &RawPool,
    base: &Path,
) -> (Option<std::path::PathBuf>, Option<String>) {
    let k = |f: &str| format!("pools[{i}].{f}");
    let given = p.password_env.is_some() || p.password_file.is_some();
    let password = if given {
        secret(
            issues,
            |f| k(&format!("password{f}")),
            p.password_env.as_deref(),
            p.password_file.as_deref(),
            "password",
            base,
        )
    } else {
        None
    };
    let keystore_dir = p.keystore_dir.as_deref().map(|d| base.join(d));
    if keystore_dir.is_some() && !given {
        issues.add(k("keystore_dir"), "needs password_env or password_file");
    }
    (keystore_dir, password)
}
