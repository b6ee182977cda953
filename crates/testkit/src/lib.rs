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

/// A free TCP port on loopback (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
