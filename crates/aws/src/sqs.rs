//! The `TicketQueue` port on SQS: the `tickets` queue and its dead-letter queue.
//!
//! SQS does all of the port's semantics itself (delays, visibility, receive counts, the move to the
//! dead-letter queue after `maxReceiveCount` receives, set by the queue's RedrivePolicy). The
//! adapter translates, rounds durations *up* to SQS's whole seconds (so a delay or a visibility
//! timeout is never shorter than asked), and gathers Lambda-style batches with long polls.

use crate::error;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;
use queuematch_core::ports::queue::{
    self, DeadLetter, QueueDepth, QueueMessage, ReceiptHandle, TicketQueue, MAX_BATCH, MAX_BATCHING_WINDOW, MAX_RECEIVE,
};
use queuematch_core::ports::PortError;
use queuematch_core::Timestamp;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;

/// SQS's longest long poll.
const MAX_WAIT_SECONDS: u64 = 20;

/// The `tickets` queue and its dead-letter queue, on SQS.
#[derive(Debug, Clone)]
pub struct SqsTicketQueue {
    client: Client,
    queue_url: String,
    /// Read for depth and operators' inspection, and drained by `redrive`. The queue's RedrivePolicy
    /// (infra/template.yaml, or [`create_queues`]) is what sends messages here.
    dlq_url: String,
}

impl SqsTicketQueue {
    pub fn new(client: Client, queue_url: impl Into<String>, dlq_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            dlq_url: dlq_url.into(),
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// One ReceiveMessage on the queue.
    async fn receive_once(
        &self,
        max: usize,
        visibility: Duration,
        wait_seconds: u64,
    ) -> Result<Vec<QueueMessage>, PortError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(count(max.min(MAX_RECEIVE)))
            .visibility_timeout(seconds(visibility))
            .wait_time_seconds(count(wait_seconds as usize))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| error::map("ReceiveMessage", e))?;
        out.messages.unwrap_or_default().into_iter().map(to_message).collect()
    }

    async fn counts(&self, url: &str) -> Result<HashMap<QueueAttributeName, usize>, PortError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| error::map("GetQueueAttributes", e))?;
        out.attributes
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| {
                let n = value
                    .parse()
                    .map_err(|_| PortError::transient(format!("SQS sent a count of {value:?} for {name}")))?;
                Ok((name, n))
            })
            .collect()
    }
}

/// Whole seconds, rounded up: SQS's unit for delays and visibility timeouts.
fn seconds(d: Duration) -> i32 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(s).unwrap_or(i32::MAX)
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn to_message(m: aws_sdk_sqs::types::Message) -> Result<QueueMessage, PortError> {
    let attr = |name: MessageSystemAttributeName| m.attributes.as_ref().and_then(|a| a.get(&name)).cloned();
    let missing = |what: &str| PortError::transient(format!("SQS sent a message without {what}"));
    let receive_count = attr(MessageSystemAttributeName::ApproximateReceiveCount)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| missing("its ApproximateReceiveCount"))?;
    let sent_at = attr(MessageSystemAttributeName::SentTimestamp)
        .and_then(|v| v.parse().ok())
        .map(Timestamp::from_millis)
        .ok_or_else(|| missing("its SentTimestamp"))?;
    Ok(QueueMessage {
        message_id: m.message_id.ok_or_else(|| missing("an id"))?,
        receipt: ReceiptHandle(m.receipt_handle.ok_or_else(|| missing("a receipt handle"))?),
        body: m.body.unwrap_or_default(),
        receive_count,
        sent_at,
    })
}

#[async_trait::async_trait]
impl TicketQueue for SqsTicketQueue {
    async fn send(&self, body: String, delay: Duration) -> Result<String, PortError> {
        queue::validate_send(&body, delay)?;
        let out = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(seconds(delay))
            .send()
            .await
            .map_err(|e| error::map("SendMessage", e))?;
        out.message_id
            .ok_or_else(|| PortError::transient("SendMessage answered without a message id"))
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<QueueMessage>, PortError> {
        queue::validate_receive(max, MAX_RECEIVE, visibility)?;
        self.receive_once(max, visibility, 0).await
    }

    /// Long polls, ten messages at a time, until `max` are in hand or the window has passed. A poll
    /// is never cut short (a receive abandoned mid-flight would hide its messages for the whole
    /// visibility timeout), so each waits at most the whole seconds left of the window.
    async fn receive_batch(
        &self,
        max: usize,
        window: Duration,
        visibility: Duration,
    ) -> Result<Vec<QueueMessage>, PortError> {
        queue::validate_receive(max, MAX_BATCH, visibility)?;
        if window > MAX_BATCHING_WINDOW {
            return Err(PortError::invalid(format!(
                "a batching window is at most 300 s, not {} ms",
                window.as_millis()
            )));
        }
        let deadline = Instant::now() + window;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = left.as_secs().min(MAX_WAIT_SECONDS);
            let batch = self.receive_once(max - got.len(), visibility, wait).await?;
            let empty = batch.is_empty();
            got.extend(batch);
            if got.len() >= max || Instant::now() >= deadline {
                return Ok(got);
            }
            if empty && wait == 0 {
                // Less than a second left: short polls, a little apart.
                tokio::time::sleep(left.min(Duration::from_millis(100))).await;
            }
        }
    }

    /// SQS answers `ReceiptHandleIsInvalid` for a receipt whose message is gone (deleted, or moved
    /// to the dead-letter queue) as well as for a forged one; receipts only come from receives, so
    /// the port reads it as "gone", which a delete does not mind.
    async fn delete(&self, receipt: &ReceiptHandle) -> Result<(), PortError> {
        match self
            .client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(&receipt.0)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if error::code(&e) == Some("ReceiptHandleIsInvalid") => Ok(()),
            Err(e) => Err(error::map("DeleteMessage", e)),
        }
    }

    async fn change_visibility(&self, receipt: &ReceiptHandle, timeout: Duration) -> Result<(), PortError> {
        if timeout > queue::MAX_VISIBILITY_TIMEOUT {
            return Err(PortError::invalid(format!(
                "a visibility timeout is at most 12 h, not {} s",
                timeout.as_secs()
            )));
        }
        match self
            .client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(&receipt.0)
            .visibility_timeout(seconds(timeout))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if matches!(error::code(&e), Some("ReceiptHandleIsInvalid" | "MessageNotInflight")) => Err(
                PortError::NotFound(format!("no message in flight under receipt {}", receipt.0)),
            ),
            Err(e) => Err(error::map("ChangeMessageVisibility", e)),
        }
    }

    async fn depth(&self) -> Result<QueueDepth, PortError> {
        let queue = self.counts(&self.queue_url).await?;
        let dead = self.counts(&self.dlq_url).await?;
        let of = |m: &HashMap<QueueAttributeName, usize>, name| m.get(&name).copied().unwrap_or(0);
        Ok(QueueDepth {
            visible: of(&queue, QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: of(&queue, QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            delayed: of(&queue, QueueAttributeName::ApproximateNumberOfMessagesDelayed),
            dead: dead.values().sum(),
        })
    }

    /// Receives from the dead-letter queue with a visibility timeout of 0, so the messages stay
    /// there, receivable at once. The one-second long poll makes SQS look at all its servers, which
    /// a short poll does not.
    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, PortError> {
        queue::validate_receive(max, MAX_RECEIVE, Duration::ZERO)?;
        let out = self
            .client
            .receive_message()
            .queue_url(&self.dlq_url)
            .max_number_of_messages(count(max))
            .visibility_timeout(0)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| error::map("ReceiveMessage", e))?;
        let mut seen = HashSet::new();
        let mut dead = Vec::new();
        for m in out.messages.unwrap_or_default() {
            let m = to_message(m)?;
            if seen.insert(m.message_id.clone()) {
                dead.push(DeadLetter {
                    message_id: m.message_id,
                    body: m.body,
                    // SQS carries the count over to the dead-letter queue and counts this inspection
                    // too (and earlier inspections: the figure is approximate, as SQS's is).
                    receive_count: m.receive_count.saturating_sub(1),
                    sent_at: m.sent_at,
                });
            }
        }
        Ok(dead)
    }

    /// Moves each dead letter back as a new message (fresh id and receive count): received from the
    /// dead-letter queue, sent to the queue, then deleted there. A crash between send and delete
    /// leaves a duplicate, which consumers handle as any redelivery. SQS's own StartMessageMoveTask
    /// runs asynchronously and reports no count, hence the loop.
    async fn redrive(&self) -> Result<usize, PortError> {
        let mut moved = 0;
        loop {
            let out = self
                .client
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages(count(MAX_RECEIVE))
                .visibility_timeout(30)
                .wait_time_seconds(if moved == 0 { 1 } else { 0 })
                .send()
                .await
                .map_err(|e| error::map("ReceiveMessage", e))?;
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return Ok(moved);
            }
            for m in messages {
                let body = m.body.unwrap_or_default();
                self.send(body, Duration::ZERO).await?;
                if let Some(receipt) = m.receipt_handle {
                    self.client
                        .delete_message()
                        .queue_url(&self.dlq_url)
                        .receipt_handle(receipt)
                        .send()
                        .await
                        .map_err(|e| error::map("DeleteMessage", e))?;
                }
                moved += 1;
            }
        }
    }
}

/// Creates the queue `name` and its dead-letter queue `<name>-dlq`, with the RedrivePolicy of
/// DESIGN.md (a message goes to the dead-letter queue after `max_receives` receives), and returns
/// their URLs. For tests and local tooling: on AWS the SAM template creates them.
pub async fn create_queues(client: &Client, name: &str, max_receives: u32) -> Result<(String, String), PortError> {
    let create = |queue: String, attributes: Option<(QueueAttributeName, String)>| async move {
        let mut call = client.create_queue().queue_name(queue);
        if let Some((k, v)) = attributes {
            call = call.attributes(k, v);
        }
        let out = call.send().await.map_err(|e| error::map("CreateQueue", e))?;
        out.queue_url
            .ok_or_else(|| PortError::transient("CreateQueue answered without a URL"))
    };
    let dlq_url = create(format!("{name}-dlq"), None).await?;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| error::map("GetQueueAttributes", e))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| PortError::transient("GetQueueAttributes answered without the QueueArn"))?;
    let policy = serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives }).to_string();
    let queue_url = create(name.to_owned(), Some((QueueAttributeName::RedrivePolicy, policy))).await?;
    Ok((queue_url, dlq_url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_up_to_whole_seconds() {
        assert_eq!(seconds(Duration::ZERO), 0);
        assert_eq!(seconds(Duration::from_millis(1)), 1);
        assert_eq!(seconds(Duration::from_secs(5)), 5);
        assert_eq!(seconds(Duration::from_millis(5_001)), 6);
    }
}
