//! The sender's open requests, kept in memory between ticks. Only the
//! sender changes a request once it is accepted, so after one full read
//! the sender needs only the rows accepted since: reading every open row
//! each tick cost more than anything else in a burst (tens of
//! milliseconds per thousand rows, on the store every write waits for).
//! The store stays the truth: the table is read in full at start, after
//! any write that failed, and every [`RELOAD`] besides.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ethgate_core::tx::TxState;
use ethgate_store::{Store, TxRow};

use super::TickError;
use crate::request::TxRequest;

/// How often the table is read in full even when nothing went wrong.
const RELOAD: Duration = Duration::from_secs(60);

/// An open request: its row (without the request's JSON), its state and
/// its request, parsed once.
pub(super) struct OpenTx {
    pub row: TxRow,
    pub state: TxState,
    pub req: Arc<TxRequest>,
}

/// A state change the sender made (and wrote, or is about to write).
pub(super) struct Change {
    pub id: String,
    pub state: TxState,
    pub error: Option<String>,
}

/// A stored request the sender cannot read: its row, its state if that
/// much parsed, and why. One bad row must not stop the account's others,
/// nor be read again and again without an end.
pub(super) struct Unreadable {
    pub row: TxRow,
    pub state: Option<TxState>,
    pub why: String,
}

/// Open requests by rowid, which is the order they were accepted in.
#[derive(Default)]
pub(super) struct Table {
    pub rows: BTreeMap<i64, OpenTx>,
    /// Rows that did not parse since the sender last took them.
    pub unreadable: Vec<Unreadable>,
    /// Ids of unreadable rows already reported (each is logged once).
    reported: std::collections::HashSet<String>,
    ids: HashMap<String, i64>,
    /// The highest rowid read.
    seen: i64,
    /// When the table was last read in full (`None`: read it next tick).
    loaded: Option<Instant>,
}

impl Table {
    /// Makes the next tick read the table in full.
    pub fn invalidate(&mut self) {
        self.loaded = None;
    }

    /// Brings the table up to date: in full when due, else the rows
    /// accepted since the last read.
    pub async fn refresh(
        &mut self,
        store: &Store,
        chain_id: u64,
        addr: &str,
        watch_from: u64,
    ) -> Result<(), TickError> {
        if self.loaded.is_none_or(|t| t.elapsed() >= RELOAD) {
            let rows = store.open_txs(chain_id, addr, watch_from).await?;
            self.rows.clear();
            self.ids.clear();
            for (rid, row) in rows {
                self.admit(rid, row);
            }
            self.loaded = Some(Instant::now());
        }
        for (rid, row) in store.new_txs(chain_id, addr, self.seen).await? {
            if !self.rows.contains_key(&rid) {
                self.admit(rid, row);
            }
        }
        Ok(())
    }

    /// Adds a row; one whose stored state or request does not parse goes
    /// to `unreadable` (the first time it is seen).
    fn admit(&mut self, rid: i64, mut row: TxRow) {
        self.seen = self.seen.max(rid);
        let state = row.state.decode();
        let req = serde_json::from_str::<TxRequest>(&row.request);
        let (state, req) = match (state, req) {
            (Ok(state), Ok(req)) => (state, req),
            (state, req) => {
                if self.reported.insert(row.id.clone()) {
                    let why = match (&state, req) {
                        (Err(e), _) => format!("its stored state does not parse: {e}"),
                        (_, Err(e)) => format!("its stored request does not parse: {e}"),
                        _ => String::new(),
                    };
                    self.unreadable.push(Unreadable {
                        row,
                        state: state.ok(),
                        why,
                    });
                }
                return;
            }
        };
        row.request = String::new();
        row.state = Default::default();
        self.ids.insert(row.id.clone(), rid);
        self.rows.insert(
            rid,
            OpenTx {
                row,
                state,
                req: Arc::new(req),
            },
        );
    }

    /// Applies a change the sender made to one of its rows.
    pub fn change(&mut self, c: Change) {
        let Some(open) = self.ids.get(&c.id).and_then(|rid| self.rows.get_mut(rid)) else {
            return;
        };
        open.row.status = c.state.kind();
        open.row.nonce = c.state.nonce();
        open.row.block_number = c.state.block_number();
        // As the store does: none keeps the error shown.
        if let Some(e) = c.error {
            open.row.error = shown(e);
        }
        open.state = c.state;
    }

    /// Records an error shown with a request (a broadcast refusal), or
    /// clears it (`None`: a later broadcast was accepted).
    pub fn set_error(&mut self, id: &str, error: Option<String>) {
        if let Some(open) = self.ids.get(id).and_then(|rid| self.rows.get_mut(rid)) {
            open.row.error = error;
        }
    }

    /// The error a request shows, if any.
    pub fn error(&self, id: &str) -> Option<&str> {
        let open = self.ids.get(id).and_then(|rid| self.rows.get(rid))?;
        open.row.error.as_deref()
    }

    /// Drops the requests the sender is done with — ended, or confirmed or
    /// failed below `watch_from` (past the finality depth) — and returns
    /// their ids.
    pub fn prune(&mut self, watch_from: u64) -> Vec<String> {
        let done: Vec<i64> = self
            .rows
            .iter()
            .filter(|(_, o)| match &o.state {
                TxState::Queued | TxState::Pending(_) | TxState::Mined(_) => false,
                TxState::Confirmed(i) | TxState::Failed(i) => i.block_number < watch_from,
                _ => true,
            })
            .map(|(rid, _)| *rid)
            .collect();
        let mut ids = Vec::with_capacity(done.len());
        for rid in done {
            if let Some(o) = self.rows.remove(&rid) {
                self.ids.remove(&o.row.id);
                ids.push(o.row.id);
            }
        }
        ids
    }
}

/// The error a request shows after being given `error`: an empty one
/// clears it, as in the store.
fn shown(error: String) -> Option<String> {
    (!error.is_empty()).then_some(error)
}
