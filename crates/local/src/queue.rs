//! The local `TicketQueue`: SQS's semantics on one machine, on the adapter's clock.
//!
//! Messages are kept in send order and received oldest first. SQS promises no order; keeping one
//! locally makes runs reproducible, and the contract suite checks nothing that depends on it.
//!
//! [`LocalQueue`] holds the messages in memory and the rules; every change it makes goes through
//! its [`Journal`] first. [`MemoryQueue`] journals nothing. [`DiskQueue`] journals to a redb file
//! (see [`disk`]) and returns only once the change is durable (see [`Urgency`] for the two that need
//! not be), so a send that returned is never lost, and a reopened queue has every message with its
//! receive count, receipt and visibility deadline: what was in flight when the process died comes
//! back once its visibility timeout passes.

pub mod disk;

use crate::clock::Timer;
use crate::lock;
use queuematch_core::ports::queue::{
    self, DeadLetter, QueueDepth, QueueMessage, ReceiptHandle, TicketQueue, DEFAULT_MAX_RECEIVES, MAX_BATCH,
    MAX_BATCHING_WINDOW, MAX_RECEIVE,
};
use queuematch_core::ports::PortError;
use queuematch_core::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

pub use disk::DiskJournal;

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

/// The `tickets` queue and its dead-letter queue, every change recorded in `J` before it is made.
pub struct LocalQueue<J: Journal = Volatile> {
    clock: Arc<dyn Timer>,
    config: QueueConfig,
    /// Held across the journal's write, so the journal sees changes in the order they are made.
    state: Mutex<State>,
    journal: J,
    /// Wakes batch receives waiting in their window when a message may have become receivable
    /// (a send, a visibility ended, a redrive). Time-driven changes wake them through the clock.
    changed: Notify,
}

/// The queue in memory: the default of `queuematch dev`, and the fake of tests.
pub type MemoryQueue = LocalQueue<Volatile>;

/// The queue on disk: what `queuematch dev --data-dir` runs on.
pub type DiskQueue = LocalQueue<DiskJournal>;

impl<J: Journal> std::fmt::Debug for LocalQueue<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalQueue")
            .field("config", &self.config)
            .field("state", &self.state)
            .field("journal", &self.journal)
            .finish_non_exhaustive()
    }
}

/// What the queue holds, as a journal reloads it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct State {
    /// By sequence number, which is send order (redriven messages get new ones).
    pub messages: BTreeMap<u64, Message>,
    pub dead: BTreeMap<u64, Message>,
    /// The next sequence number: never reused, so neither are message ids and receipts.
    pub next_seq: u64,
}

/// A message as the queue keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub body: String,
    pub sent_at: Timestamp,
    /// Receivable from then on: the end of its delay, or of its visibility timeout.
    pub visible_at: Timestamp,
    pub receive_count: u32,
    /// The receipt of the latest receive; earlier receipts are stale.
    pub receipt: Option<String>,
}

/// One change of the queue's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// The message `seq` is now this (sent, received, or its visibility changed).
    Put(u64, &'a Message),
    /// The message `seq` is gone (deleted, or moved to the dead letters).
    Remove(u64),
    /// The dead letter `seq` is now this.
    PutDead(u64, &'a Message),
    /// The dead letter `seq` is gone (redriven).
    RemoveDead(u64),
    /// The next sequence number.
    NextSeq(u64),
}

/// How soon a recorded change must be safe from a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// Before `record` returns: sends (what was accepted is never lost), receives (receive counts
    /// are what sends a poison message to the dead letters, even if it crashes every receiver) and
    /// redrives.
    Durable,
    /// With the next durable change, or lost in a crash: deletes and visibility changes. Losing one
    /// only delivers a message again, which every consumer of an at-least-once queue tolerates; it
    /// spares the matcher one fsync per message it handled.
    Lazy,
}

/// Where the queue's changes are recorded before they are made.
pub trait Journal: Send + Sync + std::fmt::Debug + 'static {
    /// Records `changes`, all or none, in order with every change recorded before: a crash keeps a
    /// prefix of what was recorded, ending at or after the last `Durable` call. On `Err` the queue
    /// makes none of them and the call fails.
    fn record(&self, changes: &[Change<'_>], urgency: Urgency) -> Result<(), PortError>;
}

/// A journal that keeps nothing: the queue lives and dies with its process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Volatile;

impl Journal for Volatile {
    fn record(&self, _changes: &[Change<'_>], _urgency: Urgency) -> Result<(), PortError> {
        Ok(())
    }
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
    /// An empty queue in memory.
    pub fn new(clock: impl Timer + 'static, config: QueueConfig) -> Self {
        Self::with_journal(clock, config, Volatile, State::default())
    }
}

impl DiskQueue {
    /// The queue kept in the file at `path`, created if missing, with every message it held.
    pub fn open(clock: impl Timer + 'static, config: QueueConfig, path: &Path) -> Result<Self, crate::disk::DiskError> {
        let (journal, state) = crate::disk::guard_load(path, || DiskJournal::open(path))?;
        Ok(Self::with_journal(clock, config, journal, state))
    }
}

impl<J: Journal> LocalQueue<J> {
    /// A queue holding `state`, recording its changes in `journal`.
    pub fn with_journal(clock: impl Timer + 'static, config: QueueConfig, journal: J, state: State) -> Self {
        Self {
            clock: Arc::new(clock),
            config,
            state: Mutex::new(state),
            journal,
            changed: Notify::new(),
        }
    }

    /// Takes up to `max` receivable messages, moving those out of receives to the dead letters, and
    /// says when the next hidden message becomes receivable.
    fn take(
        &self,
        max: usize,
        visibility: Duration,
        now: Timestamp,
    ) -> Result<(Vec<QueueMessage>, Option<Timestamp>), PortError> {
        let mut state = lock(&self.state);
        // The new states are worked out first and journaled, then made: a failed journal changes nothing.
        let mut received: Vec<(u64, Message)> = Vec::new();
        let mut dead = Vec::new();
        let mut next_visible: Option<Timestamp> = None;
        for (&seq, m) in state.messages.iter() {
            if m.visible_at > now {
                next_visible = Some(next_visible.map_or(m.visible_at, |t| t.min(m.visible_at)));
                continue;
            }
            if received.len() == max {
                continue;
            }
            if m.receive_count >= self.config.max_receives {
                dead.push(seq);
                continue;
            }
            let mut m = m.clone();
            m.receive_count += 1;
            m.visible_at = now.plus(visibility);
            m.receipt = Some(receipt_for(seq, m.receive_count));
            received.push((seq, m));
        }
        if received.is_empty() && dead.is_empty() {
            return Ok((Vec::new(), next_visible));
        }
        let mut changes: Vec<Change<'_>> = received.iter().map(|(seq, m)| Change::Put(*seq, m)).collect();
        for seq in &dead {
            if let Some(m) = state.messages.get(seq) {
                changes.extend([Change::Remove(*seq), Change::PutDead(*seq, m)]);
            }
        }
        self.journal.record(&changes, Urgency::Durable)?;
        drop(changes);
        for seq in dead {
            if let Some(m) = state.messages.remove(&seq) {
                state.dead.insert(seq, m);
            }
        }
        let taken = received
            .into_iter()
            .map(|(seq, m)| {
                let out = QueueMessage {
                    message_id: m.id.clone(),
                    receipt: ReceiptHandle(m.receipt.clone().unwrap_or_default()),
                    body: m.body.clone(),
                    receive_count: m.receive_count,
                    sent_at: m.sent_at,
                };
                state.messages.insert(seq, m);
                out
            })
            .collect();
        Ok((taken, next_visible))
    }
}

#[async_trait::async_trait]
impl<J: Journal> TicketQueue for LocalQueue<J> {
    async fn send(&self, body: String, delay: Duration) -> Result<String, PortError> {
        queue::validate_send(&body, delay)?;
        let now = self.clock.now();
        let id = {
            let mut state = lock(&self.state);
            let seq = state.next_seq;
            let id = format!("msg-{seq:08}");
            let message = Message {
                id: id.clone(),
                body,
                sent_at: now,
                visible_at: now.plus(delay),
                receive_count: 0,
                receipt: None,
            };
            self.journal.record(
                &[Change::Put(seq, &message), Change::NextSeq(seq + 1)],
                Urgency::Durable,
            )?;
            state.next_seq = seq + 1;
            state.messages.insert(seq, message);
            id
        };
        self.changed.notify_waiters();
        Ok(id)
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<QueueMessage>, PortError> {
        queue::validate_receive(max, MAX_RECEIVE, visibility)?;
        Ok(self.take(max, visibility, self.clock.now())?.0)
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
            let (taken, next_visible) = self.take(max - batch.len(), visibility, now)?;
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
            self.journal.record(&[Change::Remove(seq)], Urgency::Lazy)?;
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
            let mut message = state
                .messages
                .get(&seq)
                .filter(|m| m.in_flight(now) && m.receipt.as_deref() == Some(receipt.0.as_str()))
                .ok_or_else(|| PortError::NotFound(format!("no message in flight under receipt {receipt}")))?
                .clone();
            message.visible_at = now.plus(timeout);
            self.journal.record(&[Change::Put(seq, &message)], Urgency::Lazy)?;
            state.messages.insert(seq, message);
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
            let mut next_seq = state.next_seq;
            let redriven: Vec<(u64, u64, Message)> = state
                .dead
                .iter()
                .map(|(&old, m)| {
                    let seq = next_seq;
                    next_seq += 1;
                    let mut m = m.clone();
                    m.receive_count = 0;
                    m.receipt = None;
                    m.visible_at = now;
                    (old, seq, m)
                })
                .collect();
            if redriven.is_empty() {
                return Ok(0);
            }
            let mut changes = Vec::with_capacity(redriven.len() * 2 + 1);
            for (old, seq, m) in &redriven {
                changes.extend([Change::RemoveDead(*old), Change::Put(*seq, m)]);
            }
            changes.push(Change::NextSeq(next_seq));
            self.journal.record(&changes, Urgency::Durable)?;
            drop(changes);
            state.dead.clear();
            state.next_seq = next_seq;
            let moved = redriven.len();
            for (_, seq, m) in redriven {
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
