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
    let report = sweeper(service, fleet).sweep(&run).await?;
    Ok(summary(&report))
}

/// The sweep of a service started again after its workflows stopped with it (`queuematch dev` on
/// the same `--data-dir`): what was in flight is failed, restarted or, with `servers_stopped`,
/// abandoned at once (see [`Sweeper::after_restart`]). Answers as [`handle`] does.
pub async fn after_restart<S, Q, W, E, C, P, F>(
    service: &Service<S, Q, W, E, C, P>,
    fleet: &F,
    servers_stopped: bool,
) -> Result<Value, TaskFailure>
where
    S: Store,
    Q: TicketQueue,
    W: Workflows,
    E: Events,
    C: Clock,
    F: Fleet,
{
    let run = format!("restart-{}", service.clock.now().as_millis());
    let report = sweeper(service, fleet).after_restart(&run, servers_stopped).await?;
    Ok(summary(&report))
}

fn sweeper<'a, S, Q, W, E, C, P, F>(
    service: &'a Service<S, Q, W, E, C, P>,
    fleet: &'a F,
) -> Sweeper<'a, S, Q, W, F, E, C> {
    Sweeper {
        store: &service.store,
        queue: &service.queue,
        workflows: &service.workflows,
        fleet,
        events: &service.events,
        clock: &service.clock,
        queues: &service.queues,
        settings: &service.settings,
    }
}

/// A sweep's report as the function's result: `{"timedOut", "failedSessions", "restarted", "resumed",
/// "abandoned", "completing"}`.
pub fn summary(report: &SweepReport) -> Value {
    json!({
        "timedOut": report.timed_out,
        "failedSessions": report.failed_sessions,
        "restarted": report.restarted,
        "resumed": report.resumed,
        "abandoned": report.abandoned,
        "completing": report.completing,
    })
}
