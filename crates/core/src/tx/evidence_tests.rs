//! The rule of [`super::evidence`] as a specification: named cases, then
//! a property over chains read through nodes that lag, disagree and leave
//! receipts out, where the request's own attempt is mined (it must never
//! be sent again at a new nonce) or another transaction took its nonce
//! (it must be, once the evidence holds).

use super::*;
use proptest::prelude::*;

const POLICY: Policy = Policy {
    resubmit_after: 10,
    bump_after: 60,
    confirmations: 1,
    stall_after: 3,
    valid_until: None,
    finality_depth: 20,
};

/// Blocks a node may hold before it answers the receipts of their
/// transactions (an index written after the block is imported).
const RECEIPT_LAG: u64 = 3;

const OURS: [B256; 2] = [B256::repeat_byte(0xa1), B256::repeat_byte(0xa2)];
const THEIRS: B256 = B256::repeat_byte(0xbb);

fn pending(nonce: u64) -> TxState {
    let (s, _) = step(&TxState::Queued, &TxEvent::Signed { nonce }, &POLICY, 0);
    s
}

fn read(state: &TxState, reading: &Reading, head: u64) -> (TxState, Vec<Effect>) {
    match event_of(reading, &OURS) {
        Some(e) => step(state, &e, &POLICY, head),
        None => step(state, &TxEvent::Tick, &POLICY, head),
    }
}

#[test]
fn a_node_behind_or_a_nonce_still_unused_says_nothing() {
    assert_eq!(event_of(&Reading::Behind, &OURS), None);
    assert_eq!(event_of(&Reading::Unused { head: 9 }, &OURS), None);
}

#[test]
fn a_nonce_used_by_one_of_our_attempts_is_never_taken_elsewhere() {
    let r = Reading::Used {
        head: 50,
        by: Some(OURS[1]),
    };
    assert_eq!(event_of(&r, &OURS), None);
    let (s, e) = read(&pending(3), &r, 50);
    assert_eq!(e, vec![Effect::Rebroadcast], "only its timers run");
    assert!(matches!(s, TxState::Pending(p) if p.nonce == 3 && p.unaccounted_since.is_none()));
}

#[test]
fn a_foreign_transaction_found_at_the_nonce_requeues_at_once() {
    let r = Reading::Used {
        head: 50,
        by: Some(THEIRS),
    };
    let (s, e) = read(&pending(3), &r, 50);
    assert_eq!((s, e), (TxState::Queued, vec![Effect::Emit]));
}

#[test]
fn an_unaccounted_nonce_requeues_only_after_the_finality_depth() {
    let unseen = |head| Reading::Used { head, by: None };
    let (s, e) = read(&pending(3), &unseen(100), 100);
    assert!(e.is_empty(), "no status change, no send");
    assert!(matches!(&s, TxState::Pending(p) if p.unaccounted_since == Some(100)));
    let (s, _) = read(&s, &unseen(119), 119);
    assert_eq!(s.status(), "pending", "19 blocks are not 20");
    // A lower head (a node behind that still holds its pinned block) does
    // not move the start.
    let (s, _) = read(&s, &unseen(90), 120);
    assert!(matches!(&s, TxState::Pending(p) if p.unaccounted_since == Some(100)));
    let (s, e) = read(&s, &unseen(120), 120);
    assert_eq!((s, e), (TxState::Queued, vec![Effect::Emit]));
}

/// Who used the request's nonce, in the world the views are taken from.
#[derive(Debug, Clone, Copy)]
enum Truth {
    /// Our attempt `k`, at this height.
    Ours(usize, u64),
    /// Another transaction, at this height.
    Theirs(u64),
}

/// One reading: the pinned head, and the answering node — its head, whether
/// it is on another fork, whether its receipts lag its blocks (for at most
/// [`RECEIPT_LAG`] blocks), and whether the search for the nonce's
/// transaction succeeds.
#[derive(Debug, Clone, Copy)]
struct View {
    pinned: u64,
    node: u64,
    forked: bool,
    receipt_lags: bool,
    found: bool,
}

fn view() -> impl Strategy<Value = View> {
    (
        0u64..300,
        0u64..6,
        prop::bool::weighted(0.1),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(pinned, ahead, forked, receipt_lags, found)| View {
            pinned,
            // The answering node may be behind the pinned block or not.
            node: (pinned + ahead).saturating_sub(3),
            forked,
            receipt_lags,
            found,
        })
}

/// What the sender reads in `view` of the world `truth`.
fn reading(truth: Truth, v: View) -> Reading {
    if v.node < v.pinned || v.forked {
        return Reading::Behind;
    }
    let (at, by) = match truth {
        Truth::Ours(k, at) => (at, OURS[k]),
        Truth::Theirs(at) => (at, THEIRS),
    };
    if v.pinned < at {
        return Reading::Unused { head: v.pinned };
    }
    match truth {
        Truth::Ours(..) if !v.receipt_lags || v.node >= at + RECEIPT_LAG => {
            Reading::Found(Inclusion {
                nonce: 3,
                block_number: at,
                block_hash: B256::with_last_byte(1),
                hash: by,
                success: true,
                noop: None,
            })
        }
        _ => Reading::Used {
            head: v.pinned,
            by: v.found.then_some(by),
        },
    }
}

fn truth() -> impl Strategy<Value = Truth> {
    prop_oneof![
        (0usize..2, 0u64..300).prop_map(|(k, at)| Truth::Ours(k, at)),
        (0u64..300).prop_map(Truth::Theirs),
    ]
}

proptest! {
    #[test]
    fn inconsistent_views_never_send_a_mined_request_again(
        truth in truth(),
        views in prop::collection::vec(view(), 1..80),
    ) {
        let mut state = pending(3);
        let mut first_unaccounted: Option<u64> = None;
        for v in views {
            let r = reading(truth, v);
            if let Reading::Used { head, by: None } = r {
                first_unaccounted.get_or_insert(head);
            }
            let (next, _) = read(&state, &r, v.pinned);
            if next == TxState::Queued {
                // Only a foreign transaction takes the nonce for good...
                prop_assert!(matches!(truth, Truth::Theirs(_)), "{:?} requeued on {:?}", truth, r);
                // ... on finding it, or after the finality depth.
                let since = first_unaccounted.unwrap_or(u64::MAX);
                let found = matches!(r, Reading::Used { by: Some(_), .. });
                prop_assert!(found || v.pinned.saturating_sub(since) >= POLICY.finality_depth);
                return Ok(());
            }
            if matches!(next, TxState::Mined(_)) {
                prop_assert!(matches!(truth, Truth::Ours(..)));
                return Ok(());
            }
            state = next;
        }
    }
}

#[test]
fn a_foreign_nonce_is_given_up_on_once_the_evidence_holds() {
    // Every view of a node that holds the pinned block but cannot find
    // the transaction: requeued exactly at the finality depth.
    let mut state = pending(3);
    for head in 40..=60 {
        let v = View {
            pinned: head,
            node: head,
            forked: false,
            receipt_lags: false,
            found: false,
        };
        state = read(&state, &reading(Truth::Theirs(30), v), head).0;
        assert_eq!(state == TxState::Queued, head == 60, "at {head}");
    }
}
