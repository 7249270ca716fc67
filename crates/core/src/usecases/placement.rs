//! Placement: a committed match becomes a game session on a server.
//!
//! These are the tasks of the `session-placement` workflow, in its order:
//! 1. [`Placements::create_session`]: the session, PLACING, with a fresh secret;
//! 2. [`Placements::place`]: ask the fleet for a server;
//! 3. [`Placements::poll`]: until the server is ready, or the rule set's placement timeout passes;
//! 4. [`Placements::activate`]: the session ACTIVE, its tickets COMPLETED, each player's guard moved
//!    from the ticket to the session;
//! 5. on any failure, [`Placements::fail`]: the session FAILED with its cause, the server released,
//!    the tickets back in their pool.
//!
//! Express starts an execution at least once and a Retry runs a task again after a failure whose
//! outcome is unknown, so **every task is idempotent on the session id**: it reads where the session
//! is and does only what is left. The session id is derived from the match id for the same reason.
//! Each write of the session is conditional on the version read and appends a [`TimelineEntry`] in
//! the same transaction, so the timeline holds each step exactly once, with the execution id and
//! state name that made it: on AWS, where Express keeps no history, that is the workflow's history.
//!
//! Workflow state carries ids only. The session's secret stays in the store (and goes to the server
//! through the fleet); player tokens are minted when a player reads their ticket (see
//! [`super::tickets::get`]), never here.

use super::acceptance::{acceptance_deadline, cancellation_reason};
use super::messages::{Message, PoolTick};
use super::{Queues, Settings};
use crate::event::DomainEvent;
use crate::identity::SessionSecret;
use crate::ids::{MatchId, SessionId, TicketId};
use crate::matcher::Match;
use crate::ports::fleet::Placement;
use crate::ports::store::items::{
    self, GuardHolder, MatchRecord, MatchStatus, PoolRef, SessionRecord, TicketRecord, TimelineEntry, Versioned,
};
use crate::ports::store::{Condition, Write, MAX_TRANSACTION_OPERATIONS};
use crate::ports::{Clock, Events, Fleet, PortError, Store, TicketQueue};
use crate::status::{SessionStatus, TicketStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// How often a task re-reads and tries again when a concurrent copy of itself wrote first.
const ATTEMPTS: usize = 5;

/// The session of a match. Derived, not random, so that a task run twice finds the same session.
pub fn session_id_for(matched: &MatchId) -> SessionId {
    SessionId::new(format!("s-{matched}"))
}

/// Which state of which workflow execution runs a task: what its timeline entry records. The
/// workflow passes `$$.Execution.Id` and `$$.State.Name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    #[serde(rename = "id")]
    pub execution_id: String,
    pub state: String,
}

/// Where a session is, as the workflow's Choice states read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionProgress {
    pub session_id: SessionId,
    pub status: SessionStatus,
    /// Whether the server is ready for its players.
    pub ready: bool,
}

impl SessionProgress {
    fn of(record: &SessionRecord) -> Self {
        Self {
            session_id: record.session_id.clone(),
            status: record.status,
            ready: record.endpoint.is_some(),
        }
    }
}

/// What activating a session did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Activated {
    pub session_id: SessionId,
    pub status: SessionStatus,
    /// Every ticket of the match, now COMPLETED.
    pub completed: Vec<TicketId>,
}

/// What failing a placement did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failed {
    pub session_id: SessionId,
    /// `None` when the failure came before the session existed.
    pub status: Option<SessionStatus>,
    /// The tickets put back into their pools by this call.
    pub requeued: Vec<TicketId>,
    /// The tickets cancelled by this call: those whose players rejected the match, or did not
    /// answer before its acceptance closed.
    pub cancelled: Vec<TicketId>,
}

/// Runs the placement tasks.
#[derive(Debug)]
pub struct Placements<'a, S, Q, F, E, C> {
    pub store: &'a S,
    /// Takes a pool tick when tickets are requeued, so they are matched again without waiting for
    /// the next arrival.
    pub queue: &'a Q,
    pub fleet: &'a F,
    pub events: &'a E,
    pub clock: &'a C,
    pub queues: &'a Queues,
    pub settings: &'a Settings,
}

impl<S: Store, Q: TicketQueue, F: Fleet, E: Events, C: Clock> Placements<'_, S, Q, F, E, C> {
    /// Creates the session of a committed match, PLACING, holding `secret`. A session that exists
    /// already is answered as it is (its secret is kept; `secret` is dropped).
    pub async fn create_session(
        &self,
        match_id: &MatchId,
        secret: SessionSecret,
        step: &Step,
    ) -> Result<SessionProgress, PortError> {
        let session_id = session_id_for(match_id);
        if let Some(current) = self.find_session(&session_id).await? {
            return Ok(SessionProgress::of(&current.value));
        }
        let matched = self.read_match(match_id).await?;
        let rule_set = self.queues.get(&matched.queue).ok_or_else(|| {
            PortError::invalid(format!(
                "match {match_id} is of queue `{}`, not served here",
                matched.queue
            ))
        })?;
        let now = self.clock.now();
        let timeout = Duration::from_secs(u64::from(rule_set.queue.placement_timeout_seconds));
        let record = SessionRecord {
            session_id: session_id.clone(),
            match_id: match_id.clone(),
            queue: matched.queue.to_string(),
            status: SessionStatus::Placing,
            player_ids: matched.player_ids().cloned().collect(),
            created_at: now,
            secret,
            placement_deadline: now.plus(timeout),
            placement: None,
            endpoint: None,
            reason: None,
            timeline_len: 1,
        };
        let entry = TimelineEntry {
            at: now,
            seq: 0,
            status: SessionStatus::Placing,
            execution_id: step.execution_id.clone(),
            state: step.state.clone(),
            detail: Some(format!("created for match {match_id}")),
        };
        let writes = vec![
            items::create_session(&record)?,
            items::timeline_write(&session_id, &entry)?,
        ];
        match self.store.transact_write(writes, None).await {
            Ok(()) => {
                self.publish_session(&record).await?;
                Ok(SessionProgress::of(&record))
            }
            // A concurrent copy of this task created it first: answer with theirs.
            Err(PortError::ConditionFailed { .. }) => {
                Ok(SessionProgress::of(&self.read_session(&session_id).await?.value))
            }
            Err(e) => Err(e),
        }
    }

    /// Asks the fleet for the session's server. The fleet is idempotent on the session id, so asking
    /// again returns the same placement; a session placed already is not asked for again.
    pub async fn place(&self, session_id: &SessionId, step: &Step) -> Result<SessionProgress, PortError> {
        for _ in 0..ATTEMPTS {
            let current = self.read_session(session_id).await?;
            if !still_placing(&current.value)? || current.value.placement.is_some() {
                return Ok(SessionProgress::of(&current.value));
            }
            let matched = self.read_match(&current.value.match_id).await?;
            let placement = self.fleet.place(session_id, &matched, &current.value.secret).await?;
            let mut next = current.value.clone();
            let detail = match placement {
                Placement::Pending { placement } => {
                    let detail = format!("placement {} pending", placement.0);
                    next.placement = Some(placement);
                    detail
                }
                Placement::Ready { placement, endpoint } => {
                    let detail = format!(
                        "placement {} ready at {}:{}",
                        placement.0, endpoint.address, endpoint.port
                    );
                    next.placement = Some(placement);
                    next.endpoint = Some(endpoint);
                    detail
                }
            };
            if self.write_session(&current, next.clone(), step, detail).await? {
                return Ok(SessionProgress::of(&next));
            }
            // Another copy of this task recorded the placement first; the fleet gave it the same
            // one, so read it back.
        }
        Err(kept_changing(session_id))
    }

    /// Asks the fleet where the session's placement is. Pending past the rule set's placement
    /// timeout is `PlacementUnavailable`, as is a placement the fleet reports failed.
    pub async fn poll(&self, session_id: &SessionId, step: &Step) -> Result<SessionProgress, PortError> {
        for _ in 0..ATTEMPTS {
            let current = self.read_session(session_id).await?;
            if !still_placing(&current.value)? || current.value.endpoint.is_some() {
                return Ok(SessionProgress::of(&current.value));
            }
            let Some(placement) = current.value.placement.clone() else {
                return Err(PortError::invalid(format!(
                    "session {session_id} has not been placed: Place comes before Poll"
                )));
            };
            let endpoint = match self.fleet.poll(&placement).await? {
                Placement::Ready { endpoint, .. } => endpoint,
                Placement::Pending { .. } => {
                    let now = self.clock.now();
                    if now >= current.value.placement_deadline {
                        let waited = now.since(current.value.created_at).as_secs();
                        return Err(PortError::PlacementUnavailable(format!(
                            "no server was ready for session {session_id} within the placement timeout (waited {waited} s)"
                        )));
                    }
                    return Ok(SessionProgress::of(&current.value));
                }
            };
            let detail = format!("server ready at {}:{}", endpoint.address, endpoint.port);
            let mut next = current.value.clone();
            next.endpoint = Some(endpoint);
            if self.write_session(&current, next.clone(), step, detail).await? {
                return Ok(SessionProgress::of(&next));
            }
        }
        Err(kept_changing(session_id))
    }

    /// Makes the session ACTIVE, then completes each of its tickets ("placed on ADDRESS:PORT") and
    /// moves each player's guard from the ticket to the session.
    ///
    /// The session goes first, so a COMPLETED ticket always finds its session ACTIVE with the
    /// connection. A large match completes its tickets in several transactions; activating again
    /// finishes what an interrupted run left, and completes nothing twice.
    pub async fn activate(&self, session_id: &SessionId, step: &Step) -> Result<Activated, PortError> {
        let session = self.make_active(session_id, step).await?;
        let Some(endpoint) = session.endpoint.clone() else {
            return Err(PortError::invalid(format!(
                "active session {session_id} has no endpoint"
            )));
        };
        let matched = self.read_match(&session.match_id).await?;
        let reason = format!("placed on {}:{}", endpoint.address, endpoint.port);
        let guard = GuardHolder::Session(session_id.clone());

        let mut completed = Vec::new();
        let mut chunk: Vec<Write> = Vec::new();
        let mut chunk_tickets: Vec<TicketRecord> = Vec::new();
        for ticket_id in matched.ticket_ids() {
            let current = self.read_ticket(ticket_id).await?;
            match current.value.ticket.status {
                TicketStatus::Completed => {
                    completed.push(ticket_id.clone());
                    continue;
                }
                TicketStatus::Placing => {}
                other => {
                    return Err(PortError::Conflict(format!(
                        "ticket {ticket_id} of session {session_id} is {other}, not PLACING"
                    )))
                }
            }
            let mut next = current.value.clone();
            next.ticket
                .move_to(TicketStatus::Completed, Some(reason.clone()))
                .map_err(|e| PortError::invalid(format!("{ticket_id}: {e}")))?;
            let mut writes = vec![items::update_ticket(&current, &next, self.settings.pool_shards)?];
            for player in next.ticket.player_ids() {
                writes.push(items::hold_guard(player, &guard)?);
            }
            if chunk.len() + writes.len() > MAX_TRANSACTION_OPERATIONS {
                completed.extend(
                    self.complete(std::mem::take(&mut chunk), std::mem::take(&mut chunk_tickets))
                        .await?,
                );
            }
            chunk.extend(writes);
            chunk_tickets.push(next);
        }
        completed.extend(self.complete(chunk, chunk_tickets).await?);
        Ok(Activated {
            session_id: session_id.clone(),
            status: session.status,
            completed,
        })
    }

    /// What the workflow's Catch runs: the session FAILED with `cause`, its server released, its
    /// tickets back in their pools (keeping their age, so they are first in line), and the guards
    /// the session took freed. Works whether or not the session was created.
    pub async fn fail(&self, match_id: &MatchId, cause: &str, step: &Step) -> Result<Failed, PortError> {
        let session_id = session_id_for(match_id);
        let session = self.make_failed(&session_id, cause, step).await?;

        if let Some(placement) = session.as_ref().and_then(|s| s.placement.as_ref()) {
            // The fleet releases exactly once, however often it is asked.
            self.fleet.release(placement).await?;
        }

        let record = self.read_match_record(match_id).await?;
        let matched = record.matched;
        // The players of a match whose commit never finished were never asked: none is cancelled.
        let window_closed = record.status == MatchStatus::Committed
            && self.clock.now() >= acceptance_deadline(&matched, self.rule_set_of(&matched)?);
        let mut requeued = Vec::new();
        let mut cancelled = Vec::new();
        let mut pools: BTreeMap<(String, String), PoolRef> = BTreeMap::new();
        for ticket_id in matched.ticket_ids() {
            match self.requeue(ticket_id, match_id, window_closed, cause).await? {
                Some(Requeue::Requeued(pool)) => {
                    requeued.push(ticket_id.clone());
                    pools.insert((pool.queue.clone(), pool.partition.clone()), pool);
                }
                Some(Requeue::Cancelled) => cancelled.push(ticket_id.clone()),
                None => {}
            }
        }
        let now = self.clock.now();
        for pool in pools.into_values() {
            let tick = Message::PoolTick(PoolTick {
                queue: pool.queue,
                partition: pool.partition,
                due: now,
            });
            self.queue.send(tick.to_body(), Duration::ZERO).await?;
        }
        if let Some(session) = &session {
            self.free_guards(session).await?;
        }
        Ok(Failed {
            session_id,
            status: session.map(|s| s.status),
            requeued,
            cancelled,
        })
    }

    /// Appends "attempt N failed" to a session still PLACING, for a task that is about to fail
    /// with `error`: the workflow's Retry may run it again after a backoff, or its Catch fail the
    /// session. A session that ended, failed or does not exist is left as it is.
    pub async fn record_failed_attempt(
        &self,
        session_id: &SessionId,
        step: &Step,
        attempt: u32,
        error: &PortError,
    ) -> Result<(), PortError> {
        for _ in 0..ATTEMPTS {
            let Some(current) = self.find_session(session_id).await? else {
                return Ok(());
            };
            if current.value.status != SessionStatus::Placing {
                return Ok(());
            }
            let detail = format!(
                "attempt {} failed: {}: {error}",
                attempt.saturating_add(1),
                error.error_type()
            );
            if self
                .write_session(&current, current.value.clone(), step, detail)
                .await?
            {
                return Ok(());
            }
        }
        Err(kept_changing(session_id))
    }

    // ---- steps --------------------------------------------------------------------------------

    async fn make_active(&self, session_id: &SessionId, step: &Step) -> Result<SessionRecord, PortError> {
        for _ in 0..ATTEMPTS {
            let current = self.read_session(session_id).await?;
            match current.value.status {
                SessionStatus::Active => return Ok(current.value),
                SessionStatus::Placing => {}
                other => {
                    return Err(PortError::Conflict(format!(
                        "session {session_id} is {other}: it cannot become ACTIVE"
                    )))
                }
            }
            let Some(endpoint) = &current.value.endpoint else {
                return Err(PortError::invalid(format!(
                    "session {session_id} has no server ready yet: Poll until it is"
                )));
            };
            let detail = format!("players sent to {}:{}", endpoint.address, endpoint.port);
            let mut next = current.value.clone();
            next.status = SessionStatus::Active;
            if self.write_session(&current, next.clone(), step, detail).await? {
                self.publish_session(&next).await?;
                return Ok(next);
            }
        }
        Err(kept_changing(session_id))
    }

    /// The session FAILED with `cause`, unless it is FAILED already; `None` if it was never created.
    async fn make_failed(
        &self,
        session_id: &SessionId,
        cause: &str,
        step: &Step,
    ) -> Result<Option<SessionRecord>, PortError> {
        for _ in 0..ATTEMPTS {
            let Some(current) = self.find_session(session_id).await? else {
                return Ok(None);
            };
            match current.value.status {
                SessionStatus::Failed => return Ok(Some(current.value)),
                SessionStatus::Placing => {}
                // Its players were sent to its server: failing it now would release a live game and
                // leave its COMPLETED tickets nowhere. An activation interrupted half-way (some
                // tickets still PLACING) is finished by the sweeper instead.
                SessionStatus::Active => {
                    return Err(PortError::Conflict(format!(
                        "session {session_id} is ACTIVE: its players are on its server, and its placement cannot fail any more"
                    )))
                }
                other => {
                    return Err(PortError::Conflict(format!(
                        "session {session_id} is {other}: its placement cannot fail any more"
                    )))
                }
            }
            let mut next = current.value.clone();
            next.status = SessionStatus::Failed;
            next.reason = Some(cause.to_owned());
            if self
                .write_session(&current, next.clone(), step, cause.to_owned())
                .await?
            {
                self.publish_session(&next).await?;
                return Ok(Some(next));
            }
        }
        Err(kept_changing(session_id))
    }

    /// Puts a ticket of `match_id` that is still being placed back into its pool, SEARCHING, with
    /// its players' guards still held by it; or, when one of its players rejected the match or did
    /// not answer before the acceptance closed, cancels it and frees its players. What this call
    /// did, if anything.
    async fn requeue(
        &self,
        ticket_id: &TicketId,
        match_id: &MatchId,
        window_closed: bool,
        cause: &str,
    ) -> Result<Option<Requeue>, PortError> {
        for _ in 0..ATTEMPTS {
            let current = self.read_ticket(ticket_id).await?;
            let record = &current.value;
            let placing = matches!(
                record.ticket.status,
                TicketStatus::Placing | TicketStatus::RequiresAcceptance
            );
            if !placing || record.match_id.as_ref() != Some(match_id) {
                // Requeued already (perhaps matched again since), or finished: not ours to move.
                return Ok(None);
            }
            if record.ticket.status == TicketStatus::RequiresAcceptance {
                if let Some(reason) = cancellation_reason(record, match_id, window_closed) {
                    let to = TicketStatus::Cancelled;
                    let now = self.clock.now();
                    if super::tickets::finish(self.store, self.events, &current, to, reason, now, self.settings).await?
                    {
                        return Ok(Some(Requeue::Cancelled));
                    }
                    continue;
                }
            }
            let mut next = record.clone();
            next.ticket
                .move_to(TicketStatus::Searching, None)
                .map_err(|e| PortError::invalid(format!("{ticket_id}: {e}")))?;
            next.match_id = None;
            next.acceptances.clear();
            next.last_match_failed = Some(format!("match {match_id} was not played: {cause}"));
            let write = items::update_ticket(&current, &next, self.settings.pool_shards)?;
            match self.store.transact_write(vec![write], None).await {
                Ok(()) => {
                    if let Some(event) = DomainEvent::for_ticket_status(&next.ticket) {
                        self.events.publish(event).await?;
                    }
                    return Ok(Some(Requeue::Requeued(next.pool())));
                }
                Err(PortError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(PortError::transient(format!(
            "ticket {ticket_id} kept changing while being requeued"
        )))
    }

    /// Frees the guards that `session` holds: players whose tickets completed before the session
    /// failed may queue again.
    async fn free_guards(&self, session: &SessionRecord) -> Result<(), PortError> {
        let ours = GuardHolder::Session(session.session_id.clone());
        for player in &session.player_ids {
            let key = items::player_guard_key(player);
            let Some(stored) = self.store.get(&key).await? else {
                continue;
            };
            let guard: Versioned<GuardHolder> = items::read(&stored)?;
            if guard.value == ours {
                match self.store.delete(&key, Condition::Version(guard.version)).await {
                    // Taken by someone else meanwhile: then it is not ours to free.
                    Ok(()) | Err(PortError::ConditionFailed { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Writes one chunk of completed tickets, and announces them.
    async fn complete(&self, writes: Vec<Write>, tickets: Vec<TicketRecord>) -> Result<Vec<TicketId>, PortError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        match self.store.transact_write(writes, None).await {
            Ok(()) => {}
            // A concurrent copy of this task completed one of them first. Activating again
            // skips whatever is done, so let the workflow's Retry run it again.
            Err(PortError::ConditionFailed { key, .. }) => {
                return Err(PortError::transient(format!(
                    "{key} changed while its session was being activated"
                )))
            }
            Err(e) => return Err(e),
        }
        let mut ids = Vec::with_capacity(tickets.len());
        for record in tickets {
            if let Some(event) = DomainEvent::for_ticket_status(&record.ticket) {
                self.events.publish(event).await?;
            }
            ids.push(record.ticket.id);
        }
        Ok(ids)
    }

    // ---- reading and writing ------------------------------------------------------------------

    /// Writes `next` over `current` with a timeline entry for `step`, in one transaction. False
    /// when someone wrote the session since it was read.
    async fn write_session(
        &self,
        current: &Versioned<SessionRecord>,
        mut next: SessionRecord,
        step: &Step,
        detail: String,
    ) -> Result<bool, PortError> {
        let entry = TimelineEntry {
            at: self.clock.now(),
            seq: current.value.timeline_len,
            status: next.status,
            execution_id: step.execution_id.clone(),
            state: step.state.clone(),
            detail: Some(detail),
        };
        next.timeline_len = current.value.timeline_len.saturating_add(1);
        let writes = vec![
            items::update_session(current, &next)?,
            items::timeline_write(&next.session_id, &entry)?,
        ];
        match self.store.transact_write(writes, None).await {
            Ok(()) => Ok(true),
            Err(PortError::ConditionFailed { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn publish_session(&self, record: &SessionRecord) -> Result<(), PortError> {
        self.events
            .publish(DomainEvent::SessionStatusChanged {
                session_id: record.session_id.clone(),
                player_ids: record.player_ids.clone(),
                status: record.status,
                reason: record.reason.clone(),
            })
            .await
    }

    async fn find_session(&self, id: &SessionId) -> Result<Option<Versioned<SessionRecord>>, PortError> {
        match self.store.get(&items::session_key(id)).await? {
            Some(stored) => Ok(Some(items::read(&stored)?)),
            None => Ok(None),
        }
    }

    async fn read_session(&self, id: &SessionId) -> Result<Versioned<SessionRecord>, PortError> {
        self.find_session(id)
            .await?
            .ok_or_else(|| PortError::NotFound(format!("no session {id}")))
    }

    pub(super) fn rule_set_of(&self, matched: &Match) -> Result<&crate::RuleSet, PortError> {
        self.queues.get(&matched.queue).ok_or_else(|| {
            PortError::invalid(format!(
                "match {} is of queue `{}`, not served here",
                matched.id, matched.queue
            ))
        })
    }

    pub(super) async fn read_match(&self, id: &MatchId) -> Result<Match, PortError> {
        Ok(self.read_match_record(id).await?.matched)
    }

    async fn read_match_record(&self, id: &MatchId) -> Result<MatchRecord, PortError> {
        let stored = self
            .store
            .get(&items::match_key(id))
            .await?
            .ok_or_else(|| PortError::NotFound(format!("no match {id}")))?;
        let record: Versioned<MatchRecord> = items::read(&stored)?;
        Ok(record.value)
    }

    pub(super) async fn read_ticket(&self, id: &TicketId) -> Result<Versioned<TicketRecord>, PortError> {
        let stored = self
            .store
            .get(&items::ticket_key(id))
            .await?
            .ok_or_else(|| PortError::NotFound(format!("no ticket {id}")))?;
        items::read(&stored)
    }
}

/// What [`Placements::requeue`] did with a ticket.
enum Requeue {
    Requeued(PoolRef),
    Cancelled,
}

/// Whether a session is still to be placed (an ACTIVE one was placed already); an error for one that
/// ended or failed, so that a late copy of a task never revives it.
fn still_placing(record: &SessionRecord) -> Result<bool, PortError> {
    match record.status {
        SessionStatus::Placing => Ok(true),
        SessionStatus::Active => Ok(false),
        other => Err(PortError::Conflict(format!(
            "session {} is {other}: it is not being placed",
            record.session_id
        ))),
    }
}

fn kept_changing(session: &SessionId) -> PortError {
    PortError::transient(format!("session {session} kept changing; try again"))
}
