//! What a round produces: the matches formed, with their teams and quality, and what became of the
//! other tickets. These are stored and published, so they serialise in camelCase like the API.
//!
//! A round at 100k tickets forms about 50k matches, and building them used to cost more than
//! forming them. So nothing a match holds is allocated for it alone where it can be shared or
//! inlined: names (queue, team, region) are interned [`Name`]s, copied without a reference count,
//! and the small lists (teams, a team's tickets and players, the waits, the expansion level) live
//! inline up to the sizes of a duel. The JSON is the same as with plain strings and vectors.

use crate::ids::{MatchId, PlayerId, TicketId};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::collections::BTreeMap;

/// The name of a queue, a team slot or a region, as a match holds it: interned once per process, so
/// that a match takes a copy of a pointer where a shared string took a locked increment of its
/// count (five a match, which cost a duel round at 100k about a fifth of its building). Names come
/// from the rule sets and the regions players measure, a set that stays small; an interned name is
/// never freed.
pub type Name = ustr::Ustr;

/// A match's teams: two inline (a duel, 5v5), more on the heap.
pub type MatchTeams = SmallVec<[MatchTeam; 2]>;
/// A team's tickets or players: one inline (a solo ticket, a one-player team), more on the heap.
pub type TeamMembers<T> = SmallVec<[T; 1]>;
/// Each ticket's wait: two inline (a duel).
pub type Waits = SmallVec<[u64; 2]>;
/// The expansion level a match was formed at: for each of the rule set's expansions, in order, how
/// many of its steps applied. Up to four expansions inline, so that a match takes a copy: a list
/// shared by the matches of a level cost a locked increment of its count a match, an eighth of
/// building a duel.
pub type ExpansionSteps = SmallVec<[u16; 4]>;

/// The result of one round over a pool.
///
/// Every ticket of the pool is in exactly one of `matches`, `timed_out` and `remaining`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoundOutcome {
    /// In the order they were formed: the match of the oldest ticket first.
    pub matches: Vec<Match>,
    /// Tickets that waited the queue's `timeoutSeconds` or more, oldest first.
    pub timed_out: Vec<TicketId>,
    /// Tickets still searching, oldest first.
    pub remaining: Vec<TicketId>,
    /// When the next round could match differently although no ticket arrives: the next expansion
    /// step or timeout of a remaining ticket. The pool's next tick is due then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_change_at: Option<Timestamp>,
}

/// A match: tickets split into teams, the region to play in, and how good the match is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Match {
    /// Derived from the round's time and the oldest ticket, so a round replayed on the same pool
    /// forms matches with the same ids and committing them twice is caught by the store.
    pub id: MatchId,
    /// The queue: the rule set's name, shared by every match of the round.
    pub queue: Name,
    pub created_at: Timestamp,
    /// Every team slot of the rule set, in order, with its tickets (parties whole) and players.
    pub teams: MatchTeams,
    /// The region chosen to minimise the worst latency; `None` when the players share no measured
    /// region and no latency rule asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Name>,
    /// For each collection rule, by name: the values chosen from those every player has.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub collections: BTreeMap<String, Vec<String>>,
    pub quality: MatchQuality,
}

impl Match {
    /// The match's tickets, team by team.
    pub fn ticket_ids(&self) -> impl Iterator<Item = &TicketId> {
        self.teams.iter().flat_map(|t| &t.tickets)
    }

    /// The match's players, team by team.
    pub fn player_ids(&self) -> impl Iterator<Item = &PlayerId> {
        self.teams.iter().flat_map(|t| &t.players)
    }
}

/// One team of a match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchTeam {
    /// The team slot's name (`red`, or `squad-3` for a team with `quantity`).
    pub name: Name,
    pub tickets: TeamMembers<TicketId>,
    pub players: TeamMembers<PlayerId>,
}

/// How good a match is, as operators and the simulator report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchQuality {
    /// max − min of the skill attribute (the first distance rule's, as it counts parties, else the
    /// first team-balance rule's) over the match; `None` when the rule set reads no skill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill_spread: Option<f64>,
    /// The largest difference between team averages of the balanced attribute (the first
    /// team-balance rule's, else the first distance rule's); `None` with nothing to balance, or with
    /// one team slot (a battle royale's one lobby), where there are no teams to compare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_imbalance: Option<f64>,
    /// The highest latency of any player to the chosen region, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst_latency_ms: Option<u32>,
    /// How long each ticket waited, in ms, in the order of [`Match::ticket_ids`].
    pub waits_ms: Waits,
    /// The expansion level in force, the one for the match's oldest ticket: for each of the rule
    /// set's expansions, in order, how many of its steps applied (0: none, the rule's own value).
    pub expansion_steps: ExpansionSteps,
}
