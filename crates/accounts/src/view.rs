//! What `GET /v1/accounts` and the rotation routes show: pools, members,
//! balances and rotations, typed so the API's OpenAPI document is
//! generated from them, with the member states and rotation steps as
//! enums rather than the words the store keeps.

use serde::Serialize;

/// A pool member's place in the rotation life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Made by a rotation, not yet registered on chain.
    New,
    /// Sends the pool's traffic.
    Active,
    /// Replaced: finishes what it holds, then is swept.
    Retiring,
    /// Swept and done.
    Retired,
}

impl MemberState {
    /// Every state.
    pub const ALL: [MemberState; 4] = [
        MemberState::New,
        MemberState::Active,
        MemberState::Retiring,
        MemberState::Retired,
    ];

    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::New => "new",
            MemberState::Active => "active",
            MemberState::Retiring => "retiring",
            MemberState::Retired => "retired",
        }
    }

    /// Parses a stored word.
    pub fn parse(s: &str) -> Option<MemberState> {
        MemberState::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// Where a rotation is: each step is resumable after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RotationStep {
    /// Making the new members' keystores.
    Keys,
    /// Funding the new members from the funding account.
    Funding,
    /// The master's `setOperators` transaction.
    Registering,
    /// New members take the traffic; old ones retire.
    Switching,
    /// Waiting for the old members' transactions to end.
    Draining,
    /// Sweeping the old members' balances back to funding.
    Sweeping,
    /// Finished.
    Done,
}

impl RotationStep {
    /// Every step, in order.
    pub const ALL: [RotationStep; 7] = [
        RotationStep::Keys,
        RotationStep::Funding,
        RotationStep::Registering,
        RotationStep::Switching,
        RotationStep::Draining,
        RotationStep::Sweeping,
        RotationStep::Done,
    ];

    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            RotationStep::Keys => "keys",
            RotationStep::Funding => "funding",
            RotationStep::Registering => "registering",
            RotationStep::Switching => "switching",
            RotationStep::Draining => "draining",
            RotationStep::Sweeping => "sweeping",
            RotationStep::Done => "done",
        }
    }

    /// Parses a stored word.
    pub fn parse(s: &str) -> Option<RotationStep> {
        RotationStep::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A stored word that is none of the known states or steps.
#[derive(Debug, thiserror::Error)]
#[error("stored {what} {word:?} is not a known one")]
pub struct UnknownWord {
    /// `member state` or `rotation step`.
    pub what: &'static str,
    /// The word read.
    pub word: String,
}

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
    /// E.g. the daily top-up cap is reached.
    pub alerts: Vec<String>,
    /// The operator registry contract.
    pub registry: Option<String>,
    /// The unfinished or latest rotation.
    pub rotation: Option<RotationView>,
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
    /// The store failed.
    #[error(transparent)]
    Store(#[from] ethgate_store::StoreError),
    /// A stored word is unknown.
    #[error(transparent)]
    Unknown(#[from] UnknownWord),
}
