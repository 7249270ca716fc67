//! The matcher loop: what Lambda's SQS event source does for the `matcher` function on AWS.

use super::LocalService;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use queuematch_core::ports::queue::QueueMessage;
use queuematch_core::ports::TicketQueue;
use queuematch_handlers::matcher;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The event source mapping of DESIGN.md: batches of up to 1,000 within a 1 s window.
const BATCH_SIZE: usize = 1_000;
const BATCHING_WINDOW: Duration = Duration::from_secs(1);
/// Longer than a batch takes, so a message is not redelivered while its batch still runs.
const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);
/// After a failure of the queue itself, wait before asking again (with a little jitter).
const BACKOFF: Duration = Duration::from_millis(250);

/// An SQS record, as Lambda delivers it, for a received message.
fn record(message: &QueueMessage) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = Some(message.message_id.clone());
    record.receipt_handle = Some(message.receipt.0.clone());
    record.body = Some(message.body.clone());
    record
        .attributes
        .insert("ApproximateReceiveCount".into(), message.receive_count.to_string());
    record
        .attributes
        .insert("SentTimestamp".into(), message.sent_at.as_millis().to_string());
    record.event_source = Some("aws:sqs".into());
    record.event_source_arn = Some("arn:aws:sqs:local:000000000000:queuematch-tickets".into());
    record.aws_region = Some("local".into());
    record
}

/// Receives batches and runs the `matcher` handler on them until `shutdown` completes.
pub async fn run_matcher(service: Arc<LocalService>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut invocation: u64 = 0;
    loop {
        let batch = tokio::select! {
            _ = &mut shutdown => return,
            batch = service.queue.receive_batch(BATCH_SIZE, BATCHING_WINDOW, VISIBILITY_TIMEOUT) => batch,
        };
        let messages = match batch {
            Ok(messages) if messages.is_empty() => continue,
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(error = %e, "receiving from the tickets queue failed");
                tokio::time::sleep(BACKOFF).await;
                continue;
            }
        };
        invocation += 1;
        let mut event = SqsEvent::default();
        event.records = messages.iter().map(record).collect();
        let holder = format!("local-matcher-{}-{invocation}", std::process::id());
        let outcome = matcher::handle(&service, event, &holder).await;
        let failed: HashSet<&str> = outcome
            .response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        tracing::info!(
            messages = messages.len(),
            admitted = outcome.admitted,
            duplicates = outcome.duplicates,
            failed_tickets = outcome.failed_tickets,
            cancelled_tickets = outcome.cancelled_tickets,
            unreadable = outcome.unreadable,
            retried = failed.len(),
            matches = outcome.rounds.iter().map(|(_, r)| r.matches.len()).sum::<usize>(),
            "matcher batch"
        );
        for (message, why) in &outcome.retried {
            tracing::warn!(message = %message, why = %why, "a message goes back to the queue");
        }
        if outcome.without_id > 0 {
            tracing::warn!(records = outcome.without_id, "records without a messageId were skipped");
        }
        // ReportBatchItemFailures: what the handler acknowledged is deleted; the rest comes back
        // after its visibility timeout, and goes to the dead-letter queue when its receives run out.
        for message in messages.iter().filter(|m| !failed.contains(m.message_id.as_str())) {
            if let Err(e) = service.queue.delete(&message.receipt).await {
                tracing::warn!(error = %e, message = %message.message_id, "deleting a handled message failed");
            }
        }
    }
}
