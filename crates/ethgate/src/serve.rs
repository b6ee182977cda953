//! `ethgate serve`: wires pools, store, syncers and the API, and stops them
//! in order on SIGINT/SIGTERM.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ethgate_api::{ApiState, ChainHealth};
use ethgate_chain::{EndpointPool, PoolConfig};
use ethgate_delivery::Sink;
use ethgate_events::{Follower, SyncState, Syncer};
use ethgate_store::Store;
use tokio::sync::watch;

use crate::config::{ChainConfig, Config};
use crate::telemetry;

/// Builds one endpoint pool per chain, each checked (see [`checked_pool`]).
pub async fn pools(cfg: &Config) -> anyhow::Result<HashMap<String, Arc<EndpointPool>>> {
    let mut pools = HashMap::new();
    for c in &cfg.chains {
        pools.insert(c.name.clone(), Arc::new(checked_pool(c, 5).await?));
    }
    Ok(pools)
}

/// One chain's pool with `max_rounds` retry rounds. Its endpoints are used
/// once a probe has seen them answer the chain's id: see
/// [`checked_pool`].
pub fn pool(c: &ChainConfig, max_rounds: u32) -> anyhow::Result<EndpointPool> {
    EndpointPool::new(PoolConfig {
        chain: c.name.clone(),
        urls: c.rpc.clone(),
        request_timeout: c.request_timeout,
        max_rounds,
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_secs(30),
        chain_id: Some(c.chain_id),
    })
    .with_context(|| format!("chain {}: building the HTTP client", c.name))
}

/// A pool whose every endpoint was asked for its chain id: one that
/// answers another chain is refused by name (nothing starts); one that
/// does not answer yet is warned about, and admitted once a later probe
/// sees it answer the right id.
pub async fn checked_pool(c: &ChainConfig, max_rounds: u32) -> anyhow::Result<EndpointPool> {
    let pool = pool(c, max_rounds)?;
    for (i, s) in pool.probe().await.iter().enumerate() {
        match s.chain {
            ethgate_chain::ChainCheck::Wrong(id) => anyhow::bail!(
                "chains.{}.rpc[{i}]: {} answers chain id {id}, but the chain is configured with chain_id {}",
                c.name,
                s.endpoint,
                c.chain_id
            ),
            ethgate_chain::ChainCheck::Unchecked => {
                tracing::warn!(chain = %c.name, endpoint = %s.endpoint, error = ?s.error, "endpoint not reachable at start; it is used once it answers the chain id");
            }
            ethgate_chain::ChainCheck::Matches => {}
        }
    }
    Ok(pool)
}

/// How often every endpoint is probed (health, head, chain id).
const PROBE_EVERY: Duration = Duration::from_secs(5);

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The transaction manager over the configured accounts; `None` when
/// there are none (the API then answers 503 on `/v1/transactions`).
fn transaction_manager(
    cfg: &Config,
    store: &Store,
    pools: &HashMap<String, Arc<EndpointPool>>,
) -> Option<Arc<ethgate_tx::TxManager>> {
    if cfg.tx.accounts.is_empty() {
        return None;
    }
    let chain_ids = cfg
        .chains
        .iter()
        .map(|c| (c.name.clone(), c.chain_id))
        .collect();
    let accounts = cfg
        .tx
        .accounts
        .iter()
        .filter_map(|a| {
            Some(ethgate_tx::Account {
                chain: a.chain.clone(),
                chain_id: cfg.chain(&a.chain)?.chain_id,
                signer: a.signer.clone(),
                pool: pools.get(&a.chain)?.clone(),
                caps: a.caps,
                legacy: !cfg.chain(&a.chain)?.eip1559,
            })
        })
        .collect();
    Some(Arc::new(
        ethgate_tx::TxManager::new(
            store.clone(),
            cfg.tx.settings,
            chain_ids,
            accounts,
            cfg.tx.pools.clone(),
        )
        .with_contract_errors(cfg.tx.contract_errors.clone()),
    ))
}

/// The pools' settings with their chains' endpoints.
fn pool_specs(
    cfg: &Config,
    pools: &HashMap<String, Arc<EndpointPool>>,
) -> Vec<ethgate_accounts::PoolSpec> {
    cfg.tx
        .pool_configs
        .iter()
        .filter_map(|p| {
            let chain = cfg.chain(&p.chain)?;
            Some(ethgate_accounts::PoolSpec {
                settings: p.clone(),
                chain_id: chain.chain_id,
                endpoints: pools.get(&p.chain)?.clone(),
                legacy: !chain.eip1559,
                // Members a rotation creates keep the fee caps of the
                // pool's first configured member.
                caps: p
                    .initial
                    .first()
                    .and_then(|m| cfg.tx.accounts.iter().find(|a| a.signer.address() == *m))
                    .map(|a| a.caps)
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Tasks `serve` waits for (a bounded while) at shutdown.
type Tasks = Vec<tokio::task::JoinHandle<()>>;

/// Runs until a shutdown signal.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    let prometheus = telemetry::metrics()?;
    let store = Store::connect(&cfg.store_url)
        .await
        .context("opening the store")?;
    let pools = pools(&cfg).await?;
    let (stop, stopped) = watch::channel(false);
    let stop = Arc::new(stop);
    let sync = SyncState::default();
    let mut tasks = Tasks::new();
    let followers = chain_tasks(&cfg, &pools, &stopped, &mut tasks);
    let streams = stream_work(&cfg, &pools, &store, &followers).await?;
    let (sinks, routes) = sink_routes(&cfg, &store).await?;
    let tx = transaction_manager(&cfg, &store, &pools);
    if let Some(m) = &tx {
        // Not among the tasks awaited at shutdown: it ends with the manager.
        drop(m.follow_wakes());
    }
    let pools_service = pools_service(&cfg, tx.as_ref(), &pools, &stopped, &mut tasks).await?;
    // Bound before any unit starts: a second process on this port (and
    // so with this replica id) stops here, not after taking leases.
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("api.listen: cannot listen on {}", cfg.listen))?;
    let work = crate::work::ServeWork {
        streams,
        sync: sync.clone(),
        routes,
        tx: tx.clone(),
        pools: pools_service.clone().filter(|p| p.has_pools()),
    };
    let cluster = crate::cluster::Cluster::new(
        store.clone(),
        crate::cluster::replica_id(cfg.cluster.replica_id.as_deref(), cfg.listen),
        cfg.listen.to_string(),
        cfg.cluster.lease_ttl,
        Arc::new(work),
    );
    tasks.push(tokio::spawn(cluster.run(stopped.clone())));
    let mut state = api_state(&cfg, &store, &pools, sinks, sync, stopped.clone());
    state.metrics = Some(Arc::new(move || prometheus.render()));
    state.tx = tx;
    state.pools = pools_service;
    tasks.push(tokio::spawn(state.stats.clone().run(
        store.clone(),
        Duration::from_secs(60),
        stopped.clone(),
    )));
    tasks.extend(serve_metrics(&cfg, &state, &stopped).await?);
    tracing::info!(listen = %cfg.listen, store = %ethgate_store::redacted_url(&cfg.store_url), chains = cfg.chains.len(), streams = cfg.streams.len(), "ethgate serving");
    // Tell syncers and held long-polls first, so shutdown is prompt.
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown_signal().await;
            let _ = stop.send(true);
        }
    });
    ethgate_api::server::serve(
        listener,
        ethgate_api::router(state),
        cfg.limits,
        cfg.tls.clone(),
        stopped.clone(),
        Duration::from_secs(10),
    )
    .await
    .context("serving the API")?;
    tracing::info!("shutting down");
    let _ = stop.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    if let Err(e) = store.checkpoint().await {
        tracing::warn!(error = %e, "final WAL checkpoint failed");
    }
    Ok(())
}

/// Each chain's endpoint health watcher and its follower (shared by
/// every stream of the chain that has caught up with the tip).
fn chain_tasks(
    cfg: &Config,
    pools: &HashMap<String, Arc<EndpointPool>>,
    stopped: &watch::Receiver<bool>,
    tasks: &mut Tasks,
) -> HashMap<String, Arc<Follower>> {
    for pool in pools.values() {
        let watch = ethgate_chain::health::watch(pool.clone(), PROBE_EVERY, stopped.clone());
        tasks.push(tokio::spawn(watch));
    }
    let mut followers = HashMap::new();
    for c in &cfg.chains {
        let follower = Follower::new(&c.name, pools[&c.name].clone(), c.sync.clone());
        tasks.push(tokio::spawn(follower.clone().run(stopped.clone())));
        followers.insert(c.name.clone(), follower);
    }
    followers
}

/// What each stream's unit runs with. Each syncer is built once here to
/// refuse a bad stream before anything starts; the cluster builds it
/// again, fenced, wherever it runs.
async fn stream_work(
    cfg: &Config,
    pools: &HashMap<String, Arc<EndpointPool>>,
    store: &Store,
    followers: &HashMap<String, Arc<Follower>>,
) -> anyhow::Result<HashMap<String, crate::work::StreamWork>> {
    let mut streams = HashMap::new();
    for spec in &cfg.streams {
        let chain = cfg.chain(&spec.chain).context("stream chain vanished")?;
        let pool = pools[&spec.chain].clone();
        Syncer::new(
            spec.clone(),
            pool.clone(),
            store.clone(),
            chain.sync.clone(),
        )
        .await
        .with_context(|| format!("stream {}", spec.name))?;
        let work = crate::work::StreamWork {
            spec: spec.clone(),
            pool,
            cfg: chain.sync.clone(),
            follower: followers[&spec.chain].clone(),
        };
        streams.insert(spec.name.clone(), work);
    }
    Ok(streams)
}

/// The sinks by name, and each (stream, sink) route; the audit stream is
/// registered when a sink takes it.
async fn sink_routes(
    cfg: &Config,
    store: &Store,
) -> anyhow::Result<(HashMap<String, Arc<dyn Sink>>, Vec<(String, Arc<dyn Sink>)>)> {
    let mut sinks: HashMap<String, Arc<dyn Sink>> = HashMap::new();
    for w in &cfg.sinks {
        sinks.insert(w.name().to_owned(), w.build().map_err(anyhow::Error::msg)?);
    }
    let audit = ethgate_store::audit::AUDIT_STREAM;
    if cfg.routes.iter().any(|(s, _)| s == audit) {
        // The trail is written to the outbox only once its stream exists.
        store
            .ensure_stream(audit, 0)
            .await
            .context("registering the audit stream")?;
    }
    let mut routes = Vec::new();
    for (stream, sink) in &cfg.routes {
        let sink = sinks.get(sink).context("routed sink vanished")?.clone();
        routes.push((stream.clone(), sink));
    }
    Ok((sinks, routes))
}

/// The pools service over the transaction manager, its members loaded;
/// with pools, a task re-reads their members every lease lifetime, so
/// whichever replica rotates, the others send from the new members.
async fn pools_service(
    cfg: &Config,
    tx: Option<&Arc<ethgate_tx::TxManager>>,
    pools: &HashMap<String, Arc<EndpointPool>>,
    stopped: &watch::Receiver<bool>,
    tasks: &mut Tasks,
) -> anyhow::Result<Option<Arc<ethgate_accounts::Pools>>> {
    let Some(m) = tx else {
        return Ok(None);
    };
    let service = Arc::new(ethgate_accounts::Pools::new(
        pool_specs(cfg, pools),
        m.clone(),
    ));
    service.load().await.context("loading the pools' members")?;
    if service.has_pools() {
        let follow = service
            .clone()
            .follow(cfg.cluster.lease_ttl, stopped.clone());
        tasks.push(tokio::spawn(follow));
    }
    Ok(Some(service))
}

/// The API's state from the config (metrics, transactions and pools are
/// set by the caller).
fn api_state(
    cfg: &Config,
    store: &Store,
    pools: &HashMap<String, Arc<EndpointPool>>,
    sinks: HashMap<String, Arc<dyn Sink>>,
    sync: SyncState,
    stopping: watch::Receiver<bool>,
) -> ApiState {
    let chains = cfg
        .chains
        .iter()
        .map(|c| ChainHealth {
            name: c.name.clone(),
            chain_id: c.chain_id,
            pool: pools[&c.name].clone(),
            stale_after: (c.sync.poll_interval * 5).max(Duration::from_secs(30)),
        })
        .collect();
    let policies = cfg
        .policies
        .iter()
        .map(|p| (p.name.clone(), Arc::new(p.clone())))
        .collect();
    ApiState {
        store: store.clone(),
        streams: Arc::new(cfg.streams.clone()),
        routes: Arc::new(cfg.routes.clone()),
        sinks: Arc::new(sinks),
        chains: Arc::new(chains),
        sync,
        metrics: None,
        max_wait: cfg.max_wait,
        tx: None,
        pools: None,
        tokens: Default::default(),
        stopping,
        limits: cfg.limits,
        policies: Arc::new(policies),
        guarded: Arc::new(guarded_accounts(cfg)),
        exposure: cfg.exposure.clone(),
        audit: Default::default(),
        abis: Arc::new(cfg.abis.clone()),
        stats: Default::default(),
        lease_ttl: cfg.cluster.lease_ttl,
    }
}

/// `/metrics` on its own address when `api.metrics_listen` asks for it.
async fn serve_metrics(
    cfg: &Config,
    state: &ApiState,
    stopped: &watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(addr) = cfg.metrics_listen else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("api.metrics_listen: cannot listen on {addr}"))?;
    let app = ethgate_api::health::metrics_router(state.metrics.clone());
    let (limits, stopped) = (cfg.limits, stopped.clone());
    Ok(Some(tokio::spawn(async move {
        let drain = Duration::from_secs(1);
        if let Err(e) =
            ethgate_api::server::serve(listener, app, limits, None, stopped, drain).await
        {
            tracing::error!(error = %e, "serving metrics failed");
        }
    })))
}

/// The pools' funding and master accounts: no token sends from them
/// unless its policy names them.
fn guarded_accounts(cfg: &Config) -> std::collections::HashSet<alloy_primitives::Address> {
    let mut out = std::collections::HashSet::new();
    for p in &cfg.tx.pool_configs {
        out.extend(p.funding);
        if let Some(ethgate_accounts::Master::Account(a)) = &p.master {
            out.insert(*a);
        }
    }
    out
}
