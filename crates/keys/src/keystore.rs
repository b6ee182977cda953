//! Encrypted keystore files (Web3 Secret Storage v3, scrypt): create,
//! import, open and list. The files are the ones `cast wallet` reads and
//! writes, so keys move between ethgate and Foundry both ways. Files made
//! here also record their address in clear (the geth convention), so
//! listing needs no password.

use std::path::{Path, PathBuf};

use alloy_primitives::Address;
use alloy_signer_local::PrivateKeySigner;

use crate::{KeyError, LocalKey};

fn keystore_err(path: &Path, reason: impl Into<String>) -> KeyError {
    KeyError::Keystore {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Decrypts a keystore file. A wrong password and a corrupt file give the
/// same error, which names the file only.
pub fn open(path: &Path, password: &str) -> Result<LocalKey, KeyError> {
    if !path.is_file() {
        return Err(keystore_err(path, "no such file"));
    }
    let inner = PrivateKeySigner::decrypt_keystore(path, password)
        .map_err(|_| keystore_err(path, "wrong password or not a keystore file"))?;
    LocalKey::from_signer(inner, &path.display().to_string())
}

/// Records the address in the file, as geth does, so [`list`] needs no
/// password. Readers that do not know the field (cast) ignore it.
fn record_address(file: &Path, address: Address) -> Result<(), KeyError> {
    let text = std::fs::read_to_string(file).map_err(|e| keystore_err(file, e.to_string()))?;
    let mut json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| keystore_err(file, e.to_string()))?;
    json["address"] = serde_json::Value::String(alloy_primitives::hex::encode(address));
    std::fs::write(file, json.to_string()).map_err(|e| keystore_err(file, e.to_string()))?;
    owner_only(file, 0o600)
}

/// Makes a keystore file (0600) or directory (0700) the owner's alone.
fn owner_only(path: &Path, mode: u32) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| keystore_err(path, e.to_string()))
}

/// Creates `dir` if missing; a directory made here is 0700.
fn key_dir(dir: &Path) -> Result<(), KeyError> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| keystore_err(dir, e.to_string()))?;
        owner_only(dir, 0o700)?;
    }
    Ok(())
}

/// Creates a new random key, encrypted under `password`, in `dir` (created
/// if missing); returns its address and file.
pub fn create(dir: &Path, password: &str) -> Result<(Address, PathBuf), KeyError> {
    key_dir(dir)?;
    let (signer, uuid) =
        PrivateKeySigner::new_keystore(dir, &mut rand08::thread_rng(), password, None)
            .map_err(|e| keystore_err(dir, e.to_string()))?;
    let file = dir.join(uuid);
    record_address(&file, signer.address())?;
    Ok((signer.address(), file))
}

/// Encrypts an existing raw key into a new file in `dir`; `what` names the
/// key's source in errors.
pub fn import(
    dir: &Path,
    hex_key: &str,
    what: &str,
    password: &str,
) -> Result<(Address, PathBuf), KeyError> {
    let key = LocalKey::dev(hex_key, what)?;
    key_dir(dir)?;
    let bytes = zeroize::Zeroizing::new(key.inner.to_bytes().0);
    let (signer, uuid) = PrivateKeySigner::encrypt_keystore(
        dir,
        &mut rand08::thread_rng(),
        bytes.as_slice(),
        password,
        None,
    )
    .map_err(|e| keystore_err(dir, e.to_string()))?;
    let file = dir.join(uuid);
    record_address(&file, signer.address())?;
    Ok((signer.address(), file))
}

/// The keystore files in `dir` with the address each records (`None` if
/// the file does not say).
pub fn list(dir: &Path) -> Result<Vec<(PathBuf, Option<Address>)>, KeyError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| keystore_err(dir, e.to_string()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        if json.get("crypto").or_else(|| json.get("Crypto")).is_none() {
            continue;
        }
        let address = json["address"]
            .as_str()
            .and_then(|a| format!("0x{}", a.trim_start_matches("0x")).parse().ok());
        out.push((path, address));
    }
    out.sort();
    Ok(out)
}
