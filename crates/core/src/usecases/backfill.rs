//! Backfill: a running session with open slots gets players from its pool before new matches form.
//!
//! 1. A game server reports `playerLeft` (signed, like every report). The session's roster item,
//!    `SESSION#<id>` / `BACKFILL`, records the player as gone and the slot as open. It is made on the
//!    first departure from the session's match and its tickets, so it holds the attributes and
//!    latencies of the players still seated: what the rules are checked against.
//! 2. The roster is *listed* for backfill on GSI1 (`BACKFILL#<queue>#<partition>`, oldest opening
//!    first) while it has open slots and the queue's `backfillMode` allows it: AUTOMATIC always,
//!    MANUAL once the server asked with a `backfill` report (FlexMatch's StartMatchBackfill). A
//!    pool tick is sent so the pool's next round comes at once.
//! 3. Each round of the pool serves its listed rosters first ([`Backfills::serve`]): the matcher's
//!    [`backfill::fill`] picks waiting tickets that fit under the same rules, and one transaction,
//!    conditional on everything read, completes them (SEARCHING → PLACING → COMPLETED, in the
//!    session's match, so reading the ticket mints a player token for the session), gives their
//!    players' guards to the session, adds them to the session, its match (the roster ratings read)
//!    and the roster item, and appends a timeline entry. A ticket that moved meanwhile fails the
//!    transaction whole: nothing is booked twice, and the ticket stays for the round's matcher.
//!
//! The game server learns of a backfilled player only when the player presents a valid token.

use super::Settings;
use crate::event::DomainEvent;
use crate::ids::{MatchId, PlayerId, SessionId, TicketId};
use crate::matcher::backfill::{self, OpenSession, SeatedTeam};
use crate::ports::store::items::{
    self, GuardHolder, MatchRecord, PoolRef, SessionRecord, TicketRecord, TimelineEntry, Versioned,
};
use crate::ports::store::{
    Condition, Index, IndexKey, Item, Key, Query, Write, MAX_PAGE_ITEMS, MAX_TRANSACTION_OPERATIONS,
};
use crate::ports::{Clock, Events, PortError, Store};
use crate::ruleset::{BackfillMode, RuleSet};
use crate::status::{SessionStatus, TicketStatus};
use crate::ticket::{Player, Ticket};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How often a write is tried again when someone else wrote the roster first.
const ATTEMPTS: usize = 5;

/// The timeline's name for what the matcher does to a session.
pub const BACKFILL_STATE: &str = "Backfill";

/// A session's roster for backfill: who is seated, who left, which slots are open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillRoster {
    pub session_id: SessionId,
    pub match_id: MatchId,
    pub queue: String,
    /// The pool partition of the session's tickets: backfill draws from this pool only.
    pub partition: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub collections: BTreeMap<String, Vec<String>>,
    /// Every team slot, in the match's order.
    pub teams: Vec<SeatedTeam>,
    /// Players who left and have not come back, in order, with the team slot they left: a second
    /// report of the same departure changes nothing, and a return finds its slot.
    #[serde(default)]
    pub left: Vec<Departure>,
    /// The queue's mode when the roster was made.
    pub automatic: bool,
    /// MANUAL: the game server asked for backfill.
    #[serde(default)]
    pub requested: bool,
    /// When the slots now open began to open; orders the pool's rosters, oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<Timestamp>,
    /// The session is over: nothing is backfilled into it any more.
    #[serde(default)]
    pub closed: bool,
}

/// A player who left a running session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Departure {
    pub player: Player,
    /// The index of the team slot they left.
    pub team: usize,
}

impl BackfillRoster {
    pub fn open_slots(&self) -> u32 {
        self.teams.iter().map(|t| t.open).sum()
    }

    /// Whether the pool's rounds should fill it.
    pub fn listed(&self) -> bool {
        !self.closed && self.open_slots() > 0 && (self.automatic || self.requested)
    }

    pub fn pool(&self) -> PoolRef {
        PoolRef::new(self.queue.clone(), self.partition.clone())
    }
}

/// `SESSION#<id>` / `BACKFILL`.
pub fn roster_key(session: &SessionId) -> Key {
    Key::new(format!("SESSION#{session}"), "BACKFILL")
}

/// The GSI1 partition listing a pool's rosters with open slots.
pub fn listing_partition(pool: &PoolRef) -> String {
    format!("BACKFILL#{}#{}", pool.queue, pool.partition)
}

fn roster_item(roster: &BackfillRoster) -> Result<Item, PortError> {
    let key = roster_key(&roster.session_id);
    let mut item = Item::new(key.clone(), items::body(&key, roster)?);
    if roster.listed() {
        let opened = roster.opened_at.map(items::padded).unwrap_or_default();
        item = item.with_gsi1(IndexKey::new(
            listing_partition(&roster.pool()),
            format!("{opened}#{}", roster.session_id),
        ));
    }
    Ok(item)
}

fn roster_write(roster: &BackfillRoster, read: Option<u64>) -> Result<Write, PortError> {
    let condition = read.map_or(Condition::Absent, Condition::Version);
    Ok(Write::put(roster_item(roster)?, condition))
}

/// Why a departure or a request for backfill was refused.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("player {player} is not seated in session {session}")]
    NotSeated { player: PlayerId, session: SessionId },
    #[error("player {player}'s slot in session {session} was backfilled while they were away")]
    SlotTaken { player: PlayerId, session: SessionId },
    #[error(transparent)]
    Port(#[from] PortError),
}

/// What a departure or a request did to the roster.
#[derive(Debug, Clone, PartialEq)]
pub struct RosterChange {
    /// The roster is listed for backfill now: the pool should run a round.
    pub listed: Option<PoolRef>,
}

/// One session's open slots filled in a round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Backfilled {
    pub session_id: SessionId,
    /// The tickets completed into the session.
    pub tickets: Vec<TicketId>,
}

/// Backfill's use cases.
#[derive(Debug)]
pub struct Backfills<'a, S, E, C> {
    pub store: &'a S,
    pub events: &'a E,
    pub clock: &'a C,
    pub settings: &'a Settings,
}

impl<S: Store, E: Events, C: Clock> Backfills<'_, S, E, C> {
    /// Records that `player` left the ACTIVE `session`: their slot opens. Idempotent.
    pub async fn player_left(
        &self,
        session: &SessionRecord,
        player: &PlayerId,
        rule_set: &RuleSet,
    ) -> Result<RosterChange, BackfillError> {
        self.change_roster(session, rule_set, |roster| {
            if roster.left.iter().any(|d| &d.player.id == player) {
                return Ok(false);
            }
            // The team slot and the seat in it, found in one pass.
            let seat = roster.teams.iter().enumerate().find_map(|(team, seated)| {
                let at = seated.players.iter().position(|p| &p.id == player)?;
                Some((team, at))
            });
            let Some((team, at)) = seat else {
                return Err(BackfillError::NotSeated {
                    player: player.clone(),
                    session: session.session_id.clone(),
                });
            };
            let seated = &mut roster.teams[team];
            let gone = seated.players.remove(at);
            seated.open += 1;
            roster.left.push(Departure { player: gone, team });
            Ok(true)
        })
        .await
    }

    /// Records that `player`, who left, is back in their slot: it is no longer open. Idempotent; a
    /// conflict when backfill filled the slot meanwhile (the game server then turns them away).
    pub async fn player_returned(
        &self,
        session: &SessionRecord,
        player: &PlayerId,
        rule_set: &RuleSet,
    ) -> Result<RosterChange, BackfillError> {
        self.change_roster(session, rule_set, |roster| {
            let Some(at) = roster.left.iter().position(|d| &d.player.id == player) else {
                // Never left, or back already.
                return Ok(false);
            };
            let team = roster.left[at].team;
            let Some(seated) = roster.teams.get_mut(team).filter(|t| t.open > 0) else {
                return Err(BackfillError::SlotTaken {
                    player: player.clone(),
                    session: session.session_id.clone(),
                });
            };
            let back = roster.left.remove(at);
            seated.open -= 1;
            seated.players.push(back.player);
            Ok(true)
        })
        .await
    }

    /// The game server asks for its open slots to be filled (what MANUAL waits for). Idempotent.
    pub async fn request(&self, session: &SessionRecord, rule_set: &RuleSet) -> Result<RosterChange, BackfillError> {
        self.change_roster(session, rule_set, |roster| {
            Ok(!std::mem::replace(&mut roster.requested, true))
        })
        .await
    }

    async fn change_roster(
        &self,
        session: &SessionRecord,
        rule_set: &RuleSet,
        change: impl Fn(&mut BackfillRoster) -> Result<bool, BackfillError>,
    ) -> Result<RosterChange, BackfillError> {
        for _ in 0..ATTEMPTS {
            let (mut roster, version) = match self.read_roster(&session.session_id).await? {
                Some(read) => (read.value, Some(read.version)),
                None => (self.roster_of(session, rule_set).await?, None),
            };
            let was_open = roster.open_slots() > 0;
            if !change(&mut roster)? && version.is_some() {
                return Ok(RosterChange { listed: None });
            }
            if !was_open && roster.open_slots() > 0 {
                roster.opened_at = Some(self.clock.now());
            }
            if roster.open_slots() == 0 {
                roster.opened_at = None;
            }
            match self
                .store
                .transact_write(vec![roster_write(&roster, version)?], None)
                .await
            {
                Ok(()) => {
                    return Ok(RosterChange {
                        listed: roster.listed().then(|| roster.pool()),
                    })
                }
                Err(PortError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(PortError::transient(format!("the roster of session {} kept changing", session.session_id)).into())
    }

    /// The roster of a session nobody left yet: its match's teams, with what each ticket carried.
    async fn roster_of(&self, session: &SessionRecord, rule_set: &RuleSet) -> Result<BackfillRoster, PortError> {
        let stored = self
            .store
            .get(&items::match_key(&session.match_id))
            .await?
            .ok_or_else(|| PortError::NotFound(format!("no match {}", session.match_id)))?;
        let matched = items::read::<MatchRecord>(&stored)?.value.matched;
        let mut partition = None;
        let mut teams = Vec::with_capacity(matched.teams.len());
        for team in &matched.teams {
            let mut players = Vec::with_capacity(team.players.len());
            for ticket_id in &team.tickets {
                let record = self.read_ticket(ticket_id).await?.value;
                partition.get_or_insert_with(|| record.partition.clone());
                players.extend(
                    record
                        .ticket
                        .players
                        .into_iter()
                        .filter(|p| team.players.contains(&p.id)),
                );
            }
            teams.push(SeatedTeam {
                name: team.name.to_string(),
                players,
                open: 0,
            });
        }
        Ok(BackfillRoster {
            session_id: session.session_id.clone(),
            match_id: session.match_id.clone(),
            queue: session.queue.clone(),
            partition: partition.ok_or_else(|| PortError::invalid(format!("match {} has no tickets", matched.id)))?,
            region: matched.region.as_deref().map(str::to_owned),
            collections: matched.collections.clone(),
            teams,
            left: Vec::new(),
            automatic: rule_set.queue.backfill_mode == BackfillMode::Automatic,
            requested: false,
            opened_at: None,
            closed: false,
        })
    }

    /// Fills the open slots of `pool`'s listed sessions from `waiting`, oldest opening first, and
    /// takes the tickets it completed out of `waiting`. Runs under the pool's lease, before the
    /// matcher forms new matches from what is left.
    pub async fn serve(
        &self,
        pool: &PoolRef,
        rule_set: &RuleSet,
        waiting: &mut BTreeMap<TicketId, Versioned<TicketRecord>>,
        holder: &str,
    ) -> Result<Vec<Backfilled>, PortError> {
        let mut served = Vec::new();
        let mut after = None;
        let mut listed = Vec::new();
        loop {
            let page = self
                .store
                .query(Query::new(Index::Gsi1, listing_partition(pool), MAX_PAGE_ITEMS).after(after))
                .await?;
            for stored in &page.items {
                listed.push(items::read::<BackfillRoster>(stored)?.value.session_id);
            }
            match page.next {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        for session_id in listed {
            if waiting.is_empty() {
                break;
            }
            if let Some(done) = self.serve_one(&session_id, rule_set, waiting, holder).await? {
                served.push(done);
            }
        }
        Ok(served)
    }

    async fn serve_one(
        &self,
        session_id: &SessionId,
        rule_set: &RuleSet,
        waiting: &mut BTreeMap<TicketId, Versioned<TicketRecord>>,
        holder: &str,
    ) -> Result<Option<Backfilled>, PortError> {
        // The listing is eventually consistent; the item itself is not.
        let Some(roster) = self.read_roster(session_id).await? else {
            return Ok(None);
        };
        if !roster.value.listed() {
            return Ok(None);
        }
        let Some(session) = self.read_session(session_id).await? else {
            return Ok(None);
        };
        let Some(endpoint) = session
            .value
            .endpoint
            .clone()
            .filter(|_| session.value.status == SessionStatus::Active)
        else {
            // Over (or never placed): nothing is backfilled into it any more.
            let mut closed = roster.value.clone();
            closed.closed = true;
            match self
                .store
                .transact_write(vec![roster_write(&closed, Some(roster.version))?], None)
                .await
            {
                Ok(()) | Err(PortError::ConditionFailed { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
        };
        let now = self.clock.now();
        let seated: Vec<SeatedTeam> = roster
            .value
            .teams
            .iter()
            .map(|t| SeatedTeam {
                players: t.players.iter().map(|p| self.as_matched(p)).collect(),
                ..t.clone()
            })
            .collect();
        let pool: Vec<Ticket> = waiting
            .values()
            .map(|t| self.as_matched_ticket(&t.value.ticket))
            .collect();
        let open = OpenSession {
            session: session_id.as_str(),
            teams: &seated,
            region: roster.value.region.as_deref(),
            collections: &roster.value.collections,
        };
        let Some(fill) = backfill::fill(open, &pool, rule_set, now) else {
            return Ok(None);
        };

        // One transaction: the tickets, their players' guards, the session, its match, the roster.
        let guard = GuardHolder::Session(session_id.clone());
        let reason = format!(
            "backfilled into session {session_id} on {}:{}",
            endpoint.address, endpoint.port
        );
        let mut writes = Vec::new();
        let mut completed: Vec<TicketRecord> = Vec::new();
        let mut next_roster = roster.value.clone();
        let mut next_session = session.value.clone();
        let match_stored = self
            .store
            .get(&items::match_key(&session.value.match_id))
            .await?
            .ok_or_else(|| PortError::NotFound(format!("no match {}", session.value.match_id)))?;
        let match_read: Versioned<MatchRecord> = items::read(&match_stored)?;
        let mut next_match = match_read.value.clone();
        for (team, tickets) in fill.teams.iter().enumerate() {
            for ticket_id in tickets {
                let current = waiting
                    .get(ticket_id)
                    .ok_or_else(|| PortError::invalid(format!("backfill picked {ticket_id}, which is not waiting")))?;
                let mut next = current.value.clone();
                for to in [TicketStatus::Placing, TicketStatus::Completed] {
                    let why = (to == TicketStatus::Completed).then(|| reason.clone());
                    next.ticket
                        .move_to(to, why)
                        .map_err(|e| PortError::invalid(format!("{ticket_id}: {e}")))?;
                }
                next.match_id = Some(session.value.match_id.clone());
                writes.push(items::update_ticket(current, &next, self.settings.pool_shards)?);
                for player in &next.ticket.players {
                    writes.push(items::hold_guard(&player.id, &guard)?);
                    next_session.player_ids.push(player.id.clone());
                }
                let seated = &mut next_roster.teams[team];
                seated.players.extend(next.ticket.players.iter().cloned());
                seated.open = seated.open.saturating_sub(next.ticket.players.len() as u32);
                if let Some(slot) = next_match.matched.teams.iter_mut().find(|t| *t.name == *seated.name) {
                    slot.tickets.push(ticket_id.clone());
                    slot.players.extend(next.ticket.players.iter().map(|p| p.id.clone()));
                }
                completed.push(next);
            }
        }
        if next_roster.open_slots() == 0 {
            next_roster.opened_at = None;
        }
        let players: Vec<String> = completed
            .iter()
            .flat_map(|t| t.ticket.players.iter().map(|p| p.id.to_string()))
            .collect();
        let entry = TimelineEntry {
            at: now,
            seq: session.value.timeline_len,
            status: SessionStatus::Active,
            execution_id: holder.to_owned(),
            state: BACKFILL_STATE.to_owned(),
            detail: Some(format!("backfilled {} into open slots", players.join(", "))),
        };
        next_session.timeline_len = session.value.timeline_len.saturating_add(1);
        writes.push(items::update_session(&session, &next_session)?);
        writes.push(items::timeline_write(session_id, &entry)?);
        let match_key = items::match_key(&session.value.match_id);
        writes.push(Write::put(
            Item::new(match_key.clone(), items::body(&match_key, &next_match)?),
            Condition::Version(match_read.version),
        ));
        writes.push(roster_write(&next_roster, Some(roster.version))?);
        if writes.len() > MAX_TRANSACTION_OPERATIONS {
            // More players than one transaction holds: leave these slots to smaller tickets.
            return Ok(None);
        }
        match self.store.transact_write(writes, None).await {
            Ok(()) => {}
            // A ticket, the session or the roster moved since it was read: the next round sees.
            Err(PortError::ConditionFailed { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut tickets = Vec::with_capacity(completed.len());
        for record in completed {
            waiting.remove(&record.ticket.id);
            let mut placing = record.ticket.clone();
            placing.status = TicketStatus::Placing;
            placing.reason = None;
            for ticket in [&placing, &record.ticket] {
                if let Some(event) = DomainEvent::for_ticket_status(ticket) {
                    self.events.publish(event).await?;
                }
            }
            tickets.push(record.ticket.id);
        }
        Ok(Some(Backfilled {
            session_id: session_id.clone(),
            tickets,
        }))
    }

    /// A player as the matcher sees them (see [`Settings::as_matched`]), as the round sees tickets.
    fn as_matched(&self, player: &Player) -> Player {
        let mut player = player.clone();
        self.settings.as_matched(&mut player);
        player
    }

    fn as_matched_ticket(&self, ticket: &Ticket) -> Ticket {
        let mut ticket = ticket.clone();
        ticket.players = ticket.players.iter().map(|p| self.as_matched(p)).collect();
        ticket
    }

    async fn read_roster(&self, session: &SessionId) -> Result<Option<Versioned<BackfillRoster>>, PortError> {
        match self.store.get(&roster_key(session)).await? {
            Some(stored) => Ok(Some(items::read(&stored)?)),
            None => Ok(None),
        }
    }

    async fn read_session(&self, session: &SessionId) -> Result<Option<Versioned<SessionRecord>>, PortError> {
        match self.store.get(&items::session_key(session)).await? {
            Some(stored) => Ok(Some(items::read(&stored)?)),
            None => Ok(None),
        }
    }

    async fn read_ticket(&self, id: &TicketId) -> Result<Versioned<TicketRecord>, PortError> {
        let stored = self
            .store
            .get(&items::ticket_key(id))
            .await?
            .ok_or_else(|| PortError::NotFound(format!("no ticket {id}")))?;
        items::read(&stored)
    }
}
