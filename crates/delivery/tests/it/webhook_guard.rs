//! The webhook sink's guard of the operator's network, against real local
//! HTTP servers: a redirect is never followed (a 307 would re-send the
//! signed body wherever it points), and a host name is resolved once per
//! connection, by the same lookup that checks it — a DNS answer that
//! changes between a check and the connection (rebinding) cannot reach a
//! private address.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use alloy_primitives::Address;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;

use ethgate_delivery::Sink;
use ethgate_delivery::sinks::webhook::{Lookup, WebhookConfig, WebhookSink};
use ethgate_store::fixtures;
use ethgate_store::{Store, StoredEnvelope};

/// A local server on `path` answering with `answer`, counting requests.
async fn server(
    answer: impl Fn() -> axum::response::Response + Clone + Send + Sync + 'static,
) -> (u16, Arc<AtomicU32>) {
    let hits = Arc::new(AtomicU32::new(0));
    let counted = hits.clone();
    let app = Router::new().route(
        "/hook",
        post(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            async move { answer() }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, hits)
}

fn config(url: &str, allow_private_network: bool) -> WebhookConfig {
    WebhookConfig {
        name: "hook".into(),
        url: url.parse().expect("url"),
        secret: "guard-secret".into(),
        batch_size: 1,
        timeout: Duration::from_secs(1),
        max_age: Duration::from_secs(3600),
        allow_private_network,
    }
}

/// One stored envelope to send.
async fn batch(dir: &tempfile::TempDir) -> Vec<StoredEnvelope> {
    let store = Store::connect(&format!("sqlite://{}/g.db", dir.path().display()))
        .await
        .expect("store");
    store.ensure_stream("s", 1).await.expect("stream");
    let block = fixtures::block(1, 1);
    let log = fixtures::log(Address::repeat_byte(1), &block, 0);
    let events = fixtures::events(std::slice::from_ref(&log), None);
    fixtures::record(&store, "s", None, &[block], events)
        .await
        .expect("commit");
    store.events_after("s", 0, 10).await.expect("read")
}

#[tokio::test]
async fn a_redirect_is_never_followed() {
    let (target, target_hits) = server(|| StatusCode::NO_CONTENT.into_response()).await;
    let location = format!("http://127.0.0.1:{target}/hook");
    let (port, hits) = server(move || {
        (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, location.clone())],
        )
            .into_response()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let batch = batch(&dir).await;
    let url = format!("http://127.0.0.1:{port}/hook");
    let sink = WebhookSink::new(config(&url, true)).expect("sink");
    let err = sink
        .send(&batch)
        .await
        .expect_err("a redirect is a failure");
    assert!(
        err.message.contains("307") && err.message.contains("redirect"),
        "{err}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        target_hits.load(Ordering::SeqCst),
        0,
        "the signed body went nowhere else"
    );
}

#[tokio::test]
async fn a_name_that_rebinds_to_a_private_address_never_reaches_it() {
    let (port, hits) = server(|| StatusCode::NO_CONTENT.into_response()).await;
    // A DNS that answers a public address, then the local server's, in
    // turn: what a rebinding attacker's name server does.
    let lookups = Arc::new(AtomicU32::new(0));
    let counted = lookups.clone();
    let lookup: Lookup = Arc::new(move |_host: String| {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let ip: IpAddr = match n % 2 {
                0 => "192.0.2.1".parse().expect("ip"),
                _ => "127.0.0.1".parse().expect("ip"),
            };
            Ok(vec![ip])
        })
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let batch = batch(&dir).await;
    let url = format!("http://rebind.test:{port}/hook");
    let sink = WebhookSink::with_lookup(config(&url, false), lookup).expect("sink");
    for _ in 0..4 {
        let err = sink.send(&batch).await.expect_err("never delivered");
        assert!(
            err.retriable || err.message.contains("allow_private_network"),
            "{err}"
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the local server was never reached"
    );
    assert_eq!(
        lookups.load(Ordering::SeqCst),
        4,
        "one resolution per connection: the one that was checked"
    );
}

#[tokio::test]
async fn a_local_name_is_refused_before_anything_is_sent() {
    let (port, hits) = server(|| StatusCode::NO_CONTENT.into_response()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let batch = batch(&dir).await;
    for url in [
        format!("http://localhost:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
    ] {
        let sink = WebhookSink::new(config(&url, false)).expect("sink");
        let err = sink.send(&batch).await.expect_err("refused");
        assert!(
            !err.retriable && err.message.contains("allow_private_network"),
            "{url}: {err}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}
