//! EIP-1559 fees from `eth_feeHistory`, replacement fees, and caps.
//!
//! The tip is a percentile of recent blocks' priority fees by speed (10th,
//! 50th, 90th), never below a configured floor; the max fee is twice the
//! next block's base fee plus the tip, so a transaction survives several
//! full blocks of base-fee rise. A replacement pays at least 12.5 % more on
//! both (nodes require +10 %) and at least the current market.

use ethgate_chain::{ChainError, EndpointPool};
use serde::Deserialize;
use serde_json::json;

use crate::request::Speed;

/// Fees of one attempt, in wei per gas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fees {
    /// Max fee per gas.
    pub max_fee: u128,
    /// Max priority fee per gas.
    pub max_priority_fee: u128,
}

/// Limits on what a transaction may pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caps {
    /// Max fee per gas never exceeded, if set.
    pub max_fee: Option<u128>,
    /// Priority fee never exceeded, if set.
    pub max_priority_fee: Option<u128>,
}

impl Caps {
    /// The tighter of two sets of caps.
    pub fn tighter(self, other: Caps) -> Caps {
        let min = |a: Option<u128>, b: Option<u128>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Caps {
            max_fee: min(self.max_fee, other.max_fee),
            max_priority_fee: min(self.max_priority_fee, other.max_priority_fee),
        }
    }

    /// Fees limited to the caps; `None` if the caps forbid them.
    pub fn allow(self, f: Fees) -> Option<Fees> {
        let over = self.max_fee.is_some_and(|c| f.max_fee > c)
            || self
                .max_priority_fee
                .is_some_and(|c| f.max_priority_fee > c);
        (!over).then_some(f)
    }

    /// Fees clamped into the caps (for a first attempt, which is sent even
    /// if the market is above the cap: it waits for the market).
    pub fn clamp(self, f: Fees) -> Fees {
        let max_fee = self.max_fee.map_or(f.max_fee, |c| f.max_fee.min(c));
        let tip = self
            .max_priority_fee
            .map_or(f.max_priority_fee, |c| f.max_priority_fee.min(c))
            .min(max_fee);
        Fees {
            max_fee,
            max_priority_fee: tip,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FeeHistory {
    base_fee_per_gas: Vec<alloy_primitives::U128>,
    #[serde(default)]
    reward: Vec<Vec<alloy_primitives::U128>>,
}

/// The market now: next block's base fee and the tip for `speed`.
pub async fn market(pool: &EndpointPool, speed: Speed, min_tip: u128) -> Result<Fees, ChainError> {
    let h: FeeHistory = pool
        .call(
            "eth_feeHistory",
            json!(["0xa", "latest", [10.0, 50.0, 90.0]]),
        )
        .await?;
    let base = h.base_fee_per_gas.last().map_or(0, |b| b.to::<u128>());
    let idx = match speed {
        Speed::Slow => 0,
        Speed::Normal => 1,
        Speed::Fast => 2,
    };
    let mut tips: Vec<u128> = h
        .reward
        .iter()
        .filter_map(|r| r.get(idx).map(|t| t.to::<u128>()))
        .collect();
    tips.sort_unstable();
    let tip = tips.get(tips.len() / 2).copied().unwrap_or(0).max(min_tip);
    Ok(Fees {
        max_fee: base.saturating_mul(2).saturating_add(tip),
        max_priority_fee: tip,
    })
}

/// The market on a chain without EIP-1559: `eth_gasPrice`, raised by
/// speed (normal +10 %, fast +25 %), as both fields (a legacy transaction
/// has one price).
pub async fn legacy_market(pool: &EndpointPool, speed: Speed) -> Result<Fees, ChainError> {
    let price: alloy_primitives::U128 = pool.call("eth_gasPrice", json!([])).await?;
    let price = price.to::<u128>();
    let price = match speed {
        Speed::Slow => price,
        Speed::Normal => price + price / 10,
        Speed::Fast => price + price / 4,
    };
    Ok(Fees {
        max_fee: price,
        max_priority_fee: price,
    })
}

/// Fees for a replacement of `old`: +12.5 % on both (rounded up), and at
/// least the market.
pub fn bumped(old: Fees, market: Fees) -> Fees {
    let up = |v: u128| v.saturating_add(v.div_ceil(8)).max(v + 1);
    let tip = up(old.max_priority_fee).max(market.max_priority_fee);
    Fees {
        max_fee: up(old.max_fee).max(market.max_fee).max(tip),
        max_priority_fee: tip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bump_raises_both_fees_by_more_than_ten_percent_and_meets_the_market() {
        let old = Fees {
            max_fee: 100,
            max_priority_fee: 10,
        };
        let calm = Fees {
            max_fee: 50,
            max_priority_fee: 5,
        };
        let b = bumped(old, calm);
        assert!(
            b.max_fee * 10 >= old.max_fee * 11
                && b.max_priority_fee * 10 >= old.max_priority_fee * 11
        );
        let spike = Fees {
            max_fee: 1_000,
            max_priority_fee: 30,
        };
        assert_eq!(bumped(old, spike), spike);
        let tiny = bumped(
            Fees {
                max_fee: 1,
                max_priority_fee: 0,
            },
            calm,
        );
        assert!(tiny.max_fee >= 50 && tiny.max_priority_fee >= 5);
    }

    #[test]
    fn caps_refuse_bumps_past_them_and_clamp_first_attempts() {
        let caps = Caps {
            max_fee: Some(100),
            max_priority_fee: None,
        };
        let f = Fees {
            max_fee: 150,
            max_priority_fee: 120,
        };
        assert_eq!(caps.allow(f), None);
        assert_eq!(
            caps.clamp(f),
            Fees {
                max_fee: 100,
                max_priority_fee: 100
            }
        );
        let tighter = caps.tighter(Caps {
            max_fee: Some(80),
            max_priority_fee: Some(2),
        });
        assert_eq!(
            tighter,
            Caps {
                max_fee: Some(80),
                max_priority_fee: Some(2)
            }
        );
    }
}
