//! `[tx]`, `[[accounts]]` and `[[pools]]`: the transaction manager's
//! settings and the accounts it sends from. Keystores are opened here, so
//! `ethgate config check` reports a wrong password by the key that named
//! it — never the password or the key itself.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::Address;
use ethgate_keys::{LocalKey, Signer, keystore};
use ethgate_tx::Settings;
use ethgate_tx::fees::Caps;

use super::ChainConfig;
use super::raw::{RawAccount, RawPool, RawTx};
use super::sinks::secret;
use super::validate::{Issues, duration};

/// An account ethgate sends from, its key loaded.
#[derive(Clone)]
pub struct AccountConfig {
    /// Chain name.
    pub chain: String,
    /// The signer (Debug shows the address only).
    pub signer: Arc<dyn Signer>,
    /// Fee caps.
    pub caps: Caps,
}

impl std::fmt::Debug for AccountConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountConfig")
            .field("chain", &self.chain)
            .field("address", &self.signer.address())
            .finish_non_exhaustive()
    }
}

/// The transaction manager's part of the config.
#[derive(Debug, Clone, Default)]
pub struct TxConfig {
    /// Sender settings.
    pub settings: Settings,
    /// Accounts.
    pub accounts: Vec<AccountConfig>,
    /// Pools: name → first member addresses.
    pub pools: HashMap<String, Vec<Address>>,
    /// Pools with their funding and rotation settings.
    pub pool_configs: Vec<ethgate_accounts::PoolSettings>,
    /// Custom errors by contract, from the streams' ABI files: a request
    /// to one of those contracts that reverts is rejected with the error
    /// named and its arguments decoded.
    pub contract_errors: ethgate_tx::ContractErrors,
}

/// Wei from `"200 gwei"`, `"3 wei"`, `"0.5 gwei"` or a bare integer (wei).
pub(super) fn wei(text: &str) -> Result<u128, String> {
    let t = text.trim().to_ascii_lowercase();
    let (num, unit) = match t.split_once(' ') {
        Some((n, u)) => (n.trim(), u.trim()),
        None => (t.as_str(), "wei"),
    };
    let scale: u128 = match unit {
        "wei" => 1,
        "gwei" => 1_000_000_000,
        "ether" | "eth" => 1_000_000_000_000_000_000,
        other => return Err(format!("unknown unit {other:?}; use wei, gwei or ether")),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let bad = || format!("{text:?} is not an amount like \"200 gwei\"");
    let int: u128 = int.parse().map_err(|_| bad())?;
    let mut value = int.checked_mul(scale).ok_or_else(bad)?;
    if !frac.is_empty() {
        let digits = frac.len() as u32;
        let f: u128 = frac.parse().map_err(|_| bad())?;
        let div = 10u128.checked_pow(digits).ok_or_else(bad)?;
        value += f.checked_mul(scale).ok_or_else(bad)? / div;
    }
    Ok(value)
}

/// An optional amount of wei (see [`wei`]); a bad one is an issue at `key`.
pub(super) fn amount(issues: &mut Issues, key: String, v: Option<&str>) -> Option<u128> {
    let v = v?;
    match wei(v) {
        Ok(w) => Some(w),
        Err(e) => {
            issues.add(key, e);
            None
        }
    }
}

fn settings(issues: &mut Issues, t: &RawTx) -> Settings {
    let d = Settings::default();
    let secs = |issues: &mut Issues, k: &str, v: Option<&str>, def: u64| {
        duration(issues, format!("tx.{k}"), v, Duration::from_secs(def))
            .as_secs()
            .max(1)
    };
    let max_in_flight = t.max_in_flight.unwrap_or(d.max_in_flight);
    if !(1..=10_000).contains(&max_in_flight) {
        issues.add("tx.max_in_flight", "must be between 1 and 10000");
    }
    let margin = t.gas_margin.unwrap_or(1.2);
    if !(1.0..=5.0).contains(&margin) {
        issues.add("tx.gas_margin", "must be between 1.0 and 5.0");
    }
    Settings {
        resubmit_after: secs(
            issues,
            "resubmit_after",
            t.resubmit_after.as_deref(),
            d.resubmit_after,
        ),
        bump_after: secs(issues, "bump_after", t.bump_after.as_deref(), d.bump_after),
        stall_after: secs(
            issues,
            "stall_after",
            t.stall_after.as_deref(),
            d.stall_after,
        ),
        max_in_flight: max_in_flight.clamp(1, 10_000),
        gas_margin_percent: (margin * 100.0).round() as u64,
        min_tip: amount(
            issues,
            "tx.min_priority_fee".into(),
            t.min_priority_fee.as_deref(),
        )
        .unwrap_or(d.min_tip),
        poll: duration(
            issues,
            "tx.poll_interval".into(),
            t.poll_interval.as_deref(),
            d.poll,
        ),
        finality_depth: t.finality_depth.unwrap_or(d.finality_depth),
        default_confirmations: t.confirmations.unwrap_or(d.default_confirmations),
    }
}

fn account(
    issues: &mut Issues,
    i: usize,
    a: RawAccount,
    allow_dev: bool,
    chains: &[ChainConfig],
    base: &Path,
) -> Option<AccountConfig> {
    let k = |f: &str| format!("accounts[{i}].{f}");
    if !chains.iter().any(|c| c.name == a.chain) {
        issues.add(
            k("chain"),
            format!("no [[chains]] entry is named {:?}", a.chain),
        );
    }
    let caps = Caps {
        max_fee: amount(issues, k("max_fee_per_gas"), a.max_fee_per_gas.as_deref()),
        max_priority_fee: amount(
            issues,
            k("max_priority_fee_per_gas"),
            a.max_priority_fee_per_gas.as_deref(),
        ),
    };
    let kinds = [
        a.keystore.is_some(),
        a.dev_key_env.is_some(),
        a.signer_url.is_some(),
        a.kms_key_id.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        issues.add(
            k("keystore"),
            "give exactly one of keystore, dev_key_env, signer_url or kms_key_id",
        );
        return None;
    }
    if a.signer_url.is_some() || a.kms_key_id.is_some() {
        let signer = super::remote_signers::remote(issues, i, &a)?;
        return Some(AccountConfig {
            chain: a.chain,
            signer,
            caps,
        });
    }
    let signer: Arc<dyn Signer> = Arc::new(local_key(issues, i, &a, allow_dev, base)?);
    Some(AccountConfig {
        chain: a.chain,
        signer,
        caps,
    })
}

/// The key of a keystore or dev-key account: a keystore opened with its
/// password, or a raw key from the environment where dev keys are allowed.
fn local_key(
    issues: &mut Issues,
    i: usize,
    a: &RawAccount,
    allow_dev: bool,
    base: &Path,
) -> Option<LocalKey> {
    let k = |f: &str| format!("accounts[{i}].{f}");
    match (&a.keystore, &a.dev_key_env) {
        (Some(file), None) => {
            let password = secret(
                issues,
                |f| k(&format!("password{f}")),
                a.password_env.as_deref(),
                a.password_file.as_deref(),
                "password",
                base,
            )?;
            keystore::open(&base.join(file), &password)
                .map_err(|e| issues.add(k("keystore"), e.to_string()))
                .ok()
        }
        (None, Some(var)) => {
            if !allow_dev {
                issues.add(
                    k("dev_key_env"),
                    "raw keys are for anvil only: set tx.allow_dev_keys = true to use one",
                );
                return None;
            }
            let Some(hex) = std::env::var(var).ok().filter(|v| !v.is_empty()) else {
                issues.add(
                    k("dev_key_env"),
                    format!("environment variable {var} is not set or empty"),
                );
                return None;
            };
            LocalKey::dev(&hex, var)
                .map_err(|e| issues.add(k("dev_key_env"), e.to_string()))
                .ok()
        }
        _ => {
            issues.add(k("keystore"), "give exactly one of keystore or dev_key_env");
            None
        }
    }
}

/// Validates the transaction manager's sections.
pub(super) fn tx_config(
    issues: &mut Issues,
    t: RawTx,
    raw_accounts: Vec<RawAccount>,
    raw_pools: Vec<RawPool>,
    chains: &[ChainConfig],
    base: &Path,
) -> TxConfig {
    let settings = settings(issues, &t);
    let mut accounts: Vec<AccountConfig> = Vec::new();
    for (i, a) in raw_accounts.into_iter().enumerate() {
        if let Some(a) = account(issues, i, a, t.allow_dev_keys, chains, base) {
            let address = a.signer.address();
            if accounts
                .iter()
                .any(|o| o.chain == a.chain && o.signer.address() == address)
            {
                issues.add(
                    format!("accounts[{i}]"),
                    format!("{address:#x} is configured twice on {}", a.chain),
                );
            }
            accounts.push(a);
        }
    }
    let pool_configs = super::pools::pools(issues, raw_pools, &accounts, base);
    let pools = pool_configs
        .iter()
        .map(|p| (p.name.clone(), p.initial.clone()))
        .collect();
    TxConfig {
        settings,
        accounts,
        pools,
        pool_configs,
        contract_errors: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::raw::RawTx;
    use super::super::validate::Issues;
    use super::{settings, wei};

    #[test]
    fn stall_after_is_read_defaulted_and_a_bad_one_named() {
        let tx = |stall: Option<&str>| RawTx {
            stall_after: stall.map(str::to_owned),
            ..RawTx::default()
        };
        let mut issues = Issues(Vec::new());
        assert_eq!(settings(&mut issues, &tx(Some("2s"))).stall_after, 2);
        assert_eq!(settings(&mut issues, &tx(None)).stall_after, 3);
        assert!(issues.0.is_empty());
        settings(&mut issues, &tx(Some("soon")));
        assert_eq!(issues.0.len(), 1);
        assert_eq!(issues.0[0].key, "tx.stall_after");
    }

    #[test]
    fn amounts_with_units() {
        assert_eq!(wei("200 gwei"), Ok(200_000_000_000));
        assert_eq!(wei("0.5 gwei"), Ok(500_000_000));
        assert_eq!(wei("7"), Ok(7));
        assert_eq!(wei("1 ether"), Ok(1_000_000_000_000_000_000));
        assert!(wei("12 furlongs").is_err());
        assert!(wei("abc gwei").is_err());
    }
}
