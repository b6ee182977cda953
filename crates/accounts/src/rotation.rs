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

use std::sync::Arc;

use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::SolCall;
use ethgate_contracts::OperatorRegistry;
use ethgate_core::TxStatus;
use ethgate_keys::keystore;
use ethgate_store::{MemberRow, RotationRow, StoreError};
use serde_json::{Value, json};

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

const ENDED_BADLY: [TxStatus; 4] = [
    TxStatus::Rejected,
    TxStatus::Failed,
    TxStatus::Cancelled,
    TxStatus::Expired,
];

fn set_operators(new: &[Address], old: &[Address]) -> Bytes {
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
            .start_rotation(&id, pool, &json!(old).to_string(), request_key)
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
    async fn sides(&self, r: &RotationRow) -> Result<(Vec<Address>, Vec<Address>), StoreError> {
        let old: Vec<Address> = serde_json::from_str::<Vec<String>>(&r.old)
            .unwrap_or_default()
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
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

    async fn fail(&self, r: &RotationRow, why: String) -> Result<bool, String> {
        tracing::warn!(pool = %r.pool, rotation = %r.id, step = %r.step, error = %why, "rotation stopped; fix the cause and run it again");
        self.store()
            .set_rotation_error(&r.id, &why)
            .await
            .map_err(|e| e.to_string())?;
        Ok(false)
    }

    async fn next(&self, r: &RotationRow, step: RotationStep) -> Result<bool, String> {
        tracing::info!(pool = %r.pool, rotation = %r.id, %step, "rotation step");
        self.store()
            .set_rotation_step(&r.id, step)
            .await
            .map_err(|e| e.to_string())?;
        Ok(true)
    }

    /// Submits (or finds) a request and returns its status and error.
    async fn request(&self, body: Value) -> Result<(TxStatus, Option<String>), String> {
        let s = self.tx.submit(&body).await.map_err(|e| e.to_string())?;
        let row = self
            .store()
            .tx(&s.id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the request just accepted is not in the store")?;
        Ok((row.status, row.error))
    }

    /// True when the registry lists every new member and no old one.
    async fn registry_done(
        &self,
        spec: &PoolSpec,
        registry: Address,
        new: &[Address],
        old: &[Address],
    ) -> Result<bool, String> {
        for a in new.iter().chain(old.iter().filter(|a| !new.contains(a))) {
            let data: Bytes = OperatorRegistry::isOperatorCall { account: *a }
                .abi_encode()
                .into();
            let answer: Bytes = spec
                .endpoints
                .call(
                    "eth_call",
                    json!([{"to": registry, "data": data}, "latest"]),
                )
                .await
                .map_err(|e| e.to_string())?;
            let listed = answer.iter().any(|b| *b != 0);
            if listed != new.contains(a) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Takes the pool's rotation one step further if it can; true when it
    /// moved.
    pub(crate) async fn advance(&self, spec: &PoolSpec) -> Result<bool, String> {
        let store = self.store();
        let Some(r) = store
            .rotation(&spec.settings.name)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(false);
        };
        if r.step == RotationStep::Done || r.error.is_some() {
            return Ok(false);
        }
        let (old, new) = self.sides(&r).await.map_err(|e| e.to_string())?;
        let (Some(dir), Some(pw), Some(funding), Some(top_up), Some(registry), Some(master)) = (
            &spec.settings.keystore_dir,
            &spec.settings.password,
            spec.settings.funding,
            spec.settings.top_up,
            spec.settings.registry,
            &spec.settings.master,
        ) else {
            return self
                .fail(&r, "the pool is not configured for rotation".into())
                .await;
        };
        let purpose =
            |what: &str| json!({"purpose": what, "pool": spec.settings.name, "rotation": r.id});
        match r.step {
            RotationStep::Keys => {
                for _ in new.len()..old.len().max(1) {
                    let (address, file) = keystore::create(dir, pw).map_err(|e| e.to_string())?;
                    let name = file
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let member = MemberRow {
                        address: hex_addr(address),
                        keystore: name,
                        state: MemberState::New,
                        rotation: Some(r.id.clone()),
                    };
                    store
                        .add_pool_member(&spec.settings.name, &member)
                        .await
                        .map_err(|e| e.to_string())?;
                    let key = keystore::open(&file, pw).map_err(|e| e.to_string())?;
                    self.add(spec, Arc::new(key));
                }
                self.next(&r, RotationStep::Funding).await
            }
            RotationStep::Funding => {
                let mut all = true;
                for a in &new {
                    let (status, error) = self
                        .request(json!({
                            "chain": spec.settings.chain,
                            "from": hex_addr(funding),
                            "to": hex_addr(*a),
                            "value": top_up.to_string(),
                            "idempotency_key": format!("rotate:{}:fund:{}:{}", r.id, hex_addr(*a), r.attempt),
                            "metadata": purpose("rotation funding"),
                        }))
                        .await?;
                    if ENDED_BADLY.contains(&status) {
                        let why = error.unwrap_or_default();
                        return self
                            .fail(&r, format!("funding {a:#x}: {status}: {why}"))
                            .await;
                    }
                    all &= status == TxStatus::Confirmed;
                }
                if all {
                    self.next(&r, RotationStep::Registering).await
                } else {
                    Ok(false)
                }
            }
            RotationStep::Registering => {
                if self.registry_done(spec, registry, &new, &old).await? {
                    return self.next(&r, RotationStep::Switching).await;
                }
                let Master::Account(master) = master else {
                    return Ok(false); // the multisig signs; the chain is watched
                };
                let (status, error) = self
                    .request(json!({
                        "chain": spec.settings.chain,
                        "from": hex_addr(*master),
                        "to": hex_addr(registry),
                        "data": set_operators(&new, &old),
                        "idempotency_key": format!("rotate:{}:set:{}", r.id, r.attempt),
                        "metadata": purpose("rotation setOperators"),
                    }))
                    .await?;
                if status == TxStatus::Confirmed
                    && !self.registry_done(spec, registry, &new, &old).await?
                {
                    return self
                        .fail(&r, "setOperators was mined but the registry does not list the new operators (is the master its owner?)".into())
                        .await;
                }
                if ENDED_BADLY.contains(&status) {
                    let why = error.unwrap_or_default();
                    return self.fail(&r, format!("setOperators {status}: {why}")).await;
                }
                Ok(false)
            }
            RotationStep::Switching => {
                let mut changes: Vec<(String, MemberState)> = new
                    .iter()
                    .map(|a| (hex_addr(*a), MemberState::Active))
                    .collect();
                changes.extend(
                    old.iter()
                        .filter(|a| !new.contains(a))
                        .map(|a| (hex_addr(*a), MemberState::Retiring)),
                );
                let changes: Vec<(&str, MemberState)> =
                    changes.iter().map(|(a, s)| (a.as_str(), *s)).collect();
                store
                    .set_member_states(
                        &spec.settings.name,
                        &changes,
                        Some((&r.id, RotationStep::Draining)),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                self.tx.set_pool(&spec.settings.name, new.clone());
                tracing::info!(pool = %spec.settings.name, rotation = %r.id, "pool switched to its new members");
                Ok(true)
            }
            RotationStep::Draining => {
                for a in &old {
                    let open = store
                        .open_count(spec.chain_id, &hex_addr(*a))
                        .await
                        .map_err(|e| e.to_string())?;
                    if open > 0 {
                        return Ok(false);
                    }
                }
                self.next(&r, RotationStep::Sweeping).await
            }
            RotationStep::Sweeping => {
                let mut all = true;
                for a in &old {
                    let key = format!("rotate:{}:sweep:{}:{}", r.id, hex_addr(*a), r.attempt);
                    let existing = store.tx_by_key(&key).await.map_err(|e| e.to_string())?;
                    let Some(row) = existing else {
                        match self.sweep(spec, *a, funding, &key, &r).await {
                            Ok(sent) => all &= !sent,
                            Err(e) => return self.fail(&r, format!("sweeping {a:#x}: {e}")).await,
                        }
                        continue;
                    };
                    if ENDED_BADLY.contains(&row.status) {
                        let why = row.error.unwrap_or_default();
                        return self
                            .fail(&r, format!("sweeping {a:#x}: {}: {why}", row.status))
                            .await;
                    }
                    all &= row.status == TxStatus::Confirmed;
                }
                if !all {
                    return Ok(false);
                }
                let changes: Vec<String> = old
                    .iter()
                    .filter(|a| !new.contains(a))
                    .map(|a| hex_addr(*a))
                    .collect();
                let changes: Vec<(&str, MemberState)> = changes
                    .iter()
                    .map(|a| (a.as_str(), MemberState::Retired))
                    .collect();
                store
                    .set_member_states(
                        &spec.settings.name,
                        &changes,
                        Some((&r.id, RotationStep::Done)),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!(pool = %spec.settings.name, rotation = %r.id, "rotation done");
                Ok(true)
            }
            RotationStep::Done => Ok(false),
        }
    }

    /// Sends an old member's ETH back to the funding account, less the
    /// most the transfer can cost. What stays (the difference between that
    /// and what the transfer does cost) is less than one more transfer's
    /// gas, so not worth sweeping; an account holding no more than the
    /// cost is left alone the same way. True when a sweep was submitted.
    async fn sweep(
        &self,
        spec: &PoolSpec,
        from: Address,
        to: Address,
        key: &str,
        r: &RotationRow,
    ) -> Result<bool, String> {
        let balance: U256 = spec
            .endpoints
            .call("eth_getBalance", json!([from, "latest"]))
            .await
            .map_err(|e| e.to_string())?;
        let price: U256 = spec
            .endpoints
            .call("eth_gasPrice", json!([]))
            .await
            .map_err(|e| e.to_string())?;
        let fee_cap = price.saturating_mul(U256::from(2));
        let cost = fee_cap.saturating_mul(U256::from(21_000));
        if balance <= cost {
            return Ok(false);
        }
        let (status, error) = self
            .request(json!({
                "chain": spec.settings.chain,
                "from": hex_addr(from),
                "to": hex_addr(to),
                "value": (balance - cost).to_string(),
                "gas_limit": 21_000,
                "max_fee_per_gas": fee_cap.to_string(),
                "max_priority_fee_per_gas": price.to_string(),
                "idempotency_key": key,
                "metadata": {"purpose": "rotation sweep", "pool": spec.settings.name, "rotation": r.id},
            }))
            .await?;
        if ENDED_BADLY.contains(&status) {
            return Err(format!("{status}: {}", error.unwrap_or_default()));
        }
        Ok(true)
    }
}
