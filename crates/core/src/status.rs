//! Ticket and session statuses and their legal transitions.
//!
//! Ticket statuses are FlexMatch's, exactly, so that its users read them without a glossary. A move
//! the lifecycle does not allow is a [`TransitionError`], never a panic: at-least-once delivery means
//! stale and duplicate requests to move are normal, and callers decide whether one is harmless.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a matchmaking ticket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TicketStatus {
    /// Accepted at the edge, not yet admitted into its pool.
    Queued,
    /// In its pool, waiting for a match.
    Searching,
    /// Matched; waiting for every player to accept.
    RequiresAcceptance,
    /// Matched; a server is being found.
    Placing,
    /// Placed: connection info is ready. Terminal.
    Completed,
    /// The player cancelled or declined. Terminal.
    Cancelled,
    /// Waited past the queue's timeout. Terminal.
    TimedOut,
    /// Invalid, or it could not be placed and could not be requeued. Terminal.
    Failed,
}

impl TicketStatus {
    pub const ALL: [TicketStatus; 8] = [
        TicketStatus::Queued,
        TicketStatus::Searching,
        TicketStatus::RequiresAcceptance,
        TicketStatus::Placing,
        TicketStatus::Completed,
        TicketStatus::Cancelled,
        TicketStatus::TimedOut,
        TicketStatus::Failed,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled | Self::TimedOut | Self::Failed)
    }

    /// Whether the lifecycle allows moving from `self` to `to`.
    ///
    /// - A ticket is requeued to SEARCHING when a placement fails through no fault of its players, or
    ///   when another player of its match declines.
    /// - A ticket cannot be cancelled while PLACING: its server is being started and its players are
    ///   about to be told where to go. The placement either completes it or requeues it.
    pub fn can_become(self, to: TicketStatus) -> bool {
        use TicketStatus::*;
        match self {
            Queued => matches!(to, Searching | Cancelled | Failed),
            Searching => matches!(to, RequiresAcceptance | Placing | Cancelled | TimedOut | Failed),
            RequiresAcceptance => matches!(to, Placing | Searching | Cancelled | Failed),
            Placing => matches!(to, Completed | Searching | Failed),
            Completed | Cancelled | TimedOut | Failed => false,
        }
    }

    /// Checks the move from `self` to `to`.
    pub fn transition(self, to: TicketStatus) -> Result<TicketStatus, TransitionError> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(TransitionError {
                entity: Entity::Ticket,
                from: self.as_str(),
                to: to.as_str(),
            })
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Queued => "QUEUED",
            TicketStatus::Searching => "SEARCHING",
            TicketStatus::RequiresAcceptance => "REQUIRES_ACCEPTANCE",
            TicketStatus::Placing => "PLACING",
            TicketStatus::Completed => "COMPLETED",
            TicketStatus::Cancelled => "CANCELLED",
            TicketStatus::TimedOut => "TIMED_OUT",
            TicketStatus::Failed => "FAILED",
        }
    }
}

impl fmt::Display for TicketStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a game session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SessionStatus {
    /// A server is being found and started.
    Placing,
    /// The server is up and the players have their connection info.
    Active,
    /// The game ended and its result was recorded. Terminal.
    Ended,
    /// Placement failed, or the server failed before the game could end. Terminal.
    Failed,
    /// The server stopped heartbeating. Terminal.
    Abandoned,
}

impl SessionStatus {
    pub const ALL: [SessionStatus; 5] = [
        SessionStatus::Placing,
        SessionStatus::Active,
        SessionStatus::Ended,
        SessionStatus::Failed,
        SessionStatus::Abandoned,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Ended | Self::Failed | Self::Abandoned)
    }

    /// Whether the lifecycle allows moving from `self` to `to`. A session that never became ACTIVE
    /// cannot be ABANDONED: a server that never reported ready is a failed placement.
    pub fn can_become(self, to: SessionStatus) -> bool {
        use SessionStatus::*;
        match self {
            Placing => matches!(to, Active | Failed),
            Active => matches!(to, Ended | Failed | Abandoned),
            Ended | Failed | Abandoned => false,
        }
    }

    pub fn transition(self, to: SessionStatus) -> Result<SessionStatus, TransitionError> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(TransitionError {
                entity: Entity::Session,
                from: self.as_str(),
                to: to.as_str(),
            })
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Placing => "PLACING",
            SessionStatus::Active => "ACTIVE",
            SessionStatus::Ended => "ENDED",
            SessionStatus::Failed => "FAILED",
            SessionStatus::Abandoned => "ABANDONED",
        }
    }
}

impl fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of thing refused to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Ticket,
    Session,
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Entity::Ticket => "ticket",
            Entity::Session => "session",
        })
    }
}

/// A move the lifecycle does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {entity} cannot go from {from} to {to}")]
pub struct TransitionError {
    pub entity: Entity,
    pub from: &'static str,
    pub to: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use TicketStatus as T;

    /// The whole ticket lifecycle, as a table: every pair not listed here must be refused.
    const LEGAL_TICKET_MOVES: &[(TicketStatus, TicketStatus)] = &[
        (T::Queued, T::Searching),
        (T::Queued, T::Cancelled),
        (T::Queued, T::Failed),
        (T::Searching, T::RequiresAcceptance),
        (T::Searching, T::Placing),
        (T::Searching, T::Cancelled),
        (T::Searching, T::TimedOut),
        (T::Searching, T::Failed),
        (T::RequiresAcceptance, T::Placing),
        (T::RequiresAcceptance, T::Searching),
        (T::RequiresAcceptance, T::Cancelled),
        (T::RequiresAcceptance, T::Failed),
        (T::Placing, T::Completed),
        (T::Placing, T::Searching),
        (T::Placing, T::Failed),
    ];

    const LEGAL_SESSION_MOVES: &[(SessionStatus, SessionStatus)] = &[
        (SessionStatus::Placing, SessionStatus::Active),
        (SessionStatus::Placing, SessionStatus::Failed),
        (SessionStatus::Active, SessionStatus::Ended),
        (SessionStatus::Active, SessionStatus::Failed),
        (SessionStatus::Active, SessionStatus::Abandoned),
    ];

    #[test]
    fn every_legal_ticket_move_is_allowed() {
        for &(from, to) in LEGAL_TICKET_MOVES {
            assert_eq!(from.transition(to), Ok(to), "{from} -> {to}");
        }
    }

    #[test]
    fn every_other_ticket_move_is_an_error_naming_both_ends() {
        for from in TicketStatus::ALL {
            for to in TicketStatus::ALL {
                if LEGAL_TICKET_MOVES.contains(&(from, to)) {
                    continue;
                }
                let err = from.transition(to).unwrap_err();
                assert_eq!(err.to_string(), format!("a ticket cannot go from {from} to {to}"));
            }
        }
    }

    #[test]
    fn terminal_ticket_statuses_have_no_way_out() {
        for from in TicketStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            assert!(TicketStatus::ALL.iter().all(|&to| !from.can_become(to)), "{from}");
        }
        let terminal: Vec<_> = TicketStatus::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, [T::Completed, T::Cancelled, T::TimedOut, T::Failed]);
    }

    #[test]
    fn a_placing_ticket_cannot_be_cancelled() {
        // GIVEN a ticket whose server is being started WHEN its player cancels THEN the move is refused.
        assert!(T::Placing.transition(T::Cancelled).is_err());
    }

    #[test]
    fn every_legal_session_move_is_allowed() {
        for &(from, to) in LEGAL_SESSION_MOVES {
            assert_eq!(from.transition(to), Ok(to), "{from} -> {to}");
        }
    }

    #[test]
    fn every_other_session_move_is_an_error() {
        for from in SessionStatus::ALL {
            for to in SessionStatus::ALL {
                if LEGAL_SESSION_MOVES.contains(&(from, to)) {
                    continue;
                }
                let err = from.transition(to).unwrap_err();
                assert_eq!(err.to_string(), format!("a session cannot go from {from} to {to}"));
            }
        }
    }

    #[test]
    fn statuses_serialize_as_flexmatch_names() {
        assert_eq!(
            serde_json::to_string(&T::RequiresAcceptance).ok().as_deref(),
            Some("\"REQUIRES_ACCEPTANCE\"")
        );
        assert_eq!(
            serde_json::to_string(&T::TimedOut).ok().as_deref(),
            Some("\"TIMED_OUT\"")
        );
        for s in TicketStatus::ALL {
            assert_eq!(serde_json::to_value(s).ok(), Some(serde_json::Value::from(s.as_str())));
        }
        for s in SessionStatus::ALL {
            assert_eq!(serde_json::to_value(s).ok(), Some(serde_json::Value::from(s.as_str())));
        }
    }
}
