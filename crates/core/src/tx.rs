//! The life of a transaction request, as one pure transition function.
//!
//! `step(state, event, policy, now)` returns the next state and the effects
//! the sender must carry out (simulate, take a nonce, broadcast, bump,
//! replace with a no-op, emit a status envelope). It does no I/O and reads
//! no clock, so every rule — when to re-broadcast, when to bump, when a
//! reorg sends a mined transaction back to `pending`, when `confirmed` is
//! reached — is unit- and property-tested without a chain. The sender task
//! observes the world (receipts, head, time) and feeds it in as events.
//!
//! States follow DESIGN.md: `queued → pending → mined → confirmed`, and the
//! end states `failed`, `rejected`, `cancelled`, `expired`. A nonce is held
//! from `pending` on; `rejected` never has one. Cancelling or expiring a
//! transaction that already holds a nonce replaces it with a 0-value
//! self-send at that nonce, so the nonce is used and nothing is left gapped.
//!
//! What the sender saw reaches `step` only as evidence that holds on a
//! chain read through nodes that disagree ([`evidence`]): a request goes
//! back to `queued` — to be sent again at a new nonce — only when the
//! transaction that used its nonce was found in a canonical block and is
//! none of its attempts, or when no attempt of it has been found anywhere
//! for the finality depth since its nonce was first seen used.

mod evidence;
pub use evidence::{Reading, event_of};

use alloy_primitives::B256;
use serde::{Deserialize, Serialize};

/// Why a transaction holding a nonce is being replaced with a no-op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// An operator cancelled it.
    Cancel,
    /// Its `valid_until` passed.
    Expire,
}

/// A transaction that holds a nonce and is not yet in a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The account nonce it holds.
    pub nonce: u64,
    /// Signed attempts so far (each a replacement of the one before).
    pub attempts: u32,
    /// Unix seconds of the last broadcast.
    pub sent_at: u64,
    /// Unix seconds of the last new attempt (first signing or a bump).
    pub bumped_at: u64,
    /// The last bump was refused by a fee cap: it keeps being re-broadcast
    /// and an alert is raised until an operator bumps past the cap or
    /// cancels.
    pub capped: bool,
    /// Set once a no-op replacement was asked for.
    pub ending: Option<Ending>,
    /// The first block (height) at which a pinned reading found the nonce
    /// used with no attempt of this request's found: the start of the
    /// finality wait before it is sent again at a new nonce (see
    /// [`TxEvent::NonceUnaccounted`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unaccounted_since: Option<u64>,
}

/// Where an attempt of a transaction was included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inclusion {
    /// The nonce.
    pub nonce: u64,
    /// Block height.
    pub block_number: u64,
    /// Block hash, checked against the canonical chain before confirming.
    pub block_hash: B256,
    /// Hash of the attempt that was included.
    pub hash: B256,
    /// Receipt status: `false` = reverted.
    pub success: bool,
    /// The included attempt was the no-op replacement (cancel or expiry).
    pub noop: Option<Ending>,
}

/// The state of a transaction request; each variant carries exactly the
/// data valid in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TxState {
    /// Accepted; waiting for its simulation and a nonce.
    Queued,
    /// Signed at a nonce and broadcast; not yet in a block.
    Pending(Pending),
    /// In a block, not yet deep enough.
    Mined(Inclusion),
    /// Mined successfully and `confirmations` deep on the canonical chain.
    /// Still watched: a reorg within the finality depth reopens it.
    Confirmed(Inclusion),
    /// Mined but reverted, and `confirmations` deep.
    Failed(Inclusion),
    /// Refused before a nonce was taken (simulation revert, policy).
    Rejected {
        /// Decoded revert reason or policy message.
        reason: String,
    },
    /// Cancelled: before a nonce, or by a mined no-op replacement.
    Cancelled {
        /// The nonce the no-op used, if one was held.
        nonce: Option<u64>,
    },
    /// `valid_until` passed: before a nonce, or by a mined no-op.
    Expired {
        /// The nonce the no-op used, if one was held.
        nonce: Option<u64>,
    },
}

/// A request's status word of DESIGN.md without the state's data: what
/// the store indexes, the API filters by and envelopes carry.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TxStatus {
    /// Accepted; waiting for its simulation and a nonce.
    Queued,
    /// Signed at a nonce and broadcast.
    Pending,
    /// In a block, not yet deep enough.
    Mined,
    /// Mined successfully and deep enough.
    Confirmed,
    /// Mined but reverted.
    Failed,
    /// Refused before a nonce was taken.
    Rejected,
    /// Cancelled.
    Cancelled,
    /// `valid_until` passed.
    Expired,
}

impl TxStatus {
    /// No event changes a request in this status any more, and it moved
    /// nothing on chain: rejected, or ended by a no-op. `confirmed` and
    /// `failed` are not final: a reorg within the finality depth reopens
    /// them.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TxStatus::Rejected | TxStatus::Cancelled | TxStatus::Expired
        )
    }

    /// Every status, in the order of the life of a request.
    pub const ALL: [TxStatus; 8] = [
        TxStatus::Queued,
        TxStatus::Pending,
        TxStatus::Mined,
        TxStatus::Confirmed,
        TxStatus::Failed,
        TxStatus::Rejected,
        TxStatus::Cancelled,
        TxStatus::Expired,
    ];

    /// The stored and wire word.
    pub fn as_str(self) -> &'static str {
        match self {
            TxStatus::Queued => "queued",
            TxStatus::Pending => "pending",
            TxStatus::Mined => "mined",
            TxStatus::Confirmed => "confirmed",
            TxStatus::Failed => "failed",
            TxStatus::Rejected => "rejected",
            TxStatus::Cancelled => "cancelled",
            TxStatus::Expired => "expired",
        }
    }

    /// Parses a stored or requested word.
    pub fn parse(s: &str) -> Option<TxStatus> {
        TxStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for TxStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TxState {
    /// The status word of DESIGN.md, as the API and envelopes show it.
    pub fn status(&self) -> &'static str {
        self.kind().as_str()
    }

    /// The status without the state's data.
    pub fn kind(&self) -> TxStatus {
        match self {
            TxState::Queued => TxStatus::Queued,
            TxState::Pending(_) => TxStatus::Pending,
            TxState::Mined(_) => TxStatus::Mined,
            TxState::Confirmed(_) => TxStatus::Confirmed,
            TxState::Failed(_) => TxStatus::Failed,
            TxState::Rejected { .. } => TxStatus::Rejected,
            TxState::Cancelled { .. } => TxStatus::Cancelled,
            TxState::Expired { .. } => TxStatus::Expired,
        }
    }

    /// The nonce the request holds or used, if any.
    pub fn nonce(&self) -> Option<u64> {
        match self {
            TxState::Queued | TxState::Rejected { .. } => None,
            TxState::Pending(p) => Some(p.nonce),
            TxState::Mined(i) | TxState::Confirmed(i) | TxState::Failed(i) => Some(i.nonce),
            TxState::Cancelled { nonce } | TxState::Expired { nonce } => *nonce,
        }
    }

    /// The block the request is mined in, while it is.
    pub fn block_number(&self) -> Option<u64> {
        match self {
            TxState::Mined(i) | TxState::Confirmed(i) | TxState::Failed(i) => Some(i.block_number),
            _ => None,
        }
    }

    /// No event changes it any more (see [`TxStatus::is_final`]).
    pub fn is_final(&self) -> bool {
        self.kind().is_final()
    }
}

/// What the sender observed or was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxEvent {
    /// Time passed; the sender checks on the request.
    Tick,
    /// The simulation's verdict: `Err` carries the decoded revert reason.
    Simulated(Result<(), String>),
    /// A nonce was taken and the first attempt signed and recorded.
    Signed {
        /// The nonce taken.
        nonce: u64,
    },
    /// The sender could not raise fees past a cap; it keeps re-broadcasting.
    BumpCapped,
    /// An attempt of this nonce is in a block.
    Included(Inclusion),
    /// The block holding the included attempt left the canonical chain.
    Reorged,
    /// The mined block is this deep on the canonical chain now.
    Depth(u64),
    /// The transaction that used the nonce was found in a canonical block,
    /// and it is none of our attempts (compared by hash).
    NonceTakenElsewhere,
    /// At block `head`, read from a node that holds it, the account's nonce
    /// count has passed this nonce and no attempt of the request has a
    /// receipt, but the transaction that used the nonce was not found. Not
    /// enough to spend a new nonce: that takes the finality depth of such
    /// readings (see [`Policy::finality_depth`]).
    NonceUnaccounted {
        /// The height the reading was pinned to.
        head: u64,
    },
    /// The chain's next nonce is this request's, yet the node's pending
    /// count says it holds nothing executable there: it lost the attempt,
    /// or holds it where it will never be mined (anvil parks a transaction
    /// that arrives while the block mining its predecessor is built, and
    /// answers a re-broadcast with "already imported"). Every later nonce
    /// of the account waits behind this one.
    Stalled {
        /// The node answered the last re-broadcast "already known": it
        /// holds these bytes and still counts nothing executable at the
        /// nonce, so it will not mine them; no need to wait and see.
        held: bool,
    },
    /// The node refused the latest attempt for a reason a higher fee does
    /// not fix (the account cannot pay): it is re-broadcast on the resubmit
    /// interval, never bumped. Bumps would only make it dearer, compounding,
    /// and be paid the day the node accepts it.
    Refused,
    /// An operator asked to cancel.
    Cancel,
    /// An operator asked for a replacement with higher fees, past the fee
    /// caps if need be (the way out of `capped`).
    BumpPastCap,
}

/// What the sender must do after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Simulate the call (`eth_estimateGas`) before any nonce is taken.
    Simulate,
    /// Take the account's next nonce and sign and record the first attempt,
    /// in one database transaction; then report [`TxEvent::Signed`].
    AssignNonce,
    /// Send the latest attempt's raw bytes again, to every endpoint.
    Rebroadcast,
    /// Sign, record and broadcast a replacement with higher fees.
    Bump,
    /// The same, ignoring the fee caps (an operator asked).
    BumpPastCap,
    /// Sign, record and broadcast a 0-value self-send at the nonce with
    /// higher fees, so the nonce is used and the request ends.
    ReplaceWithNoop,
    /// The status changed: write a status envelope.
    Emit,
    /// Raise the "stuck at a fee cap" alert.
    AlertCapped,
}

/// The timing rules a request follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Re-broadcast a pending attempt not mined after this many seconds.
    pub resubmit_after: u64,
    /// Replace with higher fees after this many seconds without inclusion.
    pub bump_after: u64,
    /// Depth at which a mined transaction is `confirmed`.
    pub confirmations: u64,
    /// A stalled attempt (see [`TxEvent::Stalled`]) is re-broadcast this
    /// many seconds after it was last sent, and replaced if it is still
    /// stalled this long after that re-broadcast, without waiting for
    /// `bump_after`.
    pub stall_after: u64,
    /// Unix seconds after which the request is cancelled as `expired`.
    pub valid_until: Option<u64>,
    /// Blocks a nonce must stay used with none of the request's attempts
    /// found before the request is sent again at a new nonce (when the
    /// transaction that used it cannot be found).
    pub finality_depth: u64,
}

fn expired(policy: &Policy, now: u64) -> bool {
    policy.valid_until.is_some_and(|t| now > t)
}

/// The transition function. Unknown combinations (an event that does not
/// apply to the state) leave the state unchanged with no effects.
pub fn step(state: &TxState, event: &TxEvent, policy: &Policy, now: u64) -> (TxState, Vec<Effect>) {
    use TxState as S;
    let next = match state {
        S::Queued => queued_step(event, policy, now),
        S::Pending(p) => pending_step(p, event, policy, now),
        S::Mined(i) | S::Confirmed(i) | S::Failed(i) => included_step(state, i, event, policy, now),
        _ => None,
    };
    next.unwrap_or_else(|| (state.clone(), Vec::new()))
}

/// A just-signed (or re-opened) transaction at `nonce`: one attempt, sent
/// now.
fn sent(nonce: u64, ending: Option<Ending>, now: u64) -> TxState {
    TxState::Pending(Pending {
        nonce,
        attempts: 1,
        sent_at: now,
        bumped_at: now,
        capped: false,
        ending,
        unaccounted_since: None,
    })
}

/// `queued`: expire, simulate, take a nonce, or be cancelled.
fn queued_step(event: &TxEvent, policy: &Policy, now: u64) -> Option<(TxState, Vec<Effect>)> {
    use Effect::*;
    use TxState as S;
    Some(match event {
        TxEvent::Tick if expired(policy, now) => (S::Expired { nonce: None }, vec![Emit]),
        TxEvent::Tick => (S::Queued, vec![Simulate]),
        TxEvent::Simulated(Ok(())) => (S::Queued, vec![AssignNonce]),
        TxEvent::Simulated(Err(reason)) => (
            S::Rejected {
                reason: reason.clone(),
            },
            vec![Emit],
        ),
        TxEvent::Signed { nonce } => (sent(*nonce, None, now), vec![Rebroadcast, Emit]),
        TxEvent::Cancel => (S::Cancelled { nonce: None }, vec![Emit]),
        _ => return None,
    })
}

/// `pending`: time passing, a refusal, a stall, a cap, the operator's
/// cancel or bump, an inclusion, or the nonce found used by another.
fn pending_step(
    p: &Pending,
    event: &TxEvent,
    policy: &Policy,
    now: u64,
) -> Option<(TxState, Vec<Effect>)> {
    use Effect::*;
    use TxState as S;
    let replaced = |f: &dyn Fn(&mut Pending)| {
        let mut p = p.clone();
        p.attempts += 1;
        p.bumped_at = now;
        p.sent_at = now;
        f(&mut p);
        S::Pending(p)
    };
    Some(match event {
        TxEvent::Tick => pending_tick(p, policy, now, true),
        TxEvent::Refused => pending_tick(p, policy, now, false),
        TxEvent::Stalled { held } => stalled(p, *held, policy, now),
        TxEvent::BumpCapped => {
            let mut p = p.clone();
            p.capped = true;
            p.sent_at = now;
            (S::Pending(p), vec![Rebroadcast, AlertCapped])
        }
        TxEvent::Cancel if p.ending.is_none() => (
            replaced(&|p| p.ending = Some(Ending::Cancel)),
            vec![ReplaceWithNoop],
        ),
        TxEvent::BumpPastCap if p.ending.is_none() => {
            (replaced(&|p| p.capped = false), vec![BumpPastCap])
        }
        TxEvent::Included(i) if i.nonce == p.nonce => (S::Mined(i.clone()), vec![Emit]),
        TxEvent::NonceTakenElsewhere => (S::Queued, vec![Emit]),
        TxEvent::NonceUnaccounted { head } => match p.unaccounted_since {
            Some(since) if head.saturating_sub(since) >= policy.finality_depth.max(1) => {
                (S::Queued, vec![Emit])
            }
            Some(_) => return None,
            None => {
                let mut p = p.clone();
                p.unaccounted_since = Some(*head);
                (S::Pending(p), Vec::new())
            }
        },
        _ => return None,
    })
}

/// `mined`, `confirmed` or `failed` (all included at `i`): deep enough to
/// be final, or reorganised out and pending again at its nonce.
fn included_step(
    state: &TxState,
    i: &Inclusion,
    event: &TxEvent,
    policy: &Policy,
    now: u64,
) -> Option<(TxState, Vec<Effect>)> {
    use TxState as S;
    match (state, event) {
        (S::Mined(_), TxEvent::Depth(d)) if *d >= policy.confirmations.max(1) => {
            let next = match (i.noop, i.success) {
                (Some(Ending::Cancel), _) => S::Cancelled {
                    nonce: Some(i.nonce),
                },
                (Some(Ending::Expire), _) => S::Expired {
                    nonce: Some(i.nonce),
                },
                (None, true) => S::Confirmed(i.clone()),
                (None, false) => S::Failed(i.clone()),
            };
            Some((next, vec![Effect::Emit]))
        }
        (_, TxEvent::Reorged) => Some((
            sent(i.nonce, i.noop, now),
            vec![Effect::Rebroadcast, Effect::Emit],
        )),
        _ => None,
    }
}

/// The timing rules of a pending request: expiry, then (when `may_bump`)
/// the bump interval, then the resubmit interval.
fn pending_tick(p: &Pending, policy: &Policy, now: u64, may_bump: bool) -> (TxState, Vec<Effect>) {
    let mut next = p.clone();
    if p.ending.is_none() && expired(policy, now) {
        next.ending = Some(Ending::Expire);
        next.attempts += 1;
        next.bumped_at = now;
        next.sent_at = now;
        return (TxState::Pending(next), vec![Effect::ReplaceWithNoop]);
    }
    if may_bump && !p.capped && now.saturating_sub(p.bumped_at) >= policy.bump_after {
        next.attempts += 1;
        next.bumped_at = now;
        next.sent_at = now;
        return (TxState::Pending(next), vec![Effect::Bump]);
    }
    if now.saturating_sub(p.sent_at) >= policy.resubmit_after {
        next.sent_at = now;
        let mut effects = vec![Effect::Rebroadcast];
        if p.capped {
            effects.push(Effect::AlertCapped);
        }
        return (TxState::Pending(next), effects);
    }
    (TxState::Pending(next), Vec::new())
}

/// A stalled frontier: expiry and the bump interval first (they replace
/// it anyway). Then re-sending restores an attempt the node lost, at no
/// cost; when a re-broadcast since the last new attempt did not help, the
/// node holds the attempt but will not mine it, and only a replacement (new
/// bytes, admitted against the current chain) gets the nonce, and every
/// nonce behind it, moving again. The wait is the shorter of the stall and
/// resubmit intervals, so frequent resubmits cannot keep postponing it; a
/// node that answered the re-broadcast "already known" (`held`) has shown
/// it will not mine the bytes, so there is no wait after that answer.
fn stalled(p: &Pending, held: bool, policy: &Policy, now: u64) -> (TxState, Vec<Effect>) {
    let (next, effects) = pending_tick(p, policy, now, true);
    let replaces = effects
        .iter()
        .any(|e| matches!(e, Effect::Bump | Effect::ReplaceWithNoop));
    let resent = p.sent_at > p.bumped_at;
    let wait = match held && resent && !p.capped {
        true => 0,
        false => policy.stall_after.min(policy.resubmit_after).max(1),
    };
    if replaces || now.saturating_sub(p.sent_at) < wait {
        return (next, effects);
    }
    let mut next = p.clone();
    next.sent_at = now;
    if resent && !p.capped {
        next.attempts += 1;
        next.bumped_at = now;
        let effect = match p.ending {
            Some(_) => Effect::ReplaceWithNoop,
            None => Effect::Bump,
        };
        return (TxState::Pending(next), vec![effect]);
    }
    if !effects.is_empty() {
        // The resubmit rule sends it again (with the cap alert, if capped).
        return (TxState::Pending(next), effects);
    }
    (TxState::Pending(next), vec![Effect::Rebroadcast])
}

#[cfg(test)]
mod evidence_tests;
#[cfg(test)]
mod tests;
