//! The words of an operational-account pool as enums: a member's place
//! in the rotation life cycle and a rotation's step. The store keeps them
//! as these words; the accounts crate and the API act on the enums.

use serde::{Deserialize, Serialize};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

impl std::fmt::Display for MemberState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for RotationStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
