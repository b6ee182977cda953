//! What the proxy does to the calls it passes: each mode is a rate (the
//! share of requests it touches) and its own parameters, parsed from the
//! short forms the command line takes (`0.5:1-3`, `0.1:5s`, `0.05`).

use std::str::FromStr;
use std::time::Duration;

/// Why a mode did not parse; the message names the form expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModeError {
    /// A rate that is not a number in [0, 1].
    #[error("rate `{0}` must be a number from 0 to 1")]
    Rate(String),
    /// A block count or range that does not parse.
    #[error("blocks `{0}` must be N or MIN-MAX (MIN <= MAX)")]
    Blocks(String),
    /// A duration that does not parse.
    #[error("duration `{0}`: {1}")]
    Duration(String, String),
    /// The parts are not those the mode takes.
    #[error("`{0}` must look like {1}")]
    Form(String, &'static str),
}

fn rate(text: &str) -> Result<f64, ModeError> {
    match text.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(ModeError::Rate(text.to_owned())),
    }
}

fn duration(text: &str) -> Result<Duration, ModeError> {
    humantime::parse_duration(text.trim())
        .map_err(|e| ModeError::Duration(text.to_owned(), e.to_string()))
}

/// Load-balancer lag: a share of requests is answered by a backend some
/// blocks behind the upstream's head, as a provider's pool of nodes a few
/// blocks apart answers (each request from whichever node it lands on).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    /// Share of requests answered from behind.
    pub rate: f64,
    /// Fewest blocks behind.
    pub min: u64,
    /// Most blocks behind.
    pub max: u64,
}

impl FromStr for Lag {
    type Err = ModeError;

    /// `RATE:BLOCKS`, where BLOCKS is `N` or `MIN-MAX`: `0.5:1-3`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (r, blocks) = s
            .split_once(':')
            .ok_or_else(|| ModeError::Form(s.to_owned(), "RATE:BLOCKS, e.g. 0.5:1-3"))?;
        let bad = || ModeError::Blocks(blocks.to_owned());
        let (min, max) = match blocks.split_once('-') {
            Some((a, b)) => (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            ),
            None => {
                let n = blocks.trim().parse().map_err(|_| bad())?;
                (n, n)
            }
        };
        if min > max {
            return Err(bad());
        }
        Ok(Lag {
            rate: rate(r)?,
            min,
            max,
        })
    }
}

/// A stale head: a share of requests is answered at the head the upstream
/// had some time ago, as a node that stopped importing blocks does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stale {
    /// Share of requests answered at the old head.
    pub rate: f64,
    /// How old that head is.
    pub age: Duration,
}

impl FromStr for Stale {
    type Err = ModeError;

    /// `RATE:AGE`: `0.1:5s`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (r, age) = s
            .split_once(':')
            .ok_or_else(|| ModeError::Form(s.to_owned(), "RATE:AGE, e.g. 0.1:5s"))?;
        Ok(Stale {
            rate: rate(r)?,
            age: duration(age)?,
        })
    }
}

/// How a failing request fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// HTTP 500, nothing forwarded.
    Http500,
    /// HTTP 429 Too Many Requests, nothing forwarded.
    Http429,
    /// Forwarded (so it takes effect upstream), then no answer until the
    /// client gives up: the nastiest timeout, a send that happened but was
    /// never acknowledged.
    Timeout,
    /// Forwarded, and the answer cut in half.
    Truncated,
}

impl ErrorKind {
    /// Every kind, in the order a failing request draws from.
    pub const ALL: [ErrorKind; 4] = [
        ErrorKind::Http500,
        ErrorKind::Http429,
        ErrorKind::Timeout,
        ErrorKind::Truncated,
    ];

    /// The name the statistics use.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Http500 => "http_500",
            ErrorKind::Http429 => "http_429",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Truncated => "truncated",
        }
    }
}

/// Everything the proxy does; the default passes every call unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Modes {
    /// Answer some requests from a backend behind the head.
    pub lag: Option<Lag>,
    /// Answer some requests at an old head.
    pub stale: Option<Stale>,
    /// Share of requests that fail (each kind equally often).
    pub errors: f64,
    /// How long a [`ErrorKind::Timeout`] holds its request before closing.
    pub hang: Duration,
    /// Share of `eth_sendRawTransaction` calls answered with the
    /// transaction's hash and never forwarded.
    pub drop_sends: f64,
    /// Empty the upstream's transaction pool this often (anvil's
    /// `anvil_dropAllTransactions`: a node that restarted).
    pub forget_pool: Option<Duration>,
    /// Seed of the proxy's random choices, for a run that can be repeated.
    pub seed: Option<u64>,
}

impl Default for Modes {
    fn default() -> Self {
        Modes {
            lag: None,
            stale: None,
            errors: 0.0,
            hang: Duration::from_secs(30),
            drop_sends: 0.0,
            forget_pool: None,
            seed: None,
        }
    }
}

impl Modes {
    /// Parses a rate given alone (`--errors 0.05`).
    pub fn rate(text: &str) -> Result<f64, ModeError> {
        rate(text)
    }

    /// Whether any mode changes what a request sees as the head.
    pub(crate) fn moves_head(&self) -> bool {
        self.lag.is_some_and(|l| l.rate > 0.0) || self.stale.is_some_and(|s| s.rate > 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_takes_one_count_or_a_range() {
        assert_eq!(
            "0.5:1-3".parse::<Lag>(),
            Ok(Lag {
                rate: 0.5,
                min: 1,
                max: 3
            })
        );
        assert_eq!(
            "1:2".parse::<Lag>(),
            Ok(Lag {
                rate: 1.0,
                min: 2,
                max: 2
            })
        );
        assert!(matches!("1.5:2".parse::<Lag>(), Err(ModeError::Rate(_))));
        assert!(matches!(
            "0.5:3-1".parse::<Lag>(),
            Err(ModeError::Blocks(_))
        ));
        assert!(matches!("0.5".parse::<Lag>(), Err(ModeError::Form(..))));
    }

    #[test]
    fn stale_takes_a_rate_and_an_age() {
        let s: Stale = "0.1:5s".parse().expect("parses");
        assert_eq!((s.rate, s.age), (0.1, Duration::from_secs(5)));
        assert!(matches!(
            "0.1:soon".parse::<Stale>(),
            Err(ModeError::Duration(..))
        ));
        assert!(matches!(Modes::rate("-0.1"), Err(ModeError::Rate(_))));
    }
}
