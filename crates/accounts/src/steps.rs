//! A rotation's steps, one function each (the order and what each does
//! are described in `rotation.rs`). [`Pools::advance`] reads the pool's
//! rotation and runs its current step; a step returns whether the
//! rotation moved, records the next step when it is done, and records an
//! error (stopping the rotation until it is run again) when something
//! ended that cannot be retried as is.

use std::path::Path;
use std::sync::Arc;

use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::SolCall;
use ethgate_contracts::OperatorRegistry;
use ethgate_core::TxStatus;
use ethgate_keys::keystore;
use ethgate_store::{MemberRow, RotationRow};
use ethgate_tx::TxRequest;
use serde_json::{Value, json};

use crate::rotation::set_operators;
use crate::view::{MemberState, RotationStep};
use crate::{Master, PoolSpec, PoolWorkError, Pools, hex_addr};

/// Statuses after which a rotation's transaction will never be mined.
const ENDED_BADLY: [TxStatus; 4] = [
    TxStatus::Rejected,
    TxStatus::Failed,
    TxStatus::Cancelled,
    TxStatus::Expired,
];

/// A gas limit for a plain transfer.
const TRANSFER_GAS: u64 = 21_000;

/// What sweeping one old member did.
enum Sweep {
    /// It holds no more than the transfer could cost: nothing to do.
    NotWorthIt,
    /// The transfer is submitted (or was before).
    Submitted,
    /// The transfer ended without moving anything: its status and error.
    Ended(TxStatus, Option<String>),
}

/// What a step may move: the pool, its rotation and the settings a
/// rotation needs (present, or the rotation is stopped before a step).
struct Rotating<'a> {
    spec: &'a PoolSpec,
    r: RotationRow,
    old: Vec<Address>,
    new: Vec<Address>,
    dir: &'a Path,
    password: &'a str,
    funding: Address,
    top_up: u128,
    registry: Address,
    master: &'a Master,
}

impl Rotating<'_> {
    /// What the rotation's requests carry as metadata.
    fn purpose(&self, what: &str) -> Value {
        json!({"purpose": what, "pool": self.spec.settings.name, "rotation": self.r.id})
    }

    /// Old members the rotation retires (not carried over).
    fn retiring(&self) -> impl Iterator<Item = &Address> {
        self.old.iter().filter(|a| !self.new.contains(a))
    }
}

impl Pools {
    /// Takes the pool's rotation one step further if it can; true when it
    /// moved.
    pub(crate) async fn advance(&self, spec: &PoolSpec) -> Result<bool, PoolWorkError> {
        let Some(r) = self.store().rotation(&spec.settings.name).await? else {
            return Ok(false);
        };
        if r.step == RotationStep::Done || r.error.is_some() {
            return Ok(false);
        }
        let (old, new) = self.sides(&r).await?;
        let s = &spec.settings;
        let (Some(dir), Some(password), Some(funding), Some(top_up), Some(registry), Some(master)) = (
            &s.keystore_dir,
            &s.password,
            s.funding,
            s.top_up,
            s.registry,
            &s.master,
        ) else {
            return self
                .fail(&r, "the pool is not configured for rotation".into())
                .await;
        };
        let at = Rotating {
            spec,
            r,
            old,
            new,
            dir,
            password,
            funding,
            top_up,
            registry,
            master,
        };
        match at.r.step {
            RotationStep::Keys => self.make_keys(&at).await,
            RotationStep::Funding => self.fund(&at).await,
            RotationStep::Registering => self.register(&at).await,
            RotationStep::Switching => self.switch(&at).await,
            RotationStep::Draining => self.drain(&at).await,
            RotationStep::Sweeping => self.sweep_all(&at).await,
            RotationStep::Done => Ok(false),
        }
    }

    /// `keys`: new keystores, as many as the members replaced (at least
    /// one), each recorded as a member in state `new`.
    async fn make_keys(&self, at: &Rotating<'_>) -> Result<bool, PoolWorkError> {
        for _ in at.new.len()..at.old.len().max(1) {
            let (address, file) = keystore::create(at.dir, at.password)?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let member = MemberRow {
                address: hex_addr(address),
                keystore: name,
                state: MemberState::New,
                rotation: Some(at.r.id.clone()),
            };
            self.store()
                .add_pool_member(&at.spec.settings.name, &member)
                .await?;
            let key = keystore::open(&file, at.password)?;
            self.add(at.spec, Arc::new(key));
        }
        self.next(&at.r, RotationStep::Funding).await
    }

    /// `funding`: one top-up each from the funding account; done when all
    /// are confirmed.
    async fn fund(&self, at: &Rotating<'_>) -> Result<bool, PoolWorkError> {
        let mut all = true;
        for a in &at.new {
            let key = format!("rotate:{}:fund:{}:{}", at.r.id, hex_addr(*a), at.r.attempt);
            let mut req = self
                .tx
                .request(&at.spec.settings.chain, at.funding, *a, key);
            req.value = U256::from(at.top_up);
            req.metadata = at.purpose("rotation funding");
            let (status, error) = self.request(req).await?;
            if ENDED_BADLY.contains(&status) {
                let why = error.unwrap_or_default();
                return self
                    .fail(&at.r, format!("funding {a:#x}: {status}: {why}"))
                    .await;
            }
            all &= status == TxStatus::Confirmed;
        }
        if all {
            self.next(&at.r, RotationStep::Registering).await
        } else {
            Ok(false)
        }
    }

    /// `registering`: `setOperators(new, old)` from the master, unless the
    /// registry already says so; with an external master the chain is
    /// only watched.
    async fn register(&self, at: &Rotating<'_>) -> Result<bool, PoolWorkError> {
        if self.registry_done(at).await? {
            return self.next(&at.r, RotationStep::Switching).await;
        }
        let Master::Account(master) = at.master else {
            return Ok(false); // the multisig signs; the chain is watched
        };
        let key = format!("rotate:{}:set:{}", at.r.id, at.r.attempt);
        let mut req = self
            .tx
            .request(&at.spec.settings.chain, *master, at.registry, key);
        req.data = set_operators(&at.new, &at.old);
        req.metadata = at.purpose("rotation setOperators");
        let (status, error) = self.request(req).await?;
        if status == TxStatus::Confirmed && !self.registry_done(at).await? {
            return self
                .fail(&at.r, "setOperators was mined but the registry does not list the new operators (is the master its owner?)".into())
                .await;
        }
        if ENDED_BADLY.contains(&status) {
            let why = error.unwrap_or_default();
            return self
                .fail(&at.r, format!("setOperators {status}: {why}"))
                .await;
        }
        Ok(false)
    }

    /// `switching`: the new members become active and the old ones
    /// retiring, with the step, in one store transaction; the pool sends
    /// from the new members from then on.
    async fn switch(&self, at: &Rotating<'_>) -> Result<bool, PoolWorkError> {
        let mut changes: Vec<(String, MemberState)> = at
            .new
            .iter()
            .map(|a| (hex_addr(*a), MemberState::Active))
            .collect();
        changes.extend(at.retiring().map(|a| (hex_addr(*a), MemberState::Retiring)));
        let changes: Vec<(&str, MemberState)> =
            changes.iter().map(|(a, s)| (a.as_str(), *s)).collect();
        let name = &at.spec.settings.name;
        self.store()
            .set_member_states(name, &changes, Some((&at.r.id, RotationStep::Draining)))
            .await?;
        self.tx.set_pool(name, at.new.clone());
        tracing::info!(pool = %name, rotation = %at.r.id, "pool switched to its new members");
        Ok(true)
    }

    /// `draining`: done once no old member has a request open.
    async fn drain(&self, at: &Rotating<'_>) -> Result<bool, PoolWorkError> {
        for a in &at.old {
            if self
                .store()
                .open_count(at.spec.chain_id, &hex_addr(*a))
                .await?
                > 0
            {
                return Ok(false);
            }
        }
        self.next(&at.r, RotationStep::Sweeping).await
    }

    /// `sweeping`: each old member's ETH back to the funding account; once
    /// every sweep is confirmed (or there was nothing worth sweeping) the
    /// retired members are recorded as such, with the step `done`.
    async fn sweep_all(&self, at: &Rotating<'_>) -> Result<bool, PoolWorkError> {
        let mut all = true;
        for a in &at.old {
            let key = format!("rotate:{}:sweep:{}:{}", at.r.id, hex_addr(*a), at.r.attempt);
            let Some(row) = self.store().tx_by_key(&key).await? else {
                match self.sweep(at, *a, key).await? {
                    Sweep::NotWorthIt => {}
                    Sweep::Submitted => all = false,
                    Sweep::Ended(status, why) => {
                        let why = why.unwrap_or_default();
                        return self
                            .fail(&at.r, format!("sweeping {a:#x}: {status}: {why}"))
                            .await;
                    }
                }
                continue;
            };
            if ENDED_BADLY.contains(&row.status) {
                let why = row.error.unwrap_or_default();
                return self
                    .fail(&at.r, format!("sweeping {a:#x}: {}: {why}", row.status))
                    .await;
            }
            all &= row.status == TxStatus::Confirmed;
        }
        if !all {
            return Ok(false);
        }
        let retired: Vec<String> = at.retiring().map(|a| hex_addr(*a)).collect();
        let changes: Vec<(&str, MemberState)> = retired
            .iter()
            .map(|a| (a.as_str(), MemberState::Retired))
            .collect();
        let name = &at.spec.settings.name;
        self.store()
            .set_member_states(name, &changes, Some((&at.r.id, RotationStep::Done)))
            .await?;
        tracing::info!(pool = %name, rotation = %at.r.id, "rotation done");
        Ok(true)
    }

    /// Sends an old member's ETH back to the funding account, less the
    /// most the transfer can cost. What stays (the difference between that
    /// and what the transfer does cost) is less than one more transfer's
    /// gas, so not worth sweeping; an account holding no more than the
    /// cost is left alone the same way.
    async fn sweep(
        &self,
        at: &Rotating<'_>,
        from: Address,
        key: String,
    ) -> Result<Sweep, PoolWorkError> {
        let endpoints = &at.spec.endpoints;
        let balance: U256 = endpoints
            .call("eth_getBalance", json!([from, "latest"]))
            .await?;
        let price: U256 = endpoints.call("eth_gasPrice", json!([])).await?;
        let fee_cap = price.saturating_mul(U256::from(2));
        let cost = fee_cap.saturating_mul(U256::from(TRANSFER_GAS));
        if balance <= cost {
            return Ok(Sweep::NotWorthIt);
        }
        let mut req = self
            .tx
            .request(&at.spec.settings.chain, from, at.funding, key);
        req.value = balance - cost;
        req.gas_limit = Some(TRANSFER_GAS);
        req.max_fee_per_gas = Some(fee_cap.saturating_to());
        req.max_priority_fee_per_gas = Some(price.saturating_to());
        req.metadata = at.purpose("rotation sweep");
        let (status, error) = self.request(req).await?;
        if ENDED_BADLY.contains(&status) {
            return Ok(Sweep::Ended(status, error));
        }
        Ok(Sweep::Submitted)
    }

    /// Records why the rotation stopped; it resumes when run again.
    async fn fail(&self, r: &RotationRow, why: String) -> Result<bool, PoolWorkError> {
        tracing::warn!(pool = %r.pool, rotation = %r.id, step = %r.step, error = %why, "rotation stopped; fix the cause and run it again");
        self.store().set_rotation_error(&r.id, &why).await?;
        Ok(false)
    }

    /// Records the rotation's next step.
    async fn next(&self, r: &RotationRow, step: RotationStep) -> Result<bool, PoolWorkError> {
        tracing::info!(pool = %r.pool, rotation = %r.id, %step, "rotation step");
        self.store().set_rotation_step(&r.id, step).await?;
        Ok(true)
    }

    /// Submits (or finds) a request and returns its status and error.
    pub(crate) async fn request(
        &self,
        req: TxRequest,
    ) -> Result<(TxStatus, Option<String>), PoolWorkError> {
        let s = self.tx.submit_request(req).await?;
        let row = self
            .store()
            .tx(&s.id)
            .await?
            .ok_or(PoolWorkError::Lost(s.id))?;
        Ok((row.status, row.error))
    }

    /// True when the registry lists every new member and no old one.
    async fn registry_done(&self, at: &Rotating<'_>) -> Result<bool, PoolWorkError> {
        for a in at.new.iter().chain(at.retiring()) {
            let data: Bytes = OperatorRegistry::isOperatorCall { account: *a }
                .abi_encode()
                .into();
            let answer: Bytes = at
                .spec
                .endpoints
                .call(
                    "eth_call",
                    json!([{"to": at.registry, "data": data}, "latest"]),
                )
                .await?;
            let listed = answer.iter().any(|b| *b != 0);
            if listed != at.new.contains(a) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
