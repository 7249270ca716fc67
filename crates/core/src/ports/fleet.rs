//! The `Fleet` port: game servers for matches (GameLift, ECS, or local processes).
//!
//! `place` takes the session's secret as well as its match. The server must hold that secret to check
//! player tokens offline and to sign its reports, and on every fleet the placement is where the server
//! learns its session: GameLift passes it as the game session data of `StartGameSessionPlacement`,
//! ECS writes it into the claimed server's item, the local fleet hands it to the process it starts.
//! A secret lookup inside each adapter would give every adapter a store dependency for a value the
//! placement task has in hand anyway. What is handed over is a [`SessionAssignment`], the same JSON
//! on every fleet, so one game server binary runs on all of them.

use crate::identity::SessionSecret;
use crate::ids::{MatchId, PlayerId, SessionId};
use crate::matcher::Match;
use crate::ports::error::PortError;
use serde::{Deserialize, Serialize};

/// Where players connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub address: String,
    pub port: u16,
}

/// Identifies one placement, to poll and release it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PlacementId(pub String);

/// Where a placement is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum Placement {
    /// A server is being found or started: poll again later.
    Pending { placement: PlacementId },
    /// The server is up.
    Ready { placement: PlacementId, endpoint: Endpoint },
}

/// What a fleet hands the server it places a session on.
///
/// It carries the session's secret, so it travels only to the server (game session data, the claimed
/// server's item, the local server's control channel), never through workflow state or logs; its
/// `Debug` shows the secret redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionAssignment {
    pub session_id: SessionId,
    pub match_id: MatchId,
    /// Checks the players' tokens and signs the server's reports.
    pub secret: SessionSecret,
    /// Everyone the server should expect, team by team as in the match.
    pub players: Vec<PlayerId>,
    /// How `players` split into the match's teams, in order: the first team's `size` players, then
    /// the next team's. Sizes rather than lists keep the assignment small (GameLift's game session
    /// data is limited). Empty for a session given without teams: each player then plays alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub teams: Vec<TeamSize>,
}

/// One team of a [`SessionAssignment`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamSize {
    /// The team slot's name, as in the match (`red`, `squad-3`).
    pub name: String,
    /// How many of the assignment's players, in order, are on it.
    pub size: usize,
}

impl SessionAssignment {
    pub fn new(session: &SessionId, matched: &Match, secret: &SessionSecret) -> Self {
        Self {
            session_id: session.clone(),
            match_id: matched.id.clone(),
            secret: secret.clone(),
            players: matched.player_ids().cloned().collect(),
            teams: matched
                .teams
                .iter()
                .map(|t| TeamSize {
                    name: t.name.to_string(),
                    size: t.players.len(),
                })
                .collect(),
        }
    }

    /// The players of each team, in order; one team per player when the assignment names no teams,
    /// or when its sizes do not add up to its players (a fleet's bug: no player is left out then).
    pub fn rosters(&self) -> Vec<(String, Vec<PlayerId>)> {
        let total: usize = self.teams.iter().map(|t| t.size).sum();
        if self.teams.is_empty() || total != self.players.len() {
            return self.players.iter().map(|p| (p.to_string(), vec![p.clone()])).collect();
        }
        let mut rest = self.players.as_slice();
        self.teams
            .iter()
            .map(|team| {
                let (members, after) = rest.split_at(team.size);
                rest = after;
                (team.name.clone(), members.to_vec())
            })
            .collect()
    }
}

/// Finds servers for matches.
///
/// Guarantees:
/// - `place` is **idempotent on the session id**: placing the same session again (Express starts at
///   least once) returns the same placement and claims no second server. Placing it again with
///   another match or secret is [`PortError::Invalid`]: the session id is the idempotency token.
///   Once released, a session stays released: placing it again answers as `poll` does.
/// - A server is claimed by at most one session at a time; placing a session whose server another
///   session holds is [`PortError::Conflict`].
/// - `release` frees a placement's server **exactly once**: releasing again, or releasing a placement
///   that never became ready, succeeds and does nothing more.
/// - No server available is [`PortError::PlacementUnavailable`]; a placement that failed or timed
///   out, whose server died, or that was released is reported by `poll` the same way. A server
///   that died is never placed again. A placement id the fleet never gave is [`PortError::NotFound`].
#[async_trait::async_trait]
pub trait Fleet: Send + Sync {
    /// Asks for a server for `matched`, in its region when it has one, and hands it the session with
    /// its `secret` (see [`SessionAssignment`]).
    async fn place(&self, session: &SessionId, matched: &Match, secret: &SessionSecret)
        -> Result<Placement, PortError>;

    /// Where `placement` is now.
    async fn poll(&self, placement: &PlacementId) -> Result<Placement, PortError>;

    /// Gives the placement's server back.
    async fn release(&self, placement: &PlacementId) -> Result<(), PortError>;
}

#[async_trait::async_trait]
impl<F: Fleet + ?Sized> Fleet for std::sync::Arc<F> {
    async fn place(
        &self,
        session: &SessionId,
        matched: &Match,
        secret: &SessionSecret,
    ) -> Result<Placement, PortError> {
        (**self).place(session, matched, secret).await
    }
    async fn poll(&self, placement: &PlacementId) -> Result<Placement, PortError> {
        (**self).poll(placement).await
    }
    async fn release(&self, placement: &PlacementId) -> Result<(), PortError> {
        (**self).release(placement).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(players: &[&str], teams: &[(&str, usize)]) -> SessionAssignment {
        SessionAssignment {
            session_id: "s-1".into(),
            match_id: "m-1".into(),
            secret: SessionSecret::from_random_bytes(&[1; 32]),
            players: players.iter().map(|&p| PlayerId::from(p)).collect(),
            teams: teams
                .iter()
                .map(|&(name, size)| TeamSize {
                    name: name.into(),
                    size,
                })
                .collect(),
        }
    }

    #[test]
    fn rosters_split_the_players_by_team_size_in_order() {
        let two_teams = assignment(&["a", "b", "c", "d"], &[("red", 2), ("blue", 2)]);
        assert_eq!(
            two_teams.rosters(),
            vec![
                ("red".to_owned(), vec!["a".into(), "b".into()]),
                ("blue".to_owned(), vec!["c".into(), "d".into()])
            ]
        );
    }

    #[test]
    fn without_teams_or_with_sizes_that_do_not_add_up_each_player_plays_alone() {
        for teams in [&[][..], &[("red", 3)][..]] {
            let rosters = assignment(&["a", "b"], teams).rosters();
            assert_eq!(
                rosters,
                vec![("a".to_owned(), vec!["a".into()]), ("b".to_owned(), vec!["b".into()])]
            );
        }
    }

    #[test]
    fn an_assignment_without_teams_reads_as_before() {
        let line = r#"{"sessionId":"s-1","matchId":"m-1","secret":"c2VjcmV0","players":["p-1"]}"#;
        let read: SessionAssignment = serde_json::from_str(line).unwrap();
        assert!(read.teams.is_empty());
        assert!(!serde_json::to_string(&read).unwrap().contains("teams"));
    }
}
