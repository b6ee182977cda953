//! The audit trail's vocabulary and its envelope: what callers did to the
//! gateway, as the store records it and as sinks deliver it (stream
//! `audit`), so a SIEM or a chat channel hears of a refused stolen token
//! the way a back end hears of an event.

use serde::{Deserialize, Serialize};

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `POST /v1/transactions`.
    TxSubmit,
    /// A cancel request.
    TxCancel,
    /// A bump request.
    TxBump,
    /// A pool rotation.
    PoolRotate,
    /// A sink cursor moved back.
    SinkRewind,
    /// A dead letter sent again.
    Redeliver,
    /// A token created.
    TokenCreate,
    /// A token revoked.
    TokenRevoke,
}

impl Action {
    /// Every action, for parsing.
    pub const ALL: [Action; 8] = [
        Action::TxSubmit,
        Action::TxCancel,
        Action::TxBump,
        Action::PoolRotate,
        Action::SinkRewind,
        Action::Redeliver,
        Action::TokenCreate,
        Action::TokenRevoke,
    ];

    /// Stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::TxSubmit => "tx_submit",
            Action::TxCancel => "tx_cancel",
            Action::TxBump => "tx_bump",
            Action::PoolRotate => "pool_rotate",
            Action::SinkRewind => "sink_rewind",
            Action::Redeliver => "redeliver",
            Action::TokenCreate => "token_create",
            Action::TokenRevoke => "token_revoke",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done or queued.
    Accepted,
    /// Refused by scope, policy or validation.
    Refused,
    /// Allowed but failed.
    Failed,
}

impl Outcome {
    /// Stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Outcome> {
        [Outcome::Accepted, Outcome::Refused, Outcome::Failed]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// `{ "id": "audit:<entry>", "kind": "audit", "at_ms", "token_id", "label",
/// "action", "target", "outcome", "detail", "seq" }`: one audit entry as
/// delivered. It holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEnvelope {
    /// `audit:<entry id>`.
    pub id: String,
    /// Always `"audit"`.
    pub kind: String,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// The token's id; `null` for the command line.
    pub token_id: Option<String>,
    /// The token's label, or `cli`.
    pub label: String,
    /// What.
    pub action: Action,
    /// On what.
    pub target: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The refusal's rule, the error, or a summary.
    pub detail: String,
    /// Outbox position, set when read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}
