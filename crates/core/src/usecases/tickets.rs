//! A player reads or cancels a ticket.
//!
//! A COMPLETED ticket shows where to connect, with a player token for **the caller only**, minted
//! at read time from the session's secret: tokens are never stored, nor carried in workflow state,
//! and each read gets a fresh expiry.

use super::placement::session_id_for;
use super::{Settings, UseCaseError};
use crate::event::DomainEvent;
use crate::identity::player_token::{self, PlayerTokenClaims};
use crate::ids::{MatchId, PlayerId, SessionId, TicketId};
use crate::matcher::{Match, Name};
use crate::ports::store::items::{self, MatchRecord, SessionRecord, TicketRecord, Versioned};
use crate::ports::store::{Condition, Stored, Write};
use crate::ports::{Clock, Events, PortError, Store};
use crate::status::{SessionStatus, TicketStatus};
use crate::ticket::AcceptanceType;
use crate::time::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a player token read from a ticket stays valid: long enough to connect, short enough
/// that a leaked one is soon worthless. Reading the ticket again mints a new one.
pub const PLAYER_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

/// A ticket as `GET /v1/tickets/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketView {
    pub ticket_id: TicketId,
    pub queue: String,
    pub status: TicketStatus,
    pub players: Vec<PlayerId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
    pub matched: Option<MatchView>,
    /// The answers of the ticket's players to its match, while it requires acceptance.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub acceptances: BTreeMap<PlayerId, AcceptanceType>,
    /// Where the caller connects, once the ticket is COMPLETED and its session ACTIVE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionView>,
}

/// A game server's address and the caller's own token for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionView {
    pub address: String,
    pub port: u16,
    pub player_token: String,
}

/// The match a ticket is in: its session (made when it is placed, after any acceptance), and the
/// ticket's team and the region chosen, read from the match.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchView {
    pub match_id: MatchId,
    pub session_id: SessionId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<Name>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<Name>,
}

impl From<&TicketRecord> for TicketView {
    fn from(record: &TicketRecord) -> Self {
        let t = &record.ticket;
        Self {
            ticket_id: t.id.clone(),
            queue: t.queue.clone(),
            status: t.status,
            players: t.player_ids().cloned().collect(),
            reason: t.reason.clone(),
            matched: record.match_id.clone().map(|match_id| MatchView {
                session_id: session_id_for(&match_id),
                match_id,
                team: None,
                region: None,
            }),
            acceptances: record.acceptances.clone(),
            connection: None,
        }
    }
}

/// Reads `id` for `caller`. A ticket not yet admitted, and another player's ticket, are both
/// `NotFound`: the first may still be queued, the second must not be revealed.
pub async fn get<S: Store, C: Clock>(
    store: &S,
    clock: &C,
    caller: &PlayerId,
    id: &TicketId,
) -> Result<TicketView, UseCaseError> {
    let record = read_for(store, caller, id).await?.value;
    Ok(view(store, clock, caller, &record).await?)
}

/// `record` as `caller` sees it: with its team and region when it is in a match, and with the
/// caller's connection while it is COMPLETED and its session ACTIVE.
pub(crate) async fn view<S: Store, C: Clock>(
    store: &S,
    clock: &C,
    caller: &PlayerId,
    record: &TicketRecord,
) -> Result<TicketView, PortError> {
    view_in(store, clock, caller, record, None).await
}

/// [`view`], with the ticket's match when the caller has read it already.
pub(crate) async fn view_in<S: Store, C: Clock>(
    store: &S,
    clock: &C,
    caller: &PlayerId,
    record: &TicketRecord,
    read: Option<&Match>,
) -> Result<TicketView, PortError> {
    let mut view = TicketView::from(record);
    let Some(matched) = view.matched.as_mut() else {
        return Ok(view);
    };
    let stored = match read {
        Some(_) => None,
        // A match item outlives its tickets' moves; one missing (never, but for a store restored
        // in part) leaves the view its ids.
        None => match store.get(&items::match_key(&matched.match_id)).await? {
            Some(stored) => Some(items::read::<MatchRecord>(&stored)?.value.matched),
            None => None,
        },
    };
    if let Some(found) = read.or(stored.as_ref()) {
        matched.region = found.region;
        matched.team = found
            .teams
            .iter()
            .find(|team| team.tickets.contains(&record.ticket.id))
            .map(|team| team.name);
    }
    if record.ticket.status == TicketStatus::Completed {
        view.connection = connection(store, clock, caller, &matched.session_id).await?;
    }
    Ok(view)
}

/// The caller's connection to `session`, while it is ACTIVE.
async fn connection<S: Store, C: Clock>(
    store: &S,
    clock: &C,
    caller: &PlayerId,
    session: &crate::ids::SessionId,
) -> Result<Option<ConnectionView>, PortError> {
    let Some(stored) = store.get(&items::session_key(session)).await? else {
        return Ok(None);
    };
    let session: Versioned<SessionRecord> = items::read(&stored)?;
    let session = session.value;
    let Some(endpoint) = session.endpoint.filter(|_| session.status == SessionStatus::Active) else {
        return Ok(None);
    };
    let exp = clock.now().plus(PLAYER_TOKEN_TTL).as_millis() / 1_000;
    let claims = PlayerTokenClaims {
        session_id: session.session_id,
        player_id: caller.clone(),
        exp,
    };
    Ok(Some(ConnectionView {
        address: endpoint.address,
        port: endpoint.port,
        player_token: player_token::mint(&session.secret, &claims),
    }))
}

pub(crate) async fn read_for<S: Store>(
    store: &S,
    caller: &PlayerId,
    id: &TicketId,
) -> Result<Versioned<TicketRecord>, UseCaseError> {
    let stored = store.get(&items::ticket_key(id)).await?;
    owned_by(stored.as_ref(), caller, id)
}

/// Ticket `id`, as read into `stored`, if it is `caller`'s: another player's ticket is as absent
/// as one that does not exist (or is not admitted yet).
fn owned_by(
    stored: Option<&Stored>,
    caller: &PlayerId,
    id: &TicketId,
) -> Result<Versioned<TicketRecord>, UseCaseError> {
    let not_found = || UseCaseError::NotFound(format!("no ticket {id}; a ticket just created may still be queued"));
    let record: Versioned<TicketRecord> = items::read(stored.ok_or_else(not_found)?)?;
    if !record.value.ticket.player_ids().any(|p| p == caller) {
        return Err(not_found());
    }
    Ok(record)
}

/// What a cancel did.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancel {
    /// The ticket, now CANCELLED (or CANCELLED already).
    Done(Box<TicketView>),
    /// No ticket `id` is admitted yet, so it may still be queued: the cancel is recorded, and if
    /// the caller's ticket of that id is admitted within [`items::EARLY_CANCEL_KEPT`], it is
    /// recorded CANCELLED instead.
    WhenAdmitted,
}

/// Cancels `id` for `caller`. Cancelling a cancelled ticket answers it unchanged; a ticket being
/// placed, or finished otherwise, cannot be cancelled; one not admitted yet is cancelled when it is.
pub async fn cancel<S: Store, E: Events, C: Clock>(
    store: &S,
    events: &E,
    clock: &C,
    settings: &Settings,
    caller: &PlayerId,
    id: &TicketId,
) -> Result<Cancel, UseCaseError> {
    // A round may move the ticket between our read and our write; the write is conditional on the
    // version read, so re-read and decide again.
    for _ in 0..5 {
        let current = match store.get(&items::ticket_key(id)).await? {
            Some(stored) => owned_by(Some(&stored), caller, id)?,
            None => {
                let early = items::EarlyCancel {
                    player: caller.clone(),
                    at: clock.now(),
                };
                store
                    .transact_write(vec![items::early_cancel(id, &early)?], None)
                    .await?;
                return Ok(Cancel::WhenAdmitted);
            }
        };
        let status = current.value.ticket.status;
        match status {
            TicketStatus::Cancelled => {
                return Ok(Cancel::Done(Box::new(
                    view(store, clock, caller, &current.value).await?,
                )))
            }
            TicketStatus::Placing => {
                return Err(UseCaseError::Conflict(format!(
                    "ticket {id} is PLACING: its server is being started, and it cannot be cancelled"
                )))
            }
            s if s.is_terminal() => return Err(UseCaseError::Conflict(format!("ticket {id} is already {s}"))),
            _ => {}
        }
        let reason = format!("cancelled by {caller}");
        let now = clock.now();
        if finish(store, events, &current, TicketStatus::Cancelled, reason, now, settings).await? {
            let after = read_for(store, caller, id).await?;
            return Ok(Cancel::Done(Box::new(view(store, clock, caller, &after.value).await?)));
        }
    }
    Err(UseCaseError::Port(PortError::transient(format!(
        "ticket {id} kept changing while being cancelled"
    ))))
}

/// Moves a ticket read at `current` to a terminal status with `reason`, and frees its players'
/// guards, in one transaction, noting `at` as when it finished. False when the ticket moved since it
/// was read.
pub(crate) async fn finish<S: Store, E: Events>(
    store: &S,
    events: &E,
    current: &Versioned<TicketRecord>,
    to: TicketStatus,
    reason: String,
    at: Timestamp,
    settings: &Settings,
) -> Result<bool, PortError> {
    let mut next = current.value.clone();
    next.finished_at = Some(at);
    next.ticket
        .move_to(to, Some(reason))
        .map_err(|e| PortError::invalid(e.to_string()))?;
    let mut writes = vec![items::update_ticket(current, &next, settings.pool_shards)?];
    for player in next.ticket.player_ids() {
        writes.push(Write::delete(items::player_guard_key(player), Condition::Any));
    }
    match store.transact_write(writes, None).await {
        Ok(()) => {
            if let Some(event) = DomainEvent::for_ticket_status(&next.ticket) {
                events.publish(event).await?;
            }
            Ok(true)
        }
        Err(PortError::ConditionFailed { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}
