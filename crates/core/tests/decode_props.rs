//! Properties of decoding logs against an ABI, over generated logs: any
//! topics and data decode or fail with an error, never a panic (a node,
//! or a contract that emits a colliding selector, controls both); what a
//! contract really emitted decodes to the values it carried.

use alloy_dyn_abi::DynSolValue as V;
use alloy_json_abi::Event;
use alloy_primitives::{Address, B256, U256};
use ethgate_core::decode::EventDecoder;
use proptest::prelude::*;

fn events() -> Vec<Event> {
    [
        "event Transfer(address indexed from, address indexed to, uint256 value)",
        "event Note(string text, int256 delta, bytes32 indexed tag, bool flag)",
        "event Batch(uint256[] ids, (address,uint64)[] marks, bytes blob)",
        "event Keyed(address indexed sender, string key)",
    ]
    .iter()
    .map(|s| Event::parse(s).expect("signature"))
    .collect()
}

proptest! {
    #[test]
    fn any_log_decodes_or_errs_never_panics(
        which in 0usize..5,
        extra in proptest::collection::vec(any::<[u8; 32]>(), 0..4),
        data in proptest::collection::vec(any::<u8>(), 0..400),
        words in proptest::collection::vec(0u64..1_000_000, 0..12),
    ) {
        let evs = events();
        let dec = EventDecoder::new(&evs);
        let mut topics: Vec<B256> = evs.get(which).map(|e| e.selector()).into_iter().collect();
        topics.extend(extra.into_iter().map(B256::from));
        let _ = dec.decode(&topics, &data);
        // Offsets and lengths that point anywhere: the classic ABI trap.
        let crafted: Vec<u8> = words.iter().flat_map(|w| U256::from(*w).to_be_bytes::<32>()).collect();
        let _ = dec.decode(&topics, &crafted);
    }

    #[test]
    fn emitted_values_decode_to_themselves(
        from in any::<[u8; 20]>(),
        to in any::<[u8; 20]>(),
        value in any::<[u8; 32]>(),
        text in any::<String>(),
        sender in any::<[u8; 20]>(),
    ) {
        let evs = events();
        let dec = EventDecoder::new(&evs);
        let topic = |a: [u8; 20]| B256::left_padding_from(&a);
        let value = U256::from_be_bytes(value);
        let data = V::Uint(value, 256).abi_encode();
        let d = dec.decode(&[evs[0].selector(), topic(from), topic(to)], &data).expect("transfer");
        prop_assert_eq!(&d.args["from"], &serde_json::json!(format!("{:#x}", Address::from(from))));
        prop_assert_eq!(&d.args["to"], &serde_json::json!(format!("{:#x}", Address::from(to))));
        let shown = match &d.args["value"] {
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::String(s) => s.clone(),
            other => panic!("value shown as {other}"),
        };
        prop_assert_eq!(shown, value.to_string());
        let data = V::Tuple(vec![V::String(text.clone())]).abi_encode_params();
        let d = dec.decode(&[evs[3].selector(), topic(sender)], &data).expect("keyed");
        prop_assert_eq!(&d.args["key"], &serde_json::json!(text));
    }
}
