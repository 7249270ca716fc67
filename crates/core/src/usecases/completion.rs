//! The tasks of the `session-completion` workflow: a game's result becomes ratings, and its
//! session ENDS and gives its server back.
//!
//! The workflow is started when a game server reports `result` (or `end` after one), named after
//! the session, so a replayed report starts nothing. Its steps, each idempotent on the session id
//! because Express runs at least once:
//! 1. **validate**: the result names the session's players only, with a score for each;
//! 2. **update the ratings**: every player's rating in the queue, with a `SESSION#<id>` / `RATED`
//!    marker created (conditional on absence) in the same transaction, so a completion replayed
//!    applies nothing twice;
//! 3. **end**: ACTIVE → ENDED, the players' guards freed;
//! 4. **release** the server (the fleet releases exactly once);
//! 5. **publish** the session's status.
//!
//! A task that fails notes its failed attempt on the timeline before its error goes back to the
//! workflow ([`Completions::record_failed_attempt`]), so retries show there as well.
//!
//! Each step that changes the session appends its timeline entry with the execution id and the
//! state's name, in the same transaction as the change.

use super::placement::Step;
use super::reports::read_reports;
use crate::event::DomainEvent;
use crate::ids::{PlayerId, SessionId};
use crate::matcher::Match;
use crate::ports::store::items::{self, GuardHolder, MatchRecord, SessionRecord, TimelineEntry, Versioned};
use crate::ports::store::{Condition, Item, Key, Write, MAX_TRANSACTION_OPERATIONS};
use crate::ports::{Clock, Events, Fleet, PortError, Store, Workflows};
use crate::ratings::{self, PlayerRating, RatingSystem, TeamStanding};
use crate::status::SessionStatus;
use crate::usecases::reports::GameResult;
use serde::Serialize;

const ATTEMPTS: usize = 5;

/// The workflow's name, a file of `workflows/`.
pub const COMPLETION_WORKFLOW: &str = "session-completion";

/// The completion's execution name: one per session, so a replayed start runs nothing twice.
pub fn execution_name(session: &SessionId) -> String {
    format!("complete-{session}")
}

/// Starts the completion of a session whose result is stored. Starting it again, while it runs or
/// after it ran, changes nothing that was done: each step checks what is already so (the ratings'
/// RATED marker, an ENDED session).
pub(crate) async fn start<W: Workflows>(workflows: &W, session: &SessionId) -> Result<(), PortError> {
    workflows
        .start(
            COMPLETION_WORKFLOW,
            &execution_name(session),
            serde_json::json!({"sessionId": session}),
        )
        .await?;
    Ok(())
}

/// `SESSION#<id>` / `RATED`: present once the session's result has changed the ratings.
pub fn rated_key(session: &SessionId) -> Key {
    Key::new(format!("SESSION#{session}"), "RATED")
}

/// Why a result cannot be rated, checked against the session it came for.
pub fn check_result(session: &SessionRecord, result: &GameResult) -> Result<(), String> {
    if let Some(stranger) = result.scores.keys().find(|p| !session.player_ids.contains(p)) {
        return Err(format!("player {stranger} is not in session {}", session.session_id));
    }
    if let Some(missing) = session.player_ids.iter().find(|p| !result.scores.contains_key(*p)) {
        return Err(format!(
            "the result has no score for player {missing} of session {}",
            session.session_id
        ));
    }
    if let Some((player, score)) = result.scores.iter().find(|(_, s)| !s.is_finite()) {
        return Err(format!("player {player} scored {score}, which is not a finite number"));
    }
    Ok(())
}

/// Where a completion is, as each task answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletionProgress {
    pub session_id: SessionId,
    pub status: SessionStatus,
    /// For the ratings step: whether this run applied them (false when a run before it had).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rated: Option<bool>,
}

/// The completion's tasks.
#[derive(Debug)]
pub struct Completions<'a, S, F, E, C> {
    pub store: &'a S,
    pub fleet: &'a F,
    pub events: &'a E,
    pub clock: &'a C,
}

impl<S: Store, F: Fleet, E: Events, C: Clock> Completions<'_, S, F, E, C> {
    /// Checks the stored result against the session; a result that cannot be rated is `Invalid`,
    /// with its reason (the workflow then ends the session unrated).
    pub async fn validate(&self, session_id: &SessionId, step: &Step) -> Result<CompletionProgress, PortError> {
        let session = self.read_session(session_id).await?;
        let result = self.read_result(session_id).await?;
        check_result(&session.value, &result).map_err(PortError::invalid)?;
        let detail = format!("result of {} players validated", result.scores.len());
        let status = self.note(session_id, step, detail).await?;
        Ok(self.progress(session_id, status, None))
    }

    /// Applies the result to every player's rating in the session's queue, once.
    pub async fn update_ratings(&self, session_id: &SessionId, step: &Step) -> Result<CompletionProgress, PortError> {
        for _ in 0..ATTEMPTS {
            let session = self.read_session(session_id).await?;
            if self.store.get(&rated_key(session_id)).await?.is_some() {
                return Ok(self.progress(session_id, session.value.status, Some(false)));
            }
            let result = self.read_result(session_id).await?;
            check_result(&session.value, &result).map_err(PortError::invalid)?;
            let matched = self.read_match(&session.value).await?;
            let queue = &session.value.queue;
            let sizes: Vec<usize> = matched.teams.iter().map(|t| t.players.len()).collect();
            let system = RatingSystem::for_team_sizes(&sizes);

            // Each player's rating before the game, at the version it was read.
            let mut before: Vec<Vec<(PlayerId, Option<Versioned<PlayerRating>>)>> = Vec::new();
            let mut standings = Vec::new();
            for team in matched.teams.iter().filter(|t| !t.players.is_empty()) {
                let mut read = Vec::new();
                let mut ratings = Vec::new();
                for player in &team.players {
                    let stored = match self.store.get(&items::rating_key(player, queue)).await? {
                        Some(stored) => Some(items::read::<PlayerRating>(&stored)?),
                        None => None,
                    };
                    ratings.push(stored.as_ref().map_or(system.initial(), |r| r.value.rating));
                    read.push((player.clone(), stored));
                }
                let score = team
                    .players
                    .iter()
                    .map(|p| result.scores.get(p).copied().unwrap_or(0.0))
                    .sum();
                standings.push(TeamStanding { ratings, score });
                before.push(read);
            }
            let after = ratings::rate(&standings)
                .map_err(|e| PortError::invalid(format!("session {session_id} cannot be rated: {e}")))?;

            let now = self.clock.now();
            let mut writes = Vec::new();
            let mut changes = Vec::new();
            for (team, rated) in before.iter().zip(&after) {
                for ((player, stored), rating) in team.iter().zip(rated) {
                    let previous = stored.as_ref().map_or(system.initial(), |r| r.value.rating);
                    changes.push(format!(
                        "{player} {:.0}→{:.0}",
                        previous.conservative_estimate(),
                        rating.conservative_estimate()
                    ));
                    let record = PlayerRating {
                        player_id: player.clone(),
                        queue: queue.clone(),
                        rating: *rating,
                        games: stored.as_ref().map_or(0, |r| r.value.games).saturating_add(1),
                        updated_at: now,
                    };
                    let key = items::rating_key(player, queue);
                    let body = serde_json::to_value(&record).map_err(|e| PortError::invalid(e.to_string()))?;
                    let condition = stored
                        .as_ref()
                        .map_or(Condition::Absent, |r| Condition::Version(r.version));
                    writes.push(Write::put(Item::new(key, body), condition));
                }
            }
            writes.push(Write::put(
                Item::new(rated_key(session_id), serde_json::json!({"at": now})),
                Condition::Absent,
            ));
            let detail = format!("ratings updated (conservative estimates): {}", changes.join(", "));
            writes.extend(self.note_writes(&session, step, detail)?);
            if writes.len() > MAX_TRANSACTION_OPERATIONS {
                return Err(PortError::invalid(format!(
                    "session {session_id} has too many players to rate in one transaction"
                )));
            }
            match self.store.transact_write(writes, None).await {
                Ok(()) => return Ok(self.progress(session_id, session.value.status, Some(true))),
                Err(PortError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(kept_changing(session_id))
    }

    /// ACTIVE → ENDED with its timeline entry, and the players' guards this session holds freed.
    /// An ENDED session is left as it is.
    pub async fn end(&self, session_id: &SessionId, step: &Step, detail: String) -> Result<SessionRecord, PortError> {
        for _ in 0..ATTEMPTS {
            let session = self.read_session(session_id).await?;
            let status = session.value.status;
            if status == SessionStatus::Ended {
                return Ok(session.value);
            }
            if !status.can_become(SessionStatus::Ended) {
                return Err(PortError::Conflict(format!(
                    "session {session_id} is {status}; it cannot end"
                )));
            }
            let mut next = session.value.clone();
            next.status = SessionStatus::Ended;
            next.reason = Some(detail.clone());
            let entry = TimelineEntry {
                at: self.clock.now(),
                seq: next.timeline_len,
                status: SessionStatus::Ended,
                execution_id: step.execution_id.clone(),
                state: step.state.clone(),
                detail: Some(detail.clone()),
            };
            next.timeline_len += 1;
            let mut writes = vec![
                items::update_session(&session, &next)?,
                items::timeline_write(session_id, &entry)?,
            ];
            let holder = GuardHolder::Session(session_id.clone());
            for player in &next.player_ids {
                let guard = items::player_guard_key(player);
                // Free only a guard this session holds: the player may be queued again already.
                if let Some(stored) = self.store.get(&guard).await? {
                    if items::read::<GuardHolder>(&stored)?.value == holder {
                        writes.push(Write::delete(guard, Condition::Version(stored.version)));
                    }
                }
            }
            match self.store.transact_write(writes, None).await {
                Ok(()) => return Ok(next),
                Err(PortError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(kept_changing(session_id))
    }

    /// Gives the session's server back; the fleet frees it exactly once however often this runs.
    pub async fn release(&self, session_id: &SessionId, step: &Step) -> Result<CompletionProgress, PortError> {
        let session = self.read_session(session_id).await?;
        finished(session_id, session.value.status, "its server is released")?;
        let detail = match &session.value.placement {
            Some(placement) => {
                self.fleet.release(placement).await?;
                format!("server released (placement {})", placement.0)
            }
            None => "no server to release".to_owned(),
        };
        let status = self.note(session_id, step, detail).await?;
        Ok(self.progress(session_id, status, None))
    }

    /// Publishes the session's status as a domain event, then notes it on the timeline. Events are
    /// at least once: a retry after a failed note publishes again.
    pub async fn publish(&self, session_id: &SessionId, step: &Step) -> Result<CompletionProgress, PortError> {
        let session = self.read_session(session_id).await?.value;
        finished(session_id, session.status, "its end is published")?;
        self.events
            .publish(DomainEvent::SessionStatusChanged {
                session_id: session_id.clone(),
                player_ids: session.player_ids.clone(),
                status: session.status,
                reason: session.reason.clone(),
            })
            .await?;
        let status = self
            .note(session_id, step, format!("{} published to the players", session.status))
            .await?;
        Ok(self.progress(session_id, status, None))
    }

    /// Appends "attempt N failed" for a task about to fail with `error`: the workflow's Retry may run
    /// it again after a backoff, or its Catch take over. Whatever the session's status, since a
    /// completion runs on an ACTIVE session and goes on once it has ENDED; a session that does not
    /// exist is left alone.
    pub async fn record_failed_attempt(
        &self,
        session_id: &SessionId,
        step: &Step,
        attempt: u32,
        error: &PortError,
    ) -> Result<(), PortError> {
        if self.store.get(&items::session_key(session_id)).await?.is_none() {
            return Ok(());
        }
        let detail = format!(
            "attempt {} failed: {}: {error}",
            attempt.saturating_add(1),
            error.error_type()
        );
        self.note(session_id, step, detail).await.map(drop)
    }

    fn progress(&self, session_id: &SessionId, status: SessionStatus, rated: Option<bool>) -> CompletionProgress {
        CompletionProgress {
            session_id: session_id.clone(),
            status,
            rated,
        }
    }

    /// Appends a timeline entry that changes no status; answers the session's status.
    async fn note(&self, session_id: &SessionId, step: &Step, detail: String) -> Result<SessionStatus, PortError> {
        for _ in 0..ATTEMPTS {
            let session = self.read_session(session_id).await?;
            let writes = self.note_writes(&session, step, detail.clone())?;
            match self.store.transact_write(writes, None).await {
                Ok(()) => return Ok(session.value.status),
                Err(PortError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(kept_changing(session_id))
    }

    fn note_writes(
        &self,
        session: &Versioned<SessionRecord>,
        step: &Step,
        detail: String,
    ) -> Result<Vec<Write>, PortError> {
        let mut next = session.value.clone();
        let entry = TimelineEntry {
            at: self.clock.now(),
            seq: next.timeline_len,
            status: next.status,
            execution_id: step.execution_id.clone(),
            state: step.state.clone(),
            detail: Some(detail),
        };
        next.timeline_len = next.timeline_len.saturating_add(1);
        Ok(vec![
            items::update_session(session, &next)?,
            items::timeline_write(&next.session_id, &entry)?,
        ])
    }

    async fn read_session(&self, id: &SessionId) -> Result<Versioned<SessionRecord>, PortError> {
        let stored = self
            .store
            .get(&items::session_key(id))
            .await?
            .ok_or_else(|| PortError::NotFound(format!("no session {id}")))?;
        items::read(&stored)
    }

    async fn read_result(&self, id: &SessionId) -> Result<GameResult, PortError> {
        read_reports(self.store, id)
            .await?
            .result
            .ok_or_else(|| PortError::invalid(format!("session {id} has no result reported")))
    }

    async fn read_match(&self, session: &SessionRecord) -> Result<Match, PortError> {
        let stored = self
            .store
            .get(&items::match_key(&session.match_id))
            .await?
            .ok_or_else(|| PortError::NotFound(format!("no match {}", session.match_id)))?;
        Ok(items::read::<MatchRecord>(&stored)?.value.matched)
    }
}

fn kept_changing(session: &SessionId) -> PortError {
    PortError::transient(format!("session {session} kept changing; try again"))
}

/// The steps after a session's end run on an ended session only: releasing the server of one still
/// PLACING or ACTIVE would pull it from under its players, and publishing its status would announce
/// an end that did not happen.
fn finished(session_id: &SessionId, status: SessionStatus, what: &str) -> Result<(), PortError> {
    if status.is_terminal() {
        Ok(())
    } else {
        Err(PortError::Conflict(format!(
            "session {session_id} is {status}: {what} once it has ENDED"
        )))
    }
}
