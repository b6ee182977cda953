//! A stream's side of its chain's follower: once caught up, it joins the
//! follower and commits the parts of ranges it is handed, each on top of
//! its own stored cursor, until a reorg, an error or the follower sends it
//! back to stepping on its own.

use std::time::Duration;

use tokio::sync::watch;

use crate::follower::Tail;
use crate::metrics as m;
use crate::runner::SyncState;
use crate::syncer::{Step, Syncer};

/// How a stay in the shared tail ended.
pub(crate) enum Left {
    /// Shut down while following.
    Shutdown,
    /// Back to stepping alone (reorg handled, an error, or dropped by the
    /// follower); step again after this wait.
    Step(Duration),
}

impl Syncer {
    /// Follows the tip through the follower while it can. A stream that
    /// has recorded nothing yet (its start is above the head) keeps
    /// stepping alone.
    pub(crate) async fn follow_tail(
        &mut self,
        state: &SyncState,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Left {
        let Some(follower) = self.follower.clone() else {
            return Left::Step(self.cfg.poll_interval);
        };
        let row = match self.recorder.store.stream(&self.spec.name).await {
            Ok(Some(row)) => row,
            Ok(None) => return Left::Step(self.cfg.poll_interval),
            Err(e) => {
                self.note(state, &Err(e.into()));
                return Left::Step(self.cfg.poll_interval);
            }
        };
        let Some(mut cursor) = row.cursor.zip(row.cursor_hash) else {
            return Left::Step(self.cfg.poll_interval);
        };
        match self.refresh_filter().await {
            Ok(p) if p.is_empty() => {}
            // Added contracts are still being backfilled.
            Ok(_) => return Left::Step(Duration::ZERO),
            Err(e) => {
                self.note(state, &Err(e));
                return Left::Step(self.cfg.poll_interval);
            }
        }
        let mut membership = follower.join(&self.spec, &self.fetcher.filter.addresses, cursor);
        tracing::debug!(stream = %self.spec.name, cursor = cursor.0, "following the tip with the chain's follower");
        loop {
            let msg = tokio::select! {
                msg = membership.rx.recv() => msg,
                _ = shutdown.changed() => return Left::Shutdown,
            };
            match msg {
                None => return Left::Step(Duration::ZERO),
                Some(Tail::Range {
                    part: f,
                    head,
                    reply,
                }) => {
                    self.fetcher.last_head = Some(head);
                    let (from, to, hash) = (f.from, f.to, f.end.hash);
                    let result = self.take_part(f, cursor.0).await;
                    let _ = reply.send(matches!(result, Ok(Some(_))));
                    match result {
                        Ok(Some((events, grew))) => {
                            self.note(state, &Ok(Step::Recorded { from, to, events }));
                            cursor = (to, hash);
                            self.lag(to);
                            if grew {
                                // Rejoin with the children in the filter.
                                return Left::Step(Duration::ZERO);
                            }
                        }
                        Ok(None) => return Left::Step(Duration::from_millis(100)),
                        Err(e) => {
                            self.note(state, &Err(e));
                            return Left::Step(Duration::from_millis(250));
                        }
                    }
                }
                Some(Tail::Idle(head)) => {
                    self.fetcher.last_head = Some(head);
                    self.note(
                        state,
                        &Ok(Step::Idle {
                            cursor: Some(cursor.0),
                            head,
                        }),
                    );
                    self.lag(cursor.0);
                }
                Some(Tail::Failed(error)) => state.failed(&self.spec.name, error),
                Some(Tail::Reorg(at)) => {
                    drop(membership);
                    let step = self.handle_reorg(at).await;
                    self.note(state, &step);
                    return Left::Step(Duration::ZERO);
                }
            }
        }
    }

    /// Commits a part handed over by the follower, completed first with
    /// the logs of children a factory announced in it: the events
    /// recorded and whether the filter grew; `None` when the children's
    /// logs could not be read (the stream then steps alone).
    async fn take_part(
        &mut self,
        f: crate::fetch::Fetched,
        cursor: u64,
    ) -> Result<Option<(usize, bool)>, crate::SyncError> {
        let f = match self.grow(f).await? {
            crate::fetch::Fetch::Range(f) => f,
            _ => return Ok(None),
        };
        let grew = !f.children.is_empty();
        let events = self.recorder.record(f, Some(cursor)).await?;
        Ok(Some((events, grew)))
    }

    /// Sets the lag gauge from the last head seen.
    fn lag(&self, cursor: u64) {
        if let Some(head) = self.fetcher.last_head {
            metrics::gauge!(m::LAG, "stream" => self.spec.name.clone())
                .set(head.saturating_sub(cursor) as f64);
        }
    }
}
