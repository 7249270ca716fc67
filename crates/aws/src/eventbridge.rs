//! The `Events` port on EventBridge: each domain event is one PutEvents entry on the service's bus.
//!
//! Entries carry `Source` [`SOURCE`], `DetailType` the event's name (`MatchmakingSucceeded`, …) and
//! `Detail` the event's JSON, exactly as the local bus and the WebSocket push carry it, so rules
//! match on `detail-type` and the notifier reads `detail` back as a `DomainEvent`.

use crate::error;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use queuematch_core::event::DomainEvent;
use queuematch_core::ports::{Events, PortError};

/// The `source` of every event the service puts.
pub const SOURCE: &str = queuematch_core::event::EVENT_SOURCE;
/// EventBridge's limit on one entry.
const MAX_ENTRY_BYTES: usize = 256 * 1024;

/// Publishes domain events on an EventBridge bus.
#[derive(Debug, Clone)]
pub struct EventBridgeEvents {
    client: Client,
    bus_name: String,
}

impl EventBridgeEvents {
    pub fn new(client: Client, bus_name: impl Into<String>) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
        }
    }
}

/// The port error for an entry PutEvents refused (it answers 200 and reports entries one by one).
fn entry_error(code: &str, message: &str) -> PortError {
    match code {
        "ThrottlingException" => PortError::Throttled { retry_after: None },
        "InternalFailure" | "InternalException" => PortError::transient(format!("PutEvents: {message} ({code})")),
        _ => PortError::invalid(format!("PutEvents refused the event: {message} ({code})")),
    }
}

#[async_trait::async_trait]
impl Events for EventBridgeEvents {
    async fn publish(&self, event: DomainEvent) -> Result<(), PortError> {
        let detail = serde_json::to_string(&event).map_err(|e| PortError::invalid(format!("event: {e}")))?;
        if detail.len() > MAX_ENTRY_BYTES {
            return Err(PortError::invalid(format!(
                "an event of {} bytes; EventBridge takes at most {MAX_ENTRY_BYTES}",
                detail.len()
            )));
        }
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(SOURCE)
            .detail_type(event.name())
            .detail(detail)
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| error::map("PutEvents", e))?;
        if out.failed_entry_count > 0 {
            let failed = out.entries().iter().find(|e| e.error_code().is_some());
            let (code, message) = failed
                .map(|e| {
                    (
                        e.error_code().unwrap_or("unknown"),
                        e.error_message().unwrap_or("no message"),
                    )
                })
                .unwrap_or(("unknown", "no message"));
            return Err(entry_error(code, message));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_entries_map_to_the_port_errors() {
        assert!(matches!(
            entry_error("ThrottlingException", "slow"),
            PortError::Throttled { .. }
        ));
        assert!(entry_error("InternalFailure", "oops").is_retryable());
        assert!(matches!(entry_error("MalformedDetail", "bad"), PortError::Invalid(_)));
    }
}
