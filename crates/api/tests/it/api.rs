//! The API router driven with `oneshot` against a real SQLite store:
//! auth and scopes, errors that name the field and change nothing, paging,
//! long-poll, and the OpenAPI document covering every route.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{add_token, answer};

use alloy_json_abi::Event;
use alloy_primitives::{Address, B256, Bytes, U64};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use ethgate_api::{ApiState, described_routes, router};
use ethgate_core::{BlockRef, Confirmations, RawLog, StreamSpec};
use ethgate_events::SyncState;
use ethgate_store::{NewEvent, RangeCommit, Store};
use serde_json::Value;
use tower::ServiceExt;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    state: ApiState,
    reader: String,
    admin: String,
    admin_only_tx: String,
    stop: tokio::sync::watch::Sender<bool>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::connect(&format!("sqlite://{}/api.db", dir.path().display()))
        .await
        .expect("store");
    store.ensure_stream("demo", 31337).await.expect("stream");
    let spec = StreamSpec {
        name: "demo".into(),
        chain: "anvil".into(),
        chain_id: 31337,
        addresses: vec![Address::repeat_byte(1)],
        events: vec![
            Event::parse("event Transfer(address indexed from, address indexed to, uint256 value)")
                .expect("event"),
        ],
        from_block: 0,
        confirmations: Confirmations::Depth(0),
        factory: None,
    };
    let reader = add_token(&store, "events:read", "reader").await;
    let admin = add_token(&store, "admin", "admin").await;
    let tx = add_token(&store, "tx:write", "tx").await;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let state = ApiState {
        store: store.clone(),
        streams: Arc::new(vec![spec]),
        routes: Arc::new(vec![("demo".to_owned(), "hook".to_owned())]),
        sinks: Arc::new(Default::default()),
        chains: Arc::new(vec![]),
        sync: SyncState::default(),
        metrics: None,
        max_wait: Duration::from_secs(10),
        tx: None,
        pools: None,
        tokens: Default::default(),
        stopping: stop_rx,
        limits: Default::default(),
        policies: Arc::default(),
        guarded: Arc::default(),
        exposure: Default::default(),
        abis: Default::default(),
        stats: Default::default(),
        lease_ttl: Duration::from_secs(5),
        audit: Default::default(),
    };
    Fixture {
        _dir: dir,
        store,
        state,
        reader,
        admin,
        admin_only_tx: tx,
        stop,
    }
}

async fn record(store: &Store, block: u64, logs: u64) {
    let b = BlockRef {
        number: block,
        hash: B256::repeat_byte(block as u8),
        parent_hash: B256::ZERO,
        timestamp: 1,
    };
    let raw = (0..logs)
        .map(|i| RawLog {
            address: Address::repeat_byte(1),
            topics: vec![B256::repeat_byte(2)],
            data: Bytes::new(),
            block_number: U64::from(block),
            block_hash: b.hash,
            block_timestamp: Some(U64::from(1)),
            transaction_hash: B256::repeat_byte(3),
            transaction_index: U64::ZERO,
            log_index: U64::from(i),
            removed: false,
        })
        .collect::<Vec<_>>();
    let events = raw
        .iter()
        .map(|log| NewEvent {
            log,
            timestamp: 1,
            decoded: None,
        })
        .collect();
    let cursor = store
        .stream("demo")
        .await
        .expect("read")
        .and_then(|r| r.cursor);
    store
        .commit_range(&RangeCommit {
            stream: "demo".into(),
            expected_cursor: cursor,
            events,
            blocks: vec![b],
            cursor: b,
            keep_window: 100,
            children: Vec::new(),
        })
        .await
        .expect("commit");
}

async fn post(state: &ApiState, uri: &str, token: &str, body: &str) -> (StatusCode, Value) {
    let req = Request::post(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .expect("request");
    answer(state, req).await
}

async fn get(state: &ApiState, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::get(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    answer(state, req.body(Body::empty()).expect("request")).await
}

#[tokio::test]
async fn missing_invalid_or_underscoped_tokens_are_refused() {
    let f = fixture().await;
    let (s, body) = get(&f.state, "/v1/streams", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["field"], "Authorization");
    let (s, _) = get(&f.state, "/v1/streams", Some("egt_not_a_token")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, body) = get(&f.state, "/v1/streams/demo/events", Some(&f.admin_only_tx)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("events:read"))
    );
    let (s, _) = get(&f.state, "/v1/streams", Some(&f.reader)).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn bad_parameters_name_the_field_and_change_nothing() {
    let f = fixture().await;
    record(&f.store, 1, 3).await;
    let before = f.store.stream("demo").await.expect("read");
    let cases = [
        ("/v1/streams/demo/events?after=-1", "after"),
        ("/v1/streams/demo/events?after=abc", "after"),
        ("/v1/streams/demo/events?limit=0", "limit"),
        ("/v1/streams/demo/events?limit=1001", "limit"),
        ("/v1/streams/demo/events?wait=11", "wait"),
        ("/v1/streams/demo/events?colour=red", "colour"),
        ("/v1/streams/demo/events?after=1&after=2", "after"),
    ];
    for (uri, field) in cases {
        let (s, body) = get(&f.state, uri, Some(&f.reader)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(body["error"]["field"], field, "{uri}: {body}");
    }
    let (s, body) = get(&f.state, "/v1/streams/nope/events", Some(&f.reader)).await;
    assert_eq!(
        (s, body["error"]["field"].clone()),
        (StatusCode::NOT_FOUND, Value::from("name"))
    );
    let (s, _) = get(&f.state, "/v1/streams/nope", Some(&f.reader)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        f.store.stream("demo").await.expect("read"),
        before,
        "nothing changed"
    );
}

#[tokio::test]
async fn pages_follow_seq_in_order() {
    let f = fixture().await;
    record(&f.store, 1, 5).await;
    record(&f.store, 2, 4).await;
    let (s, page) = get(&f.state, "/v1/streams/demo/events?limit=4", Some(&f.reader)).await;
    assert_eq!(s, StatusCode::OK);
    let seqs: Vec<u64> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    assert_eq!(page["next"], 4);
    let (_, page) = get(
        &f.state,
        "/v1/streams/demo/events?after=4&limit=100",
        Some(&f.reader),
    )
    .await;
    let events = page["events"].as_array().expect("events");
    assert_eq!(events.len(), 5);
    assert_eq!(events[0]["block_number"], 1);
    assert_eq!(events[4]["block_number"], 2);
    assert_eq!(page["next"], 9);
    let (_, status) = get(&f.state, "/v1/streams/demo", Some(&f.reader)).await;
    assert_eq!(
        (
            status["cursor"].as_u64(),
            status["events_recorded"].as_u64()
        ),
        (Some(2), Some(9))
    );
}

#[tokio::test]
async fn long_poll_returns_as_soon_as_an_event_is_recorded() {
    let f = fixture().await;
    let state = f.state.clone();
    let token = f.reader.clone();
    let poll =
        tokio::spawn(
            async move { get(&state, "/v1/streams/demo/events?wait=10", Some(&token)).await },
        );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !poll.is_finished(),
        "the request is held while nothing is new"
    );
    record(&f.store, 1, 1).await;
    let (s, page) = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .expect("returned before the wait ended")
        .expect("task");
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["events"][0]["seq"], 1);
    // With nothing new, wait=1 returns an empty page after the wait.
    let (s, page) = get(
        &f.state,
        "/v1/streams/demo/events?after=1&wait=1",
        Some(&f.reader),
    )
    .await;
    assert_eq!(
        (s, page["events"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );
    assert_eq!(page["next"], 1);
}

#[tokio::test]
async fn held_long_polls_answer_at_once_when_the_server_stops() {
    let f = fixture().await;
    let state = f.state.clone();
    let token = f.reader.clone();
    let poll =
        tokio::spawn(
            async move { get(&state, "/v1/streams/demo/events?wait=10", Some(&token)).await },
        );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!poll.is_finished());
    f.stop.send(true).expect("receivers alive");
    let (s, page) = tokio::time::timeout(Duration::from_secs(3), poll)
        .await
        .expect("answered promptly")
        .expect("task");
    assert_eq!(
        (s, page["events"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );
}

/// Sends `method` to `uri` with a bearer token and an empty JSON body; the
/// status and the JSON answer.
async fn call(state: &ApiState, method: &str, uri: &str, token: &str) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method.to_uppercase().as_str())
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .expect("request");
    answer(state, req).await
}

#[tokio::test]
async fn every_described_route_exists_and_unknown_ones_are_json_404s() {
    let f = fixture().await;
    let (_, doc) = get(&f.state, "/openapi.json", None).await;
    let routes = described_routes();
    assert!(routes.len() >= 24, "{} routes described", routes.len());
    for (method, path) in &routes {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is routed but not described"
        );
        let uri = path
            .replace("{name}", "demo")
            .replace("{sink}", "hook")
            .replace("{id}", "1");
        // Each route answers its own method (whatever the handler then
        // says of the empty body or the made-up id) ...
        let (s, body) = call(&f.state, method, &uri, &f.admin).await;
        assert!(
            s != StatusCode::METHOD_NOT_ALLOWED && body["error"]["field"] != "path",
            "{method} {path} is not routed (status {s}, {body})"
        );
        // ... and not the other one.
        let other = if method == "get" { "post" } else { "get" };
        if !routes.contains(&(other.to_owned(), path.clone())) {
            let (s, _) = call(&f.state, other, &uri, &f.admin).await;
            assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{other} {path}");
        }
    }
    let described: usize = doc["paths"].as_object().map_or(0, |p| {
        p.values()
            .filter_map(Value::as_object)
            .map(|m| m.len())
            .sum()
    });
    assert_eq!(
        described,
        routes.len(),
        "the document describes only routes"
    );
    let (s, body) = get(&f.state, "/v2/nothing", None).await;
    assert_eq!(
        (s, body["error"]["code"].clone()),
        (StatusCode::NOT_FOUND, Value::from("not_found"))
    );
    let (s, doc) = get(&f.state, "/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let (s, _) = get(&f.state, "/healthz", None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn sinks_show_lag_and_rewind_by_seq_or_block_with_admin_scope() {
    let f = fixture().await;
    record(&f.store, 1, 3).await;
    record(&f.store, 2, 2).await;
    let (s, body) = get(&f.state, "/v1/sinks", Some(&f.reader)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (
            body["sinks"][0]["sink"].clone(),
            body["sinks"][0]["lag"].clone()
        ),
        (Value::from("hook"), Value::from(5))
    );
    assert_eq!(body["sinks"][0]["dead_letters"], 0, "nothing parked");
    f.store.sink_cursor("demo", "hook").await.expect("register");
    f.store
        .advance_sink("demo", "hook", 0, 5, 5)
        .await
        .expect("advance");
    let uri = "/v1/streams/demo/sinks/hook/rewind";
    let (s, _) = post(&f.state, uri, &f.reader, r#"{"seq": 1}"#).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "rewind needs admin");
    let (s, body) = post(&f.state, uri, &f.admin, r#"{"seq": 1}"#).await;
    assert_eq!(
        (s, body["cursor"].clone()),
        (StatusCode::OK, Value::from(1))
    );
    let (s, body) = post(&f.state, uri, &f.admin, r#"{"block": 2}"#).await;
    assert_eq!(
        (s, body["cursor"].clone()),
        (StatusCode::OK, Value::from(3)),
        "replay from block 2 = after seq 3"
    );
    let (_, sinks) = get(&f.state, "/v1/sinks", Some(&f.reader)).await;
    assert_eq!(
        (
            sinks["sinks"][0]["cursor"].clone(),
            sinks["sinks"][0]["lag"].clone()
        ),
        (Value::from(3), Value::from(2))
    );
    for (body, field) in [
        ("not json", "body"),
        ("[1]", "body"),
        (r#"{"seq": -1}"#, "seq"),
        (r#"{"seq": "1"}"#, "seq"),
        (r#"{"seq": 1, "block": 1}"#, "seq"),
        (r#"{}"#, "seq"),
        (r#"{"seq": 9223372036854775808}"#, "seq"),
        (r#"{"colour": 1}"#, "colour"),
    ] {
        let (s, e) = post(&f.state, uri, &f.admin, body).await;
        assert_eq!(
            (s, e["error"]["field"].clone()),
            (StatusCode::BAD_REQUEST, Value::from(field)),
            "{body}"
        );
    }
    // Past the stream's end: well-formed, but not possible now.
    let (s, e) = post(&f.state, uri, &f.admin, r#"{"seq": 99}"#).await;
    assert_eq!(
        (s, &e["error"]["field"]),
        (StatusCode::CONFLICT, &Value::from("seq"))
    );
    let (s, e) = post(
        &f.state,
        "/v1/streams/demo/sinks/nope/rewind",
        &f.admin,
        r#"{"seq": 0}"#,
    )
    .await;
    assert_eq!(
        (s, e["error"]["field"].clone()),
        (StatusCode::NOT_FOUND, Value::from("sink"))
    );
    assert_eq!(
        f.store
            .sink_cursor("demo", "hook")
            .await
            .expect("cursor")
            .seq,
        3,
        "refused requests changed nothing"
    );
}

async fn raw(state: &ApiState, req: Request<Body>) -> axum::response::Response {
    router(state.clone()).oneshot(req).await.expect("answer")
}

#[tokio::test]
async fn metrics_can_need_a_token_or_live_elsewhere_and_cors_is_off_unless_configured() {
    use ethgate_api::health::{Exposure, MetricsAccess};
    let mut f = fixture().await;
    f.state.metrics = Some(Arc::new(|| "ethgate_up 1\n".to_owned()));
    let metrics = |token: Option<&str>| {
        let mut b = Request::get("/metrics");
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.body(Body::empty()).expect("request")
    };
    assert_eq!(raw(&f.state, metrics(None)).await.status(), StatusCode::OK);
    f.state.exposure.metrics = MetricsAccess::Token;
    assert_eq!(
        raw(&f.state, metrics(None)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        raw(&f.state, metrics(Some(&f.reader))).await.status(),
        StatusCode::OK
    );
    f.state.exposure.metrics = MetricsAccess::Elsewhere;
    assert_eq!(
        raw(&f.state, metrics(Some(&f.admin))).await.status(),
        StatusCode::NOT_FOUND
    );
    let own = ethgate_api::health::metrics_router(f.state.metrics.clone());
    let resp = own.oneshot(metrics(None)).await.expect("answer");
    assert_eq!(resp.status(), StatusCode::OK);

    let preflight = |origin: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri("/v1/streams")
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .body(Body::empty())
            .expect("request")
    };
    let resp = raw(&f.state, preflight("https://dash.example.com")).await;
    assert!(
        resp.headers().get("access-control-allow-origin").is_none(),
        "CORS is off by default"
    );
    f.state.exposure = Exposure {
        metrics: MetricsAccess::Open,
        cors_origins: vec!["https://dash.example.com".parse().expect("origin")],
    };
    let resp = raw(&f.state, preflight("https://dash.example.com")).await;
    assert_eq!(
        resp.headers().get("access-control-allow-origin"),
        Some(&"https://dash.example.com".parse().expect("value"))
    );
    let resp = raw(&f.state, preflight("https://evil.example.com")).await;
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}
