//! The manager: intake, lookups and cancels for the API, and one sender
//! task per configured account.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use alloy_primitives::{Address, Bytes, U256};
use ethgate_store::{Inserted, Store, StoreError, TxWake};
use serde_json::Value;
use tokio::sync::watch;

use crate::request::{self, FieldError, Resolve, TxRequest};
use crate::sender::{Account, Sender, Shared};
use crate::view::{ReadError, TxView};
use crate::{Settings, metrics as m};
use ethgate_core::TxStatus;

/// Why a request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// A field is invalid; nothing was stored.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The idempotency key was used before with a different body.
    #[error("idempotency_key: already used by transaction {0} with a different body")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Recording the request failed: the store's error, shared by every
    /// request of the group commit it failed.
    #[error("recording the request failed: {0}")]
    Intake(std::sync::Arc<StoreError>),
    /// The task that records requests has stopped (the gateway is
    /// shutting down); nothing was recorded.
    #[error("recording the request failed: the request recorder stopped")]
    RecorderStopped,
    /// The request could not be encoded to be stored; nothing was stored.
    #[error("encoding the request: {0}")]
    Encode(#[from] serde_json::Error),
}

/// An accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// Its id.
    pub id: String,
    /// It had been accepted before under the same key and body.
    pub existing: bool,
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// No such request.
    NotFound,
    /// The request has already ended; nothing to do.
    AlreadyEnded,
    /// The sender will cancel it (or replace it with a no-op) next tick.
    Requested,
}

struct Entry {
    account: Account,
    shared: Arc<Shared>,
}

/// Intake and the account senders.
pub struct TxManager {
    store: Store,
    settings: Settings,
    /// Chain name → chain id.
    chain_ids: HashMap<String, u64>,
    /// (chain, address) → account.
    accounts: std::sync::Mutex<HashMap<(String, Address), Entry>>,
    /// Pool name → its accounts' addresses, per chain. Rotation replaces
    /// a pool's members while the manager runs.
    pools: std::sync::RwLock<HashMap<String, Vec<Address>>>,
    /// Per chain, what its senders know of recent blocks (shared).
    views: std::sync::Mutex<HashMap<String, Arc<crate::sender::ChainView>>>,
    /// Set by `spawn`: accounts added later start their sender at once.
    shutdown: std::sync::Mutex<Option<watch::Receiver<bool>>>,
    /// Custom errors from the configuration's ABIs, for every sender.
    contract_errors: Arc<crate::ContractErrors>,
    /// The group-commit recorder of accepted requests.
    intake: tokio::sync::mpsc::Sender<crate::intake::Job>,
}

struct Resolver<'a>(&'a TxManager);

impl Resolve for Resolver<'_> {
    fn has_chain(&self, chain: &str) -> bool {
        self.0.chain_ids.contains_key(chain)
    }

    fn account(&self, chain: &str, from: &str) -> Result<Address, String> {
        let accounts = self.0.accounts.lock().map_err(|_| "internal error")?;
        if let Ok(a) = from.parse::<Address>() {
            return if accounts.contains_key(&(chain.to_owned(), a)) {
                Ok(a)
            } else {
                Err(format!("{a:#x} is not a configured account on {chain}"))
            };
        }
        let pools = self.0.pools.read().map_err(|_| "internal error")?;
        let members = pools
            .get(from)
            .ok_or_else(|| format!("{from:?} is neither an account address nor a pool name"))?;
        members
            .iter()
            .filter_map(|a| {
                accounts
                    .get(&(chain.to_owned(), *a))
                    .map(|e| (e.shared.open.load(Ordering::Relaxed), *a))
            })
            .min()
            .map(|(_, a)| {
                // Count the pick at once: the sender only refreshes the
                // figure at its next tick, and a burst would all go to one.
                if let Some(e) = accounts.get(&(chain.to_owned(), a)) {
                    e.shared.open.fetch_add(1, Ordering::Relaxed);
                }
                a
            })
            .ok_or_else(|| format!("pool {from:?} has no account on {chain}"))
    }
}

/// A new request id: `tx_` and 24 hex digits, the first twelve the
/// millisecond it was made, the rest random — so ids sort by creation and
/// new rows append to the store's indexes instead of landing on random
/// pages, which costs more page writes per insert.
fn new_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut bytes: [u8; 12] = rand::random();
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    format!("tx_{}", hex::encode(bytes))
}

impl TxManager {
    /// A manager over `accounts`; `pools` names sets of their addresses.
    /// Call within a tokio runtime (it starts the request recorder).
    pub fn new(
        store: Store,
        settings: Settings,
        chain_ids: HashMap<String, u64>,
        accounts: Vec<Account>,
        pools: HashMap<String, Vec<Address>>,
    ) -> Self {
        let accounts = accounts
            .into_iter()
            .map(|a| {
                (
                    (a.chain.clone(), a.signer.address()),
                    Entry {
                        account: a,
                        shared: Arc::default(),
                    },
                )
            })
            .collect();
        TxManager {
            intake: crate::intake::spawn(store.clone()),
            store,
            settings,
            chain_ids,
            accounts: std::sync::Mutex::new(accounts),
            pools: std::sync::RwLock::new(pools),
            views: Default::default(),
            shutdown: std::sync::Mutex::new(None),
            contract_errors: Arc::default(),
        }
    }

    /// Custom errors the configuration's ABIs declare, so a rejection
    /// names them (see [`crate::ContractErrors`]). Before [`Self::spawn`].
    pub fn with_contract_errors(mut self, errors: crate::ContractErrors) -> Self {
        self.contract_errors = Arc::new(errors);
        self
    }

    /// Adds an account (a pool's new member) and, once [`Self::spawn`]
    /// ran, starts its sender (replicas start it as a unit instead). An
    /// account already known is left as it is.
    pub fn add_account(&self, account: Account) {
        let key = (account.chain.clone(), account.signer.address());
        {
            let Ok(mut accounts) = self.accounts.lock() else {
                return;
            };
            if accounts.contains_key(&key) {
                return;
            }
            let shared: Arc<Shared> = Arc::default();
            accounts.insert(key.clone(), Entry { account, shared });
        }
        let shutdown = self.shutdown.lock().ok().and_then(|s| s.clone());
        if let Some(shutdown) = shutdown {
            self.start_sender(&key.0, key.1, self.store.clone(), shutdown);
        }
    }

    /// Starts the sender of `address` on `chain`, writing through `store`
    /// (a replica's fenced handle) until `stop`; `None` for an unknown
    /// account.
    pub fn start_sender(
        &self,
        chain: &str,
        address: Address,
        store: Store,
        stop: watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let (account, shared) = {
            let accounts = self.accounts.lock().ok()?;
            let e = accounts.get(&(chain.to_owned(), address))?;
            (e.account.clone(), e.shared.clone())
        };
        let view = self.view(chain);
        let sender = Sender::new(account, store, self.settings, shared, view)
            .with_contract_errors(self.contract_errors.clone());
        Some(tokio::spawn(sender.run(stop)))
    }

    /// The shared view of `chain` its senders read heads through.
    fn view(&self, chain: &str) -> Arc<crate::sender::ChainView> {
        match self.views.lock() {
            Ok(mut views) => views.entry(chain.to_owned()).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    /// True when `address` is an account on `chain`.
    pub fn has_account(&self, chain: &str, address: Address) -> bool {
        self.accounts
            .lock()
            .is_ok_and(|a| a.contains_key(&(chain.to_owned(), address)))
    }

    /// Replaces a pool's members: new requests `from` the pool go to them.
    pub fn set_pool(&self, name: &str, members: Vec<Address>) {
        if let Ok(mut pools) = self.pools.write() {
            pools.insert(name.to_owned(), members);
        }
    }

    /// A pool's members.
    pub fn pool(&self, name: &str) -> Vec<Address> {
        self.pools
            .read()
            .ok()
            .and_then(|p| p.get(name).cloned())
            .unwrap_or_default()
    }

    /// Every account, by chain.
    pub fn accounts(&self) -> Vec<(String, Address)> {
        let mut all: Vec<(String, Address)> = self
            .accounts
            .lock()
            .map(|a| a.keys().cloned().collect())
            .unwrap_or_default();
        all.sort();
        all
    }

    /// The store the manager records in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The chain id of a configured chain name.
    pub fn chain_id_of(&self, chain: &str) -> Option<u64> {
        self.chain_ids.get(chain).copied()
    }

    /// Starts one sender per account, all in this process (a single
    /// node without leases: tests and benchmarks); they stop on
    /// `shutdown`, and accounts added later start at once.
    pub fn spawn(&self, shutdown: &watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        if let Ok(mut s) = self.shutdown.lock() {
            *s = Some(shutdown.clone());
        }
        self.accounts()
            .into_iter()
            .filter_map(|(chain, address)| {
                self.start_sender(&chain, address, self.store.clone(), shutdown.clone())
            })
            .collect()
    }

    /// Validates and records a request (`queued`), or finds the one already
    /// accepted under its idempotency key.
    pub async fn submit(&self, body: &Value) -> Result<Submitted, SubmitError> {
        let req = self.parse(body)?;
        self.submit_parsed(body, req).await
    }

    /// Validates a request body and resolves its `from` (a pool name picks
    /// the member with the fewest open requests), recording nothing: the
    /// API's policy check looks at the result before it is submitted.
    pub fn parse(&self, body: &Value) -> Result<TxRequest, SubmitError> {
        Ok(request::parse(
            body,
            &Resolver(self),
            self.settings.default_confirmations,
        )?)
    }

    /// A request from `from` to `to` on `chain`, built in this process
    /// (top-ups, rotation steps) rather than received: no calldata, no
    /// value, normal speed, the default confirmations. Set the rest, then
    /// [`TxManager::submit_request`].
    pub fn request(
        &self,
        chain: &str,
        from: Address,
        to: Address,
        idempotency_key: String,
    ) -> TxRequest {
        TxRequest {
            chain: chain.to_owned(),
            from,
            to,
            data: Bytes::new(),
            value: U256::ZERO,
            gas_limit: None,
            speed: crate::request::Speed::Normal,
            max_fee_per_gas: None,
            max_priority_fee_per_gas: None,
            valid_until: None,
            confirmations: self.settings.default_confirmations,
            metadata: Value::Null,
            idempotency_key,
            errors: Vec::new(),
        }
    }

    /// Records a request built in this process ([`TxManager::request`]),
    /// or finds the one already accepted under its idempotency key. It
    /// is checked by intake's rules ([`request::check`]); the key's body is
    /// the request itself.
    pub async fn submit_request(&self, req: TxRequest) -> Result<Submitted, SubmitError> {
        request::check(&req, &Resolver(self))?;
        let body = serde_json::to_value(&req)?;
        self.submit_parsed(&body, req).await
    }

    /// The pools `account` is a member of now.
    pub fn pools_of(&self, account: Address) -> Vec<String> {
        let Ok(pools) = self.pools.read() else {
            return Vec::new();
        };
        pools
            .iter()
            .filter(|(_, members)| members.contains(&account))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Records a request [`TxManager::parse`] accepted (`body` is what the
    /// caller sent, for the idempotency check).
    pub async fn submit_parsed(
        &self,
        body: &Value,
        req: TxRequest,
    ) -> Result<Submitted, SubmitError> {
        let id = new_id();
        let chain_id = self.chain_id(&req);
        let request_json = serde_json::to_string(&req)?;
        let state = ethgate_store::StoredState::encode(&ethgate_core::TxState::Queued)?;
        let sender = format!("{:#x}", req.from);
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = crate::intake::Owned {
            id: id.clone(),
            idempotency_key: req.idempotency_key.clone(),
            body_hash: request::body_hash(body),
            chain_id,
            sender,
            request: request_json,
            state,
        };
        self.intake
            .send((job, reply))
            .await
            .map_err(|_| SubmitError::RecorderStopped)?;
        let inserted = answer
            .await
            .map_err(|_| SubmitError::RecorderStopped)?
            .map_err(SubmitError::Intake)?;
        match inserted {
            Inserted::Created => {
                metrics::counter!(m::ACCEPTED, "chain" => req.chain.clone()).increment(1);
                self.wake(&req.chain, req.from);
                Ok(Submitted {
                    id,
                    existing: false,
                })
            }
            Inserted::Existing(id) => Ok(Submitted { id, existing: true }),
            Inserted::Conflict(id) => Err(SubmitError::Conflict(id)),
        }
    }

    fn chain_id(&self, req: &TxRequest) -> u64 {
        self.chain_ids.get(&req.chain).copied().unwrap_or_default()
    }

    /// Wakes the senders running here when another replica accepted a
    /// request for their account (PostgreSQL's `NOTIFY`; see
    /// `ethgate_store::TxWake`). Ends when the manager is dropped.
    pub fn follow_wakes(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let mut wakes = self.store.tx_wakes();
        let manager = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let wake = match wakes.recv().await {
                    Ok(w) => w,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => TxWake::All,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let Some(m) = manager.upgrade() else { return };
                let Ok(accounts) = m.accounts.lock() else {
                    return;
                };
                for ((chain, address), e) in accounts.iter() {
                    let hit = match &wake {
                        TxWake::All => true,
                        TxWake::Account { chain_id, sender } => {
                            m.chain_ids.get(chain) == Some(chain_id)
                                && sender.parse::<Address>().ok() == Some(*address)
                        }
                    };
                    if hit {
                        e.shared.wake.notify_one();
                    }
                }
            }
        })
    }

    fn wake(&self, chain: &str, address: Address) {
        if let Ok(accounts) = self.accounts.lock()
            && let Some(e) = accounts.get(&(chain.to_owned(), address))
        {
            e.shared.wake.notify_one();
        }
    }

    /// A request with its attempts, as the API shows it.
    pub async fn get(&self, id: &str) -> Result<Option<TxView>, ReadError> {
        let Some(row) = self.store.tx(id).await? else {
            return Ok(None);
        };
        let attempts = self.store.attempts(id).await?;
        Ok(Some(TxView::of(&row, &attempts)?))
    }

    /// Requests, newest first.
    pub async fn list(
        &self,
        status: Option<TxStatus>,
        from: Option<Address>,
        limit: u32,
    ) -> Result<Vec<TxView>, ReadError> {
        let from = from.map(|a| format!("{a:#x}"));
        let rows = self.store.txs(status, from.as_deref(), limit).await?;
        Ok(rows
            .iter()
            .map(|r| TxView::of(r, &[]))
            .collect::<Result<_, _>>()?)
    }

    /// Asks the request's sender to cancel it.
    pub async fn cancel(&self, id: &str) -> Result<CancelOutcome, StoreError> {
        self.ask(id, &[TxStatus::Queued, TxStatus::Pending], |s| &s.cancels)
            .await
    }

    /// Asks the request's sender to replace it with higher fees, past its
    /// fee caps if need be — the way out for a transaction held at a cap.
    pub async fn bump(&self, id: &str) -> Result<CancelOutcome, StoreError> {
        self.ask(id, &[TxStatus::Pending], |s| &s.bumps).await
    }

    async fn ask(
        &self,
        id: &str,
        statuses: &[TxStatus],
        list: impl Fn(&Shared) -> &std::sync::Mutex<Vec<String>>,
    ) -> Result<CancelOutcome, StoreError> {
        let Some(row) = self.store.tx(id).await? else {
            return Ok(CancelOutcome::NotFound);
        };
        if !statuses.contains(&row.status) {
            return Ok(CancelOutcome::AlreadyEnded);
        }
        let req: Option<TxRequest> = serde_json::from_str(&row.request).ok();
        if let (Some(req), Ok(accounts)) = (req, self.accounts.lock())
            && let Some(e) = accounts.get(&(req.chain.clone(), req.from))
        {
            if let Ok(mut c) = list(&e.shared).lock() {
                c.push(row.id.clone());
            }
            e.shared.wake.notify_one();
        }
        Ok(CancelOutcome::Requested)
    }
}
