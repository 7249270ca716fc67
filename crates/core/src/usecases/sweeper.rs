//! The sweeper: the safety net behind the rounds and the workflows (DESIGN.md "Flow on AWS", 7).
//!
//! Every pass (EventBridge Scheduler every minute on AWS; a loop on the dev server's clock locally)
//! reads the operator listings of GSI1, oldest first, and finishes what nothing else will:
//!
//! 1. **Tickets past their queue's timeout** become TIMED_OUT, their players freed (and those of a
//!    queue no longer served FAILED, once older than the shortest timeout). Rounds do this
//!    for the pools they run; the sweeper catches pools no round visits any more.
//! 2. **Sessions stuck in PLACING** past [`STUCK_PLACING`] are failed as the workflow's Catch would
//!    fail them: the server released, the tickets requeued, the session FAILED with its cause. An
//!    Express execution lives at most five minutes, so such a session has no workflow left.
//! 3. **Matches whose placement never started** (the matcher crashed between the commit and
//!    StartExecution, or a start was lost) get their `session-placement` execution started again,
//!    under the same name and input, so a start that did happen is the same execution; every task
//!    is idempotent on the match and session ids. A match whose chunked commit stopped half-way (its
//!    item still PENDING) has its tickets put back. A match whose compensation stopped half-way (the
//!    session FAILED, some tickets still PLACING) is compensated again; one whose activation stopped
//!    half-way (the session ACTIVE, some tickets still PLACING) is activated again.
//!
//! 4. **ACTIVE sessions whose server went silent** for [`HEARTBEAT_TIMEOUT`] become ABANDONED: the
//!    step on their timeline, their players' guards freed, their server released.
//!
//! Every write is conditional on what was read, so a sweep racing a round or a workflow changes
//! only what is still stuck, and a repeated sweep changes nothing more.
//!
//! [`Sweeper::after_restart`] is the same pass for a service whose workflows ran in its own process
//! and stopped with it (`queuematch dev` started again on the same `--data-dir`): no workflow
//! survived, so there is nothing to wait for. Sessions PLACING are failed and matches waiting for
//! their session have their placement started at once, and, when the game servers stopped too,
//! ACTIVE sessions are abandoned.

use super::completion;
use super::placement::{session_id_for, Placements, Step};
use super::reports::read_reports;
use super::round::{placement_input, timeout_reason, PLACEMENT_WORKFLOW};
use super::{tickets, Queues, Settings};
use crate::event::DomainEvent;
use crate::ids::{MatchId, SessionId, TicketId};
use crate::ports::store::items::{
    self, GuardHolder, MatchRecord, MatchStatus, SessionRecord, TicketRecord, TimelineEntry, Versioned,
};
use crate::ports::store::{Condition, Index, Query, Stored, Write, MAX_PAGE_ITEMS};
use crate::ports::{Clock, Events, Fleet, PortError, Store, TicketQueue, Workflows};
use crate::status::{SessionStatus, TicketStatus};
use std::collections::BTreeSet;
use std::time::Duration;

/// A session still PLACING after this long has no workflow left (Express runs at most 5 minutes).
pub const STUCK_PLACING: Duration = Duration::from_secs(300);
/// An ACTIVE session whose server has not reported (ready or heartbeat) for this long is ABANDONED.
/// Servers heartbeat every few seconds (the example server every 5 s), so this is many missed beats.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a committed match may wait for its workflow to create its session, on top of the
/// acceptance window when its rule set requires acceptance, before its placement is started again.
pub const START_GRACE: Duration = Duration::from_secs(60);

/// How long a pass lets what is in flight be, before it takes it for lost.
#[derive(Debug, Clone, Copy)]
struct Grace {
    /// A session PLACING this long is failed.
    stuck_placing: Duration,
    /// A committed match without a session this long (plus its acceptance window, when `acceptance`)
    /// has its placement started again.
    start: Duration,
    acceptance: bool,
    /// Why a session PLACING is failed, given how long it was PLACING.
    stuck_cause: fn(Duration) -> String,
}

impl Grace {
    /// A scheduled sweep, beside workflows that may still be running.
    const SWEEP: Grace = Grace {
        stuck_placing: STUCK_PLACING,
        start: START_GRACE,
        acceptance: true,
        stuck_cause: |placing| {
            format!(
                "Sweeper: the session was still PLACING after {} s; its placement was given up",
                placing.as_secs()
            )
        },
    };
    /// After a restart that no workflow survived: nothing to wait for.
    const RESTART: Grace = Grace {
        stuck_placing: Duration::ZERO,
        start: Duration::ZERO,
        acceptance: false,
        stuck_cause: |placing| {
            format!(
                "the service restarted while the session was PLACING ({} s); its placement workflow did not survive",
                placing.as_secs()
            )
        },
    };
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Tickets moved to TIMED_OUT.
    pub timed_out: Vec<TicketId>,
    /// SEARCHING tickets FAILED because their queue is no longer served (the service was started
    /// again without its rule set): no round would ever visit them.
    pub orphaned: Vec<TicketId>,
    /// Sessions failed for being stuck in PLACING.
    pub failed_sessions: Vec<SessionId>,
    /// Matches whose placement was started again.
    pub restarted: Vec<MatchId>,
    /// Matches whose interrupted compensation or activation was run again.
    pub resumed: Vec<MatchId>,
    /// Sessions ABANDONED for want of heartbeats.
    pub abandoned: Vec<SessionId>,
    /// ACTIVE sessions whose result was stored but whose completion never finished (it stopped
    /// with the service, or failed): their completion was started again rather than the session
    /// abandoned, so that a result answered 202 is still rated.
    pub completing: Vec<SessionId>,
}

/// Runs sweeps.
#[derive(Debug)]
pub struct Sweeper<'a, S, Q, W, F, E, C> {
    pub store: &'a S,
    pub queue: &'a Q,
    pub workflows: &'a W,
    pub fleet: &'a F,
    pub events: &'a E,
    pub clock: &'a C,
    pub queues: &'a Queues,
    pub settings: &'a Settings,
}

impl<S: Store, Q: TicketQueue, W: Workflows, F: Fleet, E: Events, C: Clock> Sweeper<'_, S, Q, W, F, E, C> {
    /// One pass. `run` names it in the timelines it writes (the scheduler's event id on AWS).
    pub async fn sweep(&self, run: &str) -> Result<SweepReport, PortError> {
        let step = Step {
            execution_id: format!("sweeper:{run}"),
            state: "Sweep".to_owned(),
        };
        let mut report = SweepReport::default();
        self.time_out_tickets(&mut report).await?;
        self.fail_stuck_sessions(&step, Grace::SWEEP, &mut report).await?;
        self.restart_lost_placements(&step, Grace::SWEEP, &mut report).await?;
        self.abandon_silent_sessions(&step, &mut report).await?;
        Ok(report)
    }

    /// The pass for a service started again after its workflows stopped with it (see the module's
    /// docs): nothing in flight has a workflow any more. With `servers_stopped`, the game servers
    /// stopped as well, and every ACTIVE session is abandoned.
    pub async fn after_restart(&self, run: &str, servers_stopped: bool) -> Result<SweepReport, PortError> {
        let step = Step {
            execution_id: format!("sweeper:{run}"),
            state: "Restart".to_owned(),
        };
        let mut report = SweepReport::default();
        self.time_out_tickets(&mut report).await?;
        self.fail_stuck_sessions(&step, Grace::RESTART, &mut report).await?;
        self.restart_lost_placements(&step, Grace::RESTART, &mut report).await?;
        if servers_stopped {
            for stored in self
                .listing(format!("SESSIONS#{}", SessionStatus::Active), |_| Ok(true))
                .await?
            {
                let session_id = items::read::<SessionRecord>(&stored)?.value.session_id;
                if read_reports(self.store, &session_id).await?.result.is_some() {
                    completion::start(self.workflows, &session_id).await?;
                    report.completing.push(session_id);
                    continue;
                }
                let detail = "the service restarted, and the game server stopped with it".to_owned();
                if self.abandon(&session_id, &step, detail).await? {
                    report.abandoned.push(session_id);
                }
            }
        }
        Ok(report)
    }

    fn placements(&self) -> Placements<'_, S, Q, F, E, C> {
        Placements {
            store: self.store,
            queue: self.queue,
            fleet: self.fleet,
            events: self.events,
            clock: self.clock,
            queues: self.queues,
            settings: self.settings,
        }
    }

    /// Every item of a GSI1 listing, oldest first, until `keep_going` says the rest are too young.
    async fn listing(
        &self,
        partition: String,
        mut keep_going: impl FnMut(&Stored) -> Result<bool, PortError>,
    ) -> Result<Vec<Stored>, PortError> {
        let mut items = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .query(Query::new(Index::Gsi1, partition.clone(), MAX_PAGE_ITEMS).after(after))
                .await?;
            for stored in page.items {
                if !keep_going(&stored)? {
                    return Ok(items);
                }
                items.push(stored);
            }
            match page.next {
                Some(cursor) => after = Some(cursor),
                None => return Ok(items),
            }
        }
    }

    async fn time_out_tickets(&self, report: &mut SweepReport) -> Result<(), PortError> {
        let now = self.clock.now();
        let Some(shortest) = self.queues.timeouts().min() else {
            return Ok(());
        };
        // Oldest first: once a ticket is younger than the shortest timeout, so are all after it.
        let searching = self
            .listing(format!("TICKETS#{}", TicketStatus::Searching), |stored| {
                let record: Versioned<TicketRecord> = items::read(stored)?;
                Ok(now.since(record.value.ticket.created_at) >= shortest)
            })
            .await?;
        for stored in searching {
            // The index may lag: `finish` is conditional on the version read, and a stale item
            // (moved since) fails it harmlessly.
            let current: Versioned<TicketRecord> = items::read(&stored)?;
            let ticket = &current.value.ticket;
            if ticket.status != TicketStatus::Searching {
                continue;
            }
            let (to, reason, finished) = match self.queues.get(&ticket.queue) {
                // Its queue is no longer served: no round will ever visit it.
                None => (
                    TicketStatus::Failed,
                    format!("queue `{}` is no longer served", ticket.queue),
                    &mut report.orphaned,
                ),
                Some(rule_set) => {
                    let waited = now.since(ticket.created_at);
                    if waited < Duration::from_secs(u64::from(rule_set.queue.timeout_seconds)) {
                        continue;
                    }
                    (
                        TicketStatus::TimedOut,
                        timeout_reason(rule_set, &current.value, now),
                        &mut report.timed_out,
                    )
                }
            };
            if tickets::finish(self.store, self.events, &current, to, reason, now, self.settings).await? {
                finished.push(ticket.id.clone());
            }
        }
        Ok(())
    }

    async fn fail_stuck_sessions(&self, step: &Step, grace: Grace, report: &mut SweepReport) -> Result<(), PortError> {
        let now = self.clock.now();
        let stuck = self
            .listing(format!("SESSIONS#{}", SessionStatus::Placing), |stored| {
                let record: Versioned<SessionRecord> = items::read(stored)?;
                Ok(now.since(record.value.created_at) >= grace.stuck_placing)
            })
            .await?;
        for stored in stuck {
            // The index may lag behind a session that became ACTIVE a moment ago: read it again,
            // and give up only on one that is still PLACING.
            let listed: Versioned<SessionRecord> = items::read(&stored)?;
            let Some(fresh) = self.store.get(&items::session_key(&listed.value.session_id)).await? else {
                continue;
            };
            let session = items::read::<SessionRecord>(&fresh)?.value;
            if session.status != SessionStatus::Placing {
                continue;
            }
            let cause = (grace.stuck_cause)(now.since(session.created_at));
            let failed = self.placements().fail(&session.match_id, &cause, step).await?;
            if failed.status == Some(SessionStatus::Failed) {
                report.failed_sessions.push(session.session_id);
            }
        }
        Ok(())
    }

    async fn restart_lost_placements(
        &self,
        step: &Step,
        grace: Grace,
        report: &mut SweepReport,
    ) -> Result<(), PortError> {
        let now = self.clock.now();
        let mut in_flight: BTreeSet<MatchId> = BTreeSet::new();
        for status in [TicketStatus::RequiresAcceptance, TicketStatus::Placing] {
            for stored in self.listing(format!("TICKETS#{status}"), |_| Ok(true)).await? {
                let record: Versioned<TicketRecord> = items::read(&stored)?;
                in_flight.extend(record.value.match_id);
            }
        }
        let placements = self.placements();
        for match_id in in_flight {
            let Some(stored) = self.store.get(&items::match_key(&match_id)).await? else {
                continue;
            };
            let record = items::read::<MatchRecord>(&stored)?.value;
            let matched = record.matched;
            let Some(rule_set) = self.queues.get(&matched.queue) else {
                continue;
            };
            if record.status == MatchStatus::Pending {
                // A chunked commit that stopped half-way: no workflow was started for it, and none
                // will be. Put its tickets back, once its round is surely over.
                if now.since(matched.created_at) >= grace.start {
                    let cause = "Sweeper: the match's chunked commit was interrupted; its tickets go back";
                    placements.fail(&match_id, cause, step).await?;
                    report.resumed.push(match_id);
                }
                continue;
            }
            let session = self.store.get(&items::session_key(&session_id_for(&match_id))).await?;
            let session = match session {
                Some(stored) => Some(items::read::<SessionRecord>(&stored)?.value),
                None => None,
            };
            match session.map(|s| s.status) {
                None => {
                    let mut wait = grace.start;
                    if grace.acceptance && rule_set.queue.acceptance.required {
                        wait += Duration::from_secs(u64::from(rule_set.queue.acceptance.timeout_seconds));
                    }
                    if now.since(matched.created_at) < wait {
                        continue;
                    }
                    self.workflows
                        .start(
                            PLACEMENT_WORKFLOW,
                            match_id.as_str(),
                            placement_input(&matched, rule_set),
                        )
                        .await?;
                    report.restarted.push(match_id);
                }
                Some(SessionStatus::Failed) => {
                    let cause = "Sweeper: the placement's compensation was interrupted; finished it";
                    placements.fail(&match_id, cause, step).await?;
                    report.resumed.push(match_id);
                }
                Some(SessionStatus::Active) => {
                    placements.activate(&session_id_for(&match_id), step).await?;
                    report.resumed.push(match_id);
                }
                // PLACING: its workflow may still run; past STUCK_PLACING the pass above failed it.
                Some(_) => {}
            }
        }
        Ok(())
    }

    async fn abandon_silent_sessions(&self, step: &Step, report: &mut SweepReport) -> Result<(), PortError> {
        let now = self.clock.now();
        // Every ACTIVE session: silence is in the reports item, not in the listing's sort key.
        for stored in self
            .listing(format!("SESSIONS#{}", SessionStatus::Active), |_| Ok(true))
            .await?
        {
            let listed: Versioned<SessionRecord> = items::read(&stored)?;
            let session_id = listed.value.session_id.clone();
            let reports = read_reports(self.store, &session_id).await?;
            // Silence counts from the server's last report. A server that never reported was
            // activated before its placement deadline, so that is the latest its silence can have
            // begun.
            let last_sign = [reports.last_heartbeat_at, reports.ready_at]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(listed.value.placement_deadline);
            let silent = now.since(last_sign);
            if silent < HEARTBEAT_TIMEOUT {
                continue;
            }
            // A server that reported its result may stop at once; its session ends when its
            // completion does, and one still ACTIVE this long after has lost its completion.
            if reports.result.is_some() {
                completion::start(self.workflows, &session_id).await?;
                report.completing.push(session_id);
                continue;
            }
            let detail = format!("no heartbeat for {} s: the server is given up", silent.as_secs());
            if self.abandon(&session_id, step, detail).await? {
                report.abandoned.push(session_id);
            }
        }
        Ok(())
    }

    /// ACTIVE → ABANDONED with its timeline entry and its guards freed, in one transaction; then the
    /// server released and the change published. False when the session moved meanwhile.
    async fn abandon(&self, session_id: &SessionId, step: &Step, detail: String) -> Result<bool, PortError> {
        let Some(stored) = self.store.get(&items::session_key(session_id)).await? else {
            return Ok(false);
        };
        let current: Versioned<SessionRecord> = items::read(&stored)?;
        if current.value.status != SessionStatus::Active {
            return Ok(false);
        }
        let mut next = current.value.clone();
        next.status = SessionStatus::Abandoned;
        next.reason = Some(detail.clone());
        next.timeline_len = current.value.timeline_len.saturating_add(1);
        let entry = TimelineEntry {
            at: self.clock.now(),
            seq: current.value.timeline_len,
            status: SessionStatus::Abandoned,
            execution_id: step.execution_id.clone(),
            state: step.state.clone(),
            detail: Some(detail.clone()),
        };
        let mut writes = vec![
            items::update_session(&current, &next)?,
            items::timeline_write(session_id, &entry)?,
        ];
        let ours = GuardHolder::Session(session_id.clone());
        for player in &next.player_ids {
            let key = items::player_guard_key(player);
            // Free only a guard this session holds: the player may be queued again already.
            if let Some(guard) = self.store.get(&key).await? {
                if items::read::<GuardHolder>(&guard)?.value == ours {
                    writes.push(Write::delete(key, Condition::Version(guard.version)));
                }
            }
        }
        match self.store.transact_write(writes, None).await {
            Ok(()) => {}
            Err(PortError::ConditionFailed { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
        if let Some(placement) = &next.placement {
            self.fleet.release(placement).await?;
        }
        self.events
            .publish(DomainEvent::SessionStatusChanged {
                session_id: session_id.clone(),
                player_ids: next.player_ids.clone(),
                status: SessionStatus::Abandoned,
                reason: Some(detail),
            })
            .await?;
        Ok(true)
    }
}
