//! Domain time: milliseconds since the Unix epoch.
//!
//! Domain code never reads the system clock; time is handed in, so the matcher and the lifecycle run
//! the same on virtual time in tests and on the real clock in production.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// An instant, in whole milliseconds since the Unix epoch (the unit of SQS's `SentTimestamp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`; zero when `earlier` is later (clocks do skew).
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_saturates_when_the_clock_went_backwards() {
        assert_eq!(Timestamp(5).since(Timestamp(10)), Duration::ZERO);
        assert_eq!(Timestamp(1_500).since(Timestamp(500)), Duration::from_secs(1));
    }

    #[test]
    fn plus_adds_whole_milliseconds() {
        assert_eq!(Timestamp(1_000).plus(Duration::from_millis(250)), Timestamp(1_250));
    }
}
