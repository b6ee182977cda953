//! Policies: what a token may do, decided before anything is queued.
//!
//! A leaked back-end token must be worth less than a leaked hot key. A
//! policy therefore names, for sending, the chains, the accounts or pools
//! (`from`), the contracts (`to`) and function selectors, whether plain
//! value transfers are allowed, the largest `value`, and daily spend caps;
//! for reading, the streams; for operating, the sinks it may rewind or
//! redeliver and whether it may rotate pools, manage tokens, read the
//! audit trail or touch other tokens' transactions. Everything not named
//! is refused. Checks here are pure: [`Policy::check_send`] sees the
//! request and the resolved account and returns the rule that refuses it.

use std::fmt;

use alloy_primitives::{Address, U256};

/// Either anything, or only the listed items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow<T> {
    /// No restriction.
    Any,
    /// Only these (empty: nothing).
    Only(Vec<T>),
}

impl<T: PartialEq> Allow<T> {
    /// Whether `x` is allowed.
    pub fn allows(&self, x: &T) -> bool {
        match self {
            Allow::Any => true,
            Allow::Only(v) => v.contains(x),
        }
    }

    /// Whether nothing at all is allowed.
    pub fn is_none(&self) -> bool {
        matches!(self, Allow::Only(v) if v.is_empty())
    }
}

/// An account a policy may send from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// A pool by name: any of its members, present or future.
    Pool(String),
    /// One configured account.
    Account(Address),
}

/// A validated policy (built from `[[policies]]` by the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Its name, quoted in every refusal.
    pub name: String,
    /// Chains it may send on.
    pub chains: Allow<String>,
    /// Pools and accounts it may send from (empty: it may not send).
    pub from: Vec<Sender>,
    /// Contracts and recipients it may send to.
    pub to: Allow<Address>,
    /// Function selectors it may call.
    pub selectors: Allow<[u8; 4]>,
    /// Whether a request without calldata (a plain transfer) is allowed.
    pub value_transfers: bool,
    /// Largest `value` per request, wei.
    pub max_value: u128,
    /// Cap on a request's max fee per gas, wei; also what its fee cost is
    /// reckoned at.
    pub max_fee_per_gas: Option<u128>,
    /// Largest gas limit; a request without one is reckoned at this.
    pub max_gas: u64,
    /// Daily cap on value + fee cost for the token, per chain, wei.
    pub daily_cap: Option<u128>,
    /// Daily cap on value + fee cost per sending account, wei.
    pub account_daily_cap: Option<u128>,
    /// Streams it may read (`tx.<chain>` included).
    pub streams: Allow<String>,
    /// Sinks it may rewind and redeliver to.
    pub sinks: Allow<String>,
    /// Whether it may start pool rotations.
    pub rotate_pools: bool,
    /// Whether it may create, list and revoke tokens.
    pub manage_tokens: bool,
    /// Whether it may read, bump and cancel other tokens' transactions.
    pub others_transactions: bool,
    /// Whether it may read the audit trail.
    pub audit: bool,
}

/// A refusal: the policy and the rule, and the request field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The request field the rule is about.
    pub field: &'static str,
    /// `policy NAME: …`.
    pub message: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a send request asks, as the policy sees it.
#[derive(Debug, Clone)]
pub struct SendAsk<'a> {
    /// Chain name.
    pub chain: &'a str,
    /// `from` as written: a pool name or an address.
    pub from: &'a str,
    /// The account it resolved to.
    pub account: Address,
    /// Pools that account is a member of now.
    pub pools_of_account: &'a [String],
    /// Recipient.
    pub to: Address,
    /// Calldata.
    pub data: &'a [u8],
    /// Value, wei.
    pub value: U256,
    /// Gas limit, when the request fixes one.
    pub gas_limit: Option<u64>,
    /// The request's own cap on max fee per gas, if any.
    pub max_fee_per_gas: Option<u128>,
}

impl Policy {
    fn refuse(&self, field: &'static str, rule: String) -> Refusal {
        Refusal {
            field,
            message: format!("policy {}: {rule}", self.name),
        }
    }

    /// Whether the policy may send at all (it then holds the `tx:write`
    /// rights: its own transactions and the `tx.<chain>` streams of the
    /// chains it sends on).
    pub fn may_send(&self) -> bool {
        !self.from.is_empty() && !self.chains.is_none()
    }

    /// Checks a send request; `Ok` carries the fee-per-gas cap to impose
    /// (the policy's, when tighter than the request's).
    pub fn check_send(&self, ask: &SendAsk<'_>) -> Result<Option<u128>, Refusal> {
        if !self.chains.allows(&ask.chain.to_owned()) {
            return Err(self.refuse("chain", format!("chain {:?} is not allowed", ask.chain)));
        }
        let from_ok = self.from.iter().any(|s| match s {
            Sender::Account(a) => *a == ask.account,
            Sender::Pool(p) => p == ask.from || ask.pools_of_account.contains(p),
        });
        if !from_ok {
            return Err(self.refuse(
                "from",
                format!("sending from {:?} is not allowed", ask.from),
            ));
        }
        if !self.to.allows(&ask.to) {
            return Err(self.refuse("to", format!("{:#x} is not an allowed recipient", ask.to)));
        }
        match ask.data.get(..4) {
            None if !ask.data.is_empty() => {
                return Err(self.refuse("data", "calldata shorter than a selector".into()));
            }
            None if !self.value_transfers => {
                return Err(self.refuse("data", "plain value transfers are not allowed".into()));
            }
            None => {}
            Some(sel) => {
                let sel: [u8; 4] = sel.try_into().unwrap_or_default();
                if !self.selectors.allows(&sel) {
                    return Err(self.refuse(
                        "function",
                        format!(
                            "selector 0x{} is not allowed on {:#x}",
                            hex::encode(sel),
                            ask.to
                        ),
                    ));
                }
            }
        }
        if ask.value > U256::from(self.max_value) {
            return Err(self.refuse(
                "value",
                format!(
                    "value {} wei is over the {} wei allowed",
                    ask.value, self.max_value
                ),
            ));
        }
        if let Some(g) = ask.gas_limit
            && g > self.max_gas
        {
            return Err(self.refuse(
                "gas_limit",
                format!("gas limit {g} is over the {} allowed", self.max_gas),
            ));
        }
        Ok(match (ask.max_fee_per_gas, self.max_fee_per_gas) {
            (Some(r), Some(p)) => Some(r.min(p)),
            (r, p) => r.or(p),
        })
    }

    /// What a request counts against the daily caps: its value plus its
    /// gas limit (or `max_gas`) at the fee cap. `None` when the policy has
    /// no cap to count against.
    pub fn cost(&self, ask: &SendAsk<'_>, fee_cap: Option<u128>) -> Option<u128> {
        if self.daily_cap.is_none() && self.account_daily_cap.is_none() {
            return None;
        }
        let gas = u128::from(ask.gas_limit.unwrap_or(self.max_gas));
        let fee = gas.saturating_mul(fee_cap.unwrap_or(0));
        let value = u128::try_from(ask.value).unwrap_or(u128::MAX);
        Some(value.saturating_add(fee))
    }

    /// The refusal for a daily cap that `cost` would pass.
    pub fn over_cap(&self, token: bool, cost: u128) -> Refusal {
        let (what, cap) = if token {
            ("the token's daily cap", self.daily_cap.unwrap_or(0))
        } else {
            (
                "the account's daily cap",
                self.account_daily_cap.unwrap_or(0),
            )
        };
        self.refuse(
            "value",
            format!("{what} of {cap} wei would be passed by this request's {cost} wei"),
        )
    }

    /// Whether it may read stream `name` (a `tx.<chain>` stream also when
    /// it may send on that chain).
    pub fn may_read(&self, name: &str) -> bool {
        match name.strip_prefix("tx.") {
            // A status stream carries every caller's metadata: it belongs
            // to the sending rights, or to an explicit listing, never to
            // `streams = ["any"]`.
            Some(chain) => {
                matches!(&self.streams, Allow::Only(v) if v.iter().any(|s| s == name))
                    || (self.may_send() && self.chains.allows(&chain.to_owned()))
            }
            None => self.streams.allows(&name.to_owned()),
        }
    }

    /// The refusal for an operation the policy does not grant.
    pub fn not_granted(&self, what: &str) -> Refusal {
        self.refuse("Authorization", format!("{what} is not allowed"))
    }
}
