//! Domain events: every status change is announced, under FlexMatch's event names for tickets.
//!
//! Events go to EventBridge on AWS and to the in-process bus locally; the push channel forwards them
//! to players as they are, so their JSON shape is part of the public API.

use crate::ids::{MatchId, PlayerId, SessionId, TicketId};
use crate::status::{SessionStatus, TicketStatus};
use crate::ticket::Ticket;
use serde::{Deserialize, Serialize};

/// The source every domain event is published under on an event bus (EventBridge's `source`): the
/// bus's rules select on it, and the notifier takes nothing else.
pub const EVENT_SOURCE: &str = "queuematch";

/// Something that happened to a ticket, a match or a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
pub enum DomainEvent {
    /// A ticket was admitted into its pool, or requeued into it.
    MatchmakingSearching {
        ticket_id: TicketId,
        player_ids: Vec<PlayerId>,
    },
    /// A ticket was put into a match, which now needs acceptance or placement.
    PotentialMatchCreated {
        ticket_id: TicketId,
        player_ids: Vec<PlayerId>,
        acceptance_required: bool,
    },
    /// A player accepted or declined a match that requires acceptance. Every player of the match
    /// is told, so each game client can show who is still to answer.
    AcceptMatch {
        ticket_id: TicketId,
        match_id: MatchId,
        /// Who answered.
        player_id: PlayerId,
        accepted: bool,
        /// Every player of the match.
        player_ids: Vec<PlayerId>,
    },
    /// The acceptance of a match is decided: every player accepted, someone declined, or the
    /// acceptance timed out.
    AcceptMatchCompleted {
        match_id: MatchId,
        acceptance: AcceptanceOutcome,
        /// Every player of the match.
        player_ids: Vec<PlayerId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A ticket was placed: its players can connect.
    MatchmakingSucceeded {
        ticket_id: TicketId,
        player_ids: Vec<PlayerId>,
    },
    MatchmakingCancelled {
        ticket_id: TicketId,
        player_ids: Vec<PlayerId>,
        reason: String,
    },
    MatchmakingTimedOut {
        ticket_id: TicketId,
        player_ids: Vec<PlayerId>,
        reason: String,
    },
    MatchmakingFailed {
        ticket_id: TicketId,
        player_ids: Vec<PlayerId>,
        reason: String,
    },
    /// A session changed status.
    SessionStatusChanged {
        session_id: SessionId,
        player_ids: Vec<PlayerId>,
        status: SessionStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// How the acceptance of a match ended, as FlexMatch's `AcceptMatchCompleted` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AcceptanceOutcome {
    Accepted,
    Rejected,
    TimedOut,
}

impl AcceptanceOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AcceptanceOutcome::Accepted => "ACCEPTED",
            AcceptanceOutcome::Rejected => "REJECTED",
            AcceptanceOutcome::TimedOut => "TIMED_OUT",
        }
    }
}

impl DomainEvent {
    /// The event that announces `ticket`'s current status, if that status has one (QUEUED has none:
    /// nothing is announced before admission).
    pub fn for_ticket_status(ticket: &Ticket) -> Option<DomainEvent> {
        let ticket_id = ticket.id.clone();
        let player_ids: Vec<PlayerId> = ticket.player_ids().cloned().collect();
        let reason = || ticket.reason.clone().unwrap_or_default();
        Some(match ticket.status {
            TicketStatus::Queued => return None,
            TicketStatus::Searching => DomainEvent::MatchmakingSearching { ticket_id, player_ids },
            TicketStatus::RequiresAcceptance => DomainEvent::PotentialMatchCreated {
                ticket_id,
                player_ids,
                acceptance_required: true,
            },
            TicketStatus::Placing => DomainEvent::PotentialMatchCreated {
                ticket_id,
                player_ids,
                acceptance_required: false,
            },
            TicketStatus::Completed => DomainEvent::MatchmakingSucceeded { ticket_id, player_ids },
            TicketStatus::Cancelled => DomainEvent::MatchmakingCancelled {
                ticket_id,
                player_ids,
                reason: reason(),
            },
            TicketStatus::TimedOut => DomainEvent::MatchmakingTimedOut {
                ticket_id,
                player_ids,
                reason: reason(),
            },
            TicketStatus::Failed => DomainEvent::MatchmakingFailed {
                ticket_id,
                player_ids,
                reason: reason(),
            },
        })
    }

    /// The event's name, as in its `type` field.
    pub fn name(&self) -> &'static str {
        match self {
            DomainEvent::MatchmakingSearching { .. } => "MatchmakingSearching",
            DomainEvent::PotentialMatchCreated { .. } => "PotentialMatchCreated",
            DomainEvent::AcceptMatch { .. } => "AcceptMatch",
            DomainEvent::AcceptMatchCompleted { .. } => "AcceptMatchCompleted",
            DomainEvent::MatchmakingSucceeded { .. } => "MatchmakingSucceeded",
            DomainEvent::MatchmakingCancelled { .. } => "MatchmakingCancelled",
            DomainEvent::MatchmakingTimedOut { .. } => "MatchmakingTimedOut",
            DomainEvent::MatchmakingFailed { .. } => "MatchmakingFailed",
            DomainEvent::SessionStatusChanged { .. } => "SessionStatusChanged",
        }
    }

    /// The players who should be pushed this event.
    pub fn player_ids(&self) -> &[PlayerId] {
        match self {
            DomainEvent::MatchmakingSearching { player_ids, .. }
            | DomainEvent::AcceptMatch { player_ids, .. }
            | DomainEvent::AcceptMatchCompleted { player_ids, .. }
            | DomainEvent::PotentialMatchCreated { player_ids, .. }
            | DomainEvent::MatchmakingSucceeded { player_ids, .. }
            | DomainEvent::MatchmakingCancelled { player_ids, .. }
            | DomainEvent::MatchmakingTimedOut { player_ids, .. }
            | DomainEvent::MatchmakingFailed { player_ids, .. }
            | DomainEvent::SessionStatusChanged { player_ids, .. } => player_ids,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticket::Player;
    use crate::time::Timestamp;
    use serde_json::json;

    #[test]
    fn every_ticket_status_but_queued_has_its_flexmatch_event() {
        let mut t = Ticket::queued("t", "q", vec![Player::new("p")], Timestamp(0));
        let names: Vec<_> = TicketStatus::ALL
            .into_iter()
            .map(|s| {
                t.status = s;
                t.reason = s.is_terminal().then(|| "r".to_owned());
                DomainEvent::for_ticket_status(&t).map(|e| e.name())
            })
            .collect();
        assert_eq!(
            names,
            [
                None,
                Some("MatchmakingSearching"),
                Some("PotentialMatchCreated"),
                Some("PotentialMatchCreated"),
                Some("MatchmakingSucceeded"),
                Some("MatchmakingCancelled"),
                Some("MatchmakingTimedOut"),
                Some("MatchmakingFailed"),
            ]
        );
    }

    #[test]
    fn events_serialize_with_their_type_and_camel_case_fields() {
        let e = DomainEvent::MatchmakingTimedOut {
            ticket_id: "t-1".into(),
            player_ids: vec!["p-1".into()],
            reason: "waited 120 s".into(),
        };
        assert_eq!(
            serde_json::to_value(&e).ok(),
            Some(
                json!({"type": "MatchmakingTimedOut", "ticketId": "t-1", "playerIds": ["p-1"], "reason": "waited 120 s"})
            )
        );
        assert_eq!(e.player_ids(), [PlayerId::from("p-1")]);
    }
}
