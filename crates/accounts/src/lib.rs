//! Operational account pools: the hot keys a back end sends from, kept
//! small and replaceable. Each pool has members (its operational
//! accounts), optionally a funding account that tops members up when they
//! fall below a minimum (never past a daily cap), and optionally an
//! `OperatorRegistry` whose master replaces every member in one
//! `setOperators` transaction: a rotation.
//!
//! Everything here goes through the transaction manager (funding, the
//! master's transaction, sweeps) with idempotency keys derived from the
//! rotation's id and step, and every step's progress is in the store, so a
//! rotation interrupted at any instant — the process killed — resumes
//! where it was and never pays twice. Membership lives in the store too:
//! the config names a pool's first members; rotations replace them.

mod rotation;
mod steps;
mod view;
mod watcher;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy_primitives::{Address, U256};
use ethgate_chain::{ChainError, EndpointPool};
use ethgate_keys::{KeyError, Signer, keystore};
use ethgate_store::{MemberRow, Store, StoreError};
use ethgate_tx::fees::Caps;
use ethgate_tx::{Account, SubmitError, TxManager};
use tokio::sync::{Notify, watch};

pub use rotation::RotateError;
pub use view::{
    AccountRef, AccountsView, AlertKind, MemberState, MemberView, MultisigTx, PoolAlert, PoolView,
    ReadError, RotationStep, RotationView,
};

/// Who signs the rotation's `setOperators`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Master {
    /// An `[[accounts]]` entry: ethgate sends it.
    Account(Address),
    /// A multisig or hardware wallet outside ethgate: the rotation shows
    /// the transaction to sign and waits for the change on chain.
    External,
}

/// A pool's settings, as the config gives them.
#[derive(Clone)]
pub struct PoolSettings {
    /// Name requests use as `from`.
    pub name: String,
    /// Chain name.
    pub chain: String,
    /// The first members (configured `[[accounts]]`), used until a
    /// rotation replaces them.
    pub initial: Vec<Address>,
    /// Where rotation writes new members' keystores.
    pub keystore_dir: Option<PathBuf>,
    /// Their password (never logged).
    pub password: Option<String>,
    /// The account that funds top-ups and new members.
    pub funding: Option<Address>,
    /// Below this balance (wei) a member is topped up.
    pub min_balance: Option<u128>,
    /// Amount of one top-up, and of a new member's first funding (wei).
    pub top_up: Option<u128>,
    /// Most wei topped up per UTC day for the pool.
    pub daily_cap: Option<u128>,
    /// How often balances are read.
    pub interval: Duration,
    /// The pool's `OperatorRegistry`.
    pub registry: Option<Address>,
    /// Who signs `setOperators`.
    pub master: Option<Master>,
}

impl std::fmt::Debug for PoolSettings {
    // The password stays out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolSettings")
            .field("name", &self.name)
            .field("chain", &self.chain)
            .field("initial", &self.initial)
            .finish_non_exhaustive()
    }
}

/// One pool: its settings and what the gateway knows of its chain.
pub struct PoolSpec {
    /// As configured.
    pub settings: PoolSettings,
    /// Chain id.
    pub chain_id: u64,
    /// The chain's endpoints.
    pub endpoints: Arc<EndpointPool>,
    /// The chain has no EIP-1559.
    pub legacy: bool,
    /// Fee caps for members created by rotation.
    pub caps: Caps,
}

impl std::fmt::Debug for PoolSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolSpec")
            .field("settings", &self.settings)
            .field("chain_id", &self.chain_id)
            .finish_non_exhaustive()
    }
}

/// What the watcher last saw of a pool.
#[derive(Debug, Clone, Default)]
struct Seen {
    balances: HashMap<Address, U256>,
    alerts: Vec<PoolAlert>,
    topped_up_today: u128,
}

/// Errors of the pool service.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A member has a keystore but the pool says neither where nor with
    /// what password to open it.
    #[error("pool {0}: a member has a keystore but the pool has no keystore_dir and password")]
    NoKeystoreDir(String),
    /// A member's keystore could not be opened.
    #[error("pool {pool}: {source}")]
    Keystore {
        /// Pool.
        pool: String,
        /// What failed (names the file, never the password).
        source: KeyError,
    },
}

/// Why a round of a pool's watcher or a rotation step stopped; the next
/// round tries again (a rotation's own failures are recorded on it
/// instead, for an operator to see).
#[derive(Debug, thiserror::Error)]
pub enum PoolWorkError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The chain did not answer.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// A keystore could not be made or opened.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The transaction manager refused a request.
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// A request just accepted does not read back.
    #[error("request {0} was accepted but is not in the store")]
    Lost(String),
}

/// The pools of one gateway: membership, balances, top-ups, rotations.
pub struct Pools {
    specs: Vec<PoolSpec>,
    tx: Arc<TxManager>,
    seen: Mutex<HashMap<String, Seen>>,
    wake: Notify,
    /// The store the watcher and rotations write through while they run
    /// as a replica's unit (its fenced handle); else the manager's.
    writer: std::sync::RwLock<Option<Store>>,
}

/// How often a rotation in progress is advanced.
const ROTATION_POLL: Duration = Duration::from_millis(500);

/// Lower-case hex, the store's form of an address.
fn hex_addr(a: Address) -> String {
    format!("{a:#x}")
}

impl Pools {
    /// The pools over the transaction manager that sends for them.
    pub fn new(specs: Vec<PoolSpec>, tx: Arc<TxManager>) -> Self {
        Pools {
            specs,
            tx,
            seen: Mutex::default(),
            wake: Notify::new(),
            writer: std::sync::RwLock::new(None),
        }
    }

    fn store(&self) -> Store {
        match self.writer.read().ok().and_then(|w| w.clone()) {
            Some(fenced) => fenced,
            None => self.tx.store().clone(),
        }
    }

    /// Whether any pool is configured: without one there is nothing to
    /// watch or rotate.
    pub fn has_pools(&self) -> bool {
        !self.specs.is_empty()
    }

    fn spec(&self, pool: &str) -> Option<&PoolSpec> {
        self.specs.iter().find(|s| s.settings.name == pool)
    }

    /// Loads membership: the configured members on first start, then
    /// whatever rotations made it; opens members' keystores and gives the
    /// transaction manager their accounts and the pool's active set.
    pub async fn load(&self) -> Result<(), PoolError> {
        for spec in &self.specs {
            let mut members = self.store().pool_members(&spec.settings.name).await?;
            if members.is_empty() {
                for a in &spec.settings.initial {
                    let row = MemberRow {
                        address: hex_addr(*a),
                        keystore: String::new(),
                        state: MemberState::Active,
                        rotation: None,
                    };
                    self.store()
                        .add_pool_member(&spec.settings.name, &row)
                        .await?;
                }
                members = self.store().pool_members(&spec.settings.name).await?;
            }
            for m in &members {
                if m.keystore.is_empty() || m.state == MemberState::Retired {
                    continue;
                }
                // Known already (a re-read): its keystore is not opened again.
                let known = m
                    .address
                    .parse()
                    .is_ok_and(|a: Address| self.tx.has_account(&spec.settings.chain, a));
                if known {
                    continue;
                }
                let signer = self.open(spec, &m.keystore)?;
                self.add(spec, Arc::new(signer));
            }
            let active = members
                .iter()
                .filter(|m| m.state == MemberState::Active)
                .filter_map(|m| m.address.parse().ok())
                .collect();
            self.tx.set_pool(&spec.settings.name, active);
        }
        Ok(())
    }

    fn open(&self, spec: &PoolSpec, file: &str) -> Result<ethgate_keys::LocalKey, PoolError> {
        let (Some(dir), Some(pw)) = (&spec.settings.keystore_dir, &spec.settings.password) else {
            return Err(PoolError::NoKeystoreDir(spec.settings.name.clone()));
        };
        keystore::open(&dir.join(file), pw).map_err(|source| PoolError::Keystore {
            pool: spec.settings.name.clone(),
            source,
        })
    }

    fn add(&self, spec: &PoolSpec, signer: Arc<dyn Signer>) {
        self.tx.add_account(Account {
            chain: spec.settings.chain.clone(),
            chain_id: spec.chain_id,
            signer,
            pool: spec.endpoints.clone(),
            caps: spec.caps,
            legacy: spec.legacy,
        });
    }

    /// Runs as a replica's unit: as [`Pools::run`], writing through
    /// `store` (the unit's fenced handle), so a replica that lost the
    /// lease cannot move a rotation or record a top-up.
    pub async fn run_fenced(self: Arc<Self>, store: Store, shutdown: watch::Receiver<bool>) {
        if let Ok(mut w) = self.writer.write() {
            *w = Some(store);
        }
        self.clone().run(shutdown).await;
        if let Ok(mut w) = self.writer.write() {
            *w = None;
        }
    }

    /// Re-reads the pools' members every `every` until `shutdown`: a
    /// replica that does not run the pools unit learns a rotation's new
    /// members (and sends from them) this way.
    pub async fn follow(self: Arc<Self>, every: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.wait_for(|v| *v) => return,
            }
            if let Err(e) = self.load().await {
                tracing::warn!(error = %e, "re-reading the pools' members failed; retrying");
            }
        }
    }

    /// Runs the watcher and rotations until `shutdown`.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let interval = self
            .specs
            .iter()
            .map(|s| s.settings.interval)
            .min()
            .unwrap_or(Duration::from_secs(15));
        loop {
            let mut rotating = false;
            for spec in &self.specs {
                if let Err(e) = self.watch(spec).await {
                    tracing::warn!(pool = %spec.settings.name, error = %e, "balance watch failed; retrying");
                }
                // A rotation advances as far as it can, one step at a time.
                for _ in 0..8 {
                    match self.advance(spec).await {
                        Ok(true) => continue,
                        Ok(false) => break,
                        Err(e) => {
                            tracing::warn!(pool = %spec.settings.name, error = %e, "rotation step failed; retrying");
                            break;
                        }
                    }
                }
                rotating |= self
                    .store()
                    .rotation(&spec.settings.name)
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|r| r.step != RotationStep::Done && r.error.is_none());
            }
            // A rotation waiting for its transactions is looked at often.
            let wait = if rotating {
                interval.min(ROTATION_POLL)
            } else {
                interval
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.wait_for(|v| *v) => return,
            }
        }
    }

    /// Every pool: members with state and last balance, funding, caps,
    /// alerts, and the latest rotation — `GET /v1/accounts`.
    pub async fn snapshot(&self) -> Result<AccountsView, ReadError> {
        let seen = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
        let mut pools = Vec::new();
        for spec in &self.specs {
            let s = seen.get(&spec.settings.name).cloned().unwrap_or_default();
            let members = self.store().pool_members(&spec.settings.name).await?;
            let members = members
                .iter()
                .map(|m| {
                    let balance = m.address.parse::<Address>().ok();
                    MemberView {
                        address: m.address.clone(),
                        state: m.state,
                        managed: !m.keystore.is_empty(),
                        balance: balance
                            .and_then(|a| s.balances.get(&a))
                            .map(U256::to_string),
                    }
                })
                .collect();
            let wei = |v: Option<u128>| v.map(|v| v.to_string());
            pools.push(PoolView {
                name: spec.settings.name.clone(),
                chain: spec.settings.chain.clone(),
                members,
                funding: spec.settings.funding.map(hex_addr),
                min_balance: wei(spec.settings.min_balance),
                top_up: wei(spec.settings.top_up),
                daily_top_up_cap: wei(spec.settings.daily_cap),
                topped_up_today: s.topped_up_today.to_string(),
                alerts: s.alerts,
                registry: spec.settings.registry.map(hex_addr),
                rotation: self.rotation_view(spec).await?,
            });
        }
        let accounts = self
            .tx
            .accounts()
            .into_iter()
            .map(|(chain, a)| AccountRef {
                chain,
                address: hex_addr(a),
            })
            .collect();
        Ok(AccountsView { pools, accounts })
    }
}
