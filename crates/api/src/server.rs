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

/// The TLS settings [`serve`] takes.
pub use rustls::ServerConfig as TlsConfig;

/// Why a certificate or key could not be used for TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or held no certificate.
    #[error("{0}")]
    Cert(String),
    /// The key file could not be read or held no key.
    #[error("{0}")]
    Key(String),
    /// rustls refused the pair.
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(String),
}

/// A TLS server configuration from PEM files: the certificate chain and
/// its private key (PKCS#8, PKCS#1 or SEC1).
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let name = |p: &std::path::Path| p.display().to_string();
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert(format!("{}: {e}", name(cert))))?;
    if certs.is_empty() {
        let e = format!("{}: no certificate in the file", name(cert));
        return Err(TlsError::Cert(e));
    }
    // The error names the file only: its text could quote key material.
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|_| TlsError::Key(format!("{}: no readable private key", name(key))))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves one connection until it ends or `closed` asks it to finish.
async fn connection<I>(
    io: I,
    app: Router,
    builder: Arc<hyper::server::conn::http1::Builder>,
    mut closed: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let app = app.clone();
        async move {
            let resp = app.oneshot(req.map(axum::body::Body::new)).await;
            Ok::<_, Infallible>(resp.unwrap_or_else(|e| match e {}))
        }
    });
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = async { closed.wait_for(|c| *c).await.map(|_| ()) } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Serves `app` on `listener` within `limits` until `stop` turns true,
/// then lets open requests finish (each connection is asked to close
/// after its current response) for up to `drain`. With `tls`, every
/// connection must complete its handshake within the header timeout.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) -> std::io::Result<()> {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
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
        let (app, builder, closed) = (app.clone(), builder.clone(), closed.clone());
        let tls = tls.clone();
        let handshake = limits.header_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => connection(stream, app, builder, closed).await,
                Some(acceptor) => {
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(io)) => connection(io, app, builder, closed).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
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
