//! The work units of a deployment, as the cluster leases them: one per
//! stream (its syncer), per route (its dispatcher), per sending account
//! (its sender) and one for the pools (watcher and rotations). A unit's
//! name says what it is (`stream:NAME`, `route:STREAM→SINK`,
//! `account:CHAIN:ADDRESS`, `pools`); its task writes through the fenced
//! store handle the cluster gives it.

use std::collections::HashMap;
use std::sync::Arc;

use alloy_primitives::Address;
use ethgate_chain::EndpointPool;
use ethgate_core::StreamSpec;
use ethgate_delivery::{Dispatcher, Sink};
use ethgate_events::{Follower, SyncState, Syncer, SyncerConfig};
use ethgate_store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::Work;

/// What a unit is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    /// A stream's syncer.
    Stream(String),
    /// A (stream, sink) dispatcher.
    Route(String, String),
    /// An account's sender.
    Account(String, Address),
    /// Every pool's balance watcher and rotations.
    Pools,
}

impl Unit {
    /// Its lease's name.
    pub fn name(&self) -> String {
        match self {
            Unit::Stream(s) => format!("stream:{s}"),
            Unit::Route(stream, sink) => format!("route:{stream}→{sink}"),
            Unit::Account(chain, a) => format!("account:{chain}:{a:#x}"),
            Unit::Pools => "pools".into(),
        }
    }
}

/// A stream's syncer, ready to start.
pub struct StreamWork {
    /// What it records.
    pub spec: StreamSpec,
    /// Its chain's endpoints.
    pub pool: Arc<EndpointPool>,
    /// Its chain's sync tuning.
    pub cfg: SyncerConfig,
    /// Its chain's follower, which it joins once caught up.
    pub follower: Arc<Follower>,
}

/// Everything `ethgate serve` runs under leases.
pub struct ServeWork {
    /// By stream name.
    pub streams: HashMap<String, StreamWork>,
    /// Progress the API shows.
    pub sync: SyncState,
    /// (stream, sink) routes.
    pub routes: Vec<(String, Arc<dyn Sink>)>,
    /// The transaction manager, when accounts are configured.
    pub tx: Option<Arc<ethgate_tx::TxManager>>,
    /// The pools' service, when pools are configured.
    pub pools: Option<Arc<ethgate_accounts::Pools>>,
}

impl ServeWork {
    fn all(&self) -> Vec<Unit> {
        let mut out: Vec<Unit> = self.streams.keys().cloned().map(Unit::Stream).collect();
        out.extend(
            self.routes
                .iter()
                .map(|(stream, sink)| Unit::Route(stream.clone(), sink.name().to_owned())),
        );
        if let Some(tx) = &self.tx {
            out.extend(tx.accounts().into_iter().map(|(c, a)| Unit::Account(c, a)));
        }
        if self.pools.is_some() {
            out.push(Unit::Pools);
        }
        out
    }

    fn start_unit(
        &self,
        unit: Unit,
        store: Store,
        stop: watch::Receiver<bool>,
    ) -> Option<JoinHandle<()>> {
        match unit {
            Unit::Stream(name) => {
                let w = self.streams.get(&name)?;
                let (spec, pool, cfg, sync, follower) = (
                    w.spec.clone(),
                    w.pool.clone(),
                    w.cfg.clone(),
                    self.sync.clone(),
                    w.follower.clone(),
                );
                Some(tokio::spawn(async move {
                    match Syncer::new(spec, pool, store, cfg).await {
                        Ok(syncer) => syncer.with_follower(follower).run(sync, stop).await,
                        Err(e) => {
                            tracing::error!(stream = %name, error = %e, "syncer could not start")
                        }
                    }
                }))
            }
            Unit::Route(stream, sink) => {
                let (_, s) = self
                    .routes
                    .iter()
                    .find(|(st, s)| *st == stream && s.name() == sink)?;
                Some(tokio::spawn(
                    Dispatcher::new(&stream, s.clone(), store).run(stop),
                ))
            }
            Unit::Account(chain, address) => {
                self.tx.as_ref()?.start_sender(&chain, address, store, stop)
            }
            Unit::Pools => {
                let pools = self.pools.clone()?;
                Some(tokio::spawn(pools.run_fenced(store, stop)))
            }
        }
    }
}

impl Work for ServeWork {
    fn units(&self) -> Vec<String> {
        self.all().iter().map(Unit::name).collect()
    }

    fn start(
        &self,
        unit: &str,
        store: Store,
        stop: watch::Receiver<bool>,
    ) -> Option<JoinHandle<()>> {
        let unit = self.all().into_iter().find(|u| u.name() == unit)?;
        self.start_unit(unit, store, stop)
    }
}
