//! The chain follower: one per chain in a process, shared by every stream
//! of that chain that has caught up with the tip. Following the tip costs
//! one head poll, one verified fetch per new range for the union of the
//! members' filters, and its headers — whatever the number of streams.
//!
//! The follower records nothing. Each member stream still owns its cursor,
//! its store handle (fenced, on a replica) and its commits: the follower
//! hands it the part of a verified range that matches its filter, the
//! member commits it on top of the cursor it joined with, and replies.
//! Members are grouped by (cursor, target): a group is one fetch, and a
//! stream that joins a block behind the others is one extra fetch until it
//! has caught them up. A reorg under a group's cursor, a failed commit or a
//! slow member sends the member back to stepping on its own
//! ([`Syncer::step`](crate::Syncer::step)), which backfills and rejoins.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy_primitives::{Address, B256};
use ethgate_chain::{EndpointPool, LogFilter, RangeSizer};
use ethgate_core::{Confirmations, RawLog, StreamSpec};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::fetch::{Fetch, Fetched, Fetcher};
use crate::syncer::{SyncError, SyncerConfig};

/// How long the follower waits for a member to commit its part of a
/// range before it leaves that member to step on its own.
const COMMIT_WAIT: Duration = Duration::from_secs(10);

/// What a member hears from its follower.
#[derive(Debug)]
pub(crate) enum Tail {
    /// The member's part of a verified range after its cursor; it replies
    /// whether it committed.
    Range {
        /// Its logs, the range's end and headers.
        part: Fetched,
        /// The head as seen.
        head: u64,
        /// Whether it committed.
        reply: oneshot::Sender<bool>,
    },
    /// The member's cursor block is no longer canonical.
    Reorg(u64),
    /// Nothing new; the head as seen.
    Idle(u64),
    /// The chain could not be read; the follower retries.
    Failed(String),
}

/// A member's filter, for taking its part of a union range.
#[derive(Debug, Clone)]
struct Wants {
    addresses: HashSet<Address>,
    /// Empty: any topic0.
    topics: HashSet<B256>,
}

impl Wants {
    fn of(spec: &StreamSpec, addresses: &[Address]) -> Wants {
        Wants {
            addresses: addresses.iter().copied().collect(),
            topics: spec.selectors().into_iter().collect(),
        }
    }

    fn wants(&self, log: &RawLog) -> bool {
        self.addresses.contains(&log.address)
            && (self.topics.is_empty()
                || log.topics.first().is_some_and(|t| self.topics.contains(t)))
    }
}

struct Member {
    wants: Wants,
    confirmations: Confirmations,
    cursor: (u64, B256),
    tx: mpsc::Sender<Tail>,
}

/// One chain's follower; see the module docs.
pub struct Follower {
    chain: String,
    pool: Arc<EndpointPool>,
    cfg: SyncerConfig,
    members: Mutex<HashMap<u64, Member>>,
    next_id: AtomicU64,
    joined: Notify,
}

/// A stream's place in its follower; leaving is dropping it.
pub(crate) struct Membership {
    follower: Arc<Follower>,
    id: u64,
    /// What the follower sends; closed when the follower drops the member.
    pub rx: mpsc::Receiver<Tail>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Ok(mut m) = self.follower.members.lock() {
            m.remove(&self.id);
        }
    }
}

/// What one round of the follower found, and so how soon the next is.
enum Round {
    /// No members: wait for one to join.
    Empty,
    /// Every group is at its target.
    CaughtUp,
    /// Some group has more to fetch now.
    More,
    /// The chain moved under a fetch.
    Retry,
    /// The chain could not be read.
    Failed,
}

impl Follower {
    /// A follower of the chain behind `pool`, with the chain's tuning.
    pub fn new(chain: &str, pool: Arc<EndpointPool>, cfg: SyncerConfig) -> Arc<Follower> {
        Arc::new(Follower {
            chain: chain.to_owned(),
            pool,
            cfg,
            members: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            joined: Notify::new(),
        })
    }

    /// Streams following the tip through this follower now.
    pub fn members(&self) -> usize {
        self.members.lock().map_or(0, |m| m.len())
    }

    /// Adds a stream whose last recorded block is `cursor`, reading the
    /// logs of `addresses` (its filter's) for it.
    pub(crate) fn join(
        self: &Arc<Self>,
        spec: &StreamSpec,
        addresses: &[Address],
        cursor: (u64, B256),
    ) -> Membership {
        let (tx, rx) = mpsc::channel(4);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let member = Member {
            wants: Wants::of(spec, addresses),
            confirmations: spec.confirmations,
            cursor,
            tx,
        };
        if let Ok(mut m) = self.members.lock() {
            m.insert(id, member);
        }
        self.joined.notify_one();
        Membership {
            follower: self.clone(),
            id,
            rx,
        }
    }

    /// Follows the chain until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let sizer = RangeSizer::new(
            self.cfg.initial_range,
            self.cfg.min_range,
            self.cfg.max_range,
            3,
        );
        let mut fetcher = Fetcher::new(
            format!("follower:{}", self.chain),
            self.chain.clone(),
            LogFilter {
                addresses: Vec::new(),
                topic0: Vec::new(),
            },
            self.pool.clone(),
            sizer,
            self.cfg.target_logs,
            self.cfg.parallel_queries,
        );
        let mut failures: u32 = 0;
        while !*shutdown.borrow() {
            let round = self.round(&mut fetcher).await;
            let wait = match round {
                Round::Empty => {
                    tokio::select! {
                        _ = self.joined.notified() => continue,
                        _ = shutdown.changed() => break,
                    }
                }
                Round::CaughtUp => self.cfg.poll_interval,
                Round::More => Duration::ZERO,
                Round::Retry => Duration::from_millis(100),
                Round::Failed => {
                    failures += 1;
                    Duration::from_millis(250u64.saturating_mul(1 << failures.min(7)))
                        .min(Duration::from_secs(30))
                }
            };
            if !matches!(round, Round::Failed) {
                failures = 0;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => break,
            }
        }
    }

    /// One head poll, then each group's fetch or idle check.
    async fn round(&self, fetcher: &mut Fetcher) -> Round {
        let snapshot: Vec<(u64, Confirmations, (u64, B256))> = match self.members.lock() {
            Ok(m) => m
                .iter()
                .map(|(id, m)| (*id, m.confirmations, m.cursor))
                .collect(),
            Err(_) => return Round::Failed,
        };
        if snapshot.is_empty() {
            return Round::Empty;
        }
        match self.groups(fetcher, &snapshot).await {
            Ok(groups) => {
                let mut round = Round::CaughtUp;
                for ((number, hash, target), ids) in groups {
                    match self.group(fetcher, (number, hash), target, &ids).await {
                        Round::CaughtUp => {}
                        Round::More if matches!(round, Round::CaughtUp) => round = Round::More,
                        Round::More => {}
                        other => round = other,
                    }
                }
                round
            }
            Err(e) => {
                self.tell_all(&e);
                Round::Failed
            }
        }
    }

    /// Members by (cursor, target), from one head poll.
    async fn groups(
        &self,
        fetcher: &mut Fetcher,
        snapshot: &[(u64, Confirmations, (u64, B256))],
    ) -> Result<BTreeMap<(u64, B256, Option<u64>), Vec<u64>>, SyncError> {
        let head = fetcher.head().await?;
        let mut targets: HashMap<Confirmations, Option<u64>> = HashMap::new();
        let mut groups: BTreeMap<(u64, B256, Option<u64>), Vec<u64>> = BTreeMap::new();
        for (id, confirmations, cursor) in snapshot {
            let target = match targets.get(confirmations) {
                Some(t) => *t,
                None => {
                    let t = fetcher.target(head, *confirmations).await?;
                    targets.insert(*confirmations, t);
                    t
                }
            };
            groups
                .entry((cursor.0, cursor.1, target))
                .or_default()
                .push(*id);
        }
        Ok(groups)
    }

    fn tell_all(&self, e: &SyncError) {
        tracing::warn!(chain = %self.chain, error = %e, "follower could not read the chain");
        if let Ok(m) = self.members.lock() {
            for member in m.values() {
                let _ = member.tx.try_send(Tail::Failed(e.to_string()));
            }
        }
    }

    /// Moves one group on: fetch past its cursor, or check the cursor is
    /// still canonical when there is nothing new.
    async fn group(
        &self,
        fetcher: &mut Fetcher,
        cursor: (u64, B256),
        target: Option<u64>,
        ids: &[u64],
    ) -> Round {
        let head = fetcher.last_head.unwrap_or(cursor.0);
        let Some(target) = target.filter(|t| *t > cursor.0) else {
            return match fetcher.cursor_is_canonical(cursor.0, cursor.1).await {
                Ok(Some(false)) => {
                    self.send(ids, |_| Tail::Reorg(cursor.0), true);
                    Round::More
                }
                Ok(_) => {
                    self.send(ids, |_| Tail::Idle(head), false);
                    Round::CaughtUp
                }
                Err(e) => {
                    self.tell_all(&e);
                    Round::Failed
                }
            };
        };
        fetcher.filter = self.union(ids);
        match fetcher.fetch(Some(cursor), cursor.0 + 1, target).await {
            Ok(Fetch::Range(f)) => {
                let more = f.to < target;
                self.deliver(ids, f, head).await;
                if more { Round::More } else { Round::CaughtUp }
            }
            Ok(Fetch::Reorg(c)) => {
                self.send(ids, |_| Tail::Reorg(c), true);
                Round::More
            }
            Ok(Fetch::Retry(_)) => Round::Retry,
            Err(e) => {
                self.tell_all(&e);
                Round::Failed
            }
        }
    }

    /// The union of the members' filters: every address, and every topic0
    /// unless one member takes any.
    fn union(&self, ids: &[u64]) -> LogFilter {
        let Ok(m) = self.members.lock() else {
            return LogFilter {
                addresses: Vec::new(),
                topic0: Vec::new(),
            };
        };
        let mut addresses = std::collections::BTreeSet::new();
        let mut topics = std::collections::BTreeSet::new();
        let mut any_topic = false;
        for member in ids.iter().filter_map(|id| m.get(id)) {
            addresses.extend(member.wants.addresses.iter().copied());
            any_topic |= member.wants.topics.is_empty();
            topics.extend(member.wants.topics.iter().copied());
        }
        LogFilter {
            addresses: addresses.into_iter().collect(),
            topic0: if any_topic {
                Vec::new()
            } else {
                topics.into_iter().collect()
            },
        }
    }

    /// Hands each member its part of `f` and waits for its commits; a
    /// member that commits moves to `f`'s end, one that fails or is slow
    /// leaves.
    async fn deliver(&self, ids: &[u64], f: Fetched, head: u64) {
        let end = (f.to, f.end.hash);
        let head = head.max(f.to);
        let parts: Vec<(u64, mpsc::Sender<Tail>, Fetched)> = match self.members.lock() {
            Ok(m) => ids
                .iter()
                .filter_map(|id| m.get(id).map(|member| (*id, member)))
                .map(|(id, member)| (id, member.tx.clone(), f.part(|l| member.wants.wants(l))))
                .collect(),
            Err(_) => return,
        };
        let replies =
            futures::future::join_all(parts.into_iter().map(|(id, tx, part)| async move {
                let (reply, committed) = oneshot::channel();
                if tx.send(Tail::Range { part, head, reply }).await.is_err() {
                    return (id, false);
                }
                let ok = matches!(
                    tokio::time::timeout(COMMIT_WAIT, committed).await,
                    Ok(Ok(true))
                );
                (id, ok)
            }))
            .await;
        if let Ok(mut m) = self.members.lock() {
            for (id, ok) in replies {
                if ok {
                    if let Some(member) = m.get_mut(&id) {
                        member.cursor = end;
                    }
                } else {
                    m.remove(&id);
                }
            }
        }
    }

    /// Sends each member of `ids` its message; `leave` drops them after.
    fn send(&self, ids: &[u64], msg: impl Fn(u64) -> Tail, leave: bool) {
        let Ok(mut m) = self.members.lock() else {
            return;
        };
        for id in ids {
            if let Some(member) = m.get(id) {
                let _ = member.tx.try_send(msg(*id));
            }
            if leave {
                m.remove(id);
            }
        }
    }
}
