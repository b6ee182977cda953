//! What the transaction manager's tests share: a store in a temporary
//! directory, an endpoint pool for one node, and accounts on anvil's dev
//! keys (account 0 deploys, so senders start at account 1).

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::Address;
use ethgate_chain::{EndpointPool, PoolConfig};
use ethgate_keys::{LocalKey, Signer};
use ethgate_store::Store;
use ethgate_testkit::DEV_KEYS;
use ethgate_tx::Account;
use ethgate_tx::fees::Caps;

/// The dev key of sender `i` (0-based; anvil's account `i + 1`).
pub fn key(i: usize) -> &'static str {
    DEV_KEYS[i + 1]
}

/// The SQLite database of the store in `dir`.
pub fn db_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}/tx.db", dir.path().display())
}

/// A SQLite store in `dir`.
pub async fn store(dir: &tempfile::TempDir) -> Store {
    Store::connect(&db_url(dir)).await.expect("store")
}

/// The chain "anvil" served by `urls` (anvil itself, or proxies before
/// it), in order of preference.
pub fn pool_of(urls: &[&str]) -> Arc<EndpointPool> {
    Arc::new(
        EndpointPool::new(PoolConfig {
            chain: "anvil".into(),
            urls: urls.iter().map(|u| (*u).to_owned()).collect(),
            request_timeout: Duration::from_secs(10),
            max_rounds: 3,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            chain_id: None,
        })
        .expect("pool"),
    )
}

/// `n` accounts on the dev keys from account 1, with their addresses.
pub fn accounts(
    pool: &Arc<EndpointPool>,
    n: usize,
    caps: Caps,
    legacy: bool,
) -> (Vec<Account>, Vec<Address>) {
    (0..n)
        .map(|i| {
            let signer = Arc::new(LocalKey::dev(key(i), "test key").expect("key"));
            let address = signer.address();
            let account = Account {
                chain: "anvil".into(),
                chain_id: 31337,
                signer,
                pool: pool.clone(),
                caps,
                legacy,
            };
            (account, address)
        })
        .unzip()
}
