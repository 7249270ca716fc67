//! queuematch-contract: one contract suite per port, run against every adapter.
//!
//! The local adapters run these suites now; the AWS adapters will run the very same ones against a
//! moto server. That is why the suites live in their own crate rather than in a `contract` feature of
//! `queuematch-core`: they need an async runtime and proptest as ordinary dependencies, and core must
//! stay free of tokio; a crate that adapters take as a dev-dependency keeps that rule checkable
//! (`cargo tree -p queuematch-core` shows no tokio) and keeps test code out of every production build.
//!
//! Each suite is a set of `pub async fn`s, generic over the port, plus a macro that turns them into
//! one `#[tokio::test]` per case, so a failure names its case:
//!
//! ```text
//! mod store_contract {
//!     queuematch_contract::store_contract!(super::fresh_store);
//! }
//! ```
//!
//! `fresh_store` is an `async fn() -> Subject<impl Store, impl Time>` giving an empty adapter and the
//! control of its time. The calling crate needs tokio with `macros` and `rt`.

pub mod clock;
pub mod events;
pub mod fleet;
pub mod queue;
pub mod store;

use queuematch_core::ports::Clock;
use std::future::Future;
use std::time::Duration;

/// The adapter under test and the control of its time.
#[derive(Debug)]
pub struct Subject<P, T> {
    pub port: P,
    pub time: T,
}

/// The time an adapter lives on, as a suite controls it.
///
/// On virtual time `advance` moves the clock the adapter was built with, so delays, visibility
/// timeouts and TTLs pass without sleeping; on real time (AWS adapters) it sleeps. Suites only ever
/// advance by whole seconds or more, the resolution of SQS and of DynamoDB's TTL.
pub trait Time: Clock {
    fn advance(&self, by: Duration) -> impl Future<Output = ()> + Send;
}

/// The value of `result`, or a panic naming what failed: suites are tests, and a port error where
/// none is due is a failed contract.
#[track_caller]
pub(crate) fn ok<V, E: std::fmt::Debug>(result: Result<V, E>, what: &str) -> V {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error {e:?}"),
    }
}

/// Generates one `#[tokio::test]` per case of a suite.
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_tests {
    ($make:path, $suite:ident, [$($case:ident),* $(,)?]) => {
        $(
            #[tokio::test]
            async fn $case() {
                $crate::$suite::$case($make().await).await;
            }
        )*
    };
}
