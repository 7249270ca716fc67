//! The `Clock` contract: time never goes back, and moves with the time that passes.

use crate::{Subject, Time};
use queuematch_core::ports::Clock;
use std::time::Duration;

/// Generates the clock suite's tests from `$make`, an `async fn() -> Subject<impl Clock, impl Time>`.
#[macro_export]
macro_rules! clock_contract {
    ($make:path) => {
        $crate::__contract_tests!(
            $make,
            clock,
            [time_never_goes_back, now_moves_with_the_time_that_passes]
        );
    };
}

/// Successive readings never decrease.
pub async fn time_never_goes_back<C: Clock, T: Time>(s: Subject<C, T>) {
    let mut last = s.port.now();
    for _ in 0..1_000 {
        let now = s.port.now();
        assert!(now >= last, "the clock went from {last} back to {now}");
        last = now;
    }
}

/// After a second passes, `now` is at least a second later.
pub async fn now_moves_with_the_time_that_passes<C: Clock, T: Time>(s: Subject<C, T>) {
    let before = s.port.now();
    s.time.advance(Duration::from_secs(1)).await;
    let after = s.port.now();
    assert!(after.since(before) >= Duration::from_secs(1), "{before} then {after}");
}
