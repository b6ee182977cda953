//! `ethgate serve`: wires pools, store, syncers and the API, and stops them
//! in order on SIGINT/SIGTERM.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ethgate_api::{ApiState, ChainHealth};
use ethgate_chain::{EndpointPool, PoolConfig};
use ethgate_delivery::{Dispatcher, Sink};
use ethgate_events::{SyncState, Syncer};
use ethgate_store::Store;
use tokio::sync::watch;

use crate::config::{ChainConfig, Config};
use crate::telemetry;

/// Builds one endpoint pool per chain.
pub fn pools(cfg: &Config) -> anyhow::Result<HashMap<String, Arc<EndpointPool>>> {
    cfg.chains
        .iter()
        .map(|c| Ok((c.name.clone(), Arc::new(pool(c, 5)?))))
        .collect()
}

/// One chain's pool with `max_rounds` retry rounds.
pub fn pool(c: &ChainConfig, max_rounds: u32) -> anyhow::Result<EndpointPool> {
    EndpointPool::new(PoolConfig {
        chain: c.name.clone(),
        urls: c.rpc.clone(),
        request_timeout: c.request_timeout,
        max_rounds,
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_secs(30),
    })
    .with_context(|| format!("chain {}: building the HTTP client", c.name))
}

/// Refuses a chain whose node reports another chain id; a node that does
/// not answer yet is only warned about (the syncers keep retrying).
async fn check_chain_id(c: &ChainConfig, pool: &EndpointPool) -> anyhow::Result<()> {
    match pool
        .call::<alloy_primitives::U64>("eth_chainId", serde_json::json!([]))
        .await
    {
        Ok(id) if id.to::<u64>() == c.chain_id => Ok(()),
        Ok(id) => anyhow::bail!(
            "chains.{}: chain_id is {} but the node reports {}",
            c.name,
            c.chain_id,
            id.to::<u64>()
        ),
        Err(e) => {
            tracing::warn!(chain = %c.name, error = %e, "chain not reachable at start; syncers will retry");
            Ok(())
        }
    }
}

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

/// Runs until a shutdown signal.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    let prometheus = telemetry::metrics()?;
    let store = Store::connect(&cfg.store_url)
        .await
        .context("opening the store")?;
    let pools = pools(&cfg)?;
    for c in &cfg.chains {
        check_chain_id(c, &pools[&c.name]).await?;
    }
    let (stop, stopped) = watch::channel(false);
    let stop = Arc::new(stop);
    let sync = SyncState::default();
    let mut tasks = Vec::new();
    for spec in &cfg.streams {
        let chain = cfg.chain(&spec.chain).context("stream chain vanished")?;
        let syncer = Syncer::new(
            spec.clone(),
            pools[&spec.chain].clone(),
            store.clone(),
            chain.sync.clone(),
        )
        .await
        .with_context(|| format!("stream {}", spec.name))?;
        tasks.push(tokio::spawn(syncer.run(sync.clone(), stopped.clone())));
    }
    let mut sinks: HashMap<String, Arc<dyn Sink>> = HashMap::new();
    for w in &cfg.sinks {
        sinks.insert(w.name().to_owned(), w.build().map_err(anyhow::Error::msg)?);
    }
    for (stream, sink) in &cfg.routes {
        let sink = sinks.get(sink).context("routed sink vanished")?.clone();
        tasks.push(tokio::spawn(
            Dispatcher::new(stream, sink, store.clone()).run(stopped.clone()),
        ));
    }
    let tx = transaction_manager(&cfg, &store, &pools);
    let pools_service = match &tx {
        Some(m) => {
            let service = Arc::new(ethgate_accounts::Pools::new(
                pool_specs(&cfg, &pools),
                m.clone(),
            ));
            service.load().await.context("loading the pools' members")?;
            tasks.extend(m.spawn(&stopped));
            tasks.push(tokio::spawn(service.clone().run(stopped.clone())));
            Some(service)
        }
        None => None,
    };
    let chains = cfg
        .chains
        .iter()
        .map(|c| ChainHealth {
            name: c.name.clone(),
            pool: pools[&c.name].clone(),
            stale_after: (c.sync.poll_interval * 5).max(Duration::from_secs(30)),
        })
        .collect();
    let state = ApiState {
        store: store.clone(),
        streams: Arc::new(cfg.streams.clone()),
        routes: Arc::new(cfg.routes.clone()),
        sinks: Arc::new(sinks),
        chains: Arc::new(chains),
        sync,
        metrics: Some(Arc::new(move || prometheus.render())),
        max_wait: cfg.max_wait,
        tx,
        pools: pools_service,
        tokens: Default::default(),
        stopping: stopped.clone(),
    };
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("api.listen: cannot listen on {}", cfg.listen))?;
    tracing::info!(listen = %cfg.listen, store = %cfg.store_url, chains = cfg.chains.len(), streams = cfg.streams.len(), "ethgate serving");
    axum::serve(listener, ethgate_api::router(state))
        .with_graceful_shutdown({
            // Tell syncers and held long-polls first, so shutdown is prompt.
            let stop = stop.clone();
            async move {
                shutdown_signal().await;
                let _ = stop.send(true);
            }
        })
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
