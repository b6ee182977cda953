//! Sharing the work among replicas: every work unit (a stream's syncer, a
//! route's dispatcher, an account's sender, the pools' watcher) runs on
//! exactly one `ethgate serve` at a time, the holder of its lease.
//!
//! Each replica heartbeats, renews what it holds every third of the lease's
//! lifetime, stops (at once) a unit whose lease another replica took over,
//! and takes free or expired units up to its share (the units over the
//! live replicas, rounded up), handing surplus off when replicas join. A
//! unit writes through a fenced store handle, so if this replica pauses
//! past its lease, its writes are refused when it wakes (see
//! `ethgate_store::lease`). On shutdown it stops its units and releases
//! their leases, so the others take them at once instead of after expiry.
//! A single replica on SQLite runs the same way, holding every unit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ethgate_store::lease::Fence;
use ethgate_store::{Store, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Counts failovers: leases taken from a replica that let them expire.
pub const TAKEOVERS: &str = "ethgate_lease_takeovers_total";
/// Counts units this replica stopped because another took their lease.
pub const LOST: &str = "ethgate_leases_lost_total";
/// The units this replica runs.
pub const HELD: &str = "ethgate_leases_held";

/// The work there is, and how to start a unit of it.
pub trait Work: Send + Sync {
    /// Every unit there is now, by name (it may grow: a pool's new member).
    fn units(&self) -> Vec<String>;
    /// Starts `unit`, writing through `store` (fenced) until `stop`;
    /// `None` if there is no such unit (any more).
    fn start(
        &self,
        unit: &str,
        store: Store,
        stop: watch::Receiver<bool>,
    ) -> Option<JoinHandle<()>>;
}

/// A unit running here.
struct Running {
    epoch: i64,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Tells the unit to stop and waits for it, aborting it after `grace`.
    async fn stop_within(self, grace: Duration) {
        let _ = self.stop.send(true);
        let abort = self.task.abort_handle();
        if tokio::time::timeout(grace, self.task).await.is_err() {
            abort.abort();
        }
    }
}

/// This replica's share of the work.
pub struct Cluster {
    store: Store,
    id: String,
    api: String,
    ttl: Duration,
    work: Arc<dyn Work>,
}

/// How long a unit asked to stop may take before it is aborted.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long a unit whose lease was taken over may take to stop: its
/// writes are refused meanwhile, so only its in-flight calls finish.
const LOST_GRACE: Duration = Duration::from_secs(2);

impl Cluster {
    /// A replica `id` (its API at `api`) sharing `work` under leases of `ttl`.
    pub fn new(store: Store, id: String, api: String, ttl: Duration, work: Arc<dyn Work>) -> Self {
        Cluster {
            store,
            id,
            api,
            ttl,
            work,
        }
    }

    /// Runs rounds until `shutdown`, then hands every unit off.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut running = BTreeMap::new();
        // A previous process under this id is gone; join afresh.
        if let Err(e) = self.store.leave(&self.id).await {
            tracing::warn!(error = %e, "could not clear this replica's old row");
        }
        loop {
            if let Err(e) = self.round(&mut running).await {
                tracing::warn!(error = %e, replica = %self.id, "lease round failed; retrying");
            }
            metrics::gauge!(HELD).set(running.len() as f64);
            tokio::select! {
                _ = tokio::time::sleep(self.ttl / 3) => {}
                _ = shutdown.wait_for(|v| *v) => break,
            }
        }
        let units: Vec<String> = running.keys().cloned().collect();
        for unit in units {
            self.hand_off(&mut running, &unit).await;
        }
        if let Err(e) = self.store.leave(&self.id).await {
            tracing::warn!(error = %e, "could not leave the cluster cleanly");
        }
    }

    fn ttl_ms(&self) -> i64 {
        self.ttl.as_millis() as i64
    }

    /// One round: heartbeat, renew, stop what was lost, balance.
    async fn round(&self, running: &mut BTreeMap<String, Running>) -> Result<(), StoreError> {
        self.store.heartbeat(&self.id, &self.api).await?;
        let held: BTreeMap<String, i64> = self
            .store
            .renew(&self.id, self.ttl_ms())
            .await?
            .into_iter()
            .collect();
        let lost: Vec<String> = running
            .iter()
            .filter(|(unit, r)| held.get(*unit) != Some(&r.epoch) || r.task.is_finished())
            .map(|(unit, _)| unit.clone())
            .collect();
        for unit in lost {
            if let Some(r) = running.remove(&unit) {
                if r.task.is_finished() {
                    tracing::warn!(%unit, "unit ended on its own; releasing it");
                    self.release(&unit, r.epoch).await;
                    continue;
                }
                // Its writes are refused already (fenced); it is told to
                // stop, finishes what it had in flight — which the fence
                // refuses — and is aborted if it does not end in time.
                metrics::counter!(LOST).increment(1);
                tracing::warn!(%unit, epoch = r.epoch, replica = %self.id, "lease taken over; unit stopping");
                tokio::spawn(r.stop_within(LOST_GRACE));
            }
        }
        let units = self.work.units();
        let gone: Vec<String> = running
            .keys()
            .filter(|u| !units.contains(u))
            .cloned()
            .collect();
        for unit in gone {
            self.hand_off(running, &unit).await;
        }
        let live = self.store.replicas(self.ttl_ms()).await?.len().max(1);
        let share = units.len().div_ceil(live);
        while running.len() > share {
            let Some(unit) = running.keys().next_back().cloned() else {
                break;
            };
            self.hand_off(running, &unit).await;
        }
        if running.len() < share {
            self.take(running, units, share).await?;
        }
        Ok(())
    }

    /// Takes free or expired units until `share` run here.
    async fn take(
        &self,
        running: &mut BTreeMap<String, Running>,
        mut units: Vec<String>,
        share: usize,
    ) -> Result<(), StoreError> {
        // Each replica tries the units in its own order, so replicas
        // starting together do not all contend for the same ones.
        units.sort_by_key(|u| spread(&self.id, u));
        for unit in units {
            if running.len() >= share {
                break;
            }
            if running.contains_key(&unit) {
                continue;
            }
            let Some(got) = self.store.acquire(&unit, &self.id, self.ttl_ms()).await? else {
                continue;
            };
            if got.took_over {
                metrics::counter!(TAKEOVERS).increment(1);
                tracing::info!(%unit, epoch = got.epoch, replica = %self.id, "took over an expired lease");
            }
            let fenced = self.store.fenced(Fence {
                unit: unit.clone(),
                holder: self.id.clone(),
                epoch: got.epoch,
            });
            let (stop, stopped) = watch::channel(false);
            match self.work.start(&unit, fenced, stopped) {
                Some(task) => {
                    tracing::debug!(%unit, epoch = got.epoch, "unit started");
                    running.insert(
                        unit,
                        Running {
                            epoch: got.epoch,
                            stop,
                            task,
                        },
                    );
                }
                None => self.release(&unit, got.epoch).await,
            }
        }
        Ok(())
    }

    /// Stops `unit` gracefully and releases its lease.
    async fn hand_off(&self, running: &mut BTreeMap<String, Running>, unit: &str) {
        let Some(r) = running.remove(unit) else {
            return;
        };
        let epoch = r.epoch;
        r.stop_within(STOP_GRACE).await;
        self.release(unit, epoch).await;
        tracing::debug!(%unit, "unit handed off");
    }

    async fn release(&self, unit: &str, epoch: i64) {
        if let Err(e) = self.store.release(unit, &self.id, epoch).await {
            tracing::warn!(%unit, error = %e, "could not release a lease; it will expire");
        }
    }
}

/// A per-replica order of units (FNV-1a of both names).
fn spread(replica: &str, unit: &str) -> u64 {
    replica
        .bytes()
        .chain([0])
        .chain(unit.bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// This replica's id: `[cluster] replica_id`, else the host's name and the
/// API's port, so a restarted process takes its own leases back at once.
pub fn replica_id(configured: Option<&str>, listen: std::net::SocketAddr) -> String {
    if let Some(id) = configured {
        return id.to_owned();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", listen.port())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Instant;

    /// Six units that record where they run while they run.
    struct Probe {
        running: Arc<Mutex<HashMap<String, Vec<String>>>>,
    }

    impl Work for Probe {
        fn units(&self) -> Vec<String> {
            (0..6).map(|i| format!("u{i}")).collect()
        }

        fn start(
            &self,
            unit: &str,
            store: Store,
            mut stop: watch::Receiver<bool>,
        ) -> Option<JoinHandle<()>> {
            let holder = store.fence().expect("fenced").holder.clone();
            let (unit, running) = (unit.to_owned(), self.running.clone());
            running
                .lock()
                .expect("lock")
                .entry(unit.clone())
                .or_default()
                .push(holder.clone());
            Some(tokio::spawn(async move {
                let _ = stop.wait_for(|v| *v).await;
                if let Some(v) = running.lock().expect("lock").get_mut(&unit) {
                    v.retain(|h| *h != holder);
                }
            }))
        }
    }

    /// Units per replica now; panics if a unit runs twice.
    fn spread_now(running: &Mutex<HashMap<String, Vec<String>>>) -> HashMap<String, usize> {
        let mut per = HashMap::new();
        for (unit, holders) in running.lock().expect("lock").iter() {
            assert!(holders.len() <= 1, "{unit} runs on {holders:?}");
            for h in holders {
                *per.entry(h.clone()).or_default() += 1;
            }
        }
        per
    }

    async fn until(running: &Mutex<HashMap<String, Vec<String>>>, want: &[(&str, usize)]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = spread_now(running);
            if want
                .iter()
                .all(|(r, n)| now.get(*r).copied().unwrap_or(0) == *n)
            {
                return;
            }
            assert!(Instant::now() < deadline, "never {want:?}; now {now:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn units_spread_over_replicas_move_at_once_on_shutdown_and_after_a_lease_on_death() {
        let scratch = ethgate_store::scratch::Scratch::from_env().await;
        let store = Store::connect(scratch.url()).await.expect("store");
        let running = Arc::new(Mutex::new(HashMap::new()));
        let ttl = Duration::from_millis(900);
        let replica = |id: &str| {
            let work = Arc::new(Probe {
                running: running.clone(),
            });
            let c = Cluster::new(store.clone(), id.into(), "-".into(), ttl, work);
            let (stop, stopped) = watch::channel(false);
            (stop, tokio::spawn(c.run(stopped)))
        };
        let (_a, _) = replica("a");
        until(&running, &[("a", 6)]).await;
        let (stop_b, b) = replica("b");
        until(&running, &[("a", 3), ("b", 3)]).await;
        // b shuts down: its units are released and a takes them within a
        // round, well before they would have expired.
        let _ = stop_b.send(true);
        b.await.expect("b ends");
        let handed = Instant::now();
        until(&running, &[("a", 6)]).await;
        assert!(
            handed.elapsed() < ttl,
            "handed off, not expired: {:?}",
            handed.elapsed()
        );
        // c dies without a word: a takes its units once their leases expire.
        let (_stop_c, c) = replica("c");
        until(&running, &[("a", 3), ("c", 3)]).await;
        c.abort();
        for (_, holders) in running.lock().expect("lock").iter_mut() {
            holders.retain(|h| h != "c");
        }
        until(&running, &[("a", 6)]).await;
        let takeovers = store.leases().await.expect("leases");
        assert!(takeovers.iter().all(|l| l.holder == "a"), "{takeovers:?}");
    }

    #[test]
    fn replicas_try_units_in_different_orders() {
        let units: Vec<String> = (0..20).map(|i| format!("stream:s{i}")).collect();
        let order = |r: &str| {
            let mut u = units.clone();
            u.sort_by_key(|u| spread(r, u));
            u
        };
        assert_ne!(order("a:1"), order("b:1"));
        assert_eq!(order("a:1"), order("a:1"));
    }
}
