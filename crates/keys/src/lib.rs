//! Signers: the only part of ethgate that touches private keys.
//!
//! Every backend implements one small [`Signer`] trait — an address, and
//! "sign this transaction" returning the raw bytes and hash — so the
//! transaction manager never sees a key. This crate has the encrypted
//! keystore (Web3 Secret Storage v3, the files `cast wallet new` and `cast
//! wallet import` write), a remote JSON-RPC signer (`eth_signTransaction`:
//! Web3Signer, Clef, a node's unlocked accounts), AWS KMS (secp256k1 keys;
//! any KMS-compatible endpoint), and, for anvil only, a raw key that the
//! config accepts only behind an explicit dev flag. Whatever a remote
//! backend returns is decoded and checked against the request before use.
//!
//! No error, log line or `Debug` output of this crate contains a key or a
//! password: errors name the file and what went wrong, never the secret.

pub mod keystore;
pub mod kms;
pub mod remote;
mod verify;

pub use kms::KmsSigner;
pub use remote::RemoteSigner;

use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256};
use alloy_signer_local::PrivateKeySigner;
use futures::future::BoxFuture;

/// Why a key could not be loaded or used. Never carries secret material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A keystore file could not be read, decrypted or written.
    #[error("keystore {path}: {reason}")]
    Keystore {
        /// The file or directory.
        path: String,
        /// What went wrong (e.g. "wrong password or corrupt file").
        reason: String,
    },
    /// A raw key is not 32 bytes of hex.
    #[error("{0}: not a 32-byte hex private key")]
    BadKey(String),
    /// The signer refused.
    #[error("signing failed: {0}")]
    Sign(String),
    /// A remote signer (JSON-RPC, KMS) could not be reached or refused;
    /// the message never holds its URL's credentials.
    #[error("remote signer: {0}")]
    Remote(String),
}

/// A transaction to sign; the chain id is inside.
#[derive(Debug, Clone)]
pub enum UnsignedTx {
    /// EIP-1559 (type 2).
    Eip1559(TxEip1559),
    /// Legacy (EIP-155), for chains without EIP-1559.
    Legacy(TxLegacy),
}

/// A signed transaction, ready to broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    /// The transaction hash.
    pub hash: B256,
    /// EIP-2718 encoded bytes for `eth_sendRawTransaction`.
    pub raw: Vec<u8>,
}

/// A source of signatures for one account.
pub trait Signer: Send + Sync {
    /// The account's address.
    fn address(&self) -> Address;
    /// Signs `tx` (its chain id included).
    fn sign(&self, tx: UnsignedTx) -> BoxFuture<'_, Result<SignedTx, KeyError>>;
}

/// A key held in memory: decrypted from a keystore, or a dev key.
pub struct LocalKey {
    inner: PrivateKeySigner,
    /// The same key for libsecp256k1, which signs in about half the time
    /// of the pure-Rust curve (signing is the largest single cost of a
    /// busy sender); the signatures are the same (RFC 6979, low s).
    fast: secp256k1::SecretKey,
}

/// libsecp256k1's signing context, built (and blinded with random bytes
/// against timing side channels) once per process.
static SECP: std::sync::LazyLock<secp256k1::Secp256k1<secp256k1::SignOnly>> =
    std::sync::LazyLock::new(|| {
        let mut ctx = secp256k1::Secp256k1::signing_only();
        let seed: [u8; 32] = rand08::random();
        ctx.seeded_randomize(&seed);
        ctx
    });

impl Drop for LocalKey {
    /// `inner` erases itself; the libsecp256k1 copy does not on its own.
    fn drop(&mut self) {
        self.fast.non_secure_erase();
    }
}

impl std::fmt::Debug for LocalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKey")
            .field("address", &self.inner.address())
            .finish_non_exhaustive()
    }
}

impl LocalKey {
    /// A raw hex key (with or without `0x`). Only the config's explicit
    /// dev flag leads here: raw keys are for anvil's well-known accounts.
    /// `what` names the key's source in the error (never the key).
    pub fn dev(hex_key: &str, what: &str) -> Result<Self, KeyError> {
        let inner: PrivateKeySigner = hex_key
            .trim()
            .parse()
            .map_err(|_| KeyError::BadKey(what.to_owned()))?;
        Self::from_signer(inner, what)
    }

    /// Wraps a loaded key; `what` names its source in the error.
    pub(crate) fn from_signer(inner: PrivateKeySigner, what: &str) -> Result<Self, KeyError> {
        let bytes = zeroize::Zeroizing::new(inner.to_bytes().0);
        let fast = secp256k1::SecretKey::from_byte_array(&bytes)
            .map_err(|_| KeyError::BadKey(what.to_owned()))?;
        Ok(LocalKey { inner, fast })
    }

    /// The signature of a transaction's signing hash.
    fn sign_hash(&self, hash: B256) -> alloy_primitives::Signature {
        let message = secp256k1::Message::from_digest(hash.0);
        let (id, rs) = SECP
            .sign_ecdsa_recoverable(&message, &self.fast)
            .serialize_compact();
        alloy_primitives::Signature::from_bytes_and_parity(&rs, i32::from(id) == 1)
    }

    /// Signs synchronously (local keys need no I/O).
    pub fn sign_sync(&self, tx: UnsignedTx) -> Result<SignedTx, KeyError> {
        let envelope: TxEnvelope = match tx {
            UnsignedTx::Eip1559(t) => {
                let sig = self.sign_hash(t.signature_hash());
                t.into_signed(sig).into()
            }
            UnsignedTx::Legacy(t) => {
                let sig = self.sign_hash(t.signature_hash());
                t.into_signed(sig).into()
            }
        };
        Ok(SignedTx {
            hash: *envelope.tx_hash(),
            raw: envelope.encoded_2718(),
        })
    }
}

impl Signer for LocalKey {
    fn address(&self) -> Address {
        self.inner.address()
    }

    fn sign(&self, tx: UnsignedTx) -> BoxFuture<'_, Result<SignedTx, KeyError>> {
        let signed = self.sign_sync(tx);
        Box::pin(async move { signed })
    }
}
