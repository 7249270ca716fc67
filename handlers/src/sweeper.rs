//! The `sweeper` function: one sweep per scheduled event.
//!
//! EventBridge Scheduler invokes it every minute with a scheduled event (`"detail-type":
//! "Scheduled Event"`); the dev server runs the same handler on its own clock. The event's `id`
//! names the run in the timelines the sweep writes. A failure of the ports is returned as the
//! function's error (the scheduler retries it); what one pass left undone, the next one does.

use crate::workflow_tasks::TaskFailure;
use crate::Service;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use queuematch_core::ports::{Clock, Events, Fleet, Store, TicketQueue, Workflows};
use queuematch_core::usecases::sweeper::{SweepReport, Sweeper};
use serde_json::{json, Value};

/// Runs one sweep for `event`, and answers what it did, by id.
pub async fn handle<S, Q, W, E, C, P, F>(
    service: &Service<S, Q, W, E, C, P>,
    fleet: &F,
    event: EventBridgeEvent<Value>,
) -> Result<Value, TaskFailure>
where
    S: Store,
    Q: TicketQueue,
    W: Workflows,
    E: Events,
    C: Clock,
    F: Fleet,
{
    let run = event
        .id
        .clone()
        .unwrap_or_else(|| service.clock.now().as_millis().to_string());
    let sweeper = Sweeper {
        store: &service.store,
        queue: &service.queue,
        workflows: &service.workflows,
        fleet,
        events: &service.events,
        clock: &service.clock,
        queues: &service.queues,
        settings: &service.settings,
    };
    let report = sweeper.sweep(&run).await?;
    Ok(summary(&report))
}

/// A sweep's report as the function's result: `{"timedOut", "failedSessions", "restarted", "resumed",
/// "abandoned"}`.
pub fn summary(report: &SweepReport) -> Value {
    json!({
        "timedOut": report.timed_out,
        "failedSessions": report.failed_sessions,
        "restarted": report.restarted,
        "resumed": report.resumed,
        "abandoned": report.abandoned,
    })
}
