//! The local `TicketQueue`: SQS's semantics in memory, on the adapter's clock.
//!
//! Messages are kept in send order and received oldest first. SQS promises no order; keeping one
//! locally makes runs reproducible, and the contract suite checks nothing that depends on it.

use crate::clock::Timer;
use crate::lock;
use queuematch_core::ports::queue::{
    self, DeadLetter, QueueDepth, QueueMessage, ReceiptHandle, TicketQueue, DEFAULT_MAX_RECEIVES, MAX_BATCH,
    MAX_BATCHING_WINDOW, MAX_RECEIVE,
};
use queuematch_core::ports::PortError;
use queuematch_core::Timestamp;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The queue's redrive policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Receives a message gets before it goes to the dead-letter queue (SQS `maxReceiveCount`).
    pub max_receives: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_receives: DEFAULT_MAX_RECEIVES,
        }
    }
}

/// The `tickets` queue and its dead-letter queue, in memory.
pub struct MemoryQueue {
    clock: Arc<dyn Timer>,
    config: QueueConfig,
    state: Mutex<State>,
    /// Wakes batch receives waiting in their window when a message may have become receivable
    /// (a send, a visibility ended, a redrive). Time-driven changes wake them through the clock.
    changed: Notify,
}

impl std::fmt::Debug for MemoryQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryQueue")
            .field("config", &self.config)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct State {
    /// By sequence number, which is send order (redriven messages get new ones).
    messages: BTreeMap<u64, Message>,
    dead: BTreeMap<u64, Message>,
    next_seq: u64,
}

#[derive(Debug, Clone)]
struct Message {
    id: String,
    body: String,
    sent_at: Timestamp,
    /// Receivable from then on: the end of its delay, or of its visibility timeout.
    visible_at: Timestamp,
    receive_count: u32,
    /// The receipt of the latest receive; earlier receipts are stale.
    receipt: Option<String>,
}

impl Message {
    fn in_flight(&self, now: Timestamp) -> bool {
        self.receipt.is_some() && self.visible_at > now
    }
}

/// A receipt names the message and which receive of it: `<seq>.<receive count>`.
fn receipt_for(seq: u64, receive_count: u32) -> String {
    format!("{seq}.{receive_count}")
}

fn parse_receipt(receipt: &ReceiptHandle) -> Result<u64, PortError> {
    receipt
        .0
        .split_once('.')
        .and_then(|(seq, _)| seq.parse().ok())
        .ok_or_else(|| PortError::invalid(format!("{receipt} is not a receipt handle of this queue")))
}

impl MemoryQueue {
    pub fn new(clock: impl Timer + 'static, config: QueueConfig) -> Self {
        Self {
            clock: Arc::new(clock),
            config,
            state: Mutex::new(State::default()),
            changed: Notify::new(),
        }
    }

    /// Takes up to `max` receivable messages, moving those out of receives to the dead letters, and
    /// says when the next hidden message becomes receivable.
    fn take(&self, max: usize, visibility: Duration, now: Timestamp) -> (Vec<QueueMessage>, Option<Timestamp>) {
        let mut state = lock(&self.state);
        let mut taken = Vec::new();
        let mut dead = Vec::new();
        let mut next_visible: Option<Timestamp> = None;
        for (&seq, m) in state.messages.iter_mut() {
            if m.visible_at > now {
                next_visible = Some(next_visible.map_or(m.visible_at, |t| t.min(m.visible_at)));
                continue;
            }
            if taken.len() == max {
                continue;
            }
            if m.receive_count >= self.config.max_receives {
                dead.push(seq);
                continue;
            }
            m.receive_count += 1;
            m.visible_at = now.plus(visibility);
            let receipt = receipt_for(seq, m.receive_count);
            m.receipt = Some(receipt.clone());
            taken.push(QueueMessage {
                message_id: m.id.clone(),
                receipt: ReceiptHandle(receipt),
                body: m.body.clone(),
                receive_count: m.receive_count,
                sent_at: m.sent_at,
            });
        }
        for seq in dead {
            if let Some(m) = state.messages.remove(&seq) {
                state.dead.insert(seq, m);
            }
        }
        (taken, next_visible)
    }
}

#[async_trait::async_trait]
impl TicketQueue for MemoryQueue {
    async fn send(&self, body: String, delay: Duration) -> Result<String, PortError> {
        queue::validate_send(&body, delay)?;
        let now = self.clock.now();
        let id = {
            let mut state = lock(&self.state);
            let seq = state.next_seq;
            state.next_seq += 1;
            let id = format!("msg-{seq:08}");
            let message = Message {
                id: id.clone(),
                body,
                sent_at: now,
                visible_at: now.plus(delay),
                receive_count: 0,
                receipt: None,
            };
            state.messages.insert(seq, message);
            id
        };
        self.changed.notify_waiters();
        Ok(id)
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<QueueMessage>, PortError> {
        queue::validate_receive(max, MAX_RECEIVE, visibility)?;
        Ok(self.take(max, visibility, self.clock.now()).0)
    }

    async fn receive_batch(
        &self,
        max: usize,
        window: Duration,
        visibility: Duration,
    ) -> Result<Vec<QueueMessage>, PortError> {
        queue::validate_receive(max, MAX_BATCH, visibility)?;
        if window > MAX_BATCHING_WINDOW {
            return Err(PortError::invalid(format!(
                "a batching window is at most 300 s, not {} s",
                window.as_secs()
            )));
        }
        let deadline = self.clock.now().plus(window);
        let mut batch = Vec::new();
        loop {
            // Registered before looking, so a send between the look and the wait still wakes us.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let now = self.clock.now();
            let (taken, next_visible) = self.take(max - batch.len(), visibility, now);
            batch.extend(taken);
            if batch.len() >= max || now >= deadline {
                return Ok(batch);
            }
            let wake = next_visible.map_or(deadline, |t| t.min(deadline));
            tokio::select! {
                () = &mut changed => {}
                () = self.clock.sleep_until(wake) => {}
            }
        }
    }

    async fn delete(&self, receipt: &ReceiptHandle) -> Result<(), PortError> {
        let seq = parse_receipt(receipt)?;
        let mut state = lock(&self.state);
        // A stale receipt deletes nothing: the message belongs to whoever received it last, and if
        // that consumer fails the message must come back. A receipt of a deleted message is a no-op.
        if state
            .messages
            .get(&seq)
            .is_some_and(|m| m.receipt.as_deref() == Some(receipt.0.as_str()))
        {
            state.messages.remove(&seq);
        }
        Ok(())
    }

    async fn change_visibility(&self, receipt: &ReceiptHandle, timeout: Duration) -> Result<(), PortError> {
        queue::validate_receive(1, 1, timeout)?;
        let seq = parse_receipt(receipt)?;
        let now = self.clock.now();
        {
            let mut state = lock(&self.state);
            let message = state
                .messages
                .get_mut(&seq)
                .filter(|m| m.in_flight(now) && m.receipt.as_deref() == Some(receipt.0.as_str()))
                .ok_or_else(|| PortError::NotFound(format!("no message in flight under receipt {receipt}")))?;
            message.visible_at = now.plus(timeout);
        }
        self.changed.notify_waiters();
        Ok(())
    }

    async fn depth(&self) -> Result<QueueDepth, PortError> {
        let now = self.clock.now();
        let state = lock(&self.state);
        let mut depth = QueueDepth {
            dead: state.dead.len(),
            ..QueueDepth::default()
        };
        for m in state.messages.values() {
            match (m.visible_at > now, m.receipt.is_some()) {
                (false, _) => depth.visible += 1,
                (true, true) => depth.in_flight += 1,
                (true, false) => depth.delayed += 1,
            }
        }
        Ok(depth)
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, PortError> {
        queue::validate_receive(max, MAX_RECEIVE, Duration::ZERO)?;
        let state = lock(&self.state);
        Ok(state
            .dead
            .values()
            .take(max)
            .map(|m| DeadLetter {
                message_id: m.id.clone(),
                body: m.body.clone(),
                receive_count: m.receive_count,
                sent_at: m.sent_at,
            })
            .collect())
    }

    async fn redrive(&self) -> Result<usize, PortError> {
        let now = self.clock.now();
        let moved = {
            let mut state = lock(&self.state);
            let dead = std::mem::take(&mut state.dead);
            let moved = dead.len();
            for (_, mut m) in dead {
                let seq = state.next_seq;
                state.next_seq += 1;
                m.receive_count = 0;
                m.receipt = None;
                m.visible_at = now;
                state.messages.insert(seq, m);
            }
            moved
        };
        self.changed.notify_waiters();
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    fn queue() -> (MemoryQueue, ManualClock) {
        let clock = ManualClock::default();
        (MemoryQueue::new(clock.clone(), QueueConfig::default()), clock)
    }

    #[tokio::test]
    async fn a_stale_receipt_does_not_delete_the_message_from_its_new_holder() {
        // GIVEN a message received twice WHEN the first receiver deletes late THEN the second holder's
        // failure still brings the message back.
        let (q, clock) = queue();
        q.send("m".into(), Duration::ZERO).await.unwrap();
        let first = q.receive(1, Duration::from_secs(10)).await.unwrap();
        clock.advance(Duration::from_secs(10));
        let second = q.receive(1, Duration::from_secs(10)).await.unwrap();
        q.delete(&first[0].receipt).await.unwrap();
        clock.advance(Duration::from_secs(10));
        let third = q.receive(1, Duration::from_secs(10)).await.unwrap();
        assert_eq!(third.len(), 1);
        assert_eq!(third[0].receive_count, 3);
        assert_ne!(third[0].receipt, second[0].receipt);
    }

    #[tokio::test]
    async fn a_batch_waiting_in_its_window_takes_a_message_that_reappears_in_it() {
        let (q, clock) = queue();
        q.send("m".into(), Duration::ZERO).await.unwrap();
        let first = q.receive(1, Duration::from_secs(5)).await.unwrap();
        let done = std::cell::Cell::new(false);
        let batch = async {
            let got = q
                .receive_batch(2, Duration::from_secs(60), Duration::from_secs(120))
                .await;
            done.set(true);
            got
        };
        let time = async {
            tokio::task::yield_now().await;
            clock.advance(Duration::from_secs(5));
            tokio::task::yield_now().await;
            // The message is back within the window; the batch still waits for a second or the end.
            assert!(!done.get(), "the batch returned before its window closed");
            clock.advance(Duration::from_secs(55));
        };
        let (got, ()) = futures::join!(batch, time);
        let got = got.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].message_id.as_str(), got[0].receive_count),
            (first[0].message_id.as_str(), 2)
        );
    }

    #[tokio::test]
    async fn a_foreign_receipt_is_invalid() {
        let (q, _) = queue();
        let err = q.delete(&ReceiptHandle("AQEB-not-ours".into())).await;
        assert!(matches!(err, Err(PortError::Invalid(_))), "{err:?}");
    }

    #[tokio::test]
    async fn a_redriven_message_keeps_its_id_and_body() {
        let clock = ManualClock::default();
        let q = MemoryQueue::new(clock.clone(), QueueConfig { max_receives: 1 });
        let id = q.send("poison".into(), Duration::ZERO).await.unwrap();
        q.receive(1, Duration::from_secs(1)).await.unwrap();
        clock.advance(Duration::from_secs(1));
        assert!(q.receive(1, Duration::from_secs(1)).await.unwrap().is_empty());
        assert_eq!(q.redrive().await.unwrap(), 1);
        let back = q.receive(1, Duration::from_secs(1)).await.unwrap();
        assert_eq!(
            (back[0].message_id.as_str(), back[0].body.as_str()),
            (id.as_str(), "poison")
        );
        assert_eq!(back[0].receive_count, 1, "a redrive starts the count again");
    }
}
