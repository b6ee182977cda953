//! How long a sender woken by requests gathers more before its tick,
//! given how many of its chain's senders are busy at the same time.

use std::sync::Arc;

use super::ChainView;

/// How long a woken sender waits for more requests before its tick when
/// it is the only busy sender of its chain. Each tick has a fixed cost
/// (chain readings, a read of new rows, a simulation batch, a nonce
/// transaction), so ticks that each carry one request spend the cores on
/// overhead: measured with eight accounts at a steady 500 requests/s, 30
/// ms instead of 10 cut the API's p99 from 18–22 ms to 16–20, and a
/// 2,000-call burst on one account was mined in 740–780 ms instead of
/// 870–900. Small beside any chain's block time.
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
    /// keeps that cost near one sender's. Measured on 10,000 calls over
    /// eight accounts, a fixed 100 ms gather against 30 ms (six runs each,
    /// interleaved): 160–200 ticks instead of 220–380, and the calls mined
    /// after 2.01–2.25 s instead of 2.02–2.65 s. On one account a longer
    /// gather only delays its ticks (1.87–2.23 s at 100 ms, 1.82–2.04 s at
    /// 30 ms), so one busy sender keeps 30 ms.
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
