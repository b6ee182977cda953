//! `step` as a specification: named scenarios, then properties over random
//! event sequences.

use super::*;
use proptest::prelude::*;

const POLICY: Policy = Policy {
    resubmit_after: 10,
    bump_after: 60,
    confirmations: 3,
    stall_after: 3,
    valid_until: None,
    finality_depth: 64,
};

fn inclusion(nonce: u64, success: bool, noop: Option<Ending>) -> Inclusion {
    Inclusion {
        nonce,
        block_number: 100,
        block_hash: B256::repeat_byte(1),
        hash: B256::repeat_byte(2),
        success,
        noop,
    }
}

/// Runs events from `Queued`, one second apart; returns the final state
/// and every effect in order.
fn run(events: &[TxEvent], policy: &Policy) -> (TxState, Vec<Effect>) {
    let mut state = TxState::Queued;
    let mut all = Vec::new();
    for (t, e) in events.iter().enumerate() {
        let (next, effects) = step(&state, e, policy, t as u64);
        state = next;
        all.extend(effects);
    }
    (state, all)
}

/// A request simulated and then signed at `nonce` at second 2: pending.
fn signed(nonce: u64, policy: &Policy) -> TxState {
    let events = [
        TxEvent::Tick,
        TxEvent::Simulated(Ok(())),
        TxEvent::Signed { nonce },
    ];
    run(&events, policy).0
}

#[test]
fn a_request_is_simulated_before_a_nonce_is_taken_then_broadcast() {
    let (s, e) = step(&TxState::Queued, &TxEvent::Tick, &POLICY, 0);
    assert_eq!((s.clone(), e), (TxState::Queued, vec![Effect::Simulate]));
    let (s, e) = step(&s, &TxEvent::Simulated(Ok(())), &POLICY, 0);
    assert_eq!((s.clone(), e), (TxState::Queued, vec![Effect::AssignNonce]));
    let (s, e) = step(&s, &TxEvent::Signed { nonce: 7 }, &POLICY, 0);
    assert_eq!(s.status(), "pending");
    assert_eq!(s.nonce(), Some(7));
    assert_eq!(e, vec![Effect::Rebroadcast, Effect::Emit]);
}

#[test]
fn a_simulation_revert_rejects_without_a_nonce() {
    let (s, e) = step(
        &TxState::Queued,
        &TxEvent::Simulated(Err("Error(\"too early\")".into())),
        &POLICY,
        0,
    );
    assert_eq!(s.status(), "rejected");
    assert_eq!(s.nonce(), None);
    assert_eq!(e, vec![Effect::Emit]);
    assert!(!e.contains(&Effect::AssignNonce));
}

#[test]
fn pending_is_rebroadcast_then_bumped_then_mined_then_confirmed_at_depth() {
    let s = signed(0, &POLICY);
    let (s, e) = step(&s, &TxEvent::Tick, &POLICY, 5);
    assert!(e.is_empty(), "nothing to do before resubmit_after");
    let (s, e) = step(&s, &TxEvent::Tick, &POLICY, 12);
    assert_eq!(e, vec![Effect::Rebroadcast]);
    let (s, e) = step(&s, &TxEvent::Tick, &POLICY, 70);
    assert_eq!(e, vec![Effect::Bump]);
    let TxState::Pending(p) = &s else {
        panic!("pending")
    };
    assert_eq!(p.attempts, 2);
    let (s, e) = step(
        &s,
        &TxEvent::Included(inclusion(0, true, None)),
        &POLICY,
        71,
    );
    assert_eq!((s.status(), e), ("mined", vec![Effect::Emit]));
    let (s, e) = step(&s, &TxEvent::Depth(2), &POLICY, 72);
    assert_eq!((s.status(), e.len()), ("mined", 0), "not deep enough");
    let (s, e) = step(&s, &TxEvent::Depth(3), &POLICY, 73);
    assert_eq!((s.status(), e), ("confirmed", vec![Effect::Emit]));
}

#[test]
fn a_reverted_inclusion_ends_failed() {
    let s = TxState::Mined(inclusion(4, false, None));
    let (s, _) = step(&s, &TxEvent::Depth(3), &POLICY, 0);
    assert_eq!(s.status(), "failed");
}

#[test]
fn a_reorg_after_mined_or_confirmed_goes_back_to_pending_and_rebroadcasts() {
    for s in [
        TxState::Mined(inclusion(4, true, None)),
        TxState::Confirmed(inclusion(4, true, None)),
    ] {
        let (next, e) = step(&s, &TxEvent::Reorged, &POLICY, 9);
        assert_eq!(next.status(), "pending");
        assert_eq!(next.nonce(), Some(4), "the nonce stays");
        assert_eq!(e, vec![Effect::Rebroadcast, Effect::Emit]);
    }
}

#[test]
fn cancel_before_a_nonce_ends_at_once_and_after_one_replaces_with_a_noop() {
    let (s, e) = step(&TxState::Queued, &TxEvent::Cancel, &POLICY, 0);
    assert_eq!(
        (s, e),
        (TxState::Cancelled { nonce: None }, vec![Effect::Emit])
    );
    let s = signed(3, &POLICY);
    let (s, e) = step(&s, &TxEvent::Cancel, &POLICY, 5);
    assert_eq!(e, vec![Effect::ReplaceWithNoop]);
    let (_, e) = step(&s, &TxEvent::Cancel, &POLICY, 6);
    assert!(e.is_empty(), "a second cancel does nothing more");
    let (s, _) = step(
        &s,
        &TxEvent::Included(inclusion(3, true, Some(Ending::Cancel))),
        &POLICY,
        7,
    );
    let (s, _) = step(&s, &TxEvent::Depth(3), &POLICY, 8);
    assert_eq!(s, TxState::Cancelled { nonce: Some(3) });
}

#[test]
fn past_valid_until_a_queued_request_expires_and_a_pending_one_is_replaced() {
    let policy = Policy {
        valid_until: Some(100),
        ..POLICY
    };
    let (s, _) = step(&TxState::Queued, &TxEvent::Tick, &policy, 101);
    assert_eq!(s, TxState::Expired { nonce: None });
    let pending = TxState::Pending(Pending {
        nonce: 1,
        attempts: 1,
        sent_at: 95,
        bumped_at: 95,
        capped: false,
        ending: None,
        unaccounted_since: None,
    });
    let (s, e) = step(&pending, &TxEvent::Tick, &policy, 101);
    assert_eq!(e, vec![Effect::ReplaceWithNoop]);
    let (s, _) = step(
        &s,
        &TxEvent::Included(inclusion(1, true, Some(Ending::Expire))),
        &policy,
        102,
    );
    let (s, _) = step(&s, &TxEvent::Depth(5), &policy, 103);
    assert_eq!(s, TxState::Expired { nonce: Some(1) });
}

#[test]
fn a_capped_transaction_is_never_left_wedged_it_keeps_being_rebroadcast_with_an_alert() {
    let s = signed(0, &POLICY);
    let (s, e) = step(&s, &TxEvent::BumpCapped, &POLICY, 61);
    assert_eq!(e, vec![Effect::Rebroadcast, Effect::AlertCapped]);
    let (s, e) = step(&s, &TxEvent::Tick, &POLICY, 200);
    assert_eq!(
        e,
        vec![Effect::Rebroadcast, Effect::AlertCapped],
        "no more automatic bumps past the cap; still re-broadcast"
    );
    let (_, e) = step(&s, &TxEvent::Cancel, &POLICY, 201);
    assert_eq!(
        e,
        vec![Effect::ReplaceWithNoop],
        "an operator can still cancel"
    );
}

#[test]
fn a_nonce_used_elsewhere_requeues_the_request() {
    let s = signed(5, &POLICY);
    let (s, e) = step(&s, &TxEvent::NonceTakenElsewhere, &POLICY, 9);
    assert_eq!((s, e), (TxState::Queued, vec![Effect::Emit]));
}

#[test]
fn a_stalled_frontier_is_resent_then_replaced_long_before_the_bump_interval() {
    let s = signed(4, &POLICY);
    // Signed at 2. Too soon to call it stalled: the first broadcast may
    // still be on its way.
    let (s, e) = step(&s, &TxEvent::Stalled { held: false }, &POLICY, 4);
    assert_eq!(e, vec![]);
    // Lost by the node? Sending it again costs nothing.
    let (s, e) = step(&s, &TxEvent::Stalled { held: false }, &POLICY, 5);
    assert_eq!(e, vec![Effect::Rebroadcast]);
    let TxState::Pending(p) = &s else {
        panic!("pending: {s:?}")
    };
    assert_eq!((p.attempts, p.sent_at, p.bumped_at), (1, 5, 2));
    // Re-sent and still not held: replaced, at second 8, not 62.
    let (s, e) = step(&s, &TxEvent::Stalled { held: false }, &POLICY, 7);
    assert_eq!(e, vec![]);
    let (s, e) = step(&s, &TxEvent::Stalled { held: false }, &POLICY, 8);
    assert_eq!(e, vec![Effect::Bump]);
    let TxState::Pending(p) = &s else {
        panic!("pending: {s:?}")
    };
    assert_eq!((p.nonce, p.attempts, p.sent_at, p.bumped_at), (4, 2, 8, 8));
    // The replacement gets the same patience: re-sent first.
    let (_, e) = step(&s, &TxEvent::Stalled { held: false }, &POLICY, 11);
    assert_eq!(e, vec![Effect::Rebroadcast]);

    // Resubmits more frequent than the stall interval do not postpone the
    // replacement: one resubmit that did not help is enough.
    let often = Policy {
        resubmit_after: 1,
        ..POLICY
    };
    let s = signed(4, &often);
    let (s, e) = step(&s, &TxEvent::Stalled { held: false }, &often, 3);
    assert_eq!(e, vec![Effect::Rebroadcast]);
    let (_, e) = step(&s, &TxEvent::Stalled { held: false }, &often, 4);
    assert_eq!(e, vec![Effect::Bump]);

    // The node answered the re-broadcast "already known" and still counts
    // nothing executable there: replaced at the next look, not a stall
    // interval later. Not before a re-broadcast, though.
    let s = signed(4, &POLICY);
    let held = TxEvent::Stalled { held: true };
    let (s, e) = step(&s, &held, &POLICY, 3);
    assert_eq!(e, vec![], "too soon for the first re-send");
    let (s, e) = step(&s, &held, &POLICY, 5);
    assert_eq!(e, vec![Effect::Rebroadcast]);
    let (_, e) = step(&s, &held, &POLICY, 5);
    assert_eq!(e, vec![Effect::Bump]);
}

#[test]
fn a_stalled_cancel_is_replaced_by_a_noop_and_a_capped_one_only_resent() {
    let s = signed(0, &POLICY);
    let (cancelling, e) = step(&s, &TxEvent::Cancel, &POLICY, 3);
    assert_eq!(e, vec![Effect::ReplaceWithNoop]);
    let (cancelling, _) = step(&cancelling, &TxEvent::Stalled { held: false }, &POLICY, 6);
    let (_, e) = step(&cancelling, &TxEvent::Stalled { held: false }, &POLICY, 9);
    assert_eq!(e, vec![Effect::ReplaceWithNoop], "still a no-op");

    let (capped, _) = step(&s, &TxEvent::BumpCapped, &POLICY, 3);
    let (capped, e) = step(&capped, &TxEvent::Stalled { held: false }, &POLICY, 6);
    assert_eq!(e, vec![Effect::Rebroadcast], "no replacement past a cap");
    // Nor a re-send at every look because the node holds it.
    let (_, e) = step(&capped, &TxEvent::Stalled { held: true }, &POLICY, 6);
    assert_eq!(e, vec![], "re-sent on the stall interval only");
}

#[test]
fn a_refused_attempt_is_resent_but_never_bumped_and_can_still_expire() {
    let s = signed(2, &POLICY);
    // Long past the bump interval: re-sent, at the same fees.
    let (s, e) = step(&s, &TxEvent::Refused, &POLICY, 500);
    assert_eq!(e, vec![Effect::Rebroadcast]);
    let TxState::Pending(p) = &s else {
        panic!("pending: {s:?}")
    };
    assert_eq!((p.attempts, p.sent_at, p.bumped_at), (1, 500, 2));
    let (s, e) = step(&s, &TxEvent::Refused, &POLICY, 505);
    assert_eq!(e, vec![], "not before the resubmit interval");
    // Accepted again: the bump interval applies as before.
    let (_, e) = step(&s, &TxEvent::Tick, &POLICY, 506);
    assert_eq!(e, vec![Effect::Bump]);
    // Expiry still ends it (a 0-value self-send may be affordable).
    let policy = Policy {
        valid_until: Some(600),
        ..POLICY
    };
    let (_, e) = step(&s, &TxEvent::Refused, &policy, 601);
    assert_eq!(e, vec![Effect::ReplaceWithNoop]);
}

#[test]
fn only_a_pending_request_can_stall() {
    for s in [
        TxState::Queued,
        TxState::Mined(inclusion(0, true, None)),
        TxState::Rejected { reason: "r".into() },
    ] {
        assert_eq!(
            step(&s, &TxEvent::Stalled { held: false }, &POLICY, 100),
            (s.clone(), vec![])
        );
    }
}

fn event() -> impl Strategy<Value = TxEvent> {
    prop_oneof![
        4 => Just(TxEvent::Tick),
        1 => any::<bool>().prop_map(|ok| TxEvent::Simulated(if ok { Ok(()) } else { Err("revert".into()) })),
        2 => (0u64..4).prop_map(|nonce| TxEvent::Signed { nonce }),
        1 => Just(TxEvent::BumpCapped),
        2 => (0u64..4, any::<bool>(), prop::option::of(prop_oneof![Just(Ending::Cancel), Just(Ending::Expire)]))
            .prop_map(|(n, ok, noop)| TxEvent::Included(inclusion(n, ok, noop))),
        1 => Just(TxEvent::Reorged),
        2 => (0u64..6).prop_map(TxEvent::Depth),
        1 => Just(TxEvent::NonceTakenElsewhere),
        1 => (0u64..200).prop_map(|head| TxEvent::NonceUnaccounted { head }),
        1 => Just(TxEvent::Cancel),
        2 => any::<bool>().prop_map(|held| TxEvent::Stalled { held }),
        2 => Just(TxEvent::Refused),
    ]
}

proptest! {
    #[test]
    fn invariants_hold_over_any_event_sequence(
        events in prop::collection::vec((event(), 0u64..100), 0..60),
        valid_until in prop::option::of(0u64..3_000),
    ) {
        let policy = Policy { valid_until, ..POLICY };
        let mut state = TxState::Queued;
        let mut now = 0;
        let mut held: Option<u64> = None;
        for (event, dt) in events {
            now += dt;
            let (next, effects) = step(&state, &event, &policy, now);
            // A status envelope is written exactly when the status changes.
            prop_assert_eq!(effects.contains(&Effect::Emit), next.status() != state.status());
            // A nonce is taken only from `queued`, and only after simulation.
            if effects.contains(&Effect::AssignNonce) {
                prop_assert_eq!(&state, &TxState::Queued);
                prop_assert_eq!(&event, &TxEvent::Simulated(Ok(())));
            }
            // Sending happens only for a transaction that holds a nonce.
            if effects.iter().any(|e| matches!(e, Effect::Rebroadcast | Effect::Bump | Effect::ReplaceWithNoop)) {
                prop_assert_eq!(next.status(), "pending");
            }
            // The held nonce never changes except by a requeue.
            match (held, next.nonce()) {
                (Some(h), Some(n)) => prop_assert_eq!(h, n),
                (Some(_), None) => prop_assert!(matches!(next, TxState::Queued)),
                _ => {}
            }
            held = next.nonce();
            // Rejected never holds a nonce; final states absorb every event.
            if let TxState::Rejected { .. } = next { prop_assert_eq!(next.nonce(), None); }
            if state.is_final() { prop_assert_eq!(&next, &state); }
            // Confirmed only from mined, at the configured depth.
            if matches!(next, TxState::Confirmed(_)) && !matches!(state, TxState::Confirmed(_)) {
                prop_assert!(matches!(state, TxState::Mined(_)));
                prop_assert!(matches!(event, TxEvent::Depth(d) if d >= policy.confirmations));
            }
            if let TxState::Pending(p) = &next {
                prop_assert!(p.sent_at <= now && p.bumped_at <= now);
            }
            // A refused attempt is never made dearer on the sender's own.
            if event == TxEvent::Refused {
                prop_assert!(!effects.contains(&Effect::Bump));
            }
            // A stall replaces an attempt only after re-sending it did not
            // help (or when the bump interval is due anyway), and never past
            // a cap.
            if let (TxEvent::Stalled { .. }, TxState::Pending(p)) = (&event, &state)
                && effects.contains(&Effect::Bump)
            {
                prop_assert!(!p.capped);
                prop_assert!(p.sent_at > p.bumped_at || now - p.bumped_at >= policy.bump_after);
            }
            state = next;
        }
    }
}
