//! Clocks: the system clock for the dev server; a manual one, and one on tokio's (paused) clock, for
//! tests.
//!
//! Adapters that wait (the queue's batching window) need more than `now()`: they need to sleep until
//! a time *on their clock*. [`Timer`] adds that, so a test on a [`ManualClock`] wakes a waiting
//! receive by advancing the clock, with no real sleep anywhere.

use queuematch_core::ports::Clock;
use queuematch_core::Timestamp;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// A clock one can sleep on.
#[async_trait::async_trait]
pub trait Timer: Clock {
    /// Returns once `now() >= at`, at the earliest.
    async fn sleep_until(&self, at: Timestamp);
}

/// Wall-clock time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        // Before 1970 only on a broken machine; zero keeps time monotone-ish rather than panicking.
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Timestamp::from_millis(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
    }
}

#[async_trait::async_trait]
impl Timer for SystemClock {
    async fn sleep_until(&self, at: Timestamp) {
        // Loop because the wall clock may be stepped back while we sleep on the monotonic one.
        loop {
            let left = at.since(self.now());
            if left.is_zero() {
                return;
            }
            tokio::time::sleep(left).await;
        }
    }
}

/// Virtual time that moves only when told to. Clones share one clock.
///
/// A `watch` channel holds the time: reading it is a lock-free borrow, and every sleeper is a watcher
/// woken when the time changes, so `advance` wakes exactly those whose deadline passed.
#[derive(Debug, Clone)]
pub struct ManualClock {
    time: Arc<watch::Sender<Timestamp>>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self {
            time: Arc::new(watch::Sender::new(start)),
        }
    }

    /// Moves time forward by `by`, waking whoever sleeps until then.
    pub fn advance(&self, by: Duration) {
        self.time.send_modify(|t| *t = t.plus(by));
    }

    /// Moves time to `at`; never backwards, since no clock adapter goes backwards on purpose.
    pub fn set(&self, at: Timestamp) {
        self.time.send_modify(|t| *t = (*t).max(at));
    }
}

impl Default for ManualClock {
    /// Starts at a round, recognisable instant (2026-01-01T00:00:00Z) rather than at the epoch, so
    /// that times in test output read as times.
    fn default() -> Self {
        Self::new(Timestamp::from_millis(1_767_225_600_000))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.time.borrow()
    }
}

#[async_trait::async_trait]
impl Timer for ManualClock {
    async fn sleep_until(&self, at: Timestamp) {
        let mut watcher = self.time.subscribe();
        // The sender lives as long as `self`, so waiting cannot fail; if it ever did, returning early
        // only makes the caller look at its state again.
        let _ = watcher.wait_for(|now| *now >= at).await;
    }
}

/// Domain time that follows tokio's clock from `start`: virtual under a paused runtime, where tokio
/// advances time whenever every task waits. The embedded workflow engine's virtual clock follows the
/// same tokio clock, so a test on this clock sees a workflow's Wait states and retry delays pass on
/// the domain clock too (acceptance and placement timeouts, the sweeper's thresholds), with no real
/// sleep. Copies share the origin.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: Timestamp,
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `start` now. Must be called inside a tokio runtime with time enabled.
    pub fn new(start: Timestamp) -> Self {
        Self {
            start,
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.start.plus(self.origin.elapsed())
    }
}

#[async_trait::async_trait]
impl Timer for TokioClock {
    async fn sleep_until(&self, at: Timestamp) {
        let left = at.since(self.start);
        tokio::time::sleep_until(self.origin + left).await;
    }
}

#[async_trait::async_trait]
impl<T: Timer + ?Sized> Timer for Arc<T> {
    async fn sleep_until(&self, at: Timestamp) {
        (**self).sleep_until(at).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sleeper_wakes_when_the_clock_passes_its_deadline() {
        let clock = ManualClock::new(Timestamp(1_000));
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(Timestamp(5_000)).await }
        });
        clock.advance(Duration::from_secs(1));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke at {}", clock.now());
        clock.advance(Duration::from_secs(3));
        sleeper.await.unwrap();
        assert_eq!(clock.now(), Timestamp(5_000));
    }

    #[tokio::test]
    async fn sleeping_until_the_past_returns_at_once() {
        let clock = ManualClock::new(Timestamp(1_000));
        clock.sleep_until(Timestamp(10)).await;
        SystemClock.sleep_until(Timestamp(10)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_tokio_clock_follows_paused_time() {
        let clock = TokioClock::new(Timestamp(1_000));
        assert_eq!(clock.now(), Timestamp(1_000));
        clock.sleep_until(Timestamp(31_000)).await;
        assert_eq!(
            clock.now(),
            Timestamp(31_000),
            "the runtime advanced time to the sleeper's deadline"
        );
        tokio::time::advance(Duration::from_millis(250)).await;
        assert_eq!(clock.now(), Timestamp(31_250));
    }

    #[test]
    fn a_manual_clock_never_goes_back() {
        let clock = ManualClock::new(Timestamp(1_000));
        clock.set(Timestamp(500));
        assert_eq!(clock.now(), Timestamp(1_000));
        clock.set(Timestamp(2_000));
        assert_eq!(clock.now(), Timestamp(2_000));
    }

    #[test]
    fn the_system_clock_reads_epoch_milliseconds() {
        // 2020-01-01 in ms: any machine running this is later.
        assert!(SystemClock.now() > Timestamp(1_577_836_800_000));
    }
}
