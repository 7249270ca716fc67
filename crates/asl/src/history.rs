//! Execution history, in the event types and shape of Step Functions' `GetExecutionHistory`.
//!
//! Each event has an `id` (from 1), the `previousEventId` of the event before it on the same line of execution
//! (a Parallel branch or Map iteration has its own line, as on AWS), a timestamp, a `type` such as
//! `TaskStateEntered`, and the details object AWS uses for that type (`stateEnteredEventDetails`, …), with
//! inputs and outputs as JSON text.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{json, Value};

use crate::clock::format_timestamp;

/// One event of an execution's history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEvent {
    pub id: u64,
    pub previous_event_id: u64,
    pub timestamp: DateTime<Utc>,
    pub kind: &'static str,
    /// The details field's name (e.g. `stateEnteredEventDetails`) and value, when the type has one.
    pub details: Option<(&'static str, Value)>,
}

impl HistoryEvent {
    /// The event as AWS prints it.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl Serialize for HistoryEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("timestamp", &format_timestamp(self.timestamp))?;
        map.serialize_entry("type", self.kind)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("previousEventId", &self.previous_event_id)?;
        if let Some((name, details)) = &self.details {
            map.serialize_entry(name, details)?;
        }
        map.end()
    }
}

/// A callback that sees every history event as it happens: how an embedder shows a workflow live.
#[derive(Clone)]
pub struct EventSink(Arc<dyn Fn(&HistoryEvent) + Send + Sync>);

impl EventSink {
    pub fn new(sink: impl Fn(&HistoryEvent) + Send + Sync + 'static) -> Self {
        EventSink(Arc::new(sink))
    }
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventSink")
    }
}

/// Where the events of one execution are collected; with neither history nor a sink, recording costs nothing.
#[derive(Debug)]
pub(crate) struct Recorder {
    keep: bool,
    sink: Option<EventSink>,
    /// The number of events so far (ids are 1-based and dense, kept or not) and the events kept.
    events: Mutex<(u64, Vec<HistoryEvent>)>,
}

/// The last event on one line of execution, so the next one can point back to it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Line {
    pub(crate) last_event: u64,
}

impl Recorder {
    pub(crate) fn new(keep: bool, sink: Option<EventSink>) -> Self {
        Recorder {
            keep,
            sink,
            events: Mutex::new((0, Vec::new())),
        }
    }

    /// Records an event after the last one on `line`; `details` is only built when someone will read it.
    pub(crate) fn record(
        &self,
        line: &mut Line,
        timestamp: DateTime<Utc>,
        kind: &'static str,
        details: impl FnOnce() -> Option<(&'static str, Value)>,
    ) {
        if !self.keep && self.sink.is_none() {
            return;
        }
        let details = details();
        let (id, shared) = {
            // Recording never panics while holding the lock, but a poisoned lock must not lose the history.
            let mut events = self.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            events.0 += 1;
            let id = events.0;
            let event = HistoryEvent {
                id,
                previous_event_id: line.last_event,
                timestamp,
                kind,
                details,
            };
            let shared = match &self.sink {
                Some(_) if self.keep => {
                    events.1.push(event.clone());
                    Some(event)
                }
                Some(_) => Some(event),
                None => {
                    events.1.push(event);
                    None
                }
            };
            (id, shared)
        };
        line.last_event = id;
        // The sink runs outside the lock: it is the embedder's code, and may take its time.
        if let (Some(sink), Some(event)) = (&self.sink, shared) {
            (sink.0)(&event);
        }
    }

    /// The id of the newest event, for an event that follows whatever happened last on any line.
    pub(crate) fn last_id(&self) -> u64 {
        self.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner).0
    }

    pub(crate) fn into_events(self) -> Vec<HistoryEvent> {
        self.events
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .1
    }
}

/// `{"name": …, "input": "<json>", "inputDetails": {"truncated": false}}`.
pub(crate) fn state_entered(name: &str, input: &Value) -> Option<(&'static str, Value)> {
    Some((
        "stateEnteredEventDetails",
        json!({"name": name, "input": input.to_string(), "inputDetails": {"truncated": false}}),
    ))
}

pub(crate) fn state_exited(name: &str, output: &Value) -> Option<(&'static str, Value)> {
    Some((
        "stateExitedEventDetails",
        json!({"name": name, "output": output.to_string(), "outputDetails": {"truncated": false}}),
    ))
}

pub(crate) fn entered_kind(type_name: &str) -> &'static str {
    match type_name {
        "Pass" => "PassStateEntered",
        "Task" => "TaskStateEntered",
        "Choice" => "ChoiceStateEntered",
        "Wait" => "WaitStateEntered",
        "Succeed" => "SucceedStateEntered",
        "Fail" => "FailStateEntered",
        "Parallel" => "ParallelStateEntered",
        _ => "MapStateEntered",
    }
}

pub(crate) fn exited_kind(type_name: &str) -> &'static str {
    match type_name {
        "Pass" => "PassStateExited",
        "Task" => "TaskStateExited",
        "Choice" => "ChoiceStateExited",
        "Wait" => "WaitStateExited",
        "Succeed" => "SucceedStateExited",
        "Parallel" => "ParallelStateExited",
        _ => "MapStateExited",
    }
}

/// How AWS names a resource in task events: `arn:aws:states:::lambda:invoke` is type `lambda`, resource `invoke`.
pub(crate) fn resource_parts(resource: &str) -> (String, String) {
    if let Some(service) = resource.strip_prefix("arn:aws:states:::") {
        if let Some((kind, name)) = service.split_once(':') {
            return (kind.to_owned(), name.to_owned());
        }
    }
    ("custom".to_owned(), resource.to_owned())
}
