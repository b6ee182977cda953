//! The API on a real socket against callers that hold connections rather
//! than use them, and requests the router never sees whole: idle and
//! half-sent connections cannot starve `/healthz` or an authorised route
//! and are closed after their timeouts; every error, whoever raises it,
//! is the JSON error shape and echoes nothing unbounded; a token's rate
//! limit answers 429 with Retry-After; with a certificate it speaks only
//! HTTPS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ethgate_api::{ApiState, Limits, hash_token, new_token, router};
use ethgate_store::{NewToken, Store};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Server {
    _dir: tempfile::TempDir,
    addr: SocketAddr,
    reader: String,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn server(limits: Limits) -> Server {
    server_tls(limits, None).await
}

async fn server_tls(limits: Limits, tls: Option<Arc<ethgate_api::server::TlsConfig>>) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::connect(&format!("sqlite://{}/api.db", dir.path().display()))
        .await
        .expect("store");
    let (id, reader) = new_token();
    store
        .insert_token(&NewToken {
            id,
            hash: hash_token(&reader),
            scopes: vec!["events:read".into()],
            label: "reader".into(),
            ..Default::default()
        })
        .await
        .expect("token");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let state = ApiState {
        store,
        streams: Arc::default(),
        routes: Arc::default(),
        sinks: Arc::default(),
        chains: Arc::default(),
        sync: Default::default(),
        metrics: None,
        max_wait: Duration::from_secs(5),
        tx: None,
        pools: None,
        tokens: Default::default(),
        stopping: stopped.clone(),
        limits,
        policies: Arc::default(),
        guarded: Arc::default(),
        exposure: Default::default(),
        abis: Default::default(),
        stats: Default::default(),
        lease_ttl: Duration::from_secs(5),
        audit: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(ethgate_api::server::serve(
        listener,
        router(state),
        limits,
        tls,
        stopped,
        Duration::from_secs(1),
    ));
    Server {
        _dir: dir,
        addr,
        reader,
        _stop: stop,
    }
}

/// Sends `request` whole on a new connection and reads the answer to EOF.
async fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

fn get(path: &str, token: Option<&str>) -> Vec<u8> {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n{auth}Connection: close\r\n\r\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_neither_starve_the_api_nor_stay() {
    // The test holds its 2,000 ends in the same process as the server's.
    ethgate_api::server::raise_fd_limit();
    let limits = Limits {
        header_timeout: Duration::from_secs(3),
        body_timeout: Duration::from_secs(3),
        ..Limits::default()
    };
    let srv = server(limits).await;
    let mut held = Vec::new();
    for i in 0..2_000 {
        let mut s = TcpStream::connect(srv.addr).await.expect("connect");
        match i % 3 {
            0 => {} // says nothing
            1 => s
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Half: ")
                .await
                .expect("half head"),
            _ => s
                .write_all(
                    format!(
                        "POST /v1/streams HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\n\
                         Content-Length: 100\r\n\r\n{{\"a\":",
                        srv.reader
                    )
                    .as_bytes(),
                )
                .await
                .expect("half body"),
        }
        held.push((i % 3, s));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..5 {
        let t = Instant::now();
        let (status, _, _) = exchange(srv.addr, &get("/healthz", None)).await;
        let health = t.elapsed();
        let t = Instant::now();
        let (authed, _, body) = exchange(srv.addr, &get("/v1/streams", Some(&srv.reader))).await;
        let route = t.elapsed();
        assert_eq!((status, authed), (200, 200), "{body}");
        assert!(
            health < Duration::from_millis(100) && route < Duration::from_millis(100),
            "with 2,000 held connections /healthz took {health:?}, /v1/streams {route:?}"
        );
    }
    // Past the timeouts every held connection has been closed by the
    // server; one whose body stalled was told why first.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut closed = [0usize; 3];
    let mut told_408 = 0;
    for (kind, mut s) in held {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_millis(200), s.read_to_end(&mut buf));
        if read.await.is_ok() {
            closed[kind] += 1;
            if String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 408") {
                told_408 += 1;
            }
        }
    }
    assert_eq!(closed, [667, 667, 666], "connections closed by kind");
    assert_eq!(told_408, 666, "stalled bodies answered 408");
}

fn error_of(body: &str) -> Value {
    let v: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:.200}"));
    assert!(v["error"]["code"].is_string(), "error shape: {v}");
    v
}

#[tokio::test]
async fn every_error_is_json_and_echoes_nothing_unbounded() {
    let srv = server(Limits::default()).await;
    let a = srv.addr;
    let (s, head, body) = exchange(
        a,
        b"DELETE /v1/streams HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(s, 405);
    assert!(head.to_ascii_lowercase().contains("allow: get"), "{head}");
    error_of(&body);

    let big = vec![b'x'; ethgate_api::MAX_BODY + 10];
    let mut req = format!(
        "POST /v1/transactions HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        big.len()
    )
    .into_bytes();
    req.extend_from_slice(&big);
    let (s, _, body) = exchange(a, &req).await;
    assert_eq!(s, 413);
    error_of(&body);

    let long = "q".repeat(9_000);
    let (s, _, body) = exchange(a, &get(&format!("/v1/streams?{long}=1"), None)).await;
    assert_eq!(s, 414);
    error_of(&body);

    let req = format!(
        "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "h".repeat(20_000)
    );
    let (s, _, body) = exchange(a, req.as_bytes()).await;
    assert_eq!(s, 431);
    error_of(&body);

    let (s, _, body) = exchange(a, &get("/v1/streams/%FF%FE", Some(&srv.reader))).await;
    assert_eq!(s, 400, "{body}");
    error_of(&body);

    // A 7 KB parameter name comes back clipped, not whole.
    let name = "n".repeat(7_000);
    let uri = format!("/v1/sinks/hook/dead-letters?{name}=1");
    let (s, _, body) = exchange(a, &get(&uri, Some(&srv.reader))).await;
    assert!(s == 400 || s == 404, "{s} {body:.200}");
    error_of(&body);
    assert!(body.len() < 1_000, "the error echoed {} bytes", body.len());
    let (s, _, body) = exchange(a, &get(&format!("/nowhere/{name}"), None)).await;
    assert_eq!(s, 404);
    error_of(&body);
    assert!(body.len() < 1_000, "the 404 echoed {} bytes", body.len());
}

#[tokio::test]
async fn a_tokens_rate_limit_answers_429_with_retry_after() {
    let srv = server(Limits {
        rate_per_token: Some(2),
        ..Limits::default()
    })
    .await;
    let mut limited = None;
    for _ in 0..10 {
        let (s, head, body) = exchange(srv.addr, &get("/v1/streams", Some(&srv.reader))).await;
        if s == 429 {
            limited = Some((head, body));
            break;
        }
        assert_eq!(s, 200, "{body}");
    }
    let (head, body) = limited.expect("ten quick requests at 2/s were all served");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    assert_eq!(error_of(&body)["error"]["code"], "rate_limited");
    // Health checks carry no token and are never limited.
    for _ in 0..10 {
        assert_eq!(exchange(srv.addr, &get("/healthz", None)).await.0, 200);
    }
}

#[tokio::test]
async fn with_a_certificate_the_api_speaks_https_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let (cert_pem, key_pem) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_pem, cert.signing_key.serialize_pem()).expect("write key");
    let Err(e) = ethgate_api::server::tls_config(&key_pem, &key_pem) else {
        panic!("a key file was taken for a certificate");
    };
    assert!(matches!(e, ethgate_api::server::TlsError::Cert(_)), "{e}");
    let tls = ethgate_api::server::tls_config(&cert_pem, &key_pem).expect("tls config");
    let srv = server_tls(Limits::default(), Some(tls)).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).expect("root");
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = TcpStream::connect(srv.addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    tls.write_all(&get("/v1/streams", Some(&srv.reader)))
        .await
        .expect("write");
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text:.200}");

    // Plain HTTP on the same port gets no answer.
    let (status, _, _) = exchange(srv.addr, &get("/healthz", None)).await;
    assert_eq!(status, 0, "a plain request was answered");
}
