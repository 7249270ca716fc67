//! Use cases: what the service does, written once over the ports, so the Lambda functions on AWS
//! and the local stack run the same code.
//!
//! - [`acceptance`]: players accept or reject a match that requires it.
//! - [`admission`]: a queued ticket enters its pool, or fails with a reason.
//! - [`backfill`]: a running session's open slots, filled from its pool before new matches form.
//! - [`round`]: one matchmaking round of a pool, under its lease.
//! - [`placement`]: the tasks of the `session-placement` workflow.
//! - [`completion`]: the tasks of the `session-completion` workflow: ratings, ENDED, release.
//! - [`reports`]: what game servers report.
//! - [`ratings`]: reading players' ratings.
//! - [`sweeper`]: the safety net: timed-out tickets, stuck sessions, lost placements.
//! - [`tickets`]: a player reads or cancels a ticket.

pub mod acceptance;
pub mod admission;
pub mod backfill;
pub mod completion;
pub mod messages;
pub mod placement;
pub mod ratings;
pub mod reports;
pub mod round;
pub mod sweeper;
pub mod tickets;

use crate::identity::jwt::{Audience, DevTokens};
use crate::ids::PlayerId;
use crate::ports::store::items::{PoolRef, DEFAULT_POOL_SHARDS};
use crate::ports::PortError;
use crate::ruleset::{ComparisonOp, RuleKind, RuleSet};
use crate::ticket::Player;
use crate::time::Timestamp;
use crate::AttributeValue;
use std::collections::BTreeMap;
use std::time::Duration;

/// The queues a service serves: its rule sets, by name.
#[derive(Debug, Clone, Default)]
pub struct Queues(BTreeMap<String, RuleSet>);

impl Queues {
    pub fn new(rule_sets: impl IntoIterator<Item = RuleSet>) -> Self {
        Self(rule_sets.into_iter().map(|r| (r.name.clone(), r)).collect())
    }

    pub fn get(&self, queue: &str) -> Option<&RuleSet> {
        self.0.get(queue)
    }

    pub fn names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }

    /// Each queue's ticket timeout.
    pub fn timeouts(&self) -> impl Iterator<Item = Duration> + '_ {
        self.0
            .values()
            .map(|r| Duration::from_secs(u64::from(r.queue.timeout_seconds)))
    }
}

/// Settings shared by the use cases.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Shards per pool on the pool index (DESIGN.md: 4).
    pub pool_shards: u32,
    /// How long a round may hold its pool's lease; a crashed holder's lease frees itself after it.
    pub lease_ttl: Duration,
    /// The batching window: a pool whose lease is busy gets a tick due within it.
    pub tick_window: Duration,
    /// The most players on one ticket.
    pub max_players_per_ticket: usize,
    /// The one region the fleet serves, when it serves just one (the local fleet's `local`). A player
    /// who sent no latencies is then taken to be close to it, so tickets need no latencies; with
    /// several regions, a player without latencies can only match where no latency rule applies.
    pub single_region: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            pool_shards: DEFAULT_POOL_SHARDS,
            lease_ttl: Duration::from_secs(30),
            tick_window: Duration::from_secs(1),
            max_players_per_ticket: crate::ticket_request::DEFAULT_MAX_PLAYERS_PER_TICKET,
            single_region: None,
        }
    }
}

impl Settings {
    /// A player as the matcher sees them. With one region served, it is the only region a match can
    /// be placed in: a player who sent no latencies is taken to be next to it, and of one who
    /// measured several only the served one's is kept, so that no match is formed for a region no
    /// server runs in. (What is stored stays what the player sent.)
    pub fn as_matched(&self, player: &mut Player) {
        let Some(region) = &self.single_region else { return };
        if player.latencies.is_empty() {
            player.latencies.insert(region.as_str(), 0);
        } else if let Some(ms) = player.latencies.get(region) {
            player.latencies = [(region.as_str(), ms)].into_iter().collect();
        }
        // Else it did not measure the served region: admission refuses that (see
        // `TicketRequest::unserved_latencies`), and such a player can match nowhere.
    }
}

/// Checks a party member's consent to be queued by someone else.
///
/// Locally the dev tokens' secret checks it; on AWS, Cognito's keys do. Admission calls it behind
/// the queue, so a refusal arrives as a FAILED ticket with the reason.
pub trait PartyTokens: Send + Sync {
    /// Whether `token` is `member`'s party token, valid at `now`; the reason if not.
    fn verify(&self, token: &str, member: &PlayerId, now: Timestamp) -> Result<(), String>;
}

impl PartyTokens for DevTokens {
    fn verify(&self, token: &str, member: &PlayerId, now: Timestamp) -> Result<(), String> {
        let claims = DevTokens::verify(self, token, Audience::Party, now).map_err(|e| e.to_string())?;
        if claims.sub == member.as_str() {
            Ok(())
        } else {
            Err(format!("the party token is {}'s, not {member}'s", claims.sub))
        }
    }
}

/// Why a player's request was refused.
#[derive(Debug, thiserror::Error)]
pub enum UseCaseError {
    /// No such thing for this caller. A ticket that is not the caller's is reported the same way,
    /// so that ticket ids reveal nothing.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the thing's state.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Port(#[from] PortError),
}

/// The pool partition of a party: the values of the rule set's `=` string comparisons, which split
/// the pool (tickets of different modes never meet). A party whose members disagree cannot match.
pub fn pool_partition(players: &[Player], rule_set: &RuleSet) -> Result<String, String> {
    let mut parts = Vec::new();
    for rule in &rule_set.rules {
        let RuleKind::Comparison {
            attribute,
            operation: ComparisonOp::Equal,
        } = &rule.kind
        else {
            continue;
        };
        let mut values = players.iter().map(|p| p.attributes.get(attribute));
        let first = values.next().flatten();
        if let Some(AttributeValue::String(value)) = first {
            if values.any(|v| v != first) {
                return Err(format!(
                    "the players of a party must share `{attribute}` (rule `{}`)",
                    rule.name
                ));
            }
            // `#` separates the parts of pool keys, so it is escaped inside a value.
            parts.push(value.replace('%', "%25").replace('#', "%23"));
        }
    }
    Ok(if parts.is_empty() {
        "all".to_owned()
    } else {
        parts.join("#")
    })
}

/// The pool a ticket of `players` joins in `rule_set`'s queue.
pub fn pool_of(players: &[Player], rule_set: &RuleSet) -> Result<PoolRef, String> {
    Ok(PoolRef::new(rule_set.name.clone(), pool_partition(players, rule_set)?))
}
