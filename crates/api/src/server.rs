//! The accept loop: the API's defence against callers that hold
//! connections rather than use them.
//!
//! `axum::serve` waits forever for a request that never comes and takes
//! every connection offered; a few thousand idle sockets then exhaust the
//! file descriptors and `/healthz` stops answering. Here each connection
//! must deliver its request headers within [`Limits::header_timeout`]
//! (idle keep-alive connections included), its body within
//! [`Limits::body_timeout`] (see [`crate::limits`]), and at most
//! [`Limits::max_connections`] are served at once: past the cap a new
//! connection is closed at once, so the kernel's backlog never fills with
//! callers waiting behind the hoarders. At start the process raises its
//! open-file limit to the hard limit so the cap, not the default 1,024
//! descriptors, is what binds.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// How long and how much a caller may take. Defaults suit an API behind a
/// load balancer or used directly by back-end services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time to deliver a request's headers, from when the connection is
    /// ready for one (so it also closes idle keep-alive connections).
    pub header_timeout: Duration,
    /// Time to deliver a request's body once its headers are in.
    pub body_timeout: Duration,
    /// Longest a handler may run; must exceed the long-poll `max_wait`.
    pub request_timeout: Duration,
    /// Connections served at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Requests a second per token (bursts of twice that); `None`: no limit.
    pub rate_per_token: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            rate_per_token: None,
        }
    }
}

/// Largest request head (request line and headers) the parser buffers;
/// [`crate::limits`] answers a JSON 431 well below it.
const PARSER_HEAD_LIMIT: usize = 64 * 1024;

/// Descriptors kept for everything but API connections: the store, RPC
/// and broker clients, files.
const RESERVED_FDS: u64 = 256;

/// Raises the soft open-file limit to the hard limit and returns how many
/// connections that leaves room for (`None` where the limit is unknown).
pub fn raise_fd_limit() -> Option<usize> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let Some(hard) = limit.maximum
        && limit.current.is_some_and(|soft| soft < hard)
    {
        limit.current = Some(hard);
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, "could not raise the open-file limit");
        }
    }
    let soft = getrlimit(Resource::Nofile).current?;
    Some(soft.saturating_sub(RESERVED_FDS) as usize)
}

/// Serves `app` on `listener` within `limits` until `stop` turns true,
/// then lets open requests finish (each connection is asked to close
/// after its current response) for up to `drain`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) -> std::io::Result<()> {
    let room = raise_fd_limit().unwrap_or(limits.max_connections);
    let cap = limits.max_connections.min(room).max(1);
    if cap < limits.max_connections {
        tracing::warn!(
            configured = limits.max_connections,
            cap,
            "the open-file limit allows fewer API connections than configured"
        );
    }
    let slots = Arc::new(Semaphore::new(cap));
    let (closing, closed) = watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(PARSER_HEAD_LIMIT.max(8192));
    let builder = Arc::new(builder);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => break,
        };
        let (stream, _peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off briefly rather than spin.
                tracing::warn!(error = %e, "accepting an API connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!(crate::limits::M_REFUSED).increment(1);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let mut closed = closed.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let app = app.clone();
                async move {
                    let resp = app.oneshot(req.map(axum::body::Body::new)).await;
                    Ok::<_, Infallible>(resp.unwrap_or_else(|e| match e {}))
                }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = async { closed.wait_for(|c| *c).await.map(|_| ()) } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    let _ = closing.send(true);
    // Connections finish their current request, then close; wait for
    // their slots to come back, at most `drain`.
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(drain, slots.acquire_many(all)).await;
    Ok(())
}
