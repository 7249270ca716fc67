//! Admission: a queued ticket enters its pool, or fails with the reason.
//!
//! The edge checked the body's shape; admission checks what only the service knows: the queue's
//! rule set, the party's consent, and that no player already has an active ticket or session. It
//! writes the ticket and its players' guards in one conditional transaction, so a duplicate delivery
//! finds the ticket there and changes nothing (invariant 4), and a player can never hold two active
//! tickets (invariant 2).
//!
//! A player who leaves out the rule set's skill attribute is given their rating's conservative
//! estimate in the queue (DESIGN.md "Ratings"), each party member their own; a player never rated
//! takes the rule set's default, as before.

use super::messages::TicketMessage;
use super::ratings::rating_in;
use super::{pool_partition, PartyTokens, Queues, Settings};
use crate::event::DomainEvent;
use crate::ids::PlayerId;
use crate::ports::store::items::{self, PoolRef, TicketRecord};
use crate::ports::store::{Condition, Write};
use crate::ports::{Clock, Events, PortError, Store};
use crate::status::TicketStatus;
use crate::ticket::{Player, Ticket};
use crate::ticket_request::TicketRequest;
use std::collections::BTreeMap;

/// What admitting a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// The ticket is SEARCHING in this pool: run its round.
    Searching(PoolRef),
    /// The ticket was already admitted (or failed) by an earlier delivery: nothing changed.
    Duplicate,
    /// The ticket is FAILED, for this reason.
    Failed(String),
    /// Its caller cancelled it while it was queued: it is CANCELLED.
    Cancelled,
}

/// Admits tickets into their pools.
#[derive(Debug)]
pub struct Admission<'a, S, E, C, P> {
    pub store: &'a S,
    pub events: &'a E,
    pub clock: &'a C,
    pub party_tokens: &'a P,
    pub queues: &'a Queues,
    pub settings: &'a Settings,
}

impl<S: Store, E: Events, C: Clock, P: PartyTokens> Admission<'_, S, E, C, P> {
    /// Admits one ticket message. An `Err` is a failure of the ports, to be retried; a ticket
    /// that cannot be admitted is `Ok(Admitted::Failed)`, and stays FAILED.
    pub async fn admit(&self, message: &TicketMessage) -> Result<Admitted, PortError> {
        if let Some(cancel) = self.early_cancel(message).await? {
            let reason = format!("cancelled by {} before it was admitted", cancel.player);
            return self.record_unadmitted(message, TicketStatus::Cancelled, reason).await;
        }
        let ratings = self.ratings_for_missing_skill(message).await?;
        let record = match self.check(message, &ratings) {
            Ok(record) => record,
            Err(reason) => return self.fail(message, reason).await,
        };
        let writes = items::admit(&record, self.settings.pool_shards)?;
        match self.store.transact_write(writes, None).await {
            Ok(()) => {
                if let Some(event) = DomainEvent::for_ticket_status(&record.ticket) {
                    self.events.publish(event).await?;
                }
                Ok(Admitted::Searching(record.pool()))
            }
            // Operation 0 is the ticket itself: it exists, so this delivery is a duplicate.
            Err(PortError::ConditionFailed { operation: Some(0), .. }) => Ok(Admitted::Duplicate),
            Err(PortError::ConditionFailed { operation: Some(i), .. }) => {
                let player = record
                    .ticket
                    .players
                    .get(i - 1)
                    .map(|p| p.id.to_string())
                    .unwrap_or_default();
                self.fail(
                    message,
                    format!("player {player} already has an active ticket or session"),
                )
                .await
            }
            Err(e) => Err(e),
        }
    }

    /// The earliest cancel asked for the ticket before it was admitted by one of its players: the
    /// caller who sent it, or a member of its party (who may cancel it once admitted, too).
    /// Strangers' cancels of the same id are left alone.
    async fn early_cancel(&self, message: &TicketMessage) -> Result<Option<items::EarlyCancel>, PortError> {
        let players: Vec<&str> = message.request["players"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["id"].as_str())
            .chain([message.player_id.as_str()])
            .collect();
        let mut query = items::early_cancels(&message.ticket_id);
        let mut earliest: Option<items::EarlyCancel> = None;
        loop {
            let page = self.store.query(query.clone()).await?;
            for stored in &page.items {
                let cancel: items::EarlyCancel = items::read(stored)?.value;
                let by_a_player = players.contains(&cancel.player.as_str());
                if by_a_player && earliest.as_ref().is_none_or(|e| cancel.at < e.at) {
                    earliest = Some(cancel);
                }
            }
            match page.next {
                Some(next) => query = query.after(Some(next)),
                None => return Ok(earliest),
            }
        }
    }

    /// The conservative estimates of the players whose ticket leaves out the skill attribute and
    /// who have a rating in the queue. A request that does not parse has none: `check` refuses it.
    async fn ratings_for_missing_skill(&self, message: &TicketMessage) -> Result<BTreeMap<PlayerId, f64>, PortError> {
        let mut estimates = BTreeMap::new();
        let queues = self.queues.names();
        let Ok(request) = TicketRequest::parse(&message.request, &queues, self.settings.max_players_per_ticket) else {
            return Ok(estimates);
        };
        let Some(skill) = self.queues.get(&request.queue).and_then(|r| r.skill_attribute()) else {
            return Ok(estimates);
        };
        for player in request.players.iter().filter(|p| !p.attributes.contains_key(skill)) {
            if let Some(rating) = rating_in(self.store, &player.id, &request.queue).await? {
                estimates.insert(player.id.clone(), rating.rating.conservative_estimate());
            }
        }
        Ok(estimates)
    }

    /// Reads the message against its queue: the ticket it admits, or why it cannot be. `ratings`
    /// fill the skill attribute of the players who left it out.
    fn check(&self, message: &TicketMessage, ratings: &BTreeMap<PlayerId, f64>) -> Result<TicketRecord, String> {
        let queues = self.queues.names();
        let mut request = TicketRequest::parse(&message.request, &queues, self.settings.max_players_per_ticket)
            .map_err(|errors| join(&errors))?;
        let rule_set = self
            .queues
            .get(&request.queue)
            .ok_or_else(|| format!("unknown queue `{}`", request.queue))?;
        if !request.players.iter().any(|p| p.id == message.player_id) {
            return Err(format!(
                "the caller {} is not one of the ticket's players",
                message.player_id
            ));
        }
        let now = self.clock.now();
        for (i, member) in request
            .players
            .iter()
            .enumerate()
            .filter(|(_, p)| p.id != message.player_id)
        {
            let Some(token) = &member.party_token else {
                return Err(format!(
                    "/players/{i}: {} must present a party token to be queued by {}",
                    member.id, message.player_id
                ));
            };
            self.party_tokens
                .verify(token, &member.id, now)
                .map_err(|why| format!("/players/{i}: the party token of {} is refused: {why}", member.id))?;
        }
        if let Some(skill) = rule_set.skill_attribute() {
            for player in &mut request.players {
                if let Some(estimate) = ratings.get(&player.id) {
                    player
                        .attributes
                        .entry(skill.to_owned())
                        .or_insert_with(|| serde_json::json!(estimate));
                }
            }
        }
        if let Some(region) = &self.settings.single_region {
            let unserved = request.unserved_latencies(region);
            if !unserved.is_empty() {
                return Err(join(&unserved));
            }
        }
        let players = request.players_for(rule_set).map_err(|errors| join(&errors))?;
        let partition = pool_partition(&players, rule_set)?;
        let mut ticket = Ticket::queued(
            message.ticket_id.clone(),
            rule_set.name.clone(),
            players,
            message.received_at,
        );
        ticket
            .move_to(TicketStatus::Searching, None)
            .map_err(|e| e.to_string())?;
        Ok(TicketRecord::unmatched(ticket, partition))
    }

    /// Records the ticket as FAILED with `reason`, unless an earlier delivery recorded it already.
    async fn fail(&self, message: &TicketMessage, reason: String) -> Result<Admitted, PortError> {
        self.record_unadmitted(message, TicketStatus::Failed, reason).await
    }

    /// Records the ticket, never admitted, in the terminal `status` with `reason`, unless an earlier
    /// delivery recorded it already.
    async fn record_unadmitted(
        &self,
        message: &TicketMessage,
        status: TicketStatus,
        reason: String,
    ) -> Result<Admitted, PortError> {
        let players = failed_players(message);
        let queue = message
            .request
            .get("queue")
            .and_then(|q| q.as_str())
            .unwrap_or_default();
        let mut ticket = Ticket::queued(message.ticket_id.clone(), queue, players, message.received_at);
        if let Err(e) = ticket.move_to(status, Some(reason.clone())) {
            return Err(PortError::invalid(e.to_string()));
        }
        let mut record = TicketRecord::unmatched(ticket, String::new());
        record.finished_at = Some(self.clock.now());
        let item = items::ticket_item(&record, self.settings.pool_shards)?;
        match self
            .store
            .transact_write(vec![Write::put(item, Condition::Absent)], None)
            .await
        {
            Ok(()) => {
                if let Some(event) = DomainEvent::for_ticket_status(&record.ticket) {
                    self.events.publish(event).await?;
                }
                Ok(match status {
                    TicketStatus::Cancelled => Admitted::Cancelled,
                    _ => Admitted::Failed(reason),
                })
            }
            Err(PortError::ConditionFailed { .. }) => Ok(Admitted::Duplicate),
            Err(e) => Err(e),
        }
    }
}

/// The players a failed ticket names: those of its request when they read, else the caller, so the
/// caller can always find it.
fn failed_players(message: &TicketMessage) -> Vec<Player> {
    let mut players: Vec<Player> = message
        .request
        .get("players")
        .and_then(|p| p.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|p| p.get("id").and_then(|id| id.as_str()))
                .filter(|id| !id.is_empty() && id.len() <= 128)
                .take(100)
                .map(Player::new)
                .collect()
        })
        .unwrap_or_default();
    if !players.iter().any(|p| p.id == message.player_id) {
        players.insert(0, Player::new(message.player_id.clone()));
    }
    players
}

fn join(errors: &[crate::ticket_request::FieldError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}
