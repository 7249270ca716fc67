//! The sweeper loop: what EventBridge Scheduler does for the `sweeper` function on AWS, every
//! minute, with a scheduled event in Scheduler's shape.

use super::LocalService;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use queuematch_core::ports::{Clock, Fleet};
use queuematch_handlers::sweeper;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How often the scheduler runs the sweeper on AWS.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The scheduled event of sweep number `run`.
fn scheduled_event(service: &LocalService, run: u64) -> EventBridgeEvent {
    let mut event = EventBridgeEvent::default();
    event.detail_type = "Scheduled Event".into();
    event.source = "aws.scheduler".into();
    event.id = Some(format!("local-sweep-{}-{run}", service.clock.now().as_millis()));
    event.region = Some("local".into());
    event.detail = serde_json::json!({});
    event
}

/// Sweeps every `every` (on tokio's clock, so a paused test runtime drives it) until `shutdown`
/// completes. A failed sweep is logged; the next one does what it left.
pub async fn run_sweeper(
    service: Arc<LocalService>,
    fleet: Arc<dyn Fleet>,
    every: Duration,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut ticks = tokio::time::interval(every);
    // The first tick of an interval is immediate; the first sweep comes one period after the start,
    // when there can be something to sweep.
    ticks.tick().await;
    let mut run = 0;
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticks.tick() => {}
        }
        run += 1;
        match sweeper::handle(&service, &fleet, scheduled_event(&service, run)).await {
            Ok(summary) => tracing::info!(%summary, "sweep"),
            Err(e) => tracing::warn!(error = %e, "a sweep failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventBus, MemoryQueue, MemoryStore, ProcessFleet, ProcessFleetConfig, QueueConfig, TokioClock};
    use queuematch_core::identity::jwt::DevTokens;
    use queuematch_core::ports::store::items;
    use queuematch_core::ports::workflows::ExecutionId;
    use queuematch_core::ports::{PortError, Store, TicketQueue, Workflows};
    use queuematch_core::usecases::messages::TicketMessage;
    use queuematch_core::usecases::{Queues, Settings};
    use queuematch_core::{RuleSet, TicketStatus, Timestamp};
    use queuematch_handlers::Service;
    use serde_json::{json, Value};

    #[derive(Debug)]
    struct NoWorkflows;

    #[async_trait::async_trait]
    impl Workflows for NoWorkflows {
        async fn start(&self, _: &str, name: &str, _: Value) -> Result<ExecutionId, PortError> {
            Ok(ExecutionId(name.to_owned()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_sweeps_every_period_on_the_service_clock() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/rulesets/ranked-1v1.json");
        let rule_set = RuleSet::from_json_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let clock = TokioClock::new(Timestamp(1_800_000_000_000));
        let service: Arc<LocalService> = Arc::new(Service {
            store: Arc::new(MemoryStore::new(clock)) as Arc<dyn Store>,
            queue: Arc::new(MemoryQueue::new(clock, QueueConfig::default())) as Arc<dyn TicketQueue>,
            workflows: Arc::new(NoWorkflows) as Arc<dyn Workflows>,
            events: Arc::new(EventBus::new(16)),
            clock: Arc::new(clock) as Arc<dyn Clock>,
            party_tokens: DevTokens::new(b"sweeper loop test"),
            queues: Arc::new(Queues::new([rule_set])),
            settings: Arc::new(Settings::default()),
        });
        // A ticket admitted 100 s ago: it times out 20 s from now, and no round will visit its pool.
        let message = TicketMessage {
            ticket_id: "t-1".into(),
            player_id: "p-1".into(),
            received_at: Timestamp(1_800_000_000_000 - 100_000),
            request: json!({"queue": "ranked-1v1", "players": [{"id": "p-1", "latencies": {"local": 5}}]}),
        };
        service.admission().admit(&message).await.unwrap();
        let fleet: Arc<dyn Fleet> = Arc::new(ProcessFleet::new(ProcessFleetConfig::new(
            "queuematch-gameserver",
            "http://127.0.0.1:9",
        )));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sweeper = tokio::spawn(run_sweeper(service.clone(), fleet, SWEEP_EVERY, async {
            let _ = stopped.await;
        }));
        let status = || async {
            let stored = service
                .store
                .get(&items::ticket_key(&"t-1".into()))
                .await
                .unwrap()
                .unwrap();
            items::read::<items::TicketRecord>(&stored).unwrap().value.ticket.status
        };

        // The first sweep, a minute in, finds it timed out.
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert_eq!(status().await, TicketStatus::Searching);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(status().await, TicketStatus::TimedOut);
        stop.send(()).unwrap();
        sweeper.await.unwrap();
    }
}
