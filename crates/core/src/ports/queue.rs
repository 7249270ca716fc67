//! The `TicketQueue` port: the `tickets` queue with SQS's semantics, and its dead-letter queue.

use crate::ports::error::PortError;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// SQS's longest delivery delay.
pub const MAX_DELAY: Duration = Duration::from_secs(900);
/// SQS's longest visibility timeout.
pub const MAX_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);
/// SQS's most messages per ReceiveMessage.
pub const MAX_RECEIVE: usize = 10;
/// The largest batch of a Lambda SQS event source with a batching window.
pub const MAX_BATCH: usize = 10_000;
/// Lambda's longest batching window.
pub const MAX_BATCHING_WINDOW: Duration = Duration::from_secs(300);
/// SQS's largest message body.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// How many receives a message gets before it goes to the dead-letter queue (DESIGN.md).
pub const DEFAULT_MAX_RECEIVES: u32 = 5;

/// Identifies one receive of one message: a later receive of the same message gets a new one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReceiptHandle(pub String);

impl fmt::Display for ReceiptHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message as received: SQS's `Message` with the attributes the matcher reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    /// Stable across receives, and kept when the message moves to the dead-letter queue.
    pub message_id: String,
    /// For deleting this message or changing its visibility, until it is received again.
    pub receipt: ReceiptHandle,
    pub body: String,
    /// `ApproximateReceiveCount`: 1 on the first receive.
    pub receive_count: u32,
    /// `SentTimestamp`.
    pub sent_at: Timestamp,
}

/// A message in the dead-letter queue, as operators inspect it before a redrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The id it had in the queue.
    pub message_id: String,
    pub body: String,
    /// How many times it was received before it was given up on.
    pub receive_count: u32,
    pub sent_at: Timestamp,
}

/// How many messages are where, as SQS's approximate counts report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    /// `ApproximateNumberOfMessages`: receivable now.
    pub visible: usize,
    /// `ApproximateNumberOfMessagesNotVisible`: received and not yet deleted.
    pub in_flight: usize,
    /// `ApproximateNumberOfMessagesDelayed`.
    pub delayed: usize,
    /// Messages in the dead-letter queue.
    pub dead: usize,
}

/// The queue between the API and the matcher.
///
/// Guarantees:
/// - **At least once.** A received message is delivered again once its visibility timeout passes
///   unless it was deleted: every consumer must be idempotent. No ordering is promised.
/// - **Delay.** A message sent with a delay cannot be received before it passes (0 to 900 s).
/// - **Receive counts.** Each receive counts; a message received `max_receives` times (5) and not
///   deleted goes to the dead-letter queue instead of being delivered again, keeping its id and body.
/// - **Receipts.** Delete and change-visibility name one receive. Deleting a message that is gone is
///   not an error, so a retried delete is harmless; a *stale* receipt (the message was received
///   again since) may or may not delete it (SQS promises neither), but never fails.
/// - **Time** is the adapter's clock: on virtual time, delays and timeouts pass when the clock moves.
/// - **Limits** (`Invalid` when broken): bodies of 1 byte to 256 KiB; at most 10 per `receive` and
///   10,000 per `receive_batch`; visibility timeouts up to 12 hours; windows up to 300 s.
#[async_trait::async_trait]
pub trait TicketQueue: Send + Sync {
    /// Sends `body`, receivable after `delay`. Returns the message id.
    async fn send(&self, body: String, delay: Duration) -> Result<String, PortError>;

    /// Up to `max` (≤ 10) receivable messages, at once and possibly none, hidden for `visibility`.
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<QueueMessage>, PortError>;

    /// Gathers receivable messages, as Lambda's event source does, until `max` are in hand or
    /// `window` has passed since the call, whichever comes first; then returns them, possibly none.
    async fn receive_batch(
        &self,
        max: usize,
        window: Duration,
        visibility: Duration,
    ) -> Result<Vec<QueueMessage>, PortError>;

    /// Deletes the message received with `receipt`.
    async fn delete(&self, receipt: &ReceiptHandle) -> Result<(), PortError>;

    /// Hides the received message for `timeout` from now (0 makes it receivable at once). `NotFound`
    /// when the message is gone or not in flight under this receipt.
    async fn change_visibility(&self, receipt: &ReceiptHandle, timeout: Duration) -> Result<(), PortError>;

    /// Approximate counts, for operators and alarms.
    async fn depth(&self) -> Result<QueueDepth, PortError>;

    /// Up to `max` (≤ 10) messages of the dead-letter queue, without removing them, for operators.
    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, PortError>;

    /// Moves every dead letter back to the queue, receivable at once with a fresh receive count
    /// (SQS's redrive). Returns how many moved.
    async fn redrive(&self) -> Result<usize, PortError>;
}

#[async_trait::async_trait]
impl<Q: TicketQueue + ?Sized> TicketQueue for std::sync::Arc<Q> {
    async fn send(&self, body: String, delay: Duration) -> Result<String, PortError> {
        (**self).send(body, delay).await
    }
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<QueueMessage>, PortError> {
        (**self).receive(max, visibility).await
    }
    async fn receive_batch(
        &self,
        max: usize,
        window: Duration,
        visibility: Duration,
    ) -> Result<Vec<QueueMessage>, PortError> {
        (**self).receive_batch(max, window, visibility).await
    }
    async fn delete(&self, receipt: &ReceiptHandle) -> Result<(), PortError> {
        (**self).delete(receipt).await
    }
    async fn change_visibility(&self, receipt: &ReceiptHandle, timeout: Duration) -> Result<(), PortError> {
        (**self).change_visibility(receipt, timeout).await
    }
    async fn depth(&self) -> Result<QueueDepth, PortError> {
        (**self).depth().await
    }
    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, PortError> {
        (**self).dead_letters(max).await
    }
    async fn redrive(&self) -> Result<usize, PortError> {
        (**self).redrive().await
    }
}

/// Checks what every adapter refuses on a send.
pub fn validate_send(body: &str, delay: Duration) -> Result<(), PortError> {
    if body.is_empty() || body.len() > MAX_BODY_BYTES {
        return Err(PortError::invalid(format!(
            "a message body has 1 to {MAX_BODY_BYTES} bytes, not {}",
            body.len()
        )));
    }
    if delay > MAX_DELAY {
        return Err(PortError::invalid(format!(
            "a delay is at most 900 s, not {} ms",
            delay.as_millis()
        )));
    }
    Ok(())
}

/// Checks the count and visibility of a receive whose most is `limit`.
pub fn validate_receive(max: usize, limit: usize, visibility: Duration) -> Result<(), PortError> {
    if max == 0 || max > limit {
        return Err(PortError::invalid(format!(
            "a receive takes 1 to {limit} messages, not {max}"
        )));
    }
    if visibility > MAX_VISIBILITY_TIMEOUT {
        return Err(PortError::invalid(format!(
            "a visibility timeout is at most 12 h, not {} s",
            visibility.as_secs()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_outside_the_limits_are_invalid() {
        assert!(validate_send("", Duration::ZERO).is_err());
        assert!(validate_send(&"x".repeat(MAX_BODY_BYTES + 1), Duration::ZERO).is_err());
        assert!(validate_send("{}", Duration::from_secs(901)).is_err());
        assert!(validate_send("{}", MAX_DELAY).is_ok());
    }

    #[test]
    fn receives_outside_the_limits_are_invalid() {
        assert!(validate_receive(0, MAX_RECEIVE, Duration::ZERO).is_err());
        assert!(validate_receive(11, MAX_RECEIVE, Duration::ZERO).is_err());
        assert!(validate_receive(1_000, MAX_BATCH, Duration::from_secs(30)).is_ok());
        assert!(validate_receive(1, MAX_RECEIVE, MAX_VISIBILITY_TIMEOUT + Duration::from_secs(1)).is_err());
    }
}
