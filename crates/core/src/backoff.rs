//! Exponential backoff with jitter, shared by everything that retries (an
//! endpoint cooling down, a sink being retried) so they behave alike.

use std::time::Duration;

use rand::Rng;

/// The wait before attempt `failures` (1 for the first retry): `base`
/// doubled per earlier failure, capped at `max`, then a random point in the
/// upper half, so retries of many clients do not arrive in step.
pub fn jittered(base: Duration, max: Duration, failures: u32) -> Duration {
    let cap = base
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(max);
    let half = cap / 2;
    half + rand::rng().random_range(Duration::ZERO..=half)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_the_upper_half_and_is_capped() {
        let (base, max) = (Duration::from_millis(200), Duration::from_secs(30));
        for failures in 1..40u32 {
            let cap = base.saturating_mul(1 << (failures - 1).min(16)).min(max);
            let d = jittered(base, max, failures);
            assert!(
                d >= cap / 2 && d <= cap,
                "{failures}: {d:?} outside [{:?}, {cap:?}]",
                cap / 2
            );
        }
    }
}
