//! Tickets and the players on them.

use crate::attribute::AttributeValue;
use crate::event::DomainEvent;
use crate::ids::{PlayerId, TicketId};
use crate::latencies::Latencies;
use crate::status::{TicketStatus, TransitionError};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One player on a ticket, with what the rule set reads of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Player {
    pub id: PlayerId,
    /// The player's attributes, by name. Missing ones take the rule set's defaults.
    #[serde(default)]
    pub attributes: BTreeMap<String, AttributeValue>,
    /// Round-trip time in milliseconds to each region the game client measured.
    #[serde(default)]
    pub latencies: Latencies,
}

impl Player {
    pub fn new(id: impl Into<PlayerId>) -> Self {
        Self {
            id: id.into(),
            attributes: BTreeMap::new(),
            latencies: Latencies::new(),
        }
    }

    pub fn with_attribute(mut self, name: &str, value: AttributeValue) -> Self {
        self.attributes.insert(name.to_owned(), value);
        self
    }

    pub fn with_latency(mut self, region: &str, ms: u32) -> Self {
        self.latencies.insert(region, ms);
        self
    }
}

/// A player's answer to a match that requires acceptance, as FlexMatch's `AcceptMatch` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AcceptanceType {
    Accept,
    Reject,
}

impl AcceptanceType {
    pub fn as_str(self) -> &'static str {
        match self {
            AcceptanceType::Accept => "ACCEPT",
            AcceptanceType::Reject => "REJECT",
        }
    }
}

/// All the players of one ticket. A party is matched whole, into one team, or not at all.
pub type Party = Vec<Player>;

/// A request for a match, solo or for a party.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticket {
    pub id: TicketId,
    /// The queue, which is the rule set's `name`.
    pub queue: String,
    /// Every player of the ticket; the first is the one who asked.
    pub players: Party,
    /// When the edge accepted the ticket: the ticket's age, and so its priority, counts from here.
    pub created_at: Timestamp,
    pub status: TicketStatus,
    /// Why a ticket reached its terminal status; present exactly when the status is terminal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Ticket {
    /// A ticket just accepted at the edge.
    pub fn queued(id: impl Into<TicketId>, queue: impl Into<String>, players: Party, created_at: Timestamp) -> Self {
        Self {
            id: id.into(),
            queue: queue.into(),
            players,
            created_at,
            status: TicketStatus::Queued,
            reason: None,
        }
    }

    pub fn player_ids(&self) -> impl Iterator<Item = &PlayerId> {
        self.players.iter().map(|p| &p.id)
    }

    /// Moves the ticket to `to`, returning the event that announces it, if the move has one.
    ///
    /// A terminal status needs a reason and any other refuses one; both are [`TicketMoveError`]s, as
    /// is a move the lifecycle forbids. On error the ticket is unchanged.
    pub fn move_to(
        &mut self,
        to: TicketStatus,
        reason: Option<String>,
    ) -> Result<Option<DomainEvent>, TicketMoveError> {
        self.status.transition(to)?;
        match (to.is_terminal(), &reason) {
            (true, None) => return Err(TicketMoveError::ReasonRequired(to)),
            (false, Some(_)) => return Err(TicketMoveError::ReasonNotAllowed(to)),
            _ => {}
        }
        self.status = to;
        self.reason = reason;
        Ok(DomainEvent::for_ticket_status(self))
    }
}

/// Why a ticket refused to move.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketMoveError {
    #[error(transparent)]
    Illegal(#[from] TransitionError),
    #[error("a ticket that becomes {0} must say why")]
    ReasonRequired(TicketStatus),
    #[error("a ticket that becomes {0} is not finished and takes no reason")]
    ReasonNotAllowed(TicketStatus),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> Ticket {
        Ticket::queued("t-1", "ranked-1v1", vec![Player::new("p-1")], Timestamp(1_000))
    }

    #[test]
    fn a_ticket_moves_along_its_lifecycle_and_announces_each_step() {
        let mut t = ticket();
        assert_eq!(
            t.move_to(TicketStatus::Searching, None)
                .ok()
                .flatten()
                .map(|e| e.name()),
            Some("MatchmakingSearching")
        );
        assert_eq!(
            t.move_to(TicketStatus::Placing, None).ok().flatten().map(|e| e.name()),
            Some("PotentialMatchCreated")
        );
        assert_eq!(
            t.move_to(TicketStatus::Completed, Some("placed".into()))
                .ok()
                .flatten()
                .map(|e| e.name()),
            Some("MatchmakingSucceeded")
        );
        assert_eq!(t.reason.as_deref(), Some("placed"));
    }

    #[test]
    fn a_terminal_move_without_a_reason_is_refused_and_changes_nothing() {
        let mut t = ticket();
        let before = t.clone();
        assert_eq!(
            t.move_to(TicketStatus::Cancelled, None),
            Err(TicketMoveError::ReasonRequired(TicketStatus::Cancelled))
        );
        assert_eq!(t, before);
    }

    #[test]
    fn a_reason_on_a_non_terminal_move_is_refused() {
        let mut t = ticket();
        assert_eq!(
            t.move_to(TicketStatus::Searching, Some("why".into())),
            Err(TicketMoveError::ReasonNotAllowed(TicketStatus::Searching))
        );
        assert_eq!(t.status, TicketStatus::Queued);
    }

    #[test]
    fn an_illegal_move_is_an_error_not_a_panic() {
        let mut t = ticket();
        let err = t.move_to(TicketStatus::Completed, Some("skip".into())).unwrap_err();
        assert_eq!(err.to_string(), "a ticket cannot go from QUEUED to COMPLETED");
        assert_eq!(t.status, TicketStatus::Queued);
    }
}
