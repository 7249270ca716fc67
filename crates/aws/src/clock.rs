//! The machine's clock, for the adapters that judge time themselves (the store's TTL filtering).

use queuematch_core::ports::Clock;
use queuematch_core::Timestamp;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock time: on Lambda, what DynamoDB's TTL is judged against too.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        // Before 1970 only on a broken machine; zero rather than a panic.
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Timestamp::from_millis(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
    }
}
