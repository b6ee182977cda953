//! Bounds on the ABI signatures and types ethgate parses from requests,
//! config files and its own store. The ABI parser and the types it builds
//! are recursive: a type nested tens of thousands deep (`uint256[][]…[]`)
//! overflows a thread's stack, which aborts the whole process — syncers,
//! delivery and senders with it. So every signature is measured here,
//! without recursion, before anything parses it.

/// Longest signature accepted, in bytes.
pub const MAX_SIGNATURE_LEN: usize = 4096;
/// Deepest nesting of types accepted: each tuple and each array
/// dimension is one level (`uint256[][]` is 3, `(uint256[],bool)[]` 4).
pub const MAX_TYPE_DEPTH: usize = 32;

/// Why a signature is refused before it is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Longer than [`MAX_SIGNATURE_LEN`].
    #[error("is {len} bytes long; at most {MAX_SIGNATURE_LEN} are accepted")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// Types nested deeper than [`MAX_TYPE_DEPTH`].
    #[error("nests types {depth} deep; at most {MAX_TYPE_DEPTH} levels are accepted")]
    TooDeep {
        /// How deep they nest.
        depth: usize,
    },
}

/// Checks that `text`, a signature (`f(uint256[],(bool,bytes))`) or a
/// type, is short enough and nests its types no deeper than the bounds.
/// It does not check that it parses: the parser does that, safely, once
/// this has passed.
pub fn check(text: &str) -> Result<(), SignatureError> {
    if text.len() > MAX_SIGNATURE_LEN {
        return Err(SignatureError::TooLong { len: text.len() });
    }
    match depth(text) {
        depth if depth > MAX_TYPE_DEPTH => Err(SignatureError::TooDeep { depth }),
        _ => Ok(()),
    }
}

/// How deep the types of `text` nest, read left to right with a stack of
/// open tuples (each holding the deepest member closed so far).
fn depth(text: &str) -> usize {
    let mut open: Vec<usize> = Vec::new();
    // The depth of the type being read in the innermost open tuple.
    let mut current = 0usize;
    let mut deepest = 0usize;
    for c in text.chars() {
        match c {
            '(' => {
                open.push(0);
                current = 0;
            }
            ')' => current = open.pop().unwrap_or(0).max(current) + 1,
            '[' => current += 1,
            ',' => {
                if let Some(top) = open.last_mut() {
                    *top = (*top).max(current);
                }
                current = 0;
            }
            c if (c.is_alphanumeric() || c == '_') && current == 0 => current = 1,
            _ => {}
        }
        deepest = deepest.max(current).max(open.len());
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn depth_counts_tuples_and_array_dimensions() {
        assert_eq!(depth("uint256"), 1);
        assert_eq!(depth("uint256[]"), 2);
        assert_eq!(depth("uint256[3][]"), 3);
        assert_eq!(depth("f(uint256 amount, bool)"), 2);
        assert_eq!(depth("f((uint256[],bool)[] xs)"), 5);
        assert_eq!(
            depth("Transfer(address indexed from, address indexed to, uint256 value)"),
            2
        );
    }

    #[test]
    fn a_deep_or_long_signature_is_refused_before_parsing() {
        let deep = format!("f(uint256{})", "[]".repeat(40_000));
        assert_eq!(
            check(&deep),
            Err(SignatureError::TooLong { len: deep.len() })
        );
        let deep = format!("f(uint256{})", "[]".repeat(40));
        assert_eq!(check(&deep), Err(SignatureError::TooDeep { depth: 42 }));
        let tuples = format!("f{}uint256{}", "(".repeat(100), ")".repeat(100));
        assert!(matches!(
            check(&tuples),
            Err(SignatureError::TooDeep { .. })
        ));
        assert_eq!(check("charge(uint256)"), Ok(()));
    }

    proptest! {
        /// Whatever passes the check parses without trouble, and a type
        /// the parser builds from it is no deeper than the bound.
        #[test]
        fn anything_that_passes_parses_safely(
            parts in prop::collection::vec(prop_oneof![
                Just("uint256"), Just("bool"), Just("bytes"), Just("[]"), Just("[2]"),
                Just("("), Just(")"), Just(","), Just(" x"),
            ], 0..120)
        ) {
            let text = format!("f({})", parts.concat());
            if check(&text).is_ok() {
                let _ = alloy_json_abi::Function::parse(&text);
            }
        }
    }
}
