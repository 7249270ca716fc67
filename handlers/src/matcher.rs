//! The `matcher` function: batches of the `tickets` queue.
//!
//! Per batch, as DESIGN.md says:
//! 1. admit each ticket (idempotent);
//! 2. run one round for each pool the batch touched (ticks name theirs);
//! 3. report what must be retried in `batchItemFailures`.
//!
//! A message that cannot be parsed is reported as failed every time, so its receives run out and
//! SQS moves it to the dead-letter queue; the rest of the batch goes on. A ticket that parses but
//! is invalid is FAILED with its reason and acknowledged. A failure of the ports is reported for
//! retry, and so is every message whose pool's round failed, so no admitted ticket waits unseen.

use crate::Service;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use queuematch_core::ports::store::items::PoolRef;
use queuematch_core::ports::{Clock, Events, Store, TicketQueue, Workflows};
use queuematch_core::usecases::admission::Admitted;
use queuematch_core::usecases::messages::Message;
use queuematch_core::usecases::round::RoundReport;
use queuematch_core::usecases::PartyTokens;
use std::collections::BTreeMap;

/// What one batch did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchOutcome {
    pub response: SqsBatchResponse,
    pub admitted: usize,
    /// `admitted`, by queue: the metrics' `TicketsStarted`.
    pub admitted_per_queue: BTreeMap<String, usize>,
    pub duplicates: usize,
    pub failed_tickets: usize,
    /// Tickets their callers cancelled while they were queued: recorded CANCELLED, not admitted.
    pub cancelled_tickets: usize,
    pub unreadable: usize,
    /// Why each message handed back to the queue (a batch item failure) was: its id and the reason.
    pub retried: Vec<(String, String)>,
    /// Records without a `messageId` (SQS always sets one): they cannot be handed back, and are
    /// counted so that none is dropped unseen.
    pub without_id: usize,
    pub rounds: Vec<(PoolRef, RoundReport)>,
}

/// Handles one SQS batch. `holder` names this invocation on the pool leases (the Lambda request id).
pub async fn handle<S, Q, W, E, C, P>(
    service: &Service<S, Q, W, E, C, P>,
    event: SqsEvent,
    holder: &str,
) -> BatchOutcome
where
    S: Store,
    Q: TicketQueue,
    W: Workflows,
    E: Events,
    C: Clock,
    P: PartyTokens,
{
    let admission = service.admission();
    let mut outcome = BatchOutcome::default();
    let mut failures: Vec<(String, String)> = Vec::new();
    // Each pool the batch touched, with the messages that depend on its round.
    let mut pools: BTreeMap<(String, String), (PoolRef, Vec<String>)> = BTreeMap::new();

    for record in event.records {
        let Some(id) = record.message_id.clone() else {
            outcome.without_id += 1;
            continue;
        };
        let message = match record.body.as_deref().map(Message::parse) {
            Some(Ok(message)) => message,
            unreadable => {
                outcome.unreadable += 1;
                let why = match unreadable {
                    Some(Err(e)) => e.to_string(),
                    _ => "no body".to_owned(),
                };
                failures.push((id, why));
                continue;
            }
        };
        match message {
            Message::Ticket(ticket) => match admission.admit(&ticket).await {
                Ok(Admitted::Searching(pool)) => {
                    outcome.admitted += 1;
                    *outcome.admitted_per_queue.entry(pool.queue.clone()).or_default() += 1;
                    touch(&mut pools, pool, id);
                }
                Ok(Admitted::Duplicate) => outcome.duplicates += 1,
                Ok(Admitted::Failed(_)) => outcome.failed_tickets += 1,
                Ok(Admitted::Cancelled) => outcome.cancelled_tickets += 1,
                Err(e) => failures.push((id, format!("admission failed: {e}"))),
            },
            Message::PoolTick(tick) => touch(&mut pools, PoolRef::new(tick.queue, tick.partition), id),
        }
    }

    let rounds = service.rounds();
    for (pool, dependents) in pools.into_values() {
        match rounds.run(&pool, holder).await {
            Ok(report) => outcome.rounds.push((pool, report)),
            Err(e) => failures.extend(dependents.into_iter().map(|id| {
                (
                    id,
                    format!("the round of {}/{} failed: {e}", pool.queue, pool.partition),
                )
            })),
        }
    }

    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures
        .iter()
        .map(|(id, _)| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id.clone();
            failure
        })
        .collect();
    outcome.retried = failures;
    outcome.response = response;
    outcome
}

fn touch(pools: &mut BTreeMap<(String, String), (PoolRef, Vec<String>)>, pool: PoolRef, message_id: String) {
    pools
        .entry((pool.queue.clone(), pool.partition.clone()))
        .or_insert_with(|| (pool, Vec::new()))
        .1
        .push(message_id);
}
