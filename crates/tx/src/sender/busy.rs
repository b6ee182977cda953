//! How long a sender woken by requests gathers more before its tick,
//! given how many of its chain's senders are busy at the same time.

use std::sync::Arc;

use super::ChainView;

/// How long a woken sender waits for more requests before its tick when
/// it is the only busy sender of its chain. Each tick has a fixed cost
/// (chain readings, a read of new rows, a simulation batch, a nonce
/// transaction), so ticks that each carry one request spend the cores on
/// overhead; 30 ms is small beside any chain's block time (figures in
/// docs/perf-log.md).
const WAKE_COALESCE: std::time::Duration = std::time::Duration::from_millis(30);

/// The longest a woken sender gathers, however many of its chain's
/// senders are busy (see [`Busy::gather`]).
const WAKE_COALESCE_MAX: std::time::Duration = std::time::Duration::from_millis(100);

/// How long without a new request ends a gather early.
const WAKE_QUIET: std::time::Duration = std::time::Duration::from_millis(15);

/// Whether a sender is busy (woken by requests rather than by its poll),
/// counted in its chain's view while it is.
pub(super) struct Busy {
    view: Arc<ChainView>,
    counted: bool,
}

impl Busy {
    /// Not busy yet.
    pub(super) fn new(view: Arc<ChainView>) -> Self {
        Busy {
            view,
            counted: false,
        }
    }

    /// Whether the sender's last wait ended with a request's wake.
    pub(super) fn is_set(&self) -> bool {
        self.counted
    }

    /// Records whether the sender's last wait ended with a wake.
    pub(super) fn set(&mut self, busy: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        match (self.counted, busy) {
            (false, true) => self.view.busy.fetch_add(1, Relaxed),
            (true, false) => self.view.busy.fetch_sub(1, Relaxed),
            _ => return,
        };
        self.counted = busy;
    }

    /// How long to gather: [`WAKE_COALESCE`] per busy sender of the chain,
    /// up to [`WAKE_COALESCE_MAX`]. A tick's fixed cost (chain readings, a
    /// read of new rows, its writes) is paid per sender, so when several
    /// are busy at once their ticks each carry a share of the requests;
    /// keeping the chain's ticks per second near those of one busy sender
    /// keeps that cost near one sender's. One busy sender keeps 30 ms: alone,
    /// a longer gather only delays its ticks (docs/perf-log.md).
    ///
    /// The gather ends early once no request has woken the sender for
    /// [`WAKE_QUIET`]: the burst is over, and the requests it brought
    /// last are started now rather than after the longest gather.
    pub(super) async fn gather(&self, wake: &tokio::sync::Notify) {
        let busy = self.view.busy.load(std::sync::atomic::Ordering::Relaxed);
        let busy = u32::try_from(busy).unwrap_or(u32::MAX).max(1);
        let until =
            tokio::time::Instant::now() + WAKE_COALESCE.saturating_mul(busy).min(WAKE_COALESCE_MAX);
        loop {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(WAKE_QUIET) => return,
                _ = tokio::time::sleep_until(until) => return,
            }
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.set(false);
    }
}
