//! Time for executions: the system clock, or virtual time.
//!
//! Every wait in the engine (Wait states, retry intervals, task and execution timeouts) goes through tokio's
//! timer. Virtual time is tokio's paused clock: when every branch of an execution is waiting, tokio jumps to the
//! next deadline, so a workflow that waits for hours runs at once and always in the same order. The wall-clock
//! time that executions see (`$$.State.EnteredTime`, timestamps in the history, Wait `Timestamp`s) is then an
//! anchor plus the virtual time elapsed.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};

/// Where an execution's time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Wall-clock time, with real waits.
    System,
    /// Time starting at `start` and advancing with tokio's clock; run under a paused runtime (see
    /// [`run_in_virtual_time`]) so that waits take no real time.
    Virtual { start: DateTime<Utc> },
}

impl Clock {
    /// A virtual clock anchored at a fixed instant, so that tests see the same timestamps on every run.
    pub fn virtual_at(start: DateTime<Utc>) -> Clock {
        Clock::Virtual { start }
    }

    /// A virtual clock that starts at the current wall-clock time.
    pub fn virtual_from_now() -> Clock {
        Clock::Virtual { start: Utc::now() }
    }

    pub(crate) fn start(self) -> RunningClock {
        RunningClock {
            clock: self,
            origin: tokio::time::Instant::now(),
        }
    }
}

/// A clock as one execution reads it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunningClock {
    clock: Clock,
    origin: tokio::time::Instant,
}

impl RunningClock {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        match self.clock {
            Clock::System => Utc::now(),
            Clock::Virtual { start } => {
                let elapsed = chrono::Duration::from_std(self.origin.elapsed()).unwrap_or(chrono::Duration::MAX);
                start.checked_add_signed(elapsed).unwrap_or(DateTime::<Utc>::MAX_UTC)
            }
        }
    }

    pub(crate) async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }

    /// Sleeps until `deadline`; returns at once for a deadline in the past.
    pub(crate) async fn sleep_until(&self, deadline: DateTime<Utc>) {
        let remaining = (deadline - self.now()).to_std().unwrap_or(Duration::ZERO);
        self.sleep(remaining).await;
    }
}

/// Runs `future` to completion on a fresh single-threaded runtime whose clock is paused: virtual time.
pub fn run_in_virtual_time<F: Future>(future: F) -> std::io::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    Ok(runtime.block_on(future))
}

/// Runs `future` to completion on a fresh single-threaded runtime with the system clock.
pub fn run_in_real_time<F: Future>(future: F) -> std::io::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    Ok(runtime.block_on(future))
}

/// Formats a timestamp the way Step Functions does: RFC 3339, milliseconds, `Z`.
pub fn format_timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an ASL timestamp: RFC 3339 with an uppercase `T`, and an uppercase `Z` when there is no offset.
pub fn parse_timestamp(text: &str) -> Option<DateTime<FixedOffset>> {
    if text.as_bytes().get(10) != Some(&b'T') || text.contains(['t', 'z', ' ']) {
        return None;
    }
    DateTime::parse_from_rfc3339(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asl_timestamps_are_strict_rfc3339() {
        assert!(parse_timestamp("2016-03-14T01:59:00Z").is_some());
        assert!(parse_timestamp("2016-03-14T01:59:00.123+02:00").is_some());
        assert!(parse_timestamp("2016-03-14t01:59:00Z").is_none());
        assert!(parse_timestamp("2016-03-14T01:59:00z").is_none());
        assert!(parse_timestamp("2016-03-14 01:59:00Z").is_none());
        assert!(parse_timestamp("yesterday").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn virtual_time_advances_with_sleeps_only() {
        let start = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = Clock::virtual_at(start).start();
        assert_eq!(clock.now(), start);
        clock.sleep(Duration::from_secs(3600)).await;
        assert_eq!(format_timestamp(clock.now()), "2024-01-01T01:00:00.000Z");
    }
}
