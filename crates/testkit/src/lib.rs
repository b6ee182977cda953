//! Test support: real peers for ethgate's tests, never mocks.
//!
//! [`Anvil`] runs a fresh anvil per test on a free port and drives it
//! (deploy, emit, mine, reorg, roll back) over plain JSON-RPC with its
//! unlocked accounts. [`EVENT_SOURCE`] is the compiled contract from
//! `contracts/`. [`proxy::Proxy`] is a real HTTP server in front of anvil
//! that injects endpoint faults (500s, 429s, timeouts, "too many results").
//! [`KmsEmulator`] is a local AWS KMS for the KMS signer.

pub mod anvil;
pub mod kms;
pub mod proxy;
pub mod truth;

pub use anvil::{Anvil, DEV_ACCOUNT, DEV_KEYS, EVENT_SOURCE, tool};
pub use kms::KmsEmulator;
pub use proxy::{Fault, Proxy};
pub use truth::{apply, assert_equals_truth, outbox};

/// The store URL for a gateway run in `dir`: its default SQLite file
/// (`dir/data/ethgate.db`), or, when `ETHGATE_TEST_STORE` names
/// PostgreSQL, a fresh schema there — so an end-to-end suite runs on
/// either backend by one environment variable.
pub async fn store_url(dir: &std::path::Path) -> String {
    let scratch = ethgate_store::scratch::Scratch::from_env().await;
    match scratch.backend() {
        // The schema outlives the handle; the SQLite scratch's own
        // directory would not, so the file goes in `dir`.
        ethgate_store::Backend::Postgres => scratch.url().to_owned(),
        ethgate_store::Backend::Sqlite => format!("sqlite://{}/data/ethgate.db", dir.display()),
    }
}

/// A free TCP port on loopback (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
