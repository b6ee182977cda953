//! A real JSON-RPC proxy in front of anvil that injects endpoint faults.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// What the proxy does to the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward unchanged.
    Pass,
    /// Answer HTTP 500.
    Http500,
    /// Answer HTTP 429 Too Many Requests.
    Http429,
    /// Wait this long before forwarding (clients time out first).
    Delay(Duration),
    /// Refuse `eth_getLogs` spanning more than this many blocks with geth's
    /// "query returned more than 10000 results".
    RangeCap(u64),
    /// Refuse `eth_getLogs` spanning more than this many blocks the way
    /// Alchemy does, naming in its message a range that would work
    /// (`… this block range should work: [0xFROM, 0xTO]`).
    RangeHint(u64),
    /// Rewrite every log's `blockHash` in the next this-many non-empty
    /// `eth_getLogs` answers, as a node on another fork would answer.
    ForeignLogHashes(u64),
    /// Park the next this-many distinct signed transactions sent with
    /// `eth_sendRawTransaction`: never forward them, and answer every send
    /// of them, the first and any re-broadcast of the same bytes, the way
    /// anvil answers a transaction it holds but will never mine
    /// ("transaction already imported"). Other calls, in a batch or alone,
    /// pass through.
    Park(u64),
    /// Answer `eth_simulateV1` with "method not found", as a node that
    /// predates it (or a provider that does not serve it) does; everything
    /// else passes through.
    NoSimulate,
    /// Answer `eth_simulateV1` with HTTP 502, as a gateway whose upstream
    /// times out on it does, while every other call passes through.
    SimulateUnanswered,
    /// Answer every `eth_call` and `eth_simulateV1` whose call data starts
    /// with this selector with -32603 and words no classifier knows, as a
    /// node that cannot run that one call does; every other call, in a
    /// batch or alone, passes through.
    CallErrs([u8; 4]),
}

#[derive(Debug, Default)]
struct Seen {
    requests: u64,
    /// Calls by JSON-RPC method, counting each call of a batch.
    methods: std::collections::HashMap<String, u64>,
    /// HTTP requests by JSON-RPC method, counting a batch once per method
    /// it carries.
    requests_with: std::collections::HashMap<String, u64>,
    log_spans: Vec<(u64, bool)>,
    tampered: u64,
    /// Logs in every `eth_getLogs` answer, summed.
    logs_answered: u64,
    /// Raw transactions parked by [`Fault::Park`], and sends of them held.
    parked: std::collections::HashSet<String>,
    held: u64,
    /// Hashes of the signed transactions sent through the proxy.
    sent: std::collections::HashSet<String>,
}

struct Inner {
    upstream: String,
    fault: Mutex<Fault>,
    seen: Mutex<Seen>,
    client: reqwest::Client,
}

/// A running proxy; stops when its runtime does.
#[derive(Clone)]
pub struct Proxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    inner: Arc<Inner>,
}

fn quantity(v: &Value) -> Option<u64> {
    v.as_str()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
}

/// Consumes one tampering from a [`Fault::ForeignLogHashes`] budget,
/// atomically, so concurrent requests never share one.
fn take_one(inner: &Inner) -> bool {
    let mut fault = inner.fault.lock().expect("lock");
    match *fault {
        Fault::ForeignLogHashes(left) if left > 0 => {
            *fault = Fault::ForeignLogHashes(left - 1);
            if let Ok(mut s) = inner.seen.lock() {
                s.tampered += 1;
            }
            true
        }
        _ => false,
    }
}

/// The calls a JSON-RPC request carries: a batch's, or the one.
fn calls(req: &Value) -> Vec<&Value> {
    match req {
        Value::Array(calls) => calls.iter().collect(),
        call => vec![call],
    }
}

/// Whether this send is parked: bytes parked before, or new bytes while a
/// [`Fault::Park`] budget lasts (consumed atomically).
fn parks(inner: &Inner, raw: &str) -> bool {
    let mut fault = inner.fault.lock().expect("lock");
    let mut seen = inner.seen.lock().expect("lock");
    let park = seen.parked.contains(raw)
        || match *fault {
            Fault::Park(left) if left > 0 => {
                *fault = Fault::Park(left - 1);
                seen.parked.insert(raw.to_owned());
                true
            }
            _ => false,
        };
    seen.held += u64::from(park);
    park
}

/// Whether a call's data starts with `selector` (`eth_call`'s call, or any
/// call of an `eth_simulateV1`).
fn calls_selector(c: &Value, selector: [u8; 4]) -> bool {
    let prefix = format!("0x{}", alloy_primitives::hex::encode(selector));
    let matches = |call: &Value| {
        ["data", "input"]
            .iter()
            .any(|k| call[k].as_str().is_some_and(|d| d.starts_with(&prefix)))
    };
    match c["method"].as_str() {
        Some("eth_call") => matches(&c["params"][0]),
        Some("eth_simulateV1") => c["params"][0]["blockStateCalls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["calls"].as_array())
            .flatten()
            .any(matches),
        _ => false,
    }
}

/// The blocks an `eth_getLogs` call spans, when it names both ends.
fn log_span(c: &Value) -> Option<u64> {
    if c["method"] != "eth_getLogs" {
        return None;
    }
    let f = &c["params"][0];
    let (from, to) = (quantity(&f["fromBlock"])?, quantity(&f["toBlock"])?);
    Some(to.saturating_sub(from) + 1)
}

/// What the proxy itself answers to one call under the current fault;
/// `None` to forward it.
fn answer_here(inner: &Inner, fault: Fault, c: &Value) -> Option<Value> {
    let error = |code: i64, message: &str| json!({"jsonrpc": "2.0", "id": c["id"], "error": {"code": code, "message": message}});
    match fault {
        Fault::CallErrs(selector) if calls_selector(c, selector) => {
            Some(error(-32603, "internal error: cannot run this call"))
        }
        Fault::RangeCap(cap) if log_span(c).is_some_and(|span| span > cap) => {
            Some(error(-32005, "query returned more than 10000 results"))
        }
        Fault::RangeHint(cap) if log_span(c).is_some_and(|span| span > cap) => {
            let from = quantity(&c["params"][0]["fromBlock"]).unwrap_or(0);
            let message = format!(
                "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit on the response size, or you can request any block range with a cap of 10K logs in the response. Based on your parameters, this block range should work: [{from:#x}, {:#x}]",
                from + cap - 1
            );
            Some(error(-32602, &message))
        }
        _ => {
            let raw = c["params"][0].as_str().unwrap_or_default();
            (c["method"] == "eth_sendRawTransaction" && parks(inner, raw))
                .then(|| error(-32003, "transaction already imported"))
        }
    }
}

/// Answers the calls the fault answers here (parked sends, failing calls)
/// and forwards the rest of the request; `None` when it answers none.
async fn answer_some(inner: &Inner, fault: Fault, req: &Value) -> Option<Response> {
    let mut held = Vec::new();
    let mut rest = Vec::new();
    for c in calls(req) {
        match answer_here(inner, fault, c) {
            Some(answer) => held.push(answer),
            None => rest.push(c.clone()),
        }
    }
    if held.is_empty() {
        return None;
    }
    let mut answers = held;
    if !rest.is_empty() {
        let forwarded = async {
            let sent = inner.client.post(&inner.upstream).json(&Value::Array(rest));
            sent.send().await?.json::<Vec<Value>>().await
        };
        match forwarded.await {
            Ok(more) => answers.extend(more),
            Err(e) => return Some((StatusCode::BAD_GATEWAY, e.to_string()).into_response()),
        }
    }
    Some(match req {
        Value::Array(_) => axum::Json(Value::Array(answers)).into_response(),
        _ => axum::Json(answers.swap_remove(0)).into_response(),
    })
}

/// Counts what a request carries: methods, log spans (and whether the
/// fault refuses them), hashes of raw transactions sent.
fn note(s: &mut Seen, fault: Fault, req: &Value) {
    s.requests += 1;
    let mut carried = std::collections::HashSet::new();
    for m in calls(req).into_iter().filter_map(|c| c["method"].as_str()) {
        *s.methods.entry(m.to_owned()).or_default() += 1;
        carried.insert(m.to_owned());
    }
    for m in carried {
        *s.requests_with.entry(m).or_default() += 1;
    }
    for c in calls(req)
        .into_iter()
        .filter(|c| c["method"] == "eth_getLogs")
    {
        if let Some(span) = log_span(c) {
            let refused =
                matches!(fault, Fault::RangeCap(cap) | Fault::RangeHint(cap) if span > cap);
            s.log_spans.push((span, refused));
        }
    }
    for c in calls(req) {
        let raw = c["params"][0].as_str().unwrap_or_default();
        if c["method"] == "eth_sendRawTransaction"
            && let Ok(bytes) = alloy_primitives::hex::decode(raw)
        {
            s.sent
                .insert(format!("{:#x}", alloy_primitives::keccak256(bytes)));
        }
    }
}

/// Counts the logs the node answered `req`'s `eth_getLogs` with and,
/// while the fault says so, gives one answer's logs a block hash that is
/// no block's.
fn logs_seen(inner: &Inner, req: &Value, bytes: Bytes) -> Bytes {
    let log_ids: Vec<&Value> = calls(req)
        .into_iter()
        .filter(|c| c["method"] == "eth_getLogs")
        .map(|c| &c["id"])
        .collect();
    if log_ids.is_empty() {
        return bytes;
    }
    let Ok(mut resp) = serde_json::from_slice::<Value>(&bytes) else {
        return bytes;
    };
    let mut answers: Vec<&mut Value> = match &mut resp {
        Value::Array(a) => a.iter_mut().collect(),
        one => vec![one],
    };
    let mut tampered = false;
    for a in answers.iter_mut().filter(|a| log_ids.contains(&&a["id"])) {
        let Some(logs) = a["result"].as_array_mut() else {
            continue;
        };
        if let Ok(mut s) = inner.seen.lock() {
            s.logs_answered += logs.len() as u64;
        }
        if !logs.is_empty() && take_one(inner) {
            for log in logs.iter_mut() {
                log["blockHash"] = json!(format!("0x{}", "11".repeat(32)));
            }
            tampered = true;
        }
    }
    match tampered {
        true => serde_json::to_vec(&resp).map_or(bytes, Bytes::from),
        false => bytes,
    }
}

async fn handle(State(inner): State<Arc<Inner>>, body: Bytes) -> Response {
    let fault = *inner.fault.lock().expect("lock");
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Ok(mut s) = inner.seen.lock() {
        note(&mut s, fault, &req);
    }
    match fault {
        Fault::Http500 => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response();
        }
        Fault::Http429 => return (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response(),
        Fault::Delay(d) => tokio::time::sleep(d).await,
        Fault::NoSimulate if req["method"] == "eth_simulateV1" => {
            let err = json!({"jsonrpc": "2.0", "id": req["id"], "error": {"code": -32601, "message": "the method eth_simulateV1 does not exist/is not available"}});
            return axum::Json(err).into_response();
        }
        Fault::SimulateUnanswered if req["method"] == "eth_simulateV1" => {
            return (StatusCode::BAD_GATEWAY, "upstream timed out").into_response();
        }
        Fault::Pass
        | Fault::RangeCap(_)
        | Fault::RangeHint(_)
        | Fault::ForeignLogHashes(_)
        | Fault::Park(_)
        | Fault::NoSimulate
        | Fault::SimulateUnanswered
        | Fault::CallErrs(_) => {}
    }
    if let Some(answer) = answer_some(&inner, fault, &req).await {
        return answer;
    }
    let upstream = inner
        .client
        .post(&inner.upstream)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    match upstream {
        Ok(r) => {
            let status =
                StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let bytes = r.bytes().await.unwrap_or_default();
            let bytes = logs_seen(&inner, &req, bytes);
            (status, [("content-type", "application/json")], bytes).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

impl Proxy {
    /// Starts a proxy to `upstream` on a free loopback port.
    pub async fn start(upstream: &str) -> Proxy {
        let inner = Arc::new(Inner {
            upstream: upstream.to_owned(),
            fault: Mutex::new(Fault::Pass),
            seen: Mutex::new(Seen::default()),
            client: reqwest::Client::new(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = Router::new()
            .route("/", post(handle))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy { url, inner }
    }

    /// Sets what happens to the following requests.
    pub fn set(&self, fault: Fault) {
        *self.inner.fault.lock().expect("lock") = fault;
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.inner.seen.lock().expect("lock").requests
    }

    /// Calls of `method` received so far (each call of a batch counts).
    pub fn calls(&self, method: &str) -> u64 {
        let seen = self.inner.seen.lock().expect("lock");
        seen.methods.get(method).copied().unwrap_or(0)
    }

    /// Calls received so far by JSON-RPC method (each call of a batch
    /// counts): what a benchmark prints per method.
    pub fn method_counts(&self) -> std::collections::BTreeMap<String, u64> {
        let seen = self.inner.seen.lock().expect("lock");
        seen.methods.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// HTTP requests that carried at least one call of `method`: how many
    /// round trips a client spent on it, where `calls` counts the calls.
    pub fn requests_with(&self, method: &str) -> u64 {
        let seen = self.inner.seen.lock().expect("lock");
        seen.requests_with.get(method).copied().unwrap_or(0)
    }

    /// The hashes of every signed transaction sent through the proxy
    /// (`eth_sendRawTransaction`, alone or in a batch), first broadcasts
    /// and re-broadcasts alike.
    pub fn sent(&self) -> std::collections::HashSet<String> {
        self.inner
            .seen
            .lock()
            .map(|s| s.sent.clone())
            .unwrap_or_default()
    }

    /// Sends of parked transactions answered without forwarding them
    /// ([`Fault::Park`]), re-broadcasts included.
    pub fn held(&self) -> u64 {
        self.inner.seen.lock().expect("lock").held
    }

    /// `eth_getLogs` answers rewritten by [`Fault::ForeignLogHashes`].
    pub fn tampered(&self) -> u64 {
        self.inner.seen.lock().expect("lock").tampered
    }

    /// Logs the node returned to `eth_getLogs` through the proxy, summed
    /// over every answer: how often the same logs were read.
    pub fn logs_answered(&self) -> u64 {
        self.inner.seen.lock().expect("lock").logs_answered
    }

    /// Every `eth_getLogs` span seen, with whether it was refused.
    pub fn log_spans(&self) -> Vec<(u64, bool)> {
        self.inner.seen.lock().expect("lock").log_spans.clone()
    }
}
