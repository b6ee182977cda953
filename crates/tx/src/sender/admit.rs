//! Admission: what each queued request of a chunk may do this tick, given
//! its simulation's verdict. A pure function of the verdicts and of how
//! many ticks in a row the node failed to simulate each request, so the
//! rules that decide which request takes the next nonce are tested on
//! their own.

use super::Simulation;

/// Ticks in which the node simulates the account's other requests but
/// answers one request's simulation with an error that names no failure
/// before that request is rejected with the node's words. Retried for
/// ever, it would only be re-simulated at every tick; but a request the
/// node cannot run at all (a failure in words no classifier knows) would
/// never end, and a service waits on its ending.
pub const SIMULATION_ERRORS: u32 = 5;

/// What one request's verdict lets it do this tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Admission {
    /// It may take a nonce; the node estimated this much gas.
    Take(u64),
    /// It ends `rejected`, for this reason.
    Reject(String),
    /// It waits for a later tick while the account's later requests go
    /// ahead: the node could not simulate it (the error) while it
    /// simulated others.
    StepAside(String),
}

/// The admissions of a chunk, in creation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Admitted {
    /// One per request up to where admission stopped.
    pub each: Vec<Admission>,
    /// Why admission stopped early, if it did: a simulation that could
    /// not run for want of a node. That request and those after it wait
    /// for the next tick, behind it.
    pub stopped: Option<String>,
}

/// Decides what each request may do from its verdict. `errors[j]` is how
/// many ticks in a row the node could not simulate request `j` while it
/// simulated others; it is updated (0 once a simulation passed or the
/// request is rejected for it).
pub(super) fn admit(verdicts: Vec<Result<u64, Simulation>>, errors: &mut [u32]) -> Admitted {
    // A request the node could not simulate while it simulated others is
    // the request's problem, not the node's: the rest go ahead.
    let others_simulated = verdicts
        .iter()
        .any(|v| matches!(v, Ok(_) | Err(Simulation::Reverted(_))));
    let mut each = Vec::with_capacity(verdicts.len());
    for (verdict, seen) in verdicts.into_iter().zip(errors.iter_mut()) {
        let admission = match verdict {
            Ok(gas) => {
                *seen = 0;
                Admission::Take(gas)
            }
            Err(Simulation::Reverted(reason)) => Admission::Reject(reason),
            Err(Simulation::Erred(e)) if others_simulated => {
                *seen += 1;
                if *seen < SIMULATION_ERRORS {
                    Admission::StepAside(e)
                } else {
                    *seen = 0;
                    Admission::Reject(format!(
                        "the node could not simulate the call ({SIMULATION_ERRORS} times, while it simulated the account's other requests): {e}"
                    ))
                }
            }
            Err(Simulation::Erred(e) | Simulation::Unavailable(e)) => {
                return Admitted {
                    each,
                    stopped: Some(e),
                };
            }
        };
        each.push(admission);
    }
    Admitted {
        each,
        stopped: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn erred() -> Result<u64, Simulation> {
        Err(Simulation::Erred("internal error".into()))
    }

    #[test]
    fn passing_and_reverting_requests_are_taken_and_rejected_in_order() {
        let mut errors = [2, 0, 0];
        let a = admit(
            vec![Ok(21_000), Err(Simulation::Reverted("no".into())), Ok(5)],
            &mut errors,
        );
        assert_eq!(
            a.each,
            vec![
                Admission::Take(21_000),
                Admission::Reject("no".into()),
                Admission::Take(5)
            ]
        );
        assert_eq!(a.stopped, None);
        assert_eq!(errors, [0, 0, 0], "a passing simulation clears the count");
    }

    #[test]
    fn an_unsimulable_request_steps_aside_until_its_fifth_tick() {
        let mut errors = [0, 0];
        for tick in 1..SIMULATION_ERRORS {
            let a = admit(vec![erred(), Ok(1)], &mut errors);
            assert!(matches!(a.each[0], Admission::StepAside(_)), "tick {tick}");
            assert_eq!(a.each[1], Admission::Take(1));
            assert_eq!(errors[0], tick);
        }
        let a = admit(vec![erred(), Ok(1)], &mut errors);
        assert!(
            matches!(&a.each[0], Admission::Reject(r) if r.contains("internal error")),
            "{:?}",
            a.each
        );
        assert_eq!(errors[0], 0);
    }

    #[test]
    fn a_node_that_simulates_nothing_stops_admission_and_rejects_nothing() {
        let mut errors = [0, 0];
        let a = admit(vec![erred(), erred()], &mut errors);
        assert_eq!(a.each, vec![]);
        assert_eq!(a.stopped.as_deref(), Some("internal error"));
        assert_eq!(errors, [0, 0], "no request is held responsible");
    }

    #[test]
    fn an_unavailable_node_stops_behind_the_requests_already_admitted() {
        let mut errors = [0, 0, 0];
        let a = admit(
            vec![Ok(1), Err(Simulation::Unavailable("down".into())), Ok(2)],
            &mut errors,
        );
        assert_eq!(a.each, vec![Admission::Take(1)]);
        assert_eq!(a.stopped.as_deref(), Some("down"));
    }
}
