//! Properties of the RPC error classifier over generated provider
//! answers: no code, message or `data` makes it panic; case never changes
//! a class; a rate-limit phrase wins whatever surrounds it; revert data is
//! found in every shape providers use, and nothing that is not hex is
//! taken for it.

use ethgate_chain::RpcErrorClass;
use ethgate_chain::rpc_error::{classify, classify_send, revert_data};
use proptest::prelude::*;
use serde_json::{Value, json};

fn data() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        any::<String>().prop_map(|s| Some(Value::String(s))),
        "0x[0-9a-f]{0,80}".prop_map(|s| Some(json!(s))),
        (any::<u64>(), any::<u64>())
            .prop_map(|(a, b)| Some(json!({"from": format!("{a:#x}"), "to": format!("{b:#x}")}))),
        any::<i64>().prop_map(|n| Some(json!({"data": n, "code": n}))),
    ]
}

proptest! {
    #[test]
    fn no_answer_panics_the_classifier(code in any::<i64>(), message in any::<String>(), data in data()) {
        let _ = classify(code, &message, data.as_ref());
        let _ = revert_data(data.as_ref());
        let _ = classify_send(&message);
    }

    #[test]
    fn brackets_and_numbers_in_messages_never_panic(
        a in any::<u128>(), b in any::<u128>(), words in "[a-z ]{0,40}",
    ) {
        for m in [
            format!("query returned more than 10000 results. Try with this block range [{a:#x}, {b:#x}]. {words}"),
            format!("log response size exceeded. you can make eth_getLogs requests with up to a {a} block range {words}"),
            format!("[{a}, {b}] {words} ["),
        ] {
            let _ = classify(-32005, &m, None);
        }
    }

    #[test]
    fn case_never_changes_a_class(code in any::<i64>(), message in "[ -~]{0,80}") {
        prop_assert_eq!(
            classify(code, &message, None),
            classify(code, &message.to_ascii_uppercase(), None)
        );
        prop_assert_eq!(classify_send(&message), classify_send(&message.to_ascii_uppercase()));
    }

    #[test]
    fn a_rate_limit_phrase_wins(
        code in any::<i64>(), before in "[ -~]{0,40}", after in "[ -~]{0,40}",
        phrase in prop::sample::select(vec!["rate limit", "Too Many Requests", "compute units"]),
    ) {
        let m = format!("{before}{phrase}{after}");
        prop_assert_eq!(classify(code, &m, None), RpcErrorClass::RateLimited);
    }

    #[test]
    fn revert_data_is_found_in_every_shape(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
        let hex = format!("0x{}", hex::encode(&bytes));
        for shape in [json!(hex), json!({"data": hex}), json!(format!("Reverted {hex}"))] {
            prop_assert_eq!(revert_data(Some(&shape)).map(|b| b.to_vec()), Some(bytes.clone()));
        }
    }

    #[test]
    fn text_that_is_not_hex_is_not_revert_data(text in "[g-z ]{1,40}") {
        prop_assert_eq!(revert_data(Some(&json!(text))), None);
    }
}
