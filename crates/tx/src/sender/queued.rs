//! Queued requests, a tick's worth at a time: expire the expired, simulate
//! the rest in a task of their own (a few JSON-RPC batches at once), and,
//! as each batch of verdicts comes in, sign in order at consecutive
//! nonces, take those nonces with the signed attempts in one database
//! transaction, and hand the batch to the account's broadcaster as soon as
//! it is written.
//! Batching keeps the per-request cost near that of a raw sender while
//! every write still precedes its broadcast.

use ethgate_core::Effect;
use ethgate_core::tx::{Policy, TxEvent, TxState, step};
use ethgate_keys::UnsignedTx;
use ethgate_store::{NewAttempt, SignedAttempt, StatusEnvelopes, StoredState, TxRow};
use futures::StreamExt;

use super::admit::{Admission, admit};
use super::{Sender, Simulation, TickError, now};
use crate::fees::Fees;
use crate::request::TxRequest;

/// Recorded attempts handed to the broadcaster, one JSON-RPC batch's
/// worth: (request id, raw bytes).
pub(super) type Sends = Vec<(String, Vec<u8>)>;

/// Attempts signed ahead of their simulation's verdict.
type Signing = tokio::task::JoinHandle<Result<Vec<NewAttempt>, ethgate_keys::KeyError>>;

/// A tick's simulation verdicts, one JSON-RPC batch's at a time, in order.
type Verdicts = tokio::sync::mpsc::UnboundedReceiver<Vec<Result<u64, Simulation>>>;

/// Stops a task when dropped (a tick that ends early leaves no simulation
/// running behind it).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Simulations, and first broadcasts, per JSON-RPC batch.
const SIMULATIONS: usize = 50;
/// Nonces taken per store transaction; a multiple of [`SIMULATIONS`], so
/// each recorded batch is broadcast in full JSON-RPC batches and its
/// verdicts arrive as whole simulation batches (never one belonging to the
/// next).
const NONCE_BATCH: usize = 150;
const _: () = assert!(NONCE_BATCH.is_multiple_of(SIMULATIONS));

impl Sender {
    /// Starts queued requests (in creation order) up to the in-flight limit.
    pub(super) async fn start(
        &mut self,
        queued: Vec<(&TxRow, std::sync::Arc<TxRequest>, Policy)>,
    ) -> Result<(), TickError> {
        let mut ready = Vec::new();
        for (row, req, policy) in queued {
            let (next, effects) = step(&TxState::Queued, &TxEvent::Tick, &policy, now());
            if next != TxState::Queued {
                self.save(row, &next, None).await?;
                self.emit(row, &req, &next)?;
            } else if effects.contains(&Effect::Simulate) {
                ready.push((row, req, policy));
            }
        }
        if ready.is_empty() {
            return Ok(());
        }
        let mut fees = Vec::with_capacity(ready.len());
        for (_, req, _) in &ready {
            let market = self.market(req.speed).await?;
            fees.push(self.caps(req).clamp(market));
        }
        let Some(first) = self
            .store
            .next_nonce(self.account.chain_id, &self.addr)
            .await?
        else {
            return Ok(());
        };
        // Requests with a fixed gas limit are signed while the node
        // simulates them, a batch per task, at the nonces they take if
        // every simulation passes (the usual case); where one does not,
        // the rest are signed again at their real nonces.
        let fixed = ready
            .iter()
            .take_while(|(_, req, _)| req.gas_limit.is_some())
            .count();
        let mut signing = Vec::new();
        for (c, (chunk, fees)) in ready
            .chunks(NONCE_BATCH)
            .zip(fees.chunks(NONCE_BATCH))
            .enumerate()
        {
            let offset = c * NONCE_BATCH;
            let n = fixed.saturating_sub(offset).min(chunk.len());
            let txs: Vec<(UnsignedTx, Fees)> = chunk[..n]
                .iter()
                .zip(fees)
                .enumerate()
                .map(|(k, ((_, req, _), f))| {
                    let gas = req.gas_limit.unwrap_or_default();
                    let nonce = first + (offset + k) as u64;
                    let tx = self.unsigned(nonce, req.to, req.value, req.data.clone(), gas, *f);
                    (tx, *f)
                })
                .collect();
            let early = (!txs.is_empty()).then(|| self.sign_many(txs));
            signing.push((first + offset as u64, early));
        }
        // The tick's simulations run in a task of their own, in order, while
        // each NONCE_BATCH whose verdicts are in is recorded and handed to
        // the broadcaster: the first broadcasts leave after one batch's
        // simulation, not the whole tick's, and the node mines them while
        // the rest are simulated.
        let (mut verdicts, _simulating) = self.simulations(&ready, &fees);
        let chunks = ready.chunks(NONCE_BATCH).zip(fees.chunks(NONCE_BATCH));
        for ((chunk, fees), (assumed, early)) in chunks.zip(signing) {
            let started = self
                .start_chunk(chunk, fees, (assumed, early), &mut verdicts)
                .await?;
            if !started {
                break;
            }
        }
        Ok(())
    }

    /// Simulates `ready` at `fees` in a task of its own, a few JSON-RPC
    /// batches at a time (a node executes one batch's calls in turn, so
    /// several keep its cores busy; more would only queue its other calls
    /// behind them); the verdicts arrive in order, one batch's at a time.
    /// The task stops when the returned guard is dropped.
    fn simulations(
        &self,
        ready: &[(&TxRow, std::sync::Arc<TxRequest>, Policy)],
        fees: &[Fees],
    ) -> (Verdicts, AbortOnDrop) {
        let sim = self.simulator();
        let owned: Vec<(std::sync::Arc<TxRequest>, Fees)> = ready
            .iter()
            .zip(fees)
            .map(|((_, req, _), f)| (req.clone(), *f))
            .collect();
        let batches: Vec<Vec<_>> = owned.chunks(SIMULATIONS).map(<[_]>::to_vec).collect();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut verdicts = futures::stream::iter(batches)
                .map(|batch| {
                    let sim = sim.clone();
                    async move {
                        let items: Vec<(&TxRequest, Fees)> =
                            batch.iter().map(|(req, f)| (&**req, *f)).collect();
                        sim.simulate(&items).await
                    }
                })
                .buffered(super::BATCHES_AT_ONCE);
            while let Some(v) = verdicts.next().await {
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        (rx, AbortOnDrop(task.abort_handle()))
    }

    /// Signs, records and hands to the broadcaster the requests of `ready`
    /// that their simulation (the next verdicts) lets take a nonce, in
    /// order; whether all of `ready` was handled (else the rest of the
    /// tick's requests wait for the next tick, behind the one whose
    /// simulation could not run for want of a node or whose nonces could
    /// not be taken).
    async fn start_chunk(
        &mut self,
        ready: &[(&TxRow, std::sync::Arc<TxRequest>, Policy)],
        fees: &[Fees],
        (assumed, early): (u64, Option<Signing>),
        verdicts: &mut Verdicts,
    ) -> Result<bool, TickError> {
        let Some(first) = self
            .store
            .next_nonce(self.account.chain_id, &self.addr)
            .await?
        else {
            return Ok(false);
        };
        // Signed at nonces an earlier batch's rejections have moved: unused.
        let early = early.filter(|_| first == assumed);
        let verdicts = next_verdicts(verdicts, ready.len()).await;
        let early: Vec<Option<NewAttempt>> = match early {
            Some(task) => match task.await {
                Ok(Ok(list)) => list.into_iter().map(Some).collect(),
                // Signed again below, where a failure ends the tick.
                _ => Vec::new(),
            },
            None => Vec::new(),
        };
        let (accepted, mut complete) = self.admit_chunk(ready, verdicts).await?;
        let attempts = self
            .sign_accepted(ready, fees, &accepted, first, early)
            .await?;
        let mut signed: Vec<(&TxRow, TxState, NewAttempt)> = Vec::new();
        let mut requests: Vec<&TxRequest> = Vec::new();
        for (k, ((j, _), attempt)) in accepted.iter().zip(attempts).enumerate() {
            let (row, req, policy) = &ready[*j];
            let Some(attempt) = attempt else {
                complete = false;
                break;
            };
            let nonce = first + k as u64;
            let (next, _) = step(&TxState::Queued, &TxEvent::Signed { nonce }, policy, now());
            signed.push((row, next, attempt));
            requests.push(req);
        }
        if signed.is_empty() {
            return Ok(complete);
        }
        let recorded = self.record_signed(first, &signed, &requests).await?;
        Ok(complete && recorded)
    }

    /// Applies the chunk's admissions: a rejected request ends with its
    /// reason, one stepping aside waits, and the rest are the requests (by
    /// index in `ready`) that take the next nonces, with their gas limits;
    /// false when admission stopped early.
    async fn admit_chunk(
        &mut self,
        ready: &[(&TxRow, std::sync::Arc<TxRequest>, Policy)],
        verdicts: Vec<Result<u64, Simulation>>,
    ) -> Result<(Vec<(usize, u64)>, bool), TickError> {
        let mut errors: Vec<u32> = ready
            .iter()
            .map(|(row, _, _)| self.node.sim_errors.get(&row.id).copied().unwrap_or(0))
            .collect();
        let admitted = admit(verdicts, &mut errors);
        for ((row, _, _), seen) in ready.iter().zip(&errors).take(admitted.each.len()) {
            match seen {
                0 => self.node.sim_errors.remove(&row.id),
                n => self.node.sim_errors.insert(row.id.clone(), *n),
            };
        }
        let mut accepted = Vec::new();
        for (j, admission) in admitted.each.into_iter().enumerate() {
            let (row, req, policy) = &ready[j];
            match admission {
                Admission::StepAside(e) => {
                    tracing::warn!(tx = %row.id, error = %e, "the node could not simulate this request while it simulated others; the account's later requests go first");
                }
                Admission::Reject(reason) => {
                    let event = TxEvent::Simulated(Err(reason.clone()));
                    let (next, _) = step(&TxState::Queued, &event, policy, now());
                    self.save(row, &next, Some(&reason)).await?;
                    self.emit(row, req, &next)?;
                }
                Admission::Take(gas) => {
                    let event = TxEvent::Simulated(Ok(()));
                    let (_, effects) = step(&TxState::Queued, &event, policy, now());
                    if effects.contains(&Effect::AssignNonce) {
                        let margin = self.settings.gas_margin_percent;
                        let gas = req
                            .gas_limit
                            .unwrap_or_else(|| gas.saturating_mul(margin) / 100);
                        accepted.push((j, gas));
                    }
                }
            }
        }
        if let Some(e) = &admitted.stopped {
            tracing::warn!(account = %self.addr, error = %e, "simulation unavailable; retrying next tick");
        }
        Ok((accepted, admitted.stopped.is_none()))
    }

    /// The attempts of the accepted requests at consecutive nonces from
    /// `first`: a signature made early stands where no request before it
    /// dropped out; the others are signed now.
    async fn sign_accepted(
        &self,
        ready: &[(&TxRow, std::sync::Arc<TxRequest>, Policy)],
        fees: &[Fees],
        accepted: &[(usize, u64)],
        first: u64,
        mut early: Vec<Option<NewAttempt>>,
    ) -> Result<Vec<Option<NewAttempt>>, TickError> {
        let mut attempts: Vec<Option<NewAttempt>> = accepted
            .iter()
            .enumerate()
            .map(|(k, (j, _))| {
                (*j == k)
                    .then(|| early.get_mut(k).and_then(Option::take))
                    .flatten()
            })
            .collect();
        let late: Vec<(UnsignedTx, Fees)> = accepted
            .iter()
            .zip(&attempts)
            .enumerate()
            .filter(|(_, (_, a))| a.is_none())
            .map(|(k, ((j, gas), _))| {
                let req = &ready[*j].1;
                let nonce = first + k as u64;
                let tx = self.unsigned(nonce, req.to, req.value, req.data.clone(), *gas, fees[*j]);
                (tx, fees[*j])
            })
            .collect();
        if !late.is_empty() {
            let signed = self
                .sign_many(late)
                .await
                .map_err(|e| ethgate_keys::KeyError::Sign(format!("signing task: {e}")))??;
            let mut signed = signed.into_iter();
            for a in attempts.iter_mut().filter(|a| a.is_none()) {
                *a = signed.next();
            }
        }
        Ok(attempts)
    }

    /// Takes the nonces from `first` with the signed attempts and their
    /// `pending` status envelopes, NONCE_BATCH per store transaction, and
    /// hands each recorded batch to the broadcaster at once; whether all
    /// were recorded. What was not recorded is forgotten (never sent).
    async fn record_signed(
        &mut self,
        first: u64,
        signed: &[(&TxRow, TxState, NewAttempt)],
        requests: &[&TxRequest],
    ) -> Result<bool, TickError> {
        let states: Vec<StoredState> = signed
            .iter()
            .map(|(_, next, _)| StoredState::encode(next))
            .collect::<Result<_, _>>()?;
        // The `pending` status envelopes go in the same transaction as the
        // nonces and attempts they report.
        let envelopes: Vec<String> = signed
            .iter()
            .zip(requests)
            .map(|((row, next, _), req)| self.status_envelope(row, &req.metadata, next))
            .collect::<Result<_, _>>()?;
        let items: Vec<SignedAttempt<'_>> = signed
            .iter()
            .zip(&states)
            .map(|((row, next, attempt), state)| SignedAttempt {
                tx_id: &row.id,
                attempt,
                state,
                status: next.kind(),
            })
            .collect();
        for (row, _, attempt) in signed {
            self.remember(&row.id, attempt);
        }
        // Nonces are taken in transactions of NONCE_BATCH, so the store's
        // write lock is never held long (accepting requests waits on it).
        let mut recorded = 0;
        let mut failed = None;
        for (items, json) in items.chunks(NONCE_BATCH).zip(envelopes.chunks(NONCE_BATCH)) {
            let stream = &self.stream;
            let taken = self
                .store
                .take_nonces(
                    self.account.chain_id,
                    &self.addr,
                    first + recorded as u64,
                    items,
                    StatusEnvelopes { stream, json },
                )
                .await;
            if !matches!(taken, Ok(true)) {
                failed = Some(taken);
                break;
            }
            // Broadcast as soon as recorded, one JSON-RPC batch at a time:
            // the node holds these while the next batch is written.
            for batch in signed[recorded..recorded + items.len()].chunks(SIMULATIONS) {
                let sends = batch
                    .iter()
                    .map(|(row, _, a)| (row.id.clone(), a.raw.clone()))
                    .collect();
                self.spawn_broadcast(sends);
            }
            recorded += items.len();
        }
        // What was not recorded: forget the attempts signed for it.
        for (row, _, _) in &signed[recorded..] {
            self.attempts.remove(&row.id);
        }
        if let Some(taken) = failed.take_if(|_| recorded == 0) {
            return taken.map(|_| false).map_err(Into::into);
        }
        self.took(first, &signed[..recorded]);
        Ok(failed.is_none())
    }

    /// Notes nonces taken from `first` by `signed`: the table's new
    /// states, the nonce floor, metrics and the log.
    fn took(&mut self, first: u64, signed: &[(&TxRow, TxState, NewAttempt)]) {
        metrics::counter!(crate::metrics::NONCES, "chain" => self.account.chain.clone())
            .increment(signed.len() as u64);
        for (row, next, _) in signed {
            self.out.changes.push(super::table::Change {
                id: row.id.clone(),
                state: next.clone(),
                error: None,
            });
            metrics::counter!(crate::metrics::STATUS, "chain" => self.account.chain.clone(), "status" => next.status()).increment(1);
            tracing::debug!(tx = %row.id, nonce = ?next.nonce(), "transaction status: pending");
        }
        self.nonce_floor = Some(first + signed.len() as u64);
    }

    /// Hands recorded attempts (request id, raw bytes) to the account's
    /// broadcaster for their first broadcast. It runs beside the sender's
    /// next steps: everything it sends is already recorded (a crash loses
    /// nothing — pending requests are re-broadcast), and the sender can
    /// take the next nonces meanwhile.
    fn spawn_broadcast(&mut self, sends: Sends) {
        let queue = self.broadcaster.get_or_insert_with(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(broadcaster(
                rx,
                self.account.pool.clone(),
                self.store.clone(),
                self.shared.clone(),
                self.account.chain.clone(),
                self.addr.clone(),
            ));
            tx
        });
        // The task ends only when the sender is dropped.
        let _ = queue.send(sends);
    }
}

/// The first broadcasts of one account, in the order their nonces were
/// recorded (so a node sees nonces roughly ascending), a few JSON-RPC
/// batches at once: a node accepts a later nonce before an earlier one and
/// holds it until the gap fills. Ends when the sender drops its queue.
async fn broadcaster(
    rx: tokio::sync::mpsc::UnboundedReceiver<Sends>,
    pool: std::sync::Arc<ethgate_chain::EndpointPool>,
    store: ethgate_store::Store,
    shared: std::sync::Arc<super::Shared>,
    chain: String,
    addr: String,
) {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|sends| (sends, rx))
    })
        .map(|chunk| {
            let (pool, store, shared) = (pool.clone(), store.clone(), shared.clone());
            let (chain, addr) = (chain.clone(), addr.clone());
            async move {
                let items: Vec<(&str, &[u8])> = chunk
                    .iter()
                    .map(|(id, raw)| (id.as_str(), raw.as_slice()))
                    .collect();
                super::effects::send_all(&pool, &store, &shared, &chain, &addr, &items).await
            }
        })
        .buffered(super::BATCHES_AT_ONCE)
        .for_each(|r| async {
            if let Err(e) = r {
                tracing::warn!(account = %addr, error = %e, "first broadcast failed; re-broadcast will retry");
            }
        })
        .await;
}

/// The next `n` verdicts in order; a simulation task that ended early
/// leaves the rest unavailable (they wait for the next tick).
async fn next_verdicts(verdicts: &mut Verdicts, n: usize) -> Vec<Result<u64, Simulation>> {
    let mut got: Vec<Result<u64, Simulation>> = Vec::with_capacity(n);
    while got.len() < n {
        match verdicts.recv().await {
            Some(v) => got.extend(v),
            None => break,
        }
    }
    while got.len() < n {
        got.push(Err(Simulation::Unavailable(
            "the simulation task ended early".into(),
        )));
    }
    got
}
