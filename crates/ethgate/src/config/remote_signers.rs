//! `[[accounts]]` whose key lives elsewhere: a JSON-RPC signer
//! (`signer_url`) or an AWS KMS key (`kms_key_id`). Both need the
//! account's `address`; every signature is checked against it. AWS
//! credentials come from environment variables and are never shown.

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::Address;
use ethgate_keys::kms::KmsConfig;
use ethgate_keys::{KmsSigner, RemoteSigner, Signer};

use super::raw::RawAccount;
use super::validate::Issues;

/// How long one remote signature may take.
const SIGN_TIMEOUT: Duration = Duration::from_secs(10);

fn env(issues: &mut Issues, key: String, var: &str) -> Option<String> {
    let v = std::env::var(var).ok().filter(|v| !v.is_empty());
    if v.is_none() {
        issues.add(
            key,
            format!("environment variable {var} is not set or empty"),
        );
    }
    v
}

/// The signer of a remote or KMS account.
pub(super) fn remote(issues: &mut Issues, i: usize, a: &RawAccount) -> Option<Arc<dyn Signer>> {
    let k = |f: &str| format!("accounts[{i}].{f}");
    let address: Address = match a.address.as_deref().map(str::parse) {
        Some(Ok(addr)) => addr,
        Some(Err(_)) => {
            issues.add(k("address"), "is not an address");
            return None;
        }
        None => {
            issues.add(k("address"), "is required with signer_url or kms_key_id");
            return None;
        }
    };
    if let Some(url) = &a.signer_url {
        return match RemoteSigner::new(url, address, SIGN_TIMEOUT) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                issues.add(k("signer_url"), e.to_string());
                None
            }
        };
    }
    let key_id = a.kms_key_id.clone()?;
    let Some(region) = a.kms_region.clone() else {
        issues.add(k("kms_region"), "is required with kms_key_id");
        return None;
    };
    let id_var = a
        .aws_access_key_id_env
        .as_deref()
        .unwrap_or("AWS_ACCESS_KEY_ID");
    let secret_var = a
        .aws_secret_access_key_env
        .as_deref()
        .unwrap_or("AWS_SECRET_ACCESS_KEY");
    let access_key_id = env(issues, k("aws_access_key_id_env"), id_var);
    let secret_access_key = env(issues, k("aws_secret_access_key_env"), secret_var);
    let session_token = match a.aws_session_token_env.as_deref() {
        Some(var) => Some(env(issues, k("aws_session_token_env"), var)?),
        None => None,
    };
    let config = KmsConfig {
        endpoint: a
            .kms_endpoint
            .clone()
            .unwrap_or_else(|| format!("https://kms.{region}.amazonaws.com")),
        region,
        key_id,
        access_key_id: access_key_id?,
        secret_access_key: secret_access_key?,
        session_token,
    };
    match KmsSigner::with_address(config, address, SIGN_TIMEOUT) {
        Ok(s) => Some(Arc::new(s)),
        Err(e) => {
            issues.add(k("kms_endpoint"), e.to_string());
            None
        }
    }
}
