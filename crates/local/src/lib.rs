//! queuematch-local: the ports of `queuematch-core` on one machine, in memory or, for the store and
//! the queue, on disk ([`disk`]).
//!
//! Each adapter has the semantics of the AWS service it stands in for (SQS, DynamoDB, EventBridge),
//! checked by the same contract suites (`queuematch-contract`) the AWS adapters run, so that what
//! works under `queuematch dev` works on AWS. Time comes from a [`clock::Timer`]: the system clock in
//! the dev server, a [`clock::ManualClock`] in tests, so delays, visibility timeouts and TTLs pass
//! without sleeping. The [`fleet`] is no simulation: it runs real game-server processes on loopback.
//! The [`workflows`] adapter runs `workflows/*.asl.json` on the embedded ASL engine, its Lambda tasks
//! dispatched in-process to the handlers.

pub mod clock;
pub mod dev;
pub mod disk;
pub mod events;
pub mod fleet;
pub mod queue;
pub mod replay;
pub mod store;
pub mod workflows;

pub use clock::{ManualClock, SystemClock, Timer, TokioClock};
pub use events::EventBus;
pub use fleet::{ProcessFleet, ProcessFleetConfig};
pub use queue::{DiskQueue, LocalQueue, MemoryQueue, QueueConfig};
pub use store::{DiskStore, LocalStore, MemoryStore};
pub use workflows::{LocalWorkflows, ServiceTasks, WorkflowsConfig};

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, carrying on after a panic in another holder. Every critical section here either
/// completes its change or makes none (changes are computed first, then applied), so the state behind
/// a poisoned lock is still consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
