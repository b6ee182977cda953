//! What the end-to-end tests of `ethgate serve` share: starting it, polling
//! for a condition, and the real destinations they deliver to, behind one
//! trait: each can refuse everything past its first `gate` envelopes — the
//! way each refuses in production (HTTP 500, a broker nack, a JetStream
//! limit) — and report what it holds with the dedupe id it received.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use ethgate_delivery::sinks::webhook::verify_request;
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;
use tokio::process::{Child, Command};

/// One envelope as the destination received it.
#[derive(Clone)]
pub struct Delivery {
    /// The id the destination can deduplicate by: `message_id` in AMQP,
    /// `Nats-Msg-Id` in NATS, made of the body's fields for a webhook.
    pub dedupe_id: Option<String>,
    /// The envelope as JSON.
    pub envelope: Value,
}

/// A destination a sink delivers to.
pub trait Destination {
    /// The `[[sinks]]` entry's keys after its name.
    fn sink_toml(&self) -> String;
    /// Environment `ethgate serve` needs (secrets, broker URLs).
    fn env(&self) -> Vec<(&'static str, String)>;
    /// Everything received so far, in arrival order (duplicates included).
    async fn received(&self) -> Vec<Delivery>;
    /// Stops refusing.
    async fn open_gate(&self);
    /// Removes what the destination created on a shared server.
    async fn cleanup(&self);
}

/// Starts `ethgate serve` in `dir`; its log (warnings and errors) is
/// appended to `dir/ethgate.log`, which [`ShowLog`] prints if the test fails.
pub fn serve(dir: &Path, env: &[(&str, String)]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("ethgate.log"))
        .expect("log file");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ethgate"));
    cmd.arg("serve")
        .current_dir(dir)
        .env("ETHGATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("ethgate serve starts")
}

/// A new API token with `scope`, made by `ethgate token create` in `dir`.
pub fn token(dir: &Path, env: &[(&str, String)], scope: &str) -> String {
    token_with(dir, env, &["--scope", scope])
}

/// A new API token made by `ethgate token create ARGS…` in `dir`.
pub fn token_with(dir: &Path, env: &[(&str, String)], args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ethgate"))
        .args(["token", "create"])
        .args(args)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("token create");
    assert!(
        out.status.success(),
        "token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Waits (up to 30 s) until the gateway at `base` answers `/readyz` with 200.
pub async fn ready(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(Instant::now() < deadline, "serve never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Prints `ethgate.log` of a directory when dropped during a panic, so a
/// failed end-to-end test shows what ethgate said.
pub struct ShowLog(pub std::path::PathBuf);

impl Drop for ShowLog {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.0.join("ethgate.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- last lines of ethgate.log ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// The gateway's `/metrics` at `base`, as text.
pub async fn metrics(http: &reqwest::Client, base: &str) -> String {
    http.get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// Polls `check` every 5 ms until it returns `Some`, failing after `secs`.
pub async fn until<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}{}x{nanos}", std::process::id())
}

const SECRET: &str = "compliance-hook-secret";

#[derive(Default)]
struct Hook {
    got: Vec<Delivery>,
    accepted: u64,
    gate: Option<u64>,
}

/// A local HTTP receiver that verifies signatures and answers 500 while
/// its gate is closed and full.
pub struct Webhook {
    url: String,
    state: Arc<Mutex<Hook>>,
}

async fn hook(
    State(state): State<Arc<Mutex<Hook>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if verify_request(SECRET, &headers, &body, Duration::from_secs(300)).is_err() {
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(batch) = serde_json::from_slice::<Vec<Value>>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let Ok(mut h) = state.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    if h.gate.is_some_and(|g| h.accepted + batch.len() as u64 > g) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    h.accepted += batch.len() as u64;
    // A webhook body carries the parts of the dedupe id (the envelope's id,
    // stream and seq); it has no per-message header to put it in.
    h.got.extend(batch.into_iter().map(|envelope| Delivery {
        dedupe_id: match (
            envelope["id"].as_str(),
            envelope["stream"].as_str(),
            envelope["seq"].as_u64(),
        ) {
            (Some(id), Some(stream), Some(seq)) => Some(format!("{id}/{stream}/{seq}")),
            _ => None,
        },
        envelope,
    }));
    StatusCode::OK
}

impl Webhook {
    /// Starts the receiver on a free loopback port.
    pub async fn start(gate: u64) -> Webhook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(Hook {
            gate: Some(gate),
            ..Hook::default()
        }));
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Webhook { url, state }
    }
}

impl Destination for Webhook {
    fn sink_toml(&self) -> String {
        format!(
            "kind = \"webhook\"\nurl = \"{}\"\nsecret_env = \"HOOK_SECRET\"\nallow_private_network = true\nbatch_size = 10",
            self.url
        )
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("HOOK_SECRET", SECRET.to_owned())]
    }

    async fn received(&self) -> Vec<Delivery> {
        let h = self.state.lock().expect("lock");
        h.got.clone()
    }

    async fn open_gate(&self) {
        self.state.lock().expect("lock").gate = None;
    }

    async fn cleanup(&self) {}
}

/// Every suite of this binary shares one broker, and the outage suite
/// stops it: a suite that needs it holds this lock shared for its whole
/// run, the outage suite holds it alone, so no suite meets a broker
/// another one stopped.
static BROKER: std::sync::LazyLock<tokio::sync::RwLock<()>> =
    std::sync::LazyLock::new(Default::default);

/// Holds the broker for a suite that needs it running.
pub async fn broker_in_use() -> tokio::sync::RwLockReadGuard<'static, ()> {
    BROKER.read().await
}

/// Holds the broker alone, for a suite that stops it.
pub async fn broker_to_stop() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    BROKER.write().await
}

/// The broker every AMQP test uses.
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Connects to RabbitMQ; a broker that is not running fails the test.
pub async fn rabbitmq() -> (Connection, Channel) {
    match Connection::connect(AMQP_URL, ConnectionProperties::default()).await {
        Ok(conn) => {
            let ch = conn.create_channel().await.expect("channel");
            (conn, ch)
        }
        Err(e) => panic!(
            "RabbitMQ is required but unreachable at {AMQP_URL}: {e}; start it with `scripts/services rabbitmq`"
        ),
    }
}

/// Declares a fresh durable topic exchange, as the sink would.
pub async fn exchange(ch: &Channel, name: &str) {
    ch.exchange_declare(
        name.into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("exchange");
}

/// Declares a queue (`args` as given) bound to `exchange` by `pattern`.
pub async fn bound_queue(
    ch: &Channel,
    name: &str,
    exchange: &str,
    pattern: &str,
    args: FieldTable,
) {
    ch.queue_declare(
        name.into(),
        QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        },
        args,
    )
    .await
    .expect("queue");
    ch.queue_bind(
        name.into(),
        exchange.into(),
        pattern.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
}

/// Takes every message waiting in `queue`: (routing key, delivery).
pub async fn drain(ch: &Channel, queue: &str) -> Vec<(String, Delivery)> {
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        let d = m.delivery;
        out.push((
            d.routing_key.to_string(),
            Delivery {
                dedupe_id: d.properties.message_id().as_ref().map(|s| s.to_string()),
                envelope: serde_json::from_slice(&d.data).expect("a JSON body"),
            },
        ));
    }
    out
}

/// RabbitMQ with a consumer queue bound to every event, and a gate queue
/// (`x-max-length`, `reject-publish`) that makes the broker nack every
/// message past its first `gate`.
pub struct Amqp {
    _broker: tokio::sync::RwLockReadGuard<'static, ()>,
    _conn: Connection,
    ch: Channel,
    exchange: String,
    queue: String,
    gate: String,
    got: tokio::sync::Mutex<Vec<Delivery>>,
}

impl Amqp {
    /// Declares the exchange and both queues.
    pub async fn start(gate: u64) -> Amqp {
        let broker = broker_in_use().await;
        let (conn, ch) = rabbitmq().await;
        let exchange_name = unique("ethgate-compliance-");
        exchange(&ch, &exchange_name).await;
        let queue = format!("{exchange_name}-all");
        bound_queue(
            &ch,
            &queue,
            &exchange_name,
            "event.#",
            FieldTable::default(),
        )
        .await;
        let gate_queue = format!("{exchange_name}-gate");
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongLongInt(gate as i64));
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
        bound_queue(&ch, &gate_queue, &exchange_name, "#", args).await;
        Amqp {
            _broker: broker,
            _conn: conn,
            ch,
            exchange: exchange_name,
            queue,
            gate: gate_queue,
            got: tokio::sync::Mutex::default(),
        }
    }
}

impl Destination for Amqp {
    fn sink_toml(&self) -> String {
        format!(
            "kind = \"amqp\"\nurl_env = \"AMQP_URL\"\nexchange = \"{}\"\nbatch_size = 50",
            self.exchange
        )
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("AMQP_URL", AMQP_URL.to_owned())]
    }

    async fn received(&self) -> Vec<Delivery> {
        let mut got = self.got.lock().await;
        got.extend(
            drain(&self.ch, &self.queue)
                .await
                .into_iter()
                .map(|(_, d)| d),
        );
        got.clone()
    }

    async fn open_gate(&self) {
        self.ch
            .queue_delete(self.gate.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("delete the gate queue");
    }

    async fn cleanup(&self) {
        self.ch
            .exchange_delete(
                self.exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await
            .expect("delete the exchange");
    }
}

/// The NATS server every NATS test uses.
pub const NATS_URL: &str = "nats://127.0.0.1:4222";

/// A JetStream stream created before ethgate starts, with `max_messages` =
/// gate and the `new` discard policy, so JetStream refuses (a failed publish
/// ack) every message past the first `gate`.
pub struct Nats {
    js: jetstream::Context,
    config: jetstream::stream::Config,
    prefix: String,
    got: tokio::sync::Mutex<Vec<Delivery>>,
}

impl Nats {
    /// Creates the limited stream; a server that is not running fails
    /// the test.
    pub async fn start(gate: u64) -> Nats {
        let client = match async_nats::connect(NATS_URL).await {
            Ok(c) => c,
            Err(e) => panic!(
                "NATS is required but unreachable at {NATS_URL}: {e}; start it with `scripts/services nats`"
            ),
        };
        let js = jetstream::new(client);
        let prefix = unique("egc");
        let config = jetstream::stream::Config {
            name: prefix.to_uppercase(),
            subjects: vec![format!("{prefix}.>")],
            max_messages: gate as i64,
            discard: jetstream::stream::DiscardPolicy::New,
            ..Default::default()
        };
        js.create_stream(config.clone()).await.expect("stream");
        Nats {
            js,
            config,
            prefix,
            got: tokio::sync::Mutex::default(),
        }
    }
}

impl Destination for Nats {
    fn sink_toml(&self) -> String {
        format!(
            "kind = \"nats\"\nurl = \"{NATS_URL}\"\njetstream_stream = \"{}\"\nsubject_prefix = \"{}\"\nbatch_size = 50",
            self.config.name, self.prefix
        )
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    async fn received(&self) -> Vec<Delivery> {
        let mut got = self.got.lock().await;
        let mut stream = self.js.get_stream(&self.config.name).await.expect("stream");
        let last = stream.info().await.expect("info").state.last_sequence;
        for seq in got.len() as u64 + 1..=last {
            let m = stream.get_raw_message(seq).await.expect("message");
            got.push(Delivery {
                dedupe_id: m
                    .headers
                    .get(async_nats::header::NATS_MESSAGE_ID)
                    .map(|v| v.as_str().to_owned()),
                envelope: serde_json::from_slice(&m.payload).expect("a JSON payload"),
            });
        }
        got.clone()
    }

    async fn open_gate(&self) {
        let mut open = self.config.clone();
        open.max_messages = -1;
        self.js.update_stream(open).await.expect("lift the limit");
    }

    async fn cleanup(&self) {
        self.js
            .delete_stream(&self.config.name)
            .await
            .expect("delete the stream");
    }
}
