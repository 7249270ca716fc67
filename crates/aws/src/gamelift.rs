//! The `Fleet` port on Amazon GameLift: a game session placement per session.
//!
//! - **place** starts a game session placement on the queue, with the session id as the placement
//!   id (so the session id is the idempotency key GameLift itself knows), every player's measured
//!   latencies (read from their tickets in the store), `PriorityConfigurationOverride.LocationOrder`
//!   = the region the matcher chose, and the [`SessionAssignment`] as game session data: that is how
//!   the server learns its session and secret. A placement that already exists is described first:
//!   the same assignment answers as `poll` does, another is `Invalid`.
//! - **poll** describes the placement: PENDING is pending; FULFILLED creates the players' sessions
//!   (CreatePlayerSessions) and is ready at the game session's address; CANCELLED, TIMED_OUT and
//!   FAILED are `PlacementUnavailable`.
//! - **release** stops a pending placement or terminates a fulfilled game session; what is already
//!   over needs nothing, so releasing again succeeds.
//!
//! GameLift's errors map to the port's: `NotFoundException` → `NotFound`, `LimitExceededException`
//! and `FleetCapacityExceededException` → `PlacementUnavailable`, `InvalidRequestException` and
//! `UnauthorizedException` → `Invalid`, `InternalServiceException` → `Transient`,
//! `ThrottlingException` → `Throttled` (after the SDK's retries).

use crate::error;
use aws_sdk_gamelift::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_gamelift::types::{
    GameSessionPlacement, GameSessionPlacementState, PlayerLatency, PriorityConfigurationOverride,
};
use aws_sdk_gamelift::Client;
use queuematch_core::identity::SessionSecret;
use queuematch_core::ids::SessionId;
use queuematch_core::matcher::Match;
use queuematch_core::ports::fleet::{Endpoint, Placement, PlacementId, SessionAssignment};
use queuematch_core::ports::store::items::{self, TicketRecord};
use queuematch_core::ports::store::Store;
use queuematch_core::ports::{Fleet, PortError};
use std::sync::Arc;

/// GameLift's limit on a placement id (letters, digits and hyphens).
const MAX_PLACEMENT_ID: usize = 48;

/// Places sessions on a GameLift game session queue.
#[derive(Clone)]
pub struct GameLiftFleet {
    client: Client,
    queue_name: String,
    /// Where the players' latencies are: their tickets.
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for GameLiftFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GameLiftFleet")
            .field("queue_name", &self.queue_name)
            .finish_non_exhaustive()
    }
}

/// The port error for a GameLift error.
fn map<E>(operation: &str, err: SdkError<E, aws_sdk_gamelift::config::http::HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match error::code(&err) {
        Some("NotFoundException") => PortError::NotFound(error::describe(operation, &err)),
        Some("LimitExceededException" | "FleetCapacityExceededException") => {
            PortError::PlacementUnavailable(error::describe(operation, &err))
        }
        Some("InternalServiceException") => PortError::Transient {
            message: error::describe(operation, &err),
            source: Some(Box::new(err)),
        },
        Some("InvalidRequestException" | "UnauthorizedException" | "UnsupportedRegionException") => {
            PortError::Invalid(error::describe(operation, &err))
        }
        _ => error::map(operation, err),
    }
}

impl GameLiftFleet {
    pub fn new(client: Client, queue_name: impl Into<String>, store: Arc<dyn Store>) -> Self {
        Self {
            client,
            queue_name: queue_name.into(),
            store,
        }
    }

    async fn describe(&self, placement: &PlacementId) -> Result<GameSessionPlacement, PortError> {
        let out = self
            .client
            .describe_game_session_placement()
            .placement_id(&placement.0)
            .send()
            .await
            .map_err(|e| map("DescribeGameSessionPlacement", e))?;
        out.game_session_placement
            .ok_or_else(|| PortError::NotFound(format!("no placement {}", placement.0)))
    }

    /// Every player's latencies, from their tickets: GameLift places where they play best.
    async fn latencies(&self, matched: &Match) -> Result<Vec<PlayerLatency>, PortError> {
        let mut latencies = Vec::new();
        for ticket in matched.ticket_ids() {
            let Some(stored) = self.store.get(&items::ticket_key(ticket)).await? else {
                continue;
            };
            let record = items::read::<TicketRecord>(&stored)?;
            for player in &record.value.ticket.players {
                for (region, ms) in &player.latencies {
                    latencies.push(
                        PlayerLatency::builder()
                            .player_id(player.id.as_str())
                            .region_identifier(region)
                            .latency_in_milliseconds(ms as f32)
                            .build(),
                    );
                }
            }
        }
        Ok(latencies)
    }

    /// What a placement's state means to the port; a fulfilled one gets its player sessions first.
    async fn placement_of(&self, placement: GameSessionPlacement) -> Result<Placement, PortError> {
        let id = PlacementId(placement.placement_id().unwrap_or_default().to_owned());
        match placement.status() {
            Some(GameSessionPlacementState::Pending) => Ok(Placement::Pending { placement: id }),
            Some(GameSessionPlacementState::Fulfilled) => {
                let endpoint = endpoint_of(&placement)?;
                self.reserve_players(&placement).await?;
                Ok(Placement::Ready {
                    placement: id,
                    endpoint,
                })
            }
            Some(GameSessionPlacementState::Cancelled) => Err(PortError::PlacementUnavailable(format!(
                "placement {} was cancelled",
                id.0
            ))),
            Some(GameSessionPlacementState::TimedOut) => {
                Err(PortError::PlacementUnavailable(format!("placement {} timed out", id.0)))
            }
            Some(GameSessionPlacementState::Failed) => {
                Err(PortError::PlacementUnavailable(format!("placement {} failed", id.0)))
            }
            other => Err(PortError::transient(format!(
                "placement {} is in a state this adapter does not know: {other:?}",
                id.0
            ))),
        }
    }

    /// Creates a player session for each player of the assignment. The game session holds exactly
    /// as many as the match has players, so `GameSessionFullException` on a repeated poll means
    /// they were created before.
    async fn reserve_players(&self, placement: &GameSessionPlacement) -> Result<(), PortError> {
        let assignment = assignment_of(placement)?;
        let game_session = placement
            .game_session_id()
            .or(placement.game_session_arn())
            .ok_or_else(|| PortError::transient("a fulfilled placement without its game session"))?;
        let result = self
            .client
            .create_player_sessions()
            .game_session_id(game_session)
            .set_player_ids(Some(assignment.players.iter().map(|p| p.as_str().to_owned()).collect()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if error::code(&e) == Some("GameSessionFullException") => Ok(()),
            Err(e) if error::code(&e) == Some("InvalidGameSessionStatusException") => Err(
                PortError::PlacementUnavailable(format!("game session {game_session} no longer takes players")),
            ),
            Err(e) => Err(map("CreatePlayerSessions", e)),
        }
    }
}

fn assignment_of(placement: &GameSessionPlacement) -> Result<SessionAssignment, PortError> {
    let data = placement
        .game_session_data()
        .ok_or_else(|| PortError::Invalid("a placement without game session data was not made here".into()))?;
    serde_json::from_str(data).map_err(|e| PortError::Invalid(format!("a placement not made here: {e}")))
}

fn endpoint_of(placement: &GameSessionPlacement) -> Result<Endpoint, PortError> {
    let address = placement
        .dns_name()
        .filter(|d| !d.is_empty())
        .or(placement.ip_address())
        .ok_or_else(|| PortError::transient("a fulfilled placement without an address"))?;
    let port = placement
        .port()
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| PortError::transient("a fulfilled placement without a port"))?;
    Ok(Endpoint {
        address: address.to_owned(),
        port,
    })
}

fn check_placement_id(session: &SessionId) -> Result<(), PortError> {
    let id = session.as_str();
    if id.is_empty() || id.len() > MAX_PLACEMENT_ID || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(PortError::invalid(format!(
            "session id {id:?} cannot name a GameLift placement: 1 to {MAX_PLACEMENT_ID} letters, digits or hyphens"
        )));
    }
    Ok(())
}

#[async_trait::async_trait]
impl Fleet for GameLiftFleet {
    async fn place(
        &self,
        session: &SessionId,
        matched: &Match,
        secret: &SessionSecret,
    ) -> Result<Placement, PortError> {
        check_placement_id(session)?;
        let assignment = SessionAssignment::new(session, matched, secret);
        let placement = PlacementId(session.as_str().to_owned());
        match self.describe(&placement).await {
            Ok(existing) => {
                return if assignment_of(&existing)? == assignment {
                    self.placement_of(existing).await
                } else {
                    Err(PortError::invalid(format!(
                        "session {session} was placed with another match or secret"
                    )))
                }
            }
            Err(PortError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let data = serde_json::to_string(&assignment).map_err(|e| PortError::invalid(format!("assignment: {e}")))?;
        let players = i32::try_from(assignment.players.len()).unwrap_or(i32::MAX).max(1);
        let mut call = self
            .client
            .start_game_session_placement()
            .placement_id(&placement.0)
            .game_session_queue_name(&self.queue_name)
            .game_session_name(matched.id.as_str())
            .maximum_player_session_count(players)
            .game_session_data(data)
            .set_player_latencies(Some(self.latencies(matched).await?));
        if let Some(region) = &matched.region {
            call = call.priority_configuration_override(
                PriorityConfigurationOverride::builder()
                    .location_order(region.as_str())
                    .build(),
            );
        }
        match call.send().await {
            Ok(out) => match out.game_session_placement {
                Some(p) => self.placement_of(p).await,
                None => Ok(Placement::Pending { placement }),
            },
            // A concurrent place of the same session started it first: answer as it stands.
            Err(e) if error::code(&e) == Some("InvalidRequestException") => {
                let existing = self
                    .describe(&placement)
                    .await
                    .map_err(|_| map("StartGameSessionPlacement", e))?;
                if assignment_of(&existing)? == assignment {
                    self.placement_of(existing).await
                } else {
                    Err(PortError::invalid(format!(
                        "session {session} was placed with another match or secret"
                    )))
                }
            }
            Err(e) => Err(map("StartGameSessionPlacement", e)),
        }
    }

    async fn poll(&self, placement: &PlacementId) -> Result<Placement, PortError> {
        let described = self.describe(placement).await?;
        self.placement_of(described).await
    }

    async fn release(&self, placement: &PlacementId) -> Result<(), PortError> {
        let described = match self.describe(placement).await {
            Ok(d) => d,
            Err(PortError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        match described.status() {
            Some(GameSessionPlacementState::Pending) => {
                match self
                    .client
                    .stop_game_session_placement()
                    .placement_id(&placement.0)
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    // It ended on its own meanwhile.
                    Err(e) if error::code(&e) == Some("InvalidRequestException") => Ok(()),
                    Err(e) => Err(map("StopGameSessionPlacement", e)),
                }
            }
            Some(GameSessionPlacementState::Fulfilled) => {
                let Some(game_session) = described.game_session_id().or(described.game_session_arn()) else {
                    return Ok(());
                };
                match self
                    .client
                    .terminate_game_session()
                    .game_session_id(game_session)
                    .termination_mode(aws_sdk_gamelift::types::TerminationMode::TriggerOnProcessTerminate)
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    // Already terminating or over: released before.
                    Err(e)
                        if matches!(
                            error::code(&e),
                            Some("InvalidGameSessionStatusException" | "NotFoundException")
                        ) =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(map("TerminateGameSession", e)),
                }
            }
            _ => Ok(()),
        }
    }
}
