//! Rotation: replace every member of a pool in one master transaction.
//!
//! Steps, each recorded before the next starts, each safe to repeat:
//! `keys` (new keystores, recorded as members in state `new`) → `funding`
//! (one top-up each, from the funding account) → `registering`
//! (`setOperators(new, old)` from the master, or — for an external
//! multisig — the transaction shown and the chain watched) → `switching`
//! (the pool sends from the new members; one store transaction) →
//! `draining` (the old members' requests finish) → `sweeping` (their ETH
//! back to the funding account) → `done`.
//!
//! Every transaction has an idempotency key made of the rotation id, the
//! step, the account and the retry counter, so a process killed anywhere
//! re-submits the same request (the same id) instead of a second one, and
//! the registry is read before `setOperators` is sent, so a change already
//! on chain is never sent twice.

use alloy_primitives::{Address, Bytes};
use alloy_sol_types::SolCall;
use ethgate_contracts::OperatorRegistry;
use ethgate_store::{RotationRow, StoreError};

use crate::view::{MemberState, MultisigTx, ReadError, RotationStep, RotationView};
use crate::{Master, PoolSpec, Pools, hex_addr};

/// Why a rotation could not be started or shown.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// No pool has that name.
    #[error("no pool is named {0:?}")]
    UnknownPool(String),
    /// The pool lacks a setting rotation needs (the field's name).
    #[error("pool {pool}: rotation needs {field}")]
    NotConfigured {
        /// Pool.
        pool: String,
        /// The missing setting.
        field: &'static str,
    },
    /// The store failed (a rotation or member that does not read back
    /// among them).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ReadError> for RotateError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Store(e) => RotateError::Store(e),
        }
    }
}

pub(crate) fn set_operators(new: &[Address], old: &[Address]) -> Bytes {
    let remove: Vec<Address> = old.iter().filter(|a| !new.contains(a)).copied().collect();
    OperatorRegistry::setOperatorsCall {
        add: new.to_vec(),
        remove,
    }
    .abi_encode()
    .into()
}

impl Pools {
    /// Starts a rotation of the pool's active members, or returns the
    /// unfinished one (retrying its failed step); with a `request_key`
    /// already used, returns that rotation even when it has finished.
    pub async fn rotate(
        &self,
        pool: &str,
        request_key: Option<&str>,
    ) -> Result<RotationView, RotateError> {
        let spec = self
            .spec(pool)
            .ok_or_else(|| RotateError::UnknownPool(pool.to_owned()))?;
        let need = |ok: bool, field: &'static str| {
            if ok {
                Ok(())
            } else {
                Err(RotateError::NotConfigured {
                    pool: pool.to_owned(),
                    field,
                })
            }
        };
        need(spec.settings.registry.is_some(), "registry")?;
        need(spec.settings.master.is_some(), "master")?;
        need(spec.settings.keystore_dir.is_some(), "keystore_dir")?;
        need(
            spec.settings.password.is_some(),
            "password_env or password_file",
        )?;
        need(spec.settings.funding.is_some(), "funding")?;
        need(spec.settings.top_up.is_some(), "top_up")?;
        let old: Vec<String> = self
            .store()
            .pool_members(pool)
            .await?
            .into_iter()
            .filter(|m| m.state == MemberState::Active)
            .map(|m| m.address)
            .collect();
        let id = format!("rot_{}", hex::encode(rand::random::<[u8; 8]>()));
        let row = self
            .store()
            .start_rotation(&id, pool, &old, request_key)
            .await?;
        tracing::info!(pool, rotation = %row.id, step = %row.step, "rotation requested");
        self.wake.notify_one();
        self.rotation_view(spec)
            .await?
            .ok_or_else(|| RotateError::UnknownPool(pool.to_owned()))
    }

    /// The pool's unfinished rotation, or its latest.
    pub async fn rotation(&self, pool: &str) -> Result<Option<RotationView>, RotateError> {
        let spec = self
            .spec(pool)
            .ok_or_else(|| RotateError::UnknownPool(pool.to_owned()))?;
        Ok(self.rotation_view(spec).await?)
    }

    pub(crate) async fn rotation_view(
        &self,
        spec: &PoolSpec,
    ) -> Result<Option<RotationView>, ReadError> {
        let Some(r) = self.store().rotation(&spec.settings.name).await? else {
            return Ok(None);
        };
        let step = r.step;
        let (old, new) = self.sides(&r).await?;
        let multisig_transaction = match spec.settings.registry {
            Some(registry)
                if step == RotationStep::Registering
                    && spec.settings.master == Some(Master::External) =>
            {
                Some(MultisigTx {
                    chain_id: spec.chain_id,
                    to: hex_addr(registry),
                    value: "0".into(),
                    data: set_operators(&new, &old).to_string(),
                    function: "setOperators(address[],address[])".into(),
                })
            }
            _ => None,
        };
        Ok(Some(RotationView {
            id: r.id,
            pool: r.pool,
            step,
            attempt: r.attempt,
            error: r.error,
            old: old.iter().map(|a| hex_addr(*a)).collect(),
            new: new.iter().map(|a| hex_addr(*a)).collect(),
            multisig_transaction,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }))
    }

    /// The members a rotation replaces and the ones it made.
    pub(crate) async fn sides(
        &self,
        r: &RotationRow,
    ) -> Result<(Vec<Address>, Vec<Address>), StoreError> {
        let old: Vec<Address> = r.old.iter().filter_map(|a| a.parse().ok()).collect();
        let new = self
            .store()
            .pool_members(&r.pool)
            .await?
            .into_iter()
            .filter(|m| m.rotation.as_deref() == Some(r.id.as_str()))
            .filter_map(|m| m.address.parse().ok())
            .collect();
        Ok((old, new))
    }
}
