//! One tick's pass over the account's open requests: new ones started
//! beside the reading of the chain for the others, then every open request
//! stepped with what the chain (read so as to prove something, see
//! `pinned`) and the operator said.

use ethgate_core::tx::{TxEvent, TxState};

use super::observe::Observed;
use super::{Sender, TickError, table, take};

impl Sender {
    /// Starts queued requests and, meanwhile, reads what the chain says
    /// about the others; then steps every open request with what the
    /// chain and the operator said. The two run side by side so a slow
    /// receipt read (a node rebuilds receipts from their whole block) never
    /// holds up new requests, nor they it; they touch different requests.
    pub(super) async fn pass(
        &mut self,
        rows: &std::collections::BTreeMap<i64, table::OpenTx>,
        chain_moved: bool,
        head: ethgate_core::BlockRef,
    ) -> Result<(), TickError> {
        let (cancels, bumps) = (take(&self.shared.cancels), take(&self.shared.bumps));
        let in_flight = rows
            .values()
            .filter(|o| matches!(o.state, TxState::Pending(_) | TxState::Mined(_)))
            .count();
        let queued: Vec<_> = rows
            .values()
            .filter(|o| {
                matches!(o.state, TxState::Queued)
                    && !cancels.contains(&o.row.id)
                    && !bumps.contains(&o.row.id)
            })
            .take(self.settings.max_in_flight.saturating_sub(in_flight))
            .map(|o| (&o.row, o.req.clone(), self.policy(&o.req)))
            .collect();
        let reading = match chain_moved {
            true => Some(self.reading(rows).await?),
            false => None,
        };
        let observing = async move {
            match reading {
                Some(r) => r.fetch().await.map(Some),
                None => Ok(None),
            }
        };
        let (observed, started) = tokio::join!(observing, self.start(queued));
        started?;
        let mut observed = observed?;
        if let Some(o) = observed.as_mut() {
            let suspects = self.suspects(rows, o);
            if !suspects.is_empty() {
                let pinned = self.pinned(head, &suspects).await?;
                for (h, r) in pinned.receipts {
                    o.receipts.insert(h, Some(r));
                }
                o.readings = pinned.readings;
            }
        }
        if observed.is_some() {
            // Only once read: a failed observation is retried next tick.
            self.chain.seen_head = Some((head, self.chain.latest_count));
        }
        let asked = Asked {
            cancels: &cancels,
            bumps: &bumps,
        };
        for open in rows.values() {
            if let Some(event) = self.event_for(open, observed.as_ref(), asked) {
                let policy = self.policy(&open.req);
                self.apply(&open.row, &open.req, &open.state, &event, &policy)
                    .await?;
            }
        }
        Ok(())
    }

    /// The event this pass feeds an open request, if any: an operator's
    /// cancel or bump first, else what the chain says of it. `None` for a
    /// queued request (started above, or waiting for room), one whose
    /// block is still canonical and needs nothing, and one the head's
    /// chain could not be read down to.
    fn event_for(
        &self,
        open: &table::OpenTx,
        observed: Option<&Observed>,
        asked: Asked<'_>,
    ) -> Option<TxEvent> {
        let (row, state) = (&open.row, &open.state);
        match (state, observed) {
            // An unchanged head cannot have reorganised a confirmed or
            // failed request, and one still in its block needs nothing.
            (TxState::Confirmed(_) | TxState::Failed(_), None) => return None,
            (TxState::Confirmed(i) | TxState::Failed(i), Some(o))
                if o.canonical.get(&i.block_number) == Some(&i.block_hash) =>
            {
                return None;
            }
            _ => {}
        }
        if asked.cancels.contains(&row.id) {
            return Some(TxEvent::Cancel);
        }
        if asked.bumps.contains(&row.id) {
            return Some(TxEvent::BumpPastCap);
        }
        match state {
            TxState::Pending(p) => Some(self.pending_event(row, p, observed)),
            TxState::Mined(i) | TxState::Confirmed(i) | TxState::Failed(i) => {
                let depth = TxEvent::Depth((self.chain.head + 1).saturating_sub(i.block_number));
                match observed {
                    // The chain has not moved since it was last read.
                    None => Some(depth),
                    Some(o) => match o.canonical.get(&i.block_number) {
                        Some(h) if *h == i.block_hash => Some(depth),
                        Some(_) => Some(TxEvent::Reorged),
                        // The head's chain could not be read down to it
                        // (the head is below it, or a node behind
                        // answered): nothing is known.
                        None => None,
                    },
                }
            }
            // Queued ones were started above (or wait for room).
            _ => None,
        }
    }
}

/// What the operator asked since the last pass: request ids to cancel,
/// and to bump past their fee cap.
#[derive(Clone, Copy)]
struct Asked<'a> {
    cancels: &'a [String],
    bumps: &'a [String],
}
