//! One matchmaking round of a pool, under the pool's lease.
//!
//! 1. Take the lease (a conditional put with an expiry). If someone holds it, they will see the new
//!    tickets in their next round; make sure a tick is due within the batching window.
//! 2. Read the pool: every shard of the sparse pool index, page by page.
//! 3. Fill the open slots of the pool's running sessions that asked for backfill (see
//!    [`super::backfill`]), then run the matcher on the tickets left.
//! 4. Commit each match: its tickets SEARCHING → PLACING (or REQUIRES_ACCEPTANCE), conditional on
//!    the versions read, with the match item, in one transaction. A ticket that moved meanwhile (a
//!    cancel) makes the commit fail whole, and its partners stay in the pool for the next round. A
//!    match over 98 tickets is committed in chunks behind a PENDING match item, its saga record;
//!    a conflict reverts the chunks already written.
//! 5. Start one `session-placement` execution per committed match, named after the match.
//! 6. Time tickets out, releasing their players.
//! 7. Schedule the next tick for the pool's next expansion step or timeout.

use super::messages::{Message, PoolTick};
use super::{Queues, Settings};
use crate::event::DomainEvent;
use crate::ids::TicketId;
use crate::matcher::{self, Match};
use crate::ports::queue::MAX_DELAY;
use crate::ports::store::items::{self, PoolRef, TicketRecord, Versioned};
use crate::ports::store::{
    Condition, IdempotencyToken, Index, Item, Key, Query, Write, MAX_PAGE_ITEMS, MAX_TRANSACTION_OPERATIONS,
};
use crate::ports::{Clock, Events, PortError, Store, TicketQueue, Workflows};
use crate::status::TicketStatus;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The workflow each committed match starts.
pub const PLACEMENT_WORKFLOW: &str = "session-placement";

/// The input of a match's `session-placement` execution, named after the match: ids and what the
/// workflow's Choices read, never secrets. The sweeper restarts a placement with this same input, so
/// that a start that did happen after all is recognised as the same execution.
pub fn placement_input(matched: &Match, rule_set: &crate::RuleSet) -> serde_json::Value {
    serde_json::json!({
        "matchId": matched.id,
        "queue": matched.queue,
        "acceptanceRequired": rule_set.queue.acceptance.required,
    })
}

/// Why `record`, a ticket of `rule_set`'s queue, timed out at `now`: no match found, or, when it was
/// matched before and its match failed, none played.
pub fn timeout_reason(rule_set: &crate::RuleSet, record: &TicketRecord, now: Timestamp) -> String {
    let timeout = rule_set.queue.timeout_seconds;
    let waited = now.since(record.ticket.created_at).as_secs();
    match &record.last_match_failed {
        None => format!("no match found within {timeout} s (waited {waited} s)"),
        Some(failed) => format!("no match played within {timeout} s (waited {waited} s); {failed}"),
    }
}

/// What a round did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RoundReport {
    /// The running sessions whose open slots this round filled, before any new match.
    pub backfilled: Vec<super::backfill::Backfilled>,
    /// The matches committed, in the order they were formed.
    pub matches: Vec<Match>,
    pub timed_out: Vec<TicketId>,
    /// Tickets still searching after the round.
    pub remaining: usize,
    /// Matches whose tickets moved before the commit: left for the next round.
    pub conflicts: usize,
    /// Whether another holder had the lease, so this round did nothing.
    pub lease_busy: bool,
    /// When the next tick is due, if one was scheduled.
    pub next_tick: Option<Timestamp>,
}

/// `POOL#<queue>#<partition>` / `TICK`: when the pool's next tick is due. It keeps the ticks of a
/// pool to one chain: a round schedules a tick only when none is due sooner. (DESIGN.md keeps this
/// on the lease; the lease item expires with its holder, and the schedule must outlive it.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TickSchedule {
    due: Timestamp,
}

fn tick_key(pool: &PoolRef) -> Key {
    Key::new(pool.lease_key().pk, "TICK")
}

/// Runs rounds.
#[derive(Debug)]
pub struct Rounds<'a, S, Q, W, E, C> {
    pub store: &'a S,
    pub queue: &'a Q,
    pub workflows: &'a W,
    pub events: &'a E,
    pub clock: &'a C,
    pub queues: &'a Queues,
    pub settings: &'a Settings,
}

impl<S: Store, Q: TicketQueue, W: Workflows, E: Events, C: Clock> Rounds<'_, S, Q, W, E, C> {
    /// Runs one round of `pool` as `holder` (e.g. the Lambda request id).
    pub async fn run(&self, pool: &PoolRef, holder: &str) -> Result<RoundReport, PortError> {
        let rule_set = self
            .queues
            .get(&pool.queue)
            .ok_or_else(|| PortError::invalid(format!("no queue `{}` is served here", pool.queue)))?;
        let now = self.clock.now();
        let Write::Put { item, condition } = items::take_lease(pool, holder, now, self.settings.lease_ttl)? else {
            return Err(PortError::invalid("a lease is taken with a put"));
        };
        match self.store.put(item, condition).await {
            Ok(_) => {}
            Err(PortError::ConditionFailed { .. }) => {
                let next_tick = self
                    .schedule_tick(pool, now.plus(self.settings.tick_window), now)
                    .await?;
                return Ok(RoundReport {
                    lease_busy: true,
                    next_tick,
                    ..RoundReport::default()
                });
            }
            Err(e) => return Err(e),
        }
        let outcome = self.round_under_lease(pool, rule_set, now, holder).await;
        // Give the lease up whatever happened; if this fails, the lease expires on its own.
        let _ = self.store.delete(&pool.lease_key(), Condition::Exists).await;
        outcome
    }

    async fn round_under_lease(
        &self,
        pool: &PoolRef,
        rule_set: &crate::RuleSet,
        now: Timestamp,
        holder: &str,
    ) -> Result<RoundReport, PortError> {
        let mut waiting = self.read_pool(pool).await?;
        let backfills = super::backfill::Backfills {
            store: self.store,
            events: self.events,
            clock: self.clock,
            settings: self.settings,
        };
        let backfilled = backfills.serve(pool, rule_set, &mut waiting, holder).await?;
        let tickets: Vec<_> = waiting.values().map(|t| self.as_matched(&t.value.ticket)).collect();
        let outcome = matcher::round(&tickets, rule_set, now);
        let to = if rule_set.queue.acceptance.required {
            TicketStatus::RequiresAcceptance
        } else {
            TicketStatus::Placing
        };

        let mut report = RoundReport {
            backfilled,
            remaining: outcome.remaining.len(),
            ..RoundReport::default()
        };
        for matched in outcome.matches {
            let read: Option<Vec<_>> = matched.ticket_ids().map(|id| waiting.get(id).cloned()).collect();
            let Some(read) = read else {
                return Err(PortError::invalid(format!(
                    "match {} names a ticket not in its pool",
                    matched.id
                )));
            };
            if self.commit(&matched, &read, to).await? {
                for current in &read {
                    let mut ticket = current.value.ticket.clone();
                    ticket.status = to;
                    if let Some(event) = DomainEvent::for_ticket_status(&ticket) {
                        self.events.publish(event).await?;
                    }
                }
                self.workflows
                    .start(
                        PLACEMENT_WORKFLOW,
                        matched.id.as_str(),
                        placement_input(&matched, rule_set),
                    )
                    .await?;
                report.matches.push(matched);
            } else {
                report.conflicts += 1;
                report.remaining += read.len();
            }
        }
        for id in outcome.timed_out {
            if let Some(current) = waiting.get(&id) {
                let reason = timeout_reason(rule_set, &current.value, now);
                if super::tickets::finish(
                    self.store,
                    self.events,
                    current,
                    TicketStatus::TimedOut,
                    reason,
                    now,
                    self.settings,
                )
                .await?
                {
                    report.timed_out.push(id);
                }
            }
        }
        // The matcher counts matched tickets as settled; the partners of a match whose commit
        // failed are not, and nothing else would bring them back before their next step.
        let mut next = outcome.next_change_at;
        if report.conflicts > 0 {
            let soon = now.plus(self.settings.tick_window);
            next = Some(next.map_or(soon, |at| at.min(soon)));
        }
        if let Some(at) = next {
            report.next_tick = self.schedule_tick(pool, at, now).await?;
        }
        Ok(report)
    }

    /// The ticket as the matcher sees it (see [`Settings::as_matched`]).
    fn as_matched(&self, ticket: &crate::Ticket) -> crate::Ticket {
        let mut ticket = ticket.clone();
        for player in ticket.players.iter_mut() {
            self.settings.as_matched(player);
        }
        ticket
    }

    /// Every SEARCHING ticket of the pool, by id. The pool index is eventually consistent, so each
    /// item is re-checked here and, above all, by the commit's version conditions.
    async fn read_pool(&self, pool: &PoolRef) -> Result<BTreeMap<TicketId, Versioned<TicketRecord>>, PortError> {
        let mut waiting = BTreeMap::new();
        for partition in pool.shard_partitions(self.settings.pool_shards) {
            let mut after = None;
            loop {
                let page = self
                    .store
                    .query(Query::new(Index::Pool, partition.clone(), MAX_PAGE_ITEMS).after(after))
                    .await?;
                for stored in &page.items {
                    let record: Versioned<TicketRecord> = items::read(stored)?;
                    if record.value.ticket.status == TicketStatus::Searching {
                        waiting.insert(record.value.ticket.id.clone(), record);
                    }
                }
                match page.next {
                    Some(cursor) => after = Some(cursor),
                    None => break,
                }
            }
        }
        Ok(waiting)
    }

    /// Commits one match; false when a ticket moved since it was read.
    async fn commit(
        &self,
        matched: &Match,
        read: &[Versioned<TicketRecord>],
        to: TicketStatus,
    ) -> Result<bool, PortError> {
        if read.len() > items::MAX_TICKETS_PER_COMMIT {
            return self.commit_in_chunks(matched, read, to).await;
        }
        let writes = items::commit_match(matched, read, to, self.settings.pool_shards)?;
        // The match id makes a retried commit (after a timeout whose outcome is unknown) harmless.
        let token = IdempotencyToken::new(matched.id.as_str()).ok();
        match self.store.transact_write(writes, token).await {
            Ok(()) => Ok(true),
            Err(PortError::ConditionFailed { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Commits a match too large for one transaction as a saga: the PENDING match item first, then
    /// the ticket moves in transactions of at most 100, then the match COMMITTED. A chunk that
    /// meets a ticket that moved since it was read reverts the chunks already written, each ticket
    /// back to SEARCHING as old as it was, and deletes the PENDING item: false, as for a small match
    /// whose commit failed. Should this stop half-way (a crash), the PENDING item stays, and the
    /// sweeper puts the tickets back.
    async fn commit_in_chunks(
        &self,
        matched: &Match,
        read: &[Versioned<TicketRecord>],
        to: TicketStatus,
    ) -> Result<bool, PortError> {
        let shards = self.settings.pool_shards;
        let moves = items::move_into_match(matched, read, to, shards)?;
        let Write::Put { item, condition } = items::pending_match(matched)? else {
            return Err(PortError::invalid("a match is created with a put"));
        };
        let pending_version = match self.store.put(item, condition).await {
            Ok(version) => version,
            // A replayed round: this match was committed (or is being) already.
            Err(PortError::ConditionFailed { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        let mut written: Vec<(&Versioned<TicketRecord>, &TicketRecord)> = Vec::new();
        for (chunk, originals) in moves
            .chunks(MAX_TRANSACTION_OPERATIONS)
            .zip(read.chunks(MAX_TRANSACTION_OPERATIONS))
        {
            let writes: Vec<Write> = chunk.iter().map(|(write, _)| write.clone()).collect();
            match self.store.transact_write(writes, None).await {
                Ok(()) => written.extend(originals.iter().zip(chunk.iter().map(|(_, next)| next))),
                Err(PortError::ConditionFailed { .. }) => {
                    self.revert_chunks(matched, &written).await?;
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
        }
        self.store
            .transact_write(vec![items::settle_match(matched, pending_version)?], None)
            .await?;
        Ok(true)
    }

    /// Puts back every ticket a failed chunked commit moved, then deletes its PENDING match item.
    async fn revert_chunks(
        &self,
        matched: &Match,
        written: &[(&Versioned<TicketRecord>, &TicketRecord)],
    ) -> Result<(), PortError> {
        let shards = self.settings.pool_shards;
        let mut reverts = Vec::with_capacity(written.len());
        for (original, moved) in written {
            // Every write bumps an item's version by one: the move wrote the version after the one read.
            let version = original.version.saturating_add(1);
            reverts.push(items::revert_move(moved, version, &original.value, shards)?);
        }
        for chunk in reverts.chunks(MAX_TRANSACTION_OPERATIONS) {
            match self.store.transact_write(chunk.to_vec(), None).await {
                Ok(()) => {}
                // Nothing moves a PLACING or REQUIRES_ACCEPTANCE ticket of an uncommitted match but
                // a cancel; one at a time, then, so the others still go back.
                Err(PortError::ConditionFailed { .. }) => {
                    for write in chunk {
                        match self.store.transact_write(vec![write.clone()], None).await {
                            Ok(()) | Err(PortError::ConditionFailed { .. }) => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        self.store
            .delete(&items::match_key(&matched.id), Condition::Exists)
            .await
    }

    /// Makes sure a tick of `pool` is due by `at` (within SQS's 15-minute delay), unless one is due
    /// sooner already. Returns when the pool's next tick is due.
    async fn schedule_tick(
        &self,
        pool: &PoolRef,
        at: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, PortError> {
        let at = at.min(now.plus(MAX_DELAY)).max(now);
        let key = tick_key(pool);
        let current = self.store.get(&key).await?;
        let condition = match &current {
            Some(stored) => {
                let scheduled: Versioned<TickSchedule> = items::read(stored)?;
                if scheduled.value.due > now && scheduled.value.due <= at {
                    return Ok(Some(scheduled.value.due));
                }
                Condition::Version(scheduled.version)
            }
            None => Condition::Absent,
        };
        let body = serde_json::to_value(TickSchedule { due: at })
            .map_err(|e| PortError::invalid(format!("tick schedule: {e}")))?;
        match self.store.put(Item::new(key, body), condition).await {
            Ok(_) => {}
            // Someone else scheduled one just now: theirs will do.
            Err(PortError::ConditionFailed { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        let tick = Message::PoolTick(PoolTick {
            queue: pool.queue.clone(),
            partition: pool.partition.clone(),
            due: at,
        });
        self.queue
            .send(tick.to_body(), at.since(now).max(Duration::ZERO))
            .await?;
        Ok(Some(at))
    }
}
