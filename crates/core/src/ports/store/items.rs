//! Typed items: what each item of the single table means, as pure functions from domain types to
//! [`Item`]s and [`Write`]s and back. The key layout is DESIGN.md's table; every use case builds its
//! writes here, so the layout is written down once.
//!
//! Sort keys that hold times are zero-padded to 20 digits (all of `u64`), so that string order, the
//! only order DynamoDB knows, is time order.

use super::{Condition, Index, IndexKey, Item, Key, Query, Stored, Write, MAX_PAGE_ITEMS, MAX_TRANSACTION_OPERATIONS};
use crate::identity::SessionSecret;
use crate::ids::{MatchId, PlayerId, SessionId, TicketId};
use crate::matcher::Match;
use crate::ports::error::PortError;
use crate::ports::fleet::{Endpoint, PlacementId};
use crate::status::{SessionStatus, TicketStatus};
use crate::ticket::{AcceptanceType, Ticket};
use crate::time::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// How many shards a pool is spread over by default (DESIGN.md: S = 4).
pub const DEFAULT_POOL_SHARDS: u32 = 4;

/// A value read back from the store, with the version a later write must name to replace it.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
}

/// Reads the body of `stored` as a `T`.
pub fn read<T: DeserializeOwned>(stored: &Stored) -> Result<Versioned<T>, PortError> {
    let value = serde_json::from_value(stored.item.body.clone()).map_err(|e| PortError::Corrupt {
        key: stored.item.key.clone(),
        reason: e.to_string(),
    })?;
    Ok(Versioned {
        value,
        version: stored.version,
    })
}

pub(crate) fn body<T: Serialize>(key: &Key, value: &T) -> Result<serde_json::Value, PortError> {
    serde_json::to_value(value).map_err(|e| PortError::invalid(format!("{key} cannot be serialised: {e}")))
}

/// A time as sort keys start with it: 20 digits of epoch milliseconds, so that they sort by time.
pub fn padded(at: Timestamp) -> String {
    format!("{:020}", at.as_millis())
}

// ---- pools -------------------------------------------------------------------------------------

/// One pool: the tickets of one queue that can match each other (one `=` comparison partition).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PoolRef {
    pub queue: String,
    pub partition: String,
}

impl PoolRef {
    pub fn new(queue: impl Into<String>, partition: impl Into<String>) -> Self {
        Self {
            queue: queue.into(),
            partition: partition.into(),
        }
    }

    /// `POOL#<queue>#<partition>#<shard>`: the pool index partition of one shard.
    pub fn shard_partition(&self, shard: u32) -> String {
        format!("POOL#{}#{}#{shard}", self.queue, self.partition)
    }

    /// Every shard's pool index partition: a round queries them all.
    pub fn shard_partitions(&self, shards: u32) -> impl Iterator<Item = String> + '_ {
        (0..shards.max(1)).map(|s| self.shard_partition(s))
    }

    /// `POOL#<queue>#<partition>` / `LEASE`.
    pub fn lease_key(&self) -> Key {
        Key::new(format!("POOL#{}#{}", self.queue, self.partition), "LEASE")
    }
}

/// The shard of a ticket: FNV-1a of its id, mod `shards`. FNV rather than std's hasher because the
/// shard is stored: it must not change between Rust releases or machines.
pub fn pool_shard(ticket: &TicketId, shards: u32) -> u32 {
    let hash = ticket.as_str().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    u32::try_from(hash % u64::from(shards.max(1))).unwrap_or(0)
}

/// Who holds a pool's lease, until when, and when its next `pool-tick` is due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolLease {
    pub holder: String,
    pub until: Timestamp,
    /// Deduplicates scheduled ticks: a tick is scheduled only when none is due sooner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_tick_at: Option<Timestamp>,
}

/// Takes the lease of `pool` for `holder` until `now + ttl`; fails with `ConditionFailed` while anyone
/// (the same holder included) holds an unexpired lease. The item expires with the lease, so a crashed
/// holder's lease frees itself.
pub fn take_lease(pool: &PoolRef, holder: &str, now: Timestamp, ttl: Duration) -> Result<Write, PortError> {
    let lease = PoolLease {
        holder: holder.to_owned(),
        until: now.plus(ttl),
        next_tick_at: None,
    };
    Ok(Write::put(lease_item(pool, &lease)?, Condition::Absent))
}

/// Replaces a lease read at `current` (to extend it or record the next tick); fails if anyone wrote
/// it since, or it expired.
pub fn renew_lease(pool: &PoolRef, current: &Versioned<PoolLease>, lease: &PoolLease) -> Result<Write, PortError> {
    Ok(Write::put(
        lease_item(pool, lease)?,
        Condition::Version(current.version),
    ))
}

/// Gives a lease up early, if it is still the one read.
pub fn release_lease(pool: &PoolRef, current: &Versioned<PoolLease>) -> Write {
    Write::delete(pool.lease_key(), Condition::Version(current.version))
}

fn lease_item(pool: &PoolRef, lease: &PoolLease) -> Result<Item, PortError> {
    let key = pool.lease_key();
    Ok(Item::new(key.clone(), body(&key, lease)?).expiring_at(lease.until))
}

// ---- tickets -----------------------------------------------------------------------------------

/// A ticket as stored: the domain ticket plus where it is pooled and what it was matched into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketRecord {
    #[serde(flatten)]
    pub ticket: Ticket,
    /// The pool partition the rule set puts the ticket in; kept so that a requeue finds its pool.
    pub partition: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_id: Option<MatchId>,
    /// While REQUIRES_ACCEPTANCE: the answers of the ticket's players so far, each written by the
    /// player themselves. Emptied whenever the ticket leaves its match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub acceptances: BTreeMap<PlayerId, AcceptanceType>,
    /// When the ticket was cancelled, timed out or failed by `usecases::tickets::finish`: what the
    /// operators' TimeToTicketCancel measures. Absent on tickets written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Why the last match the ticket was in was not played, once it was put back in its pool: a
    /// timeout then says a match was found and failed, rather than that none was found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_match_failed: Option<String>,
}

impl TicketRecord {
    /// A ticket not in any match.
    pub fn unmatched(ticket: Ticket, partition: impl Into<String>) -> Self {
        Self {
            ticket,
            partition: partition.into(),
            match_id: None,
            acceptances: BTreeMap::new(),
            finished_at: None,
            last_match_failed: None,
        }
    }

    /// Whether every player of the ticket has accepted its match.
    pub fn all_accepted(&self) -> bool {
        self.ticket
            .player_ids()
            .all(|p| self.acceptances.get(p) == Some(&AcceptanceType::Accept))
    }

    /// The first player of the ticket who rejected its match, if any.
    pub fn rejected_by(&self) -> Option<&PlayerId> {
        self.ticket
            .player_ids()
            .find(|p| self.acceptances.get(*p) == Some(&AcceptanceType::Reject))
    }

    pub fn pool(&self) -> PoolRef {
        PoolRef::new(self.ticket.queue.clone(), self.partition.clone())
    }
}

/// `TICKET#<id>` / `TICKET`.
pub fn ticket_key(id: &TicketId) -> Key {
    Key::new(format!("TICKET#{id}"), "TICKET")
}

/// The ticket's item. It carries the pool index keys exactly while SEARCHING, so the pool index holds
/// only searching tickets, and GSI1 lists tickets by status, oldest first.
pub fn ticket_item(record: &TicketRecord, shards: u32) -> Result<Item, PortError> {
    let t = &record.ticket;
    let key = ticket_key(&t.id);
    let age_and_id = format!("{}#{}", padded(t.created_at), t.id);
    let mut item = Item::new(key.clone(), body(&key, record)?)
        .with_gsi1(IndexKey::new(format!("TICKETS#{}", t.status), age_and_id.clone()));
    if t.status == TicketStatus::Searching {
        let shard = pool_shard(&t.id, shards);
        item = item.with_pool(IndexKey::new(record.pool().shard_partition(shard), age_and_id));
    }
    if t.status.is_terminal() {
        item = item.expiring_at(t.created_at.plus(FINISHED_KEPT));
    }
    Ok(item)
}

/// How long a finished ticket, a match and a finished session (with its timeline) are kept after
/// they were made: then the store's TTL takes them, so the table does not grow for ever. As long
/// as the dead-letter queue keeps a message (14 days), so that a redriven ticket message still
/// finds its ticket and is taken as the duplicate it is.
pub const FINISHED_KEPT: Duration = Duration::from_secs(14 * 24 * 3600);

/// A cancel asked for before its ticket was admitted (while it was QUEUED): admission reads it and
/// records the ticket CANCELLED rather than admitting it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EarlyCancel {
    /// Who asked: it counts only if they are one of the ticket's players, as a cancel of an
    /// admitted ticket does.
    pub player: PlayerId,
    pub at: Timestamp,
}

/// How long an early cancel waits for its ticket: far longer than a ticket stays queued (seconds,
/// or the retries of a failing admission), and no longer than a mistyped id needs to be forgotten.
pub const EARLY_CANCEL_KEPT: Duration = Duration::from_secs(3600);

/// `TICKET#<id>` / `CANCEL#<player>`: an early cancel, beside the ticket's item, one per player who
/// asks. Nobody can tell whose a queued id is, so every caller's cancel is recorded; one item for
/// all let a stranger's cancel overwrite the owner's.
pub fn early_cancel_key(id: &TicketId, player: &PlayerId) -> Key {
    Key::new(format!("TICKET#{id}"), format!("CANCEL#{player}"))
}

/// Every early cancel of ticket `id`, strongly consistent.
pub fn early_cancels(id: &TicketId) -> Query {
    Query::new(Index::Table, format!("TICKET#{id}"), MAX_PAGE_ITEMS).with_prefix("CANCEL#")
}

/// Records `cancel` of ticket `id`; asking again records it again. It expires after
/// [`EARLY_CANCEL_KEPT`].
pub fn early_cancel(id: &TicketId, cancel: &EarlyCancel) -> Result<Write, PortError> {
    let key = early_cancel_key(id, &cancel.player);
    let item = Item::new(key.clone(), body(&key, cancel)?).expiring_at(cancel.at.plus(EARLY_CANCEL_KEPT));
    Ok(Write::put(item, Condition::Any))
}

/// `PLAYER#<id>` / `ACTIVE`: the guard that keeps a player to one active ticket or session.
pub fn player_guard_key(player: &PlayerId) -> Key {
    Key::new(format!("PLAYER#{player}"), "ACTIVE")
}

/// The sort-key prefix of a player's ratings, one per queue.
pub const RATING_PREFIX: &str = "RATING#";

/// `PLAYER#<id>` / `RATING#<queue>`: a player's rating in one queue.
pub fn rating_key(player: &PlayerId, queue: &str) -> Key {
    Key::new(format!("PLAYER#{player}"), format!("{RATING_PREFIX}{queue}"))
}

/// What holds a player's guard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "id")]
pub enum GuardHolder {
    Ticket(TicketId),
    Session(SessionId),
}

/// Admits a ticket into its pool: the ticket item, created SEARCHING, and a guard for every player,
/// all conditional on absence, in one transaction. Replaying an admission fails on operation 0 (the
/// ticket exists): a duplicate delivery. Failing on a later operation means a player already has an
/// active ticket or session.
pub fn admit(record: &TicketRecord, shards: u32) -> Result<Vec<Write>, PortError> {
    if record.ticket.status != TicketStatus::Searching {
        return Err(PortError::invalid(format!(
            "a ticket is admitted SEARCHING, not {}",
            record.ticket.status
        )));
    }
    let mut writes = vec![Write::put(ticket_item(record, shards)?, Condition::Absent)];
    for player in record.ticket.player_ids() {
        let key = player_guard_key(player);
        let holder = body(&key, &GuardHolder::Ticket(record.ticket.id.clone()))?;
        writes.push(Write::put(Item::new(key, holder), Condition::Absent));
    }
    if writes.len() > MAX_TRANSACTION_OPERATIONS {
        return Err(PortError::invalid(format!(
            "a ticket of {} players cannot be admitted",
            writes.len() - 1
        )));
    }
    Ok(writes)
}

/// Replaces a ticket read at `current` with `next`, conditional on nobody having written it since.
pub fn update_ticket(current: &Versioned<TicketRecord>, next: &TicketRecord, shards: u32) -> Result<Write, PortError> {
    Ok(Write::put(
        ticket_item(next, shards)?,
        Condition::Version(current.version),
    ))
}

// ---- matches -----------------------------------------------------------------------------------

/// Where a match is in being committed. A large match is written in chunks behind a PENDING record,
/// which works as the saga's log; a small one is written COMMITTED in one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MatchStatus {
    Pending,
    Committed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchRecord {
    #[serde(rename = "match")]
    pub matched: Match,
    pub status: MatchStatus,
}

/// `MATCH#<id>` / `MATCH`.
pub fn match_key(id: &MatchId) -> Key {
    Key::new(format!("MATCH#{id}"), "MATCH")
}

/// The most tickets a match commits in one transaction: with its match item and the idempotency
/// token (which the DynamoDB store keeps as an item of the transaction) that makes 100, DynamoDB's
/// limit. A larger match commits in chunks (DESIGN.md: over 98 tickets).
pub const MAX_TICKETS_PER_COMMIT: usize = MAX_TRANSACTION_OPERATIONS - 2;

/// Commits a match in one transaction: each of its tickets, read SEARCHING at `tickets`' versions,
/// becomes `to` (PLACING, or REQUIRES_ACCEPTANCE) and leaves the pool index, and the match item is
/// created. Committing the same match twice fails on the match item or a ticket version, so a
/// replayed round writes nothing. A match of more tickets than one transaction holds is committed
/// in chunks instead: see [`pending_match`].
pub fn commit_match(
    matched: &Match,
    tickets: &[Versioned<TicketRecord>],
    to: TicketStatus,
    shards: u32,
) -> Result<Vec<Write>, PortError> {
    if tickets.len() > MAX_TICKETS_PER_COMMIT {
        return Err(PortError::invalid(format!(
            "a match of {} tickets needs a chunked commit",
            tickets.len()
        )));
    }
    let mut writes: Vec<Write> = move_into_match(matched, tickets, to, shards)?
        .into_iter()
        .map(|(write, _)| write)
        .collect();
    writes.push(match_write(matched, MatchStatus::Committed, Condition::Absent)?);
    Ok(writes)
}

/// Each ticket of `matched`, read SEARCHING at `tickets`' versions, moved to `to` and out of the
/// pool index: its conditional write, and the record it writes.
pub fn move_into_match(
    matched: &Match,
    tickets: &[Versioned<TicketRecord>],
    to: TicketStatus,
    shards: u32,
) -> Result<Vec<(Write, TicketRecord)>, PortError> {
    let wanted: std::collections::BTreeSet<&TicketId> = matched.ticket_ids().collect();
    let given: std::collections::BTreeSet<&TicketId> = tickets.iter().map(|t| &t.value.ticket.id).collect();
    if wanted != given || wanted.len() != tickets.len() {
        return Err(PortError::invalid(format!(
            "the tickets given are not those of match {}",
            matched.id
        )));
    }
    let mut moves = Vec::with_capacity(tickets.len());
    for current in tickets {
        let mut next = current.value.clone();
        next.ticket
            .move_to(to, None)
            .map_err(|e| PortError::invalid(format!("{}: {e}", next.ticket.id)))?;
        next.match_id = Some(matched.id.clone());
        next.acceptances.clear();
        moves.push((update_ticket(current, &next, shards)?, next));
    }
    Ok(moves)
}

/// The saga record of a match too large for one transaction: the match item, PENDING, created
/// before any of its tickets is moved. Its chunks of ticket moves follow, each one transaction;
/// [`settle_match`] then makes it COMMITTED. A conflict in a chunk reverts the chunks already
/// written ([`revert_move`]) and deletes the record; a commit that stopped half-way leaves the
/// record PENDING, which tells the sweeper to put its tickets back.
pub fn pending_match(matched: &Match) -> Result<Write, PortError> {
    match_write(matched, MatchStatus::Pending, Condition::Absent)
}

/// Makes a PENDING match, still at `version`, COMMITTED: every chunk of it is written.
pub fn settle_match(matched: &Match, version: u64) -> Result<Write, PortError> {
    match_write(matched, MatchStatus::Committed, Condition::Version(version))
}

/// Undoes one ticket move of a chunked commit: `moved`, written at `version`, goes back to
/// `original` (SEARCHING, in the pool index, as old as it was), unless it changed since.
pub fn revert_move(
    moved: &TicketRecord,
    version: u64,
    original: &TicketRecord,
    shards: u32,
) -> Result<Write, PortError> {
    let current = Versioned {
        value: moved.clone(),
        version,
    };
    update_ticket(&current, original, shards)
}

fn match_write(matched: &Match, status: MatchStatus, condition: Condition) -> Result<Write, PortError> {
    let key = match_key(&matched.id);
    let record = MatchRecord {
        matched: matched.clone(),
        status,
    };
    let status = match status {
        MatchStatus::Pending => "PENDING",
        MatchStatus::Committed => "COMMITTED",
    };
    // Listed on GSI1 by status and age for operators, as tickets and sessions are.
    let listed = IndexKey::new(
        format!("MATCHES#{status}"),
        format!("{}#{}", padded(matched.created_at), matched.id),
    );
    Ok(Write::put(
        Item::new(key.clone(), body(&key, &record)?)
            .with_gsi1(listed)
            .expiring_at(matched.created_at.plus(FINISHED_KEPT)),
        condition,
    ))
}

// ---- sessions ----------------------------------------------------------------------------------

/// A game session as stored. Its `Debug` shows the secret redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRecord {
    pub session_id: SessionId,
    pub match_id: MatchId,
    /// The match's queue, whose rule set bounds the placement.
    pub queue: String,
    pub status: SessionStatus,
    pub player_ids: Vec<PlayerId>,
    pub created_at: Timestamp,
    /// Signs the players' tokens and the server's reports. It lives here and on the server only:
    /// never in workflow state, events or logs.
    pub secret: SessionSecret,
    /// Past this, a placement still pending has failed (the rule set's placement timeout).
    pub placement_deadline: Timestamp,
    /// What the fleet gave for this session, once it was asked: to poll and to release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementId>,
    /// Where the players connect, once the server is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    /// Why the session finished: FAILED, ABANDONED or ENDED (its last timeline entry's detail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How many timeline entries the session has: the next entry's `seq`. Counting here, in the item
    /// every step rewrites conditionally, gives each entry a key of its own without a second read.
    #[serde(default)]
    pub timeline_len: u32,
}

/// `SESSION#<id>` / `SESSION`.
pub fn session_key(id: &SessionId) -> Key {
    Key::new(format!("SESSION#{id}"), "SESSION")
}

/// The session's item, listed on GSI1 by status and age for operators.
pub fn session_item(record: &SessionRecord) -> Result<Item, PortError> {
    let key = session_key(&record.session_id);
    let item = Item::new(key.clone(), body(&key, record)?).with_gsi1(IndexKey::new(
        format!("SESSIONS#{}", record.status),
        format!("{}#{}", padded(record.created_at), record.session_id),
    ));
    Ok(if record.status.is_terminal() {
        item.expiring_at(record.created_at.plus(FINISHED_KEPT))
    } else {
        item
    })
}

/// Creates a session, if no session of that id exists.
pub fn create_session(record: &SessionRecord) -> Result<Write, PortError> {
    Ok(Write::put(session_item(record)?, Condition::Absent))
}

/// Replaces a session read at `current` with `next`, conditional on nobody having written it since.
pub fn update_session(current: &Versioned<SessionRecord>, next: &SessionRecord) -> Result<Write, PortError> {
    Ok(Write::put(session_item(next)?, Condition::Version(current.version)))
}

/// Gives `player`'s guard to `holder`, whoever held it: a placed player's guard moves from the
/// ticket to the session, so the player stays kept to one active thing.
pub fn hold_guard(player: &PlayerId, holder: &GuardHolder) -> Result<Write, PortError> {
    let key = player_guard_key(player);
    let body = body(&key, holder)?;
    Ok(Write::put(Item::new(key, body), Condition::Any))
}

/// One step of a session's life: on AWS, where Express keeps no history, this is the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    pub at: Timestamp,
    /// Orders entries of the same millisecond.
    pub seq: u32,
    pub status: SessionStatus,
    pub execution_id: String,
    pub state: String,
    /// What happened, for the operator reading the timeline ("placed on 127.0.0.1:7777").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The partition prefix that a timeline query narrows to.
pub const TIMELINE_PREFIX: &str = "EVENT#";

/// `SESSION#<id>` / `EVENT#<ts>#<seq>`, created once: a replayed step writes nothing.
pub fn timeline_write(session: &SessionId, entry: &TimelineEntry) -> Result<Write, PortError> {
    let key = Key::new(
        format!("SESSION#{session}"),
        format!("{TIMELINE_PREFIX}{}#{:06}", padded(entry.at), entry.seq),
    );
    // Kept from its own time, so never before the session it belongs to (made before it).
    Ok(Write::put(
        Item::new(key.clone(), body(&key, entry)?).expiring_at(entry.at.plus(FINISHED_KEPT)),
        Condition::Absent,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::ExpansionSteps;
    use crate::matcher::{MatchQuality, MatchTeam};
    use crate::ticket::Player;

    fn searching(id: &str, players: &[&str], at: u64) -> TicketRecord {
        let mut ticket = Ticket::queued(
            id,
            "ranked-1v1",
            players.iter().map(|p| Player::new(*p)).collect(),
            Timestamp(at),
        );
        ticket.status = TicketStatus::Searching;
        TicketRecord::unmatched(ticket, "ranked")
    }

    fn stored(item: Item, version: u64) -> Stored {
        Stored { item, version }
    }

    fn one_v_one(tickets: &[&str]) -> Match {
        Match {
            id: "m-1".into(),
            queue: "ranked-1v1".into(),
            created_at: Timestamp(5_000),
            teams: tickets
                .iter()
                .map(|t| MatchTeam {
                    name: format!("team-{t}").into(),
                    tickets: [(*t).into()].into(),
                    players: Default::default(),
                })
                .collect(),
            region: None,
            collections: Default::default(),
            quality: MatchQuality {
                skill_spread: None,
                team_imbalance: None,
                worst_latency_ms: None,
                waits_ms: Default::default(),
                expansion_steps: ExpansionSteps::new(),
            },
        }
    }

    #[test]
    fn finished_tickets_and_matches_are_kept_two_weeks_from_their_making_and_live_ones_for_ever() {
        let kept = |item: &Item| item.expires_at.map(|at| Duration::from_millis(at.0 - 1_234));
        let mut record = searching("t-1", &["p-1"], 1_234);
        assert_eq!(kept(&ticket_item(&record, 4).unwrap()), None);
        for status in [TicketStatus::RequiresAcceptance, TicketStatus::Placing] {
            record.ticket.status = status;
            assert_eq!(kept(&ticket_item(&record, 4).unwrap()), None, "{status}");
        }
        for status in [
            TicketStatus::Completed,
            TicketStatus::Cancelled,
            TicketStatus::TimedOut,
            TicketStatus::Failed,
        ] {
            record.ticket.status = status;
            assert_eq!(kept(&ticket_item(&record, 4).unwrap()), Some(FINISHED_KEPT), "{status}");
        }
        let mut matched = one_v_one(&["t-1", "t-2"]);
        matched.created_at = Timestamp(1_234);
        let Write::Put { item, .. } = match_write(&matched, MatchStatus::Committed, Condition::Absent).unwrap() else {
            panic!("a match is put")
        };
        assert_eq!(kept(&item), Some(FINISHED_KEPT));
    }

    #[test]
    fn a_searching_ticket_is_in_its_shard_of_the_pool_in_age_order() {
        let record = searching("t-1", &["p-1"], 1_234);
        let item = ticket_item(&record, 4).unwrap();
        let shard = pool_shard(&"t-1".into(), 4);
        assert_eq!(item.key, Key::new("TICKET#t-1", "TICKET"));
        let pool = item.pool.unwrap();
        assert_eq!(pool.pk, format!("POOL#ranked-1v1#ranked#{shard}"));
        assert_eq!(pool.sk, "00000000000000001234#t-1");
        assert_eq!(item.gsi1.unwrap().pk, "TICKETS#SEARCHING");
    }

    #[test]
    fn a_ticket_that_is_not_searching_has_no_pool_keys() {
        let mut record = searching("t-1", &["p-1"], 0);
        for status in TicketStatus::ALL.into_iter().filter(|s| *s != TicketStatus::Searching) {
            record.ticket.status = status;
            assert_eq!(ticket_item(&record, 4).unwrap().pool, None, "{status}");
        }
    }

    #[test]
    fn padded_times_sort_as_numbers() {
        assert!(padded(Timestamp(999)) < padded(Timestamp(1_000)));
        assert_eq!(padded(Timestamp(u64::MAX)).len(), 20);
    }

    #[test]
    fn shards_are_stable_and_spread() {
        // Stored values: these must never change.
        assert_eq!(pool_shard(&"t-1".into(), 4), pool_shard(&"t-1".into(), 4));
        assert_eq!(pool_shard(&"anything".into(), 1), 0);
        assert_eq!(pool_shard(&"anything".into(), 0), 0, "no shards means one");
        let used: std::collections::BTreeSet<u32> = (0..64).map(|i| pool_shard(&format!("t-{i}").into(), 4)).collect();
        assert_eq!(used.len(), 4);
        assert_eq!(PoolRef::new("q", "p").shard_partitions(4).count(), 4);
    }

    #[test]
    fn admission_creates_the_ticket_and_every_players_guard_if_absent() {
        let writes = admit(&searching("t-1", &["p-1", "p-2"], 0), 4).unwrap();
        let keys: Vec<String> = writes.iter().map(|w| w.key().to_string()).collect();
        assert_eq!(
            keys,
            ["TICKET#t-1 / TICKET", "PLAYER#p-1 / ACTIVE", "PLAYER#p-2 / ACTIVE"]
        );
        assert!(writes.iter().all(|w| w.condition() == Condition::Absent));
        let Write::Put { item, .. } = &writes[1] else {
            panic!("a guard is a put")
        };
        let guard: GuardHolder = serde_json::from_value(item.body.clone()).unwrap();
        assert_eq!(guard, GuardHolder::Ticket("t-1".into()));
    }

    #[test]
    fn only_a_searching_ticket_is_admitted() {
        let mut record = searching("t-1", &["p-1"], 0);
        record.ticket.status = TicketStatus::Queued;
        assert!(matches!(admit(&record, 4), Err(PortError::Invalid(_))));
    }

    #[test]
    fn a_ticket_round_trips_through_its_item() {
        let record = searching("t-1", &["p-1"], 7);
        let item = ticket_item(&record, 4).unwrap();
        let back: Versioned<TicketRecord> = read(&stored(item, 3)).unwrap();
        assert_eq!(
            back,
            Versioned {
                value: record,
                version: 3
            }
        );
    }

    #[test]
    fn a_corrupt_body_is_a_corrupt_error_naming_the_key() {
        let item = Item::new(ticket_key(&"t-1".into()), serde_json::json!({"id": 5}));
        let err = read::<TicketRecord>(&stored(item, 1)).unwrap_err();
        assert!(
            matches!(&err, PortError::Corrupt { key, .. } if key.pk == "TICKET#t-1"),
            "{err}"
        );
    }

    #[test]
    fn committing_moves_each_ticket_out_of_the_pool_at_its_version_and_creates_the_match() {
        let a = Versioned {
            value: searching("t-a", &["p-a"], 1),
            version: 4,
        };
        let b = Versioned {
            value: searching("t-b", &["p-b"], 2),
            version: 1,
        };
        let writes = commit_match(&one_v_one(&["t-a", "t-b"]), &[a, b], TicketStatus::Placing, 4).unwrap();
        assert_eq!(writes.len(), 3);
        assert_eq!(writes[0].condition(), Condition::Version(4));
        assert_eq!(writes[1].condition(), Condition::Version(1));
        let Write::Put { item, .. } = &writes[0] else {
            panic!("a ticket update is a put")
        };
        assert_eq!(item.pool, None, "a placing ticket leaves the pool");
        let moved: TicketRecord = serde_json::from_value(item.body.clone()).unwrap();
        assert_eq!(
            (moved.ticket.status, moved.match_id),
            (TicketStatus::Placing, Some("m-1".into()))
        );
        assert_eq!(writes[2].key(), &match_key(&"m-1".into()));
        assert_eq!(writes[2].condition(), Condition::Absent);
    }

    #[test]
    fn a_match_beyond_98_tickets_needs_a_chunked_commit() {
        let ids: Vec<String> = (0..99).map(|i| format!("t-{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let tickets: Vec<_> = ids
            .iter()
            .map(|id| Versioned {
                value: searching(id, &[id.as_str()], 1),
                version: 1,
            })
            .collect();
        let err = commit_match(&one_v_one(&refs), &tickets, TicketStatus::Placing, 4).unwrap_err();
        assert!(err.to_string().contains("chunked"), "{err}");
        let writes = commit_match(&one_v_one(&refs[..98]), &tickets[..98], TicketStatus::Placing, 4).unwrap();
        assert_eq!(
            writes.len() + 1,
            MAX_TRANSACTION_OPERATIONS,
            "room for the idempotency token"
        );
    }

    #[test]
    fn a_commit_refuses_tickets_that_are_not_the_matchs_or_not_searching() {
        let a = Versioned {
            value: searching("t-a", &["p-a"], 1),
            version: 1,
        };
        let m = one_v_one(&["t-a", "t-b"]);
        assert!(commit_match(&m, std::slice::from_ref(&a), TicketStatus::Placing, 4).is_err());
        let mut b = Versioned {
            value: searching("t-b", &["p-b"], 1),
            version: 1,
        };
        b.value.ticket.status = TicketStatus::Cancelled;
        b.value.ticket.reason = Some("left".into());
        assert!(commit_match(&m, &[a, b], TicketStatus::Placing, 4).is_err());
    }

    #[test]
    fn a_lease_expires_with_its_term_and_is_taken_only_if_absent() {
        let pool = PoolRef::new("ranked-1v1", "ranked");
        let Write::Put { item, condition } =
            take_lease(&pool, "matcher-1", Timestamp(1_000), Duration::from_secs(30)).unwrap()
        else {
            panic!("taking a lease is a put")
        };
        assert_eq!(
            (item.key.pk.as_str(), item.key.sk.as_str()),
            ("POOL#ranked-1v1#ranked", "LEASE")
        );
        assert_eq!(item.expires_at, Some(Timestamp(31_000)));
        assert_eq!(condition, Condition::Absent);
        let current = read::<PoolLease>(&stored(item, 1)).unwrap();
        let renewed = PoolLease {
            next_tick_at: Some(Timestamp(9_000)),
            ..current.value.clone()
        };
        assert_eq!(
            renew_lease(&pool, &current, &renewed).unwrap().condition(),
            Condition::Version(1)
        );
        assert_eq!(release_lease(&pool, &current).condition(), Condition::Version(1));
    }

    #[test]
    fn timeline_entries_sort_by_time_then_sequence() {
        let entry = |at, seq| TimelineEntry {
            at: Timestamp(at),
            seq,
            status: SessionStatus::Placing,
            execution_id: "x".into(),
            state: "Place".into(),
            detail: None,
        };
        let key = |e: &TimelineEntry| timeline_write(&"s-1".into(), e).unwrap().key().sk.clone();
        assert!(key(&entry(999, 7)) < key(&entry(1_000, 0)));
        assert!(key(&entry(1_000, 1)) < key(&entry(1_000, 2)));
        assert!(key(&entry(5, 0)).starts_with(TIMELINE_PREFIX));
    }

    #[test]
    fn a_session_is_listed_by_status() {
        let record = SessionRecord {
            session_id: "s-1".into(),
            match_id: "m-1".into(),
            queue: "ranked-1v1".into(),
            status: SessionStatus::Active,
            player_ids: vec!["p-1".into()],
            created_at: Timestamp(3),
            secret: SessionSecret::from_random_bytes(&[9; 32]),
            placement_deadline: Timestamp(60_003),
            placement: Some(PlacementId("p-1".into())),
            endpoint: None,
            reason: None,
            timeline_len: 2,
        };
        let item = session_item(&record).unwrap();
        assert_eq!(item.key, Key::new("SESSION#s-1", "SESSION"));
        assert_eq!(item.gsi1.clone().map(|g| g.pk).as_deref(), Some("SESSIONS#ACTIVE"));
        let back: Versioned<SessionRecord> = read(&stored(item, 1)).unwrap();
        assert_eq!(back.value, record);
        assert!(
            !format!("{record:?}").contains(record.secret.expose()),
            "the secret never shows"
        );
        // Kept for ever while it lives, two weeks from its making once it has finished.
        assert_eq!(back.value.status, SessionStatus::Active);
        assert_eq!(session_item(&record).unwrap().expires_at, None);
        for status in [SessionStatus::Ended, SessionStatus::Failed, SessionStatus::Abandoned] {
            let finished = SessionRecord {
                status,
                ..record.clone()
            };
            let expires = session_item(&finished).unwrap().expires_at;
            assert_eq!(expires, Some(Timestamp(3).plus(FINISHED_KEPT)), "{status}");
        }
    }
}
