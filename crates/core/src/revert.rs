//! Why a call reverted, in words, from the revert data itself: each node
//! renders reasons its own way (or not at all — geth leaves custom errors
//! as bare hex), so a `rejected` request's reason is decoded here, the
//! same on every node. Covers `Error(string)` (`require`/`revert` with a
//! message), `Panic(uint256)` (failed `assert`, overflow, division by
//! zero, …) and custom errors whose definitions the caller knows.

use alloy_dyn_abi::{DynSolType, DynSolValue, Specifier};
use alloy_json_abi::Error;

/// `bytes4(keccak256("Error(string)"))`.
const ERROR_STRING: [u8; 4] = [0x08, 0xc3, 0x79, 0xa0];
/// `bytes4(keccak256("Panic(uint256)"))`.
const PANIC: [u8; 4] = [0x4e, 0x48, 0x7b, 0x71];
/// Revert data shown in full up to this many bytes.
const SHOWN: usize = 256;

/// What Solidity's panic codes mean (from the language documentation).
fn panic_meaning(code: u64) -> &'static str {
    match code {
        0x00 => "generic compiler panic",
        0x01 => "assertion failed",
        0x11 => "arithmetic overflow or underflow",
        0x12 => "division or modulo by zero",
        0x21 => "conversion to an invalid enum value",
        0x22 => "incorrectly encoded storage byte array",
        0x31 => "pop() on an empty array",
        0x32 => "array index out of bounds",
        0x41 => "out of memory",
        0x51 => "call to a zero-initialized internal function",
        _ => "unknown panic code",
    }
}

fn hex(data: &[u8]) -> String {
    let shown = &data[..data.len().min(SHOWN)];
    let more = if data.len() > SHOWN { "…" } else { "" };
    format!("0x{}{more}", alloy_primitives::hex::encode(shown))
}

/// The reason `data` (a reverted call's return data) gives, in words;
/// `errors` are the custom errors the caller knows (from an ABI, or
/// signatures given with the request). Never fails: data it cannot decode
/// is shown as hex, so the reason is never lost.
pub fn describe(data: &[u8], errors: &[Error]) -> String {
    let Some((selector, rest)) = data.split_first_chunk::<4>() else {
        return match data {
            [] => "execution reverted without a reason".to_owned(),
            _ => format!("execution reverted with malformed data {}", hex(data)),
        };
    };
    if *selector == ERROR_STRING
        && let Ok(DynSolValue::String(reason)) = DynSolType::String.abi_decode_params(rest)
    {
        return format!("execution reverted: {reason}");
    }
    if *selector == PANIC
        && let Ok(DynSolValue::Uint(code, _)) = DynSolType::Uint(256).abi_decode_params(rest)
    {
        let small = u64::try_from(code).unwrap_or(u64::MAX);
        return format!(
            "execution reverted: panic 0x{code:02x} ({})",
            panic_meaning(small)
        );
    }
    for e in errors.iter().filter(|e| e.selector() == *selector) {
        if let Some(text) = custom(e, rest) {
            return format!("execution reverted: {text}");
        }
    }
    format!(
        "execution reverted with custom error {} (data {})",
        hex(selector),
        hex(data)
    )
}

/// `Name(name: value, …)` when `rest` decodes as `e`'s parameters.
fn custom(e: &Error, rest: &[u8]) -> Option<String> {
    let types = e
        .inputs
        .iter()
        .map(|p| p.resolve())
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let DynSolValue::Tuple(values) = DynSolType::Tuple(types).abi_decode_params(rest).ok()? else {
        return None;
    };
    let args: Vec<String> = e
        .inputs
        .iter()
        .zip(&values)
        .map(|(p, v)| {
            let v = crate::decode::to_json(v, Some(p)).to_string();
            match p.name.as_str() {
                "" => v,
                name => format!("{name}: {v}"),
            }
        })
        .collect();
    Some(format!("{}({})", e.name, args.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_dyn_abi::DynSolValue as V;
    use alloy_primitives::{Address, U256};

    fn with(selector: [u8; 4], args: &[V]) -> Vec<u8> {
        let mut data = selector.to_vec();
        data.extend(V::Tuple(args.to_vec()).abi_encode_params());
        data
    }

    fn error(signature: &str) -> Error {
        Error::parse(signature).expect("error signature")
    }

    #[test]
    fn error_string_gives_its_message() {
        let data = with(ERROR_STRING, &[V::String("not due yet".into())]);
        assert_eq!(describe(&data, &[]), "execution reverted: not due yet");
    }

    #[test]
    fn panic_gives_its_code_and_meaning() {
        let data = with(PANIC, &[V::Uint(U256::from(0x12), 256)]);
        assert_eq!(
            describe(&data, &[]),
            "execution reverted: panic 0x12 (division or modulo by zero)"
        );
        let data = with(PANIC, &[V::Uint(U256::from(0x99), 256)]);
        assert_eq!(
            describe(&data, &[]),
            "execution reverted: panic 0x99 (unknown panic code)"
        );
    }

    #[test]
    fn a_known_custom_error_is_named_with_its_arguments() {
        let known = [
            error("NoBilling(uint256 billingId)"),
            error("TooEarly(uint256 billingId, uint64 nextChargeAt)"),
        ];
        let e = &known[1];
        let data = with(
            e.selector().0,
            &[
                V::Uint(U256::from(7), 256),
                V::Uint(U256::from(1_700_000_000), 64),
            ],
        );
        assert_eq!(
            describe(&data, &known),
            "execution reverted: TooEarly(billingId: 7, nextChargeAt: 1700000000)"
        );
        // Without parameter names, values only; strings and addresses quoted.
        let e = error("Refused(address,string)");
        let who = Address::repeat_byte(0xab);
        let data = with(
            e.selector().0,
            &[V::Address(who), V::String("closed".into())],
        );
        assert_eq!(
            describe(&data, &[e]),
            format!("execution reverted: Refused(\"{who:#x}\", \"closed\")")
        );
    }

    #[test]
    fn an_unknown_or_undecodable_error_keeps_its_data() {
        let e = error("TooEarly(uint256 billingId, uint64 nextChargeAt)");
        let data = with(e.selector().0, &[V::Uint(U256::from(7), 256)]);
        // Known selector, but the data is one word short: shown as hex.
        let said = describe(&data[..36], std::slice::from_ref(&e));
        assert!(
            said.starts_with("execution reverted with custom error 0x"),
            "{said}"
        );
        assert!(
            said.contains(&alloy_primitives::hex::encode(&data[..36])),
            "{said}"
        );
        assert_eq!(
            describe(&[0xde, 0xad, 0xbe, 0xef], &[]),
            "execution reverted with custom error 0xdeadbeef (data 0xdeadbeef)"
        );
        // A mangled Error(string) is not mistaken for a message.
        assert!(describe(&ERROR_STRING, &[]).contains("custom error 0x08c379a0"));
    }

    #[test]
    fn empty_or_short_data_is_said_plainly() {
        assert_eq!(describe(&[], &[]), "execution reverted without a reason");
        assert_eq!(
            describe(&[1, 2], &[]),
            "execution reverted with malformed data 0x0102"
        );
    }

    proptest::proptest! {
        /// Revert data comes from the network: any bytes, after any of the
        /// selectors decoded here, give a reason and never a panic.
        #[test]
        fn any_data_gives_a_reason(
            prefix in 0usize..4,
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        ) {
            let known = [error("TooEarly(uint256 billingId, uint64 nextChargeAt)"),
                error("Odd(string[],(bytes,int8))")];
            let selectors = [ERROR_STRING, PANIC, known[0].selector().0, known[1].selector().0];
            let mut data = selectors[prefix].to_vec();
            data.extend(tail);
            let said = describe(&data, &known);
            proptest::prop_assert!(said.starts_with("execution reverted"));
        }
    }

    proptest::proptest! {
        /// An error as deep as intake accepts decodes any revert data
        /// (its own selector first) without trouble: the bound is safe
        /// for decoding, not only for parsing.
        #[test]
        fn the_deepest_accepted_error_decodes_any_data(
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
            words in proptest::collection::vec(0u8..4, 0..12),
        ) {
            let depth = crate::signature::MAX_TYPE_DEPTH - 1;
            let signature = format!("Deep(uint256{})", "[]".repeat(depth - 1));
            proptest::prop_assert!(crate::signature::check(&signature).is_ok());
            let known = [error(&signature)];
            let mut data = known[0].selector().0.to_vec();
            // Offsets and lengths of 0-3 words, so the decoder goes deep.
            for w in words {
                let mut word = [0u8; 32];
                word[31] = w * 32;
                data.extend(word);
            }
            data.extend(tail);
            let said = describe(&data, &known);
            proptest::prop_assert!(said.starts_with("execution reverted"));
        }
    }

    #[test]
    fn long_data_is_cut_short() {
        let data = vec![0x11; 1_000];
        let said = describe(&data, &[]);
        assert!(said.ends_with("…)"), "{said}");
        assert!(said.len() < 700, "{}", said.len());
    }
}
