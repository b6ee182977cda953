//! RabbitMQ routing through `ethgate serve`: two consumers bound by
//! different patterns — one contract's address, one event name — each
//! receive exactly the events their binding selects, in order, checked
//! against `eth_getLogs` on a real anvil. Under `CI` a missing broker fails.

use crate::common;

use common::{bound_queue, drain, exchange, rabbitmq, serve, unique, until};
use ethgate_core::{EventEnvelope, RawLog};
use ethgate_store::Store;
use ethgate_testkit::{Anvil, assert_equals_truth, free_port};
use lapin::options::ExchangeDeleteOptions;
use lapin::types::FieldTable;

const TRANSFER: &str = "event Transfer(address indexed from, address indexed to, uint256 value)";
const NOTE: &str = "event Note(uint256 indexed id, address indexed author, string text, int256 delta, bytes32 tag, bool flag)";

fn envelopes(got: Vec<(String, common::Delivery)>) -> Vec<(String, EventEnvelope)> {
    got.into_iter()
        .map(|(key, d)| {
            let env = serde_json::from_value(d.envelope).expect("an envelope");
            (key, env)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_by_address_and_by_event_receive_exactly_their_logs() {
    let _broker = common::broker_in_use().await;
    let (_conn, ch) = rabbitmq().await;
    let anvil = Anvil::start(&[]).await;
    let a = anvil.deploy_event_source().await;
    let b = anvil.deploy_event_source().await;
    for i in 0..4 {
        anvil.burst(a, 3, i * 10).await;
        anvil.note(a, "from a", i as i64).await;
        anvil.burst(b, 2, i * 10).await;
        anvil.note(b, "from b", -(i as i64)).await;
    }
    let head = anvil.head().await;

    let ex = unique("ethgate-routing-");
    exchange(&ch, &ex).await;
    let by_address = format!("{ex}-address");
    let by_event = format!("{ex}-transfers");
    bound_queue(
        &ch,
        &by_address,
        &ex,
        &format!("event.31337.{a:#x}.*"),
        FieldTable::default(),
    )
    .await;
    bound_queue(
        &ch,
        &by_event,
        &ex,
        "event.*.*.Transfer",
        FieldTable::default(),
    )
    .await;

    let dir = tempfile::tempdir().expect("tempdir");
    let _log = common::ShowLog(dir.path().to_owned());
    std::fs::write(
        dir.path().join("ethgate.toml"),
        format!(
            "[api]\nlisten = \"127.0.0.1:{}\"\n\n[[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"{}\"]\npoll_interval = \"100ms\"\n\n\
             [[sinks]]\nname = \"bus\"\nkind = \"amqp\"\nurl_env = \"AMQP_URL\"\nexchange = \"{ex}\"\n\n\
             [[streams]]\nname = \"source\"\nchain = \"anvil\"\naddresses = [\"{a:#x}\", \"{b:#x}\"]\nsinks = [\"bus\"]\n\
             events = [\"{TRANSFER}\", \"{NOTE}\"]\n",
            free_port(),
            anvil.url,
        ),
    )
    .expect("config");
    let mut ethgate = serve(dir.path(), &[("AMQP_URL", common::AMQP_URL.to_owned())]);
    let store = Store::connect(&format!(
        "sqlite://{}/data/ethgate.db",
        dir.path().display()
    ))
    .await
    .expect("store");
    let store = &store;
    let all_a = anvil.logs(a, 0, head).await;
    let all_b = anvil.logs(b, 0, head).await;
    let total = (all_a.len() + all_b.len()) as u64;
    assert_eq!(total, 4 * (3 + 1 + 2 + 1), "the chain holds what was sent");
    until(
        60,
        "every envelope to be confirmed by the broker",
        || async move {
            let c = store.sink_cursor("source", "bus").await.expect("cursor");
            (c.seq == total).then_some(())
        },
    )
    .await;
    ethgate.kill().await.expect("stop");

    let transfer_topic = all_a
        .iter()
        .find(|l| l.topics.len() == 3)
        .map(|l| l.topics[0])
        .expect("a Transfer log");
    let mut transfers: Vec<RawLog> = all_a
        .iter()
        .chain(&all_b)
        .filter(|l| l.topics.first() == Some(&transfer_topic))
        .cloned()
        .collect();
    transfers.sort_by_key(|l| (l.block(), l.index()));

    let got_a = envelopes(drain(&ch, &by_address).await);
    let live: Vec<EventEnvelope> = got_a.iter().map(|(_, e)| e.clone()).collect();
    assert_equals_truth(&live, &all_a);
    for (key, e) in &got_a {
        let name = e.event.as_deref().expect("decoded");
        assert_eq!(key, &format!("event.31337.{a:#x}.{name}"));
    }
    assert!(
        got_a
            .iter()
            .any(|(_, e)| e.event.as_deref() == Some("Note")),
        "the address binding takes every event of that contract"
    );

    let got_t = envelopes(drain(&ch, &by_event).await);
    let live: Vec<EventEnvelope> = got_t.iter().map(|(_, e)| e.clone()).collect();
    assert_equals_truth(&live, &transfers);
    for (key, e) in &got_t {
        assert_eq!(key, &format!("event.31337.{}.Transfer", e.address));
    }
    assert!(
        got_t.iter().any(|(_, e)| e.address == format!("{b:#x}")),
        "the event binding takes that event from every contract"
    );
    ch.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .expect("cleanup");
}
