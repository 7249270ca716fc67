//! Acceptance: under a rule set with `acceptance.required`, every player of a match accepts it
//! before a server is placed for it.
//!
//! - A round commits such a match with its tickets REQUIRES_ACCEPTANCE.
//! - Each player answers for themselves ([`Acceptances::respond`]): ACCEPT or REJECT, written on their own
//!   ticket, conditional on its version, so two players of a party never overwrite each other.
//! - The `session-placement` workflow waits and polls ([`Placements::poll_acceptance`]) until the
//!   acceptance is decided:
//!   - every player accepted: the tickets become PLACING and the placement goes on;
//!   - someone rejected, or a ticket of the match was cancelled, or the acceptance timed out: the
//!     workflow's Catch path ([`Placements::fail`]) cancels the tickets of those who rejected or
//!     never answered and requeues the others at the front of their pool, as FlexMatch does.
//!
//! The window is the rule set's `acceptance.timeoutSeconds` from the match's creation. An answer
//! after it is refused, so that the poll and the players agree on what happened.

use super::placement::Placements;
use super::tickets::{self, TicketView};
use super::{Queues, Settings, UseCaseError};
use crate::event::{AcceptanceOutcome, DomainEvent};
use crate::ids::{MatchId, PlayerId, TicketId};
use crate::matcher::Match;
use crate::ports::store::items::{self, MatchRecord, TicketRecord, Versioned};
use crate::ports::store::{Write, MAX_TRANSACTION_OPERATIONS};
use crate::ports::{Clock, Events, Fleet, PortError, Store, TicketQueue};
use crate::ruleset::RuleSet;
use crate::status::TicketStatus;
use crate::ticket::AcceptanceType;
use crate::time::Timestamp;
use serde::Serialize;
use std::time::Duration;

/// When the acceptance of `matched` closes under `rule_set`.
pub fn acceptance_deadline(matched: &Match, rule_set: &RuleSet) -> Timestamp {
    let window = Duration::from_secs(u64::from(rule_set.queue.acceptance.timeout_seconds));
    matched.created_at.plus(window)
}

/// Where the acceptance of a match is, as the workflow's Choice reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AcceptanceState {
    /// Still waiting for an answer.
    Pending,
    Accepted,
    Rejected,
    TimedOut,
}

/// What polling the acceptance found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptanceProgress {
    pub match_id: MatchId,
    pub acceptance: AcceptanceState,
    /// Why the match will not be placed, when it was rejected or timed out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Takes the players' answers.
#[derive(Debug)]
pub struct Acceptances<'a, S, E, C> {
    pub store: &'a S,
    pub events: &'a E,
    pub clock: &'a C,
    pub queues: &'a Queues,
    pub settings: &'a Settings,
}

impl<S: Store, E: Events, C: Clock> Acceptances<'_, S, E, C> {
    /// `caller` answers the match of ticket `id`. Answering again the same way answers the ticket
    /// unchanged (a retried request); changing an answer, answering for a ticket that is not
    /// REQUIRES_ACCEPTANCE, or answering after the window closed is a `Conflict`. Another player's
    /// ticket is `NotFound`, as everywhere.
    pub async fn respond(
        &self,
        caller: &PlayerId,
        id: &TicketId,
        answer: AcceptanceType,
    ) -> Result<TicketView, UseCaseError> {
        let (store, events, clock, queues, settings) =
            (self.store, self.events, self.clock, self.queues, self.settings);
        for _ in 0..5 {
            let current = tickets::read_for(store, caller, id).await?;
            let record = &current.value;
            let status = record.ticket.status;
            match record.acceptances.get(caller) {
                Some(given) if *given == answer => return Ok(tickets::view(store, clock, caller, record).await?),
                Some(given) => {
                    return Err(UseCaseError::Conflict(format!(
                        "{caller} answered {} to the match of ticket {id} already; an answer is final",
                        given.as_str()
                    )))
                }
                None => {}
            }
            if status != TicketStatus::RequiresAcceptance {
                return Err(UseCaseError::Conflict(format!(
                    "ticket {id} is {status}: only a REQUIRES_ACCEPTANCE ticket's match is accepted or rejected"
                )));
            }
            let Some(match_id) = record.match_id.clone() else {
                return Err(UseCaseError::Port(PortError::invalid(format!(
                    "ticket {id} is REQUIRES_ACCEPTANCE without a match"
                ))));
            };
            let matched = read_match(store, &match_id).await?;
            let rule_set = queues.get(&matched.queue).ok_or_else(|| {
                UseCaseError::Port(PortError::invalid(format!(
                    "match {match_id} is of queue `{}`, not served here",
                    matched.queue
                )))
            })?;
            let deadline = acceptance_deadline(&matched, rule_set);
            if clock.now() >= deadline {
                return Err(UseCaseError::Conflict(format!(
                    "the acceptance of match {match_id} closed {} s after it was made",
                    rule_set.queue.acceptance.timeout_seconds
                )));
            }
            let mut next = record.clone();
            next.acceptances.insert(caller.clone(), answer);
            let write = items::update_ticket(&current, &next, settings.pool_shards)?;
            match store.transact_write(vec![write], None).await {
                Ok(()) => {
                    events
                        .publish(DomainEvent::AcceptMatch {
                            ticket_id: id.clone(),
                            match_id,
                            player_id: caller.clone(),
                            accepted: answer == AcceptanceType::Accept,
                            player_ids: matched.player_ids().cloned().collect(),
                        })
                        .await?;
                    return Ok(tickets::view_in(store, clock, caller, &next, Some(&matched)).await?);
                }
                // Another player of the ticket answered, or a poll moved it: read again and decide again.
                Err(PortError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(UseCaseError::Port(PortError::transient(format!(
            "ticket {id} kept changing while its match was being answered"
        ))))
    }
}

async fn read_match<S: Store>(store: &S, id: &MatchId) -> Result<Match, PortError> {
    let stored = store
        .get(&items::match_key(id))
        .await?
        .ok_or_else(|| PortError::NotFound(format!("no match {id}")))?;
    let record: Versioned<MatchRecord> = items::read(&stored)?;
    Ok(record.value.matched)
}

/// How a ticket of a match whose acceptance failed is treated: cancelled when one of its players
/// rejected the match, or never answered before the window closed; requeued otherwise.
pub(crate) fn cancellation_reason(record: &TicketRecord, match_id: &MatchId, window_closed: bool) -> Option<String> {
    if let Some(player) = record.rejected_by() {
        return Some(format!("{player} rejected match {match_id}"));
    }
    if window_closed && !record.all_accepted() {
        let silent: Vec<&str> = record
            .ticket
            .player_ids()
            .filter(|p| !record.acceptances.contains_key(*p))
            .map(PlayerId::as_str)
            .collect();
        return Some(format!("{} did not accept match {match_id} in time", silent.join(", ")));
    }
    None
}

impl<S: Store, Q: TicketQueue, F: Fleet, E: Events, C: Clock> Placements<'_, S, Q, F, E, C> {
    /// Where the acceptance of `match_id` is. Once every player accepted, the tickets become
    /// PLACING here (idempotently: a ticket PLACING in this match stays so). Decides nothing twice:
    /// an accepted match polled again is `Accepted`.
    pub async fn poll_acceptance(&self, match_id: &MatchId) -> Result<AcceptanceProgress, PortError> {
        let matched = self.read_match(match_id).await?;
        let rule_set = self.rule_set_of(&matched)?;
        let deadline = acceptance_deadline(&matched, rule_set);
        let now = self.clock.now();
        let mut tickets = Vec::new();
        for id in matched.ticket_ids() {
            tickets.push(self.read_ticket(id).await?);
        }
        let progress = |acceptance, reason| AcceptanceProgress {
            match_id: match_id.clone(),
            acceptance,
            reason,
        };

        let ours = |t: &Versioned<TicketRecord>| t.value.match_id.as_ref() == Some(match_id);
        if let Some(gone) = tickets.iter().find(|t| {
            !ours(t)
                || !matches!(
                    t.value.ticket.status,
                    TicketStatus::RequiresAcceptance | TicketStatus::Placing
                )
        }) {
            let t = &gone.value.ticket;
            let reason = format!("ticket {} left match {match_id}: it is {}", t.id, t.status);
            return self.decided(&matched, AcceptanceState::Rejected, reason).await;
        }
        if tickets.iter().all(|t| t.value.ticket.status == TicketStatus::Placing) {
            return Ok(progress(AcceptanceState::Accepted, None));
        }
        if let Some(reason) = tickets
            .iter()
            .find_map(|t| t.value.rejected_by().map(|p| format!("{p} rejected match {match_id}")))
        {
            return self.decided(&matched, AcceptanceState::Rejected, reason).await;
        }
        if tickets.iter().all(|t| t.value.all_accepted()) {
            self.make_placing(&tickets).await?;
            self.publish_completed(&matched, AcceptanceOutcome::Accepted, None)
                .await?;
            return Ok(progress(AcceptanceState::Accepted, None));
        }
        if now >= deadline {
            let silent: Vec<String> = tickets
                .iter()
                .flat_map(|t| {
                    t.value
                        .ticket
                        .player_ids()
                        .filter(|p| !t.value.acceptances.contains_key(*p))
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                })
                .collect();
            let reason = format!(
                "{} did not accept match {match_id} within {} s",
                silent.join(", "),
                rule_set.queue.acceptance.timeout_seconds
            );
            return self.decided(&matched, AcceptanceState::TimedOut, reason).await;
        }
        Ok(progress(AcceptanceState::Pending, None))
    }

    async fn decided(
        &self,
        matched: &Match,
        acceptance: AcceptanceState,
        reason: String,
    ) -> Result<AcceptanceProgress, PortError> {
        let outcome = match acceptance {
            AcceptanceState::TimedOut => AcceptanceOutcome::TimedOut,
            _ => AcceptanceOutcome::Rejected,
        };
        self.publish_completed(matched, outcome, Some(reason.clone())).await?;
        Ok(AcceptanceProgress {
            match_id: matched.id.clone(),
            acceptance,
            reason: Some(reason),
        })
    }

    async fn publish_completed(
        &self,
        matched: &Match,
        acceptance: AcceptanceOutcome,
        reason: Option<String>,
    ) -> Result<(), PortError> {
        self.events
            .publish(DomainEvent::AcceptMatchCompleted {
                match_id: matched.id.clone(),
                acceptance,
                player_ids: matched.player_ids().cloned().collect(),
                reason,
            })
            .await
    }

    /// Moves every accepted ticket still REQUIRES_ACCEPTANCE to PLACING, in transactions of at most
    /// 100. A ticket that changed meanwhile fails the chunk as `Transient`: the workflow polls again
    /// and decides on what it then reads.
    async fn make_placing(&self, tickets: &[Versioned<TicketRecord>]) -> Result<(), PortError> {
        let mut writes = Vec::new();
        for current in tickets
            .iter()
            .filter(|t| t.value.ticket.status == TicketStatus::RequiresAcceptance)
        {
            let mut next = current.value.clone();
            next.ticket
                .move_to(TicketStatus::Placing, None)
                .map_err(|e| PortError::invalid(format!("{}: {e}", next.ticket.id)))?;
            writes.push(items::update_ticket(current, &next, self.settings.pool_shards)?);
        }
        let chunks: Vec<Vec<Write>> = writes
            .chunks(MAX_TRANSACTION_OPERATIONS)
            .map(<[Write]>::to_vec)
            .collect();
        for chunk in chunks {
            match self.store.transact_write(chunk, None).await {
                Ok(()) => {}
                Err(PortError::ConditionFailed { key, .. }) => {
                    return Err(PortError::transient(format!(
                        "{key} changed while its match was being accepted"
                    )))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
