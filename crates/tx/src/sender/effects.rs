//! Carrying out what `step` decided: saving states, replacing attempts
//! (bumps and no-ops, signed and recorded before they are sent),
//! broadcasting, and the status envelopes of every change.

use alloy_primitives::{B256, Bytes, U256};
use ethgate_chain::ChainError;
use ethgate_chain::rpc_error::{SendErrorClass, classify_send};
use ethgate_core::Effect;
use ethgate_core::tx::{Policy, TxEvent, TxState, step};
use ethgate_store::{StoredState, TxRow};
use serde_json::json;

use super::{Sender, TickError, now};
use crate::fees::{self, Fees};
use crate::metrics as m;
use crate::request::TxRequest;

/// How the error a request shows starts when a node refused its broadcast.
const REFUSED: &str = "broadcast refused: ";

/// Re-broadcasts and replacements per JSON-RPC batch.
const RESENDS_PER_BATCH: usize = 50;

/// A replacement signed this tick, to be recorded before it is sent.
pub(super) struct Replacing {
    id: String,
    attempt: ethgate_store::NewAttempt,
    state: StoredState,
    status: ethgate_core::TxStatus,
}

impl Sender {
    /// Steps a request with an event and carries out the effects.
    pub(super) async fn apply(
        &mut self,
        row: &TxRow,
        req: &TxRequest,
        state: &TxState,
        event: &TxEvent,
        policy: &Policy,
    ) -> Result<(), TickError> {
        let (mut next, mut effects) = step(state, event, policy, now());
        if matches!(event, TxEvent::Stalled { .. }) && !effects.is_empty() {
            if effects.contains(&Effect::Rebroadcast) {
                self.node.stall_resends.insert(row.id.clone());
            }
            metrics::counter!(m::STALLS, "chain" => self.account.chain.clone()).increment(1);
            tracing::warn!(tx = %row.id, account = %self.addr, nonce = ?state.nonce(), action = ?effects, "the node holds nothing executable at the account's next nonce; sending it again or replacing it");
        }
        // A request that got into a block leaves what it met on the way
        // (a refused broadcast, a fee cap) behind: its row, its status
        // envelopes and the API show no error from then on.
        let through = matches!(state, TxState::Pending(_))
            && matches!(
                next,
                TxState::Mined(_) | TxState::Cancelled { .. } | TxState::Expired { .. }
            )
            && row.error.is_some();
        let cleared = through.then(|| TxRow {
            error: None,
            ..row.clone()
        });
        let clear = through.then_some("");
        let row = cleared.as_ref().unwrap_or(row);
        if let (TxEvent::Included(_), TxState::Mined(i)) = (event, &next) {
            // Already deep enough (one confirmation): no need to wait a tick.
            let depth = TxEvent::Depth((self.chain.head + 1).saturating_sub(i.block_number));
            let (deeper, more) = step(&next, &depth, policy, now());
            if deeper != next {
                // Both changes are reported: mined, then confirmed.
                self.save(row, &next, clear).await?;
                self.emit(row, req, &next)?;
                next = deeper;
                effects.extend(more.into_iter().filter(|e| *e != Effect::Emit));
            }
        }
        if next == *state && effects.is_empty() {
            return Ok(());
        }
        // A newly failed request carries why, replayed from the chain (in
        // its row too, for its status envelope).
        let why = match (&next, state) {
            (TxState::Failed(i), s) if !matches!(s, TxState::Failed(_)) => {
                Some(self.why_failed(&row.id, req, i).await)
            }
            _ => None,
        };
        let failed_row = why.as_ref().map(|why| TxRow {
            error: Some(why.clone()),
            ..row.clone()
        });
        let row = failed_row.as_ref().unwrap_or(row);
        let replaces = effects.iter().any(|e| {
            matches!(
                e,
                Effect::Bump | Effect::BumpPastCap | Effect::ReplaceWithNoop
            )
        });
        if replaces {
            return self.replace(row, req, state, &next, &effects, policy).await;
        }
        if matches!(next, TxState::Queued) {
            self.attempts.remove(&row.id);
        }
        if !matches!(next, TxState::Pending(_)) {
            self.forget_answers(&row.id);
        }
        self.save(row, &next, why.as_deref().or(clear)).await?;
        self.execute(row, req, &next, &effects).await
    }

    /// A bump or a no-op: sign the replacement, record it with the new
    /// state, then queue its broadcast for the tick's end. A bump the caps
    /// forbid becomes `BumpCapped`.
    pub(super) async fn replace(
        &mut self,
        row: &TxRow,
        req: &TxRequest,
        state: &TxState,
        next: &TxState,
        effects: &[Effect],
        policy: &Policy,
    ) -> Result<(), TickError> {
        let TxState::Pending(p) = next else {
            return Ok(());
        };
        let Some(last) = self.attempts_of(&row.id).await?.last().cloned() else {
            return Ok(());
        };
        let market = self.market(req.speed).await?;
        let old = Fees {
            max_fee: last.max_fee,
            max_priority_fee: last.max_priority_fee,
        };
        let wanted = fees::bumped(old, market);
        // A request that is ending (cancelled, expired) is replaced by
        // no-ops only: a bump of its no-op is a no-op again, never the
        // call (which a cancel must keep off the chain).
        let noop = effects.contains(&Effect::ReplaceWithNoop) || p.ending.is_some();
        // A cancel or expiry is never held back by a cap: it ends the
        // request; nor is a bump an operator asked for.
        let fees = if noop || effects.contains(&Effect::BumpPastCap) {
            Some(wanted)
        } else {
            self.caps(req).allow(wanted)
        };
        let Some(fees) = fees else {
            let (capped, effects) = step(state, &TxEvent::BumpCapped, policy, now());
            self.save(
                row,
                &capped,
                Some("fee cap reached: re-broadcasting at the cap"),
            )
            .await?;
            return self.execute(row, req, &capped, &effects).await;
        };
        let tx = if noop {
            self.unsigned(
                p.nonce,
                self.address,
                U256::ZERO,
                Bytes::new(),
                21_000,
                fees,
            )
        } else {
            self.unsigned(
                p.nonce,
                req.to,
                req.value,
                req.data.clone(),
                last.gas_limit,
                fees,
            )
        };
        let attempt = self.sign(tx, fees, noop).await?;
        // Recorded with the tick's other replacements, before any is sent.
        self.out.replacements.push(Replacing {
            id: row.id.clone(),
            attempt: attempt.clone(),
            state: StoredState::encode(next)?,
            status: next.kind(),
        });
        self.out.changes.push(super::table::Change {
            id: row.id.clone(),
            state: next.clone(),
            error: None,
        });
        self.remember(&row.id, &attempt);
        // New bytes, a new answer (a no-op may be affordable).
        self.forget_answers(&row.id);
        metrics::counter!(m::REPLACEMENTS, "chain" => self.account.chain.clone(), "kind" => if noop { "noop" } else { "bump" }).increment(1);
        // Sent with the tick's other broadcasts once recorded (a fee spike
        // brings every pending request's bump due at once).
        self.out.resends.push((row.id.clone(), attempt.raw));
        Ok(())
    }

    /// Records the tick's replacements in one store transaction. If that
    /// fails, none of them may be broadcast (write-ahead), and the attempts
    /// this task remembered for them are forgotten, to be read again.
    pub(super) async fn record_replacements(&mut self) -> Result<(), TickError> {
        let replacing = std::mem::take(&mut self.out.replacements);
        let items: Vec<ethgate_store::SignedAttempt<'_>> = replacing
            .iter()
            .map(|r| ethgate_store::SignedAttempt {
                tx_id: &r.id,
                attempt: &r.attempt,
                state: &r.state,
                status: r.status,
            })
            .collect();
        let Err(e) = self.store.add_attempts(&items).await else {
            return Ok(());
        };
        let ids: std::collections::HashSet<&str> =
            replacing.iter().map(|r| r.id.as_str()).collect();
        self.out
            .resends
            .retain(|(id, _)| !ids.contains(id.as_str()));
        for id in ids {
            self.attempts.remove(id);
        }
        Err(e.into())
    }

    /// Queues a request's new state; the tick writes all of them in one
    /// transaction at its end. Only states the next tick could recompute
    /// from the chain go this way: attempts, and the nonces they take, are
    /// written before their broadcast.
    pub(super) async fn save(
        &mut self,
        row: &TxRow,
        next: &TxState,
        error: Option<&str>,
    ) -> Result<(), TickError> {
        self.out.saves.push(ethgate_store::StateUpdate {
            tx_id: row.id.clone(),
            state: StoredState::encode(next)?,
            status: next.kind(),
            nonce: next.nonce(),
            block_number: next.block_number(),
            error: error.map(str::to_owned),
        });
        self.out.changes.push(super::table::Change {
            id: row.id.clone(),
            state: next.clone(),
            error: error.map(str::to_owned),
        });
        Ok(())
    }

    pub(super) async fn execute(
        &mut self,
        row: &TxRow,
        req: &TxRequest,
        next: &TxState,
        effects: &[Effect],
    ) -> Result<(), TickError> {
        for effect in effects {
            match effect {
                Effect::Rebroadcast => {
                    // Sent with the tick's other re-broadcasts, in batches
                    // (see `flush_resends`).
                    let latest = self.attempts_of(&row.id).await?.last();
                    if let Some(raw) = latest.map(|a| a.raw.clone()) {
                        self.out.resends.push((row.id.clone(), raw));
                    }
                }
                Effect::Emit => self.emit(row, req, next)?,
                Effect::AlertCapped => {
                    metrics::counter!(m::CAPPED, "chain" => self.account.chain.clone())
                        .increment(1);
                    tracing::warn!(tx = %row.id, account = %self.addr, "transaction held at its fee cap; bump past the cap or cancel it");
                }
                Effect::Simulate
                | Effect::AssignNonce
                | Effect::Bump
                | Effect::BumpPastCap
                | Effect::ReplaceWithNoop => {}
            }
        }
        Ok(())
    }

    /// Sends the tick's re-broadcasts and replacements (all recorded
    /// already), a few JSON-RPC batches at a time, even when the tick
    /// stopped early: each was decided on what the chain said. When a node drops its
    /// pool, or a fee spike makes every bump due, all of an account's
    /// pending requests come due at once; one round trip each, in turn, would hold the tick and every new
    /// request behind them.
    pub(super) async fn flush_resends(&mut self) -> Result<(), TickError> {
        let resends = std::mem::take(&mut self.out.resends);
        let items: Vec<(&str, &[u8])> = resends
            .iter()
            .map(|(id, raw)| (id.as_str(), raw.as_slice()))
            .collect();
        let sent = super::in_batches(&items, RESENDS_PER_BATCH, |chunk| {
            send_all(
                &self.account.pool,
                &self.store,
                &self.shared,
                &self.account.chain,
                &self.addr,
                chunk,
            )
        })
        .await;
        // A request the node now accepts is no longer refused: not firmly,
        // and not in what it shows.
        // And one re-sent for a stall that the node says it already holds
        // will not be mined: the next tick replaces it without waiting.
        let stall_resends = std::mem::take(&mut self.node.stall_resends);
        let mut accepted = Vec::new();
        for (chunk, answers) in sent {
            for ((id, _), a) in chunk.iter().zip(answers?) {
                match a == Answer::Held && stall_resends.contains(*id) {
                    true => self.node.held_stalls.insert((*id).to_owned()),
                    false => self.node.held_stalls.remove(*id),
                };
                if a != Answer::Refused {
                    accepted.push(*id);
                }
            }
        }
        for id in accepted {
            self.node.firm_refusals.remove(id);
            if self.table.error(id).is_some_and(|e| e.starts_with(REFUSED)) {
                self.store.set_tx_error(id, None).await?;
                self.table.set_error(id, None);
            }
        }
        Ok(())
    }

    /// Forgets what nodes last answered about a request's broadcasts (a
    /// refusal for funds, "already known" to a stall re-send): it has new
    /// bytes, or is pending no more.
    pub(super) fn forget_answers(&mut self, id: &str) {
        self.node.firm_refusals.remove(id);
        self.node.held_stalls.remove(id);
        self.node.sim_errors.remove(id);
    }

    /// Queues the status envelope of a state change; the tick writes it
    /// with the state change, in one transaction.
    pub(super) fn emit(
        &mut self,
        row: &TxRow,
        req: &TxRequest,
        next: &TxState,
    ) -> Result<(), serde_json::Error> {
        metrics::counter!(m::STATUS, "chain" => self.account.chain.clone(), "status" => next.status()).increment(1);
        // The outbox carries every status; the log carries the endings an
        // operator should see without a debug level.
        if matches!(
            next,
            TxState::Pending(_) | TxState::Mined(_) | TxState::Confirmed(_)
        ) {
            tracing::debug!(tx = %row.id, account = %self.addr, status = next.status(), nonce = ?next.nonce(), "transaction status");
        } else {
            tracing::info!(tx = %row.id, account = %self.addr, status = next.status(), nonce = ?next.nonce(), "transaction status");
        }
        let json = self.status_envelope(row, &req.metadata, next)?;
        self.out.envelopes.push(json);
        Ok(())
    }

    /// Ends a stored request the sender cannot read, or sets it aside:
    /// without a nonce it is rejected with the reason (it never reached
    /// the chain); one holding a nonce is left alone, and named in the log,
    /// for an operator to look at.
    pub(super) fn unreadable(
        &mut self,
        u: super::table::Unreadable,
    ) -> Result<(), serde_json::Error> {
        let holds_nonce = match &u.state {
            Some(state) => state.nonce().is_some(),
            None => u.row.nonce.is_some(),
        };
        if holds_nonce {
            tracing::error!(tx = %u.row.id, account = %self.addr, nonce = ?u.row.nonce, why = %u.why, "a stored transaction cannot be read and is left as it is; nonces after it may wait behind it");
            return Ok(());
        }
        tracing::error!(tx = %u.row.id, account = %self.addr, why = %u.why, "a stored transaction cannot be read; it is rejected");
        let reason = format!("ethgate cannot read this stored request: {}", u.why);
        let next = TxState::Rejected {
            reason: reason.clone(),
        };
        self.out.saves.push(ethgate_store::StateUpdate {
            tx_id: u.row.id.clone(),
            state: StoredState::encode(&next)?,
            status: ethgate_core::TxStatus::Rejected,
            nonce: None,
            block_number: None,
            error: Some(reason.clone()),
        });
        let json = self.status_envelope(&u.row, &serde_json::Value::Null, &next)?;
        self.out.envelopes.push(json);
        Ok(())
    }

    /// The status envelope (JSON) of `row` entering `next`.
    pub(super) fn status_envelope(
        &self,
        row: &TxRow,
        metadata: &serde_json::Value,
        next: &TxState,
    ) -> Result<String, serde_json::Error> {
        let latest = self
            .attempts
            .get(&row.id)
            .and_then(|a| a.last())
            .map(|a| a.hash.clone());
        let (hash, block_number) = match next {
            TxState::Mined(i) | TxState::Confirmed(i) | TxState::Failed(i) => {
                (Some(format!("{}", i.hash)), Some(i.block_number))
            }
            _ => (latest, None),
        };
        let error = match next {
            TxState::Rejected { reason } => Some(reason.clone()),
            _ => row.error.clone(),
        };
        let envelope = ethgate_core::TxEnvelope {
            id: format!("{}:{}", row.id, next.status()),
            kind: "tx".to_owned(),
            tx_id: row.id.clone(),
            idempotency_key: row.idempotency_key.clone(),
            chain_id: self.account.chain_id,
            from: self.addr.clone(),
            nonce: next.nonce(),
            status: next.kind(),
            hash,
            block_number,
            error,
            metadata: metadata.clone(),
            seq: None,
        };
        serde_json::to_string(&envelope)
    }
}

/// Sends signed transactions (request id, raw bytes) to every endpoint,
/// one JSON-RPC batch per endpoint; what each got as an answer. A transaction an
/// endpoint accepted, or already has, or whose nonce is used (its receipt
/// will tell), is sent; otherwise the last refusal is recorded on the
/// request for the API (and handed to the sender's next tick in `shared`),
/// and the next re-broadcast tries again. Needs no sender: first
/// broadcasts run beside the sender's next tick.
pub(super) async fn send_all(
    pool: &ethgate_chain::EndpointPool,
    store: &ethgate_store::Store,
    shared: &super::Shared,
    chain: &str,
    addr: &str,
    items: &[(&str, &[u8])],
) -> Result<Vec<Answer>, TickError> {
    let calls: Vec<(&str, serde_json::Value)> = items
        .iter()
        .map(|(_, raw)| {
            (
                "eth_sendRawTransaction",
                json!([format!("0x{}", hex::encode(raw))]),
            )
        })
        .collect();
    let per_endpoint = pool.batch_all::<B256>(&calls).await;
    metrics::counter!(m::BROADCASTS, "chain" => chain.to_owned()).increment(items.len() as u64);
    let mut sent = Vec::with_capacity(items.len());
    for (k, (id, _)) in items.iter().enumerate() {
        let (why, firm) = match answer(per_endpoint.iter().filter_map(|answers| answers.get(k))) {
            Ok(a) => {
                sent.push(a);
                continue;
            }
            Err(refusal) => refusal,
        };
        sent.push(Answer::Refused);
        tracing::warn!(tx = %id, account = %addr, error = %why, "broadcast refused; will retry");
        let error = format!("{REFUSED}{why}");
        store.set_tx_error(id, Some(&error)).await?;
        if let Ok(mut list) = shared.refused.lock() {
            list.push(super::Refusal {
                tx: (*id).to_owned(),
                error,
                firm,
            });
        }
    }
    Ok(sent)
}

/// What the endpoints said to one broadcast, as the sender needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// An endpoint accepted it, or has its nonce used (a receipt will
    /// tell whose).
    Sent,
    /// No endpoint took it anew, but one already holds these bytes.
    Held,
    /// Every endpoint refused it (recorded on the request).
    Refused,
}

/// What the endpoints' answers to one `eth_sendRawTransaction` mean: sent,
/// held already, or refused with the last refusal and whether every
/// endpoint's refusal is one a higher fee makes worse: the account cannot
/// pay. (Any other refusal may be about the price in words this crate does
/// not know, "txpool is full" say, and a bump that is refused costs
/// nothing; an unreachable endpoint's is no answer at all.)
fn answer<'a>(
    answers: impl Iterator<Item = &'a Result<B256, ChainError>>,
) -> Result<Answer, (String, bool)> {
    let mut why = None;
    let mut firm = true;
    let mut held = false;
    for a in answers {
        match a {
            Ok(_) => return Ok(Answer::Sent),
            Err(ChainError::Rpc { message, .. }) => match classify_send(message) {
                SendErrorClass::NonceTooLow => return Ok(Answer::Sent),
                SendErrorClass::AlreadyKnown => held = true,
                class => {
                    firm &= class == SendErrorClass::InsufficientFunds;
                    why = Some(message.clone());
                }
            },
            Err(e) => {
                firm = false;
                why = Some(e.to_string());
            }
        }
    }
    match (held, why) {
        (false, Some(w)) => Err((w, firm)),
        (true, _) => Ok(Answer::Held),
        (false, None) => Ok(Answer::Sent),
    }
}

/// One write per request: a tick can change a request twice (mined, then
/// confirmed); the last state stands, with the last error given.
pub(super) fn coalesce(saves: Vec<ethgate_store::StateUpdate>) -> Vec<ethgate_store::StateUpdate> {
    let mut at: std::collections::HashMap<String, usize> =
        std::collections::HashMap::with_capacity(saves.len());
    let mut out: Vec<ethgate_store::StateUpdate> = Vec::with_capacity(saves.len());
    for u in saves {
        match at.get(&u.tx_id) {
            Some(&k) => {
                let error = u.error.clone().or_else(|| out[k].error.take());
                out[k] = ethgate_store::StateUpdate { error, ..u };
            }
            None => {
                at.insert(u.tx_id.clone(), out.len());
                out.push(u);
            }
        }
    }
    out
}
