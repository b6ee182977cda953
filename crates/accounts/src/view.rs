//! What `GET /v1/accounts` and the rotation routes show: pools, members,
//! balances and rotations, typed so the API's OpenAPI document is
//! generated from them, with the member states and rotation steps as
//! enums rather than the words the store keeps.

use serde::Serialize;

pub use ethgate_core::pool::{MemberState, RotationStep};

/// Every pool and every sending account.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AccountsView {
    /// Configured pools.
    pub pools: Vec<PoolView>,
    /// Every account the gateway sends from.
    pub accounts: Vec<AccountRef>,
}

/// A sending account.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AccountRef {
    /// The `[[chains]]` name.
    pub chain: String,
    /// The address, 0x lowercase.
    pub address: String,
}

/// One pool: members, balances, top-ups, alerts and its rotation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PoolView {
    /// The `[[pools]]` name.
    pub name: String,
    /// The `[[chains]]` name.
    pub chain: String,
    /// Members, every state.
    pub members: Vec<MemberView>,
    /// The funding account.
    pub funding: Option<String>,
    /// Balance below which a member is topped up; wei, decimal.
    pub min_balance: Option<String>,
    /// Amount of a top-up; wei, decimal.
    pub top_up: Option<String>,
    /// Most topped up per day; wei, decimal.
    pub daily_top_up_cap: Option<String>,
    /// Topped up today; wei, decimal.
    pub topped_up_today: String,
    /// What needs an operator: a top-up that waits, was rejected or
    /// refused, or a daily cap reached.
    pub alerts: Vec<PoolAlert>,
    /// The operator registry contract.
    pub registry: Option<String>,
    /// The unfinished or latest rotation.
    pub rotation: Option<RotationView>,
}

/// Something about a pool that needs an operator, raised by the watcher
/// on its last pass and gone once the cause is: typed so a caller can act
/// on the kind without reading the sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PoolAlert {
    /// What is wrong.
    pub kind: AlertKind,
    /// The member it concerns, 0x lowercase.
    pub account: String,
    /// The same, as a sentence with the node's or intake's own words.
    pub message: String,
}

/// The kinds of [`PoolAlert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A top-up is in flight but the node has not taken it (the funding
    /// account cannot pay, say); it goes through once the cause is gone.
    TopUpWaiting,
    /// The member's last top-up was rejected; tried again later.
    TopUpRejected,
    /// Intake refused to take the top-up request.
    TopUpRefused,
    /// A member is below its minimum, but another top-up would pass the
    /// pool's daily cap.
    DailyCapReached,
}

/// A pool member.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MemberView {
    /// The address.
    pub address: String,
    /// Its place in the rotation life cycle.
    pub state: MemberState,
    /// Its keystore was made by a rotation.
    pub managed: bool,
    /// Last balance seen; wei, decimal.
    pub balance: Option<String>,
}

/// A rotation, as `POST /v1/pools/{name}/rotate` and
/// `GET /v1/pools/{name}/rotation` show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RotationView {
    /// `rot_…`.
    pub id: String,
    /// The pool.
    pub pool: String,
    /// Where it is.
    pub step: RotationStep,
    /// Bumped each time a stopped rotation is retried.
    pub attempt: u32,
    /// Why it stopped; run the rotation again to retry.
    pub error: Option<String>,
    /// Members it replaces.
    pub old: Vec<String>,
    /// Members it made.
    pub new: Vec<String>,
    /// Present while an external master must sign `setOperators`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multisig_transaction: Option<MultisigTx>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// The transaction an external master (a multisig) must sign.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MultisigTx {
    /// The chain id.
    pub chain_id: u64,
    /// The registry.
    pub to: String,
    /// Always `"0"`.
    pub value: String,
    /// Calldata, 0x hex.
    pub data: String,
    /// `setOperators(address[],address[])`.
    pub function: String,
}

/// Why a pool or rotation could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The store failed (a stored word it does not know among them).
    #[error(transparent)]
    Store(#[from] ethgate_store::StoreError),
}
