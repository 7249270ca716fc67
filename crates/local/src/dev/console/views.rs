//! What the console shows, read from the ports: the snapshot's sessions, queues and histograms, and
//! one session's detail with its workflow executions.
//!
//! Everything is read from the store's operator listings (GSI1: `TICKETS#<status>` and
//! `SESSIONS#<status>`, newest first), the session's timeline and, for each execution the timeline
//! names, the embedded engine's record of it. The secret of a session is never read out: the detail
//! names its fields one by one.

use super::super::DevState;
use queuematch_core::ids::SessionId;
use queuematch_core::ports::store::items::{self, MatchRecord, SessionRecord};
use queuematch_core::ports::store::{Index, Query};
use queuematch_core::ports::workflows::ExecutionId;
use queuematch_core::ports::Clock;
use queuematch_core::ports::PortError;
use queuematch_core::SessionStatus;
use queuematch_handlers::ops_api;
use serde_json::{json, Value};

/// The most sessions listed, newest first.
pub const SESSIONS_SHOWN: usize = 30;
/// The most timeline entries a detail shows.
const TIMELINE_SHOWN: usize = 200;

/// The newest sessions of every status, newest first, with the matches they came from.
pub(crate) async fn sessions(state: &DevState) -> Result<Vec<(SessionRecord, Option<MatchRecord>)>, PortError> {
    let store = &state.service.store;
    let mut sessions = Vec::new();
    for status in SessionStatus::ALL {
        let query = Query::new(Index::Gsi1, format!("SESSIONS#{status}"), SESSIONS_SHOWN).descending();
        for stored in store.query(query).await?.items {
            sessions.push(items::read::<SessionRecord>(&stored)?.value);
        }
    }
    sessions.sort_by(|a, b| (b.created_at, &b.session_id).cmp(&(a.created_at, &a.session_id)));
    sessions.truncate(SESSIONS_SHOWN);
    let mut out = Vec::with_capacity(sessions.len());
    for session in sessions {
        let matched = match store.get(&items::match_key(&session.match_id)).await? {
            Some(stored) => Some(items::read::<MatchRecord>(&stored)?.value),
            None => None,
        };
        out.push((session, matched));
    }
    Ok(out)
}

/// Per queue (every rule set served, in name order): its tickets searching, awaiting acceptance and
/// placing, its active sessions and its oldest searching ticket's age, as `GET /v1/ops/queues`
/// counts them.
pub(crate) async fn queues(state: &DevState) -> Result<Value, PortError> {
    let service = &state.service;
    let now = service.clock.now();
    Ok(Value::Array(
        ops_api::queue_counts(&service.store, &service.queues, now).await?,
    ))
}

/// A session as the list shows it.
pub(crate) fn session_row(session: &SessionRecord) -> Value {
    json!({
        "sessionId": session.session_id,
        "queue": session.queue,
        "status": session.status,
        "players": session.player_ids.len(),
        "createdAt": session.created_at,
    })
}

/// Time to match (each ticket's wait) and the quality of the matches behind the sessions listed:
/// skill spread, team imbalance and worst latency, with the histograms `GET /v1/ops/metrics` uses.
pub(crate) fn histograms(sessions: &[(SessionRecord, Option<MatchRecord>)]) -> Value {
    let histograms = ops_api::quality_histograms(sessions.iter().filter_map(|(_, m)| m.as_ref()));
    Value::Array(histograms.iter().map(|h| h.to_json()).collect())
}

/// One session, its timeline, and each workflow execution its timeline names.
pub(crate) async fn session_detail(state: &DevState, id: &SessionId) -> Result<Value, PortError> {
    let store = &state.service.store;
    let Some(stored) = store.get(&items::session_key(id)).await? else {
        return Ok(json!({"type": "session", "sessionId": id, "error": format!("no session {id}")}));
    };
    let session = items::read::<SessionRecord>(&stored)?.value;
    let timeline = ops_api::timeline(store, id, TIMELINE_SHOWN).await?;
    let mut execution_ids: Vec<&str> = Vec::new();
    for entry in &timeline {
        if !execution_ids.contains(&entry.execution_id.as_str()) {
            execution_ids.push(&entry.execution_id);
        }
    }
    let executions: Vec<Value> = match &state.workflows {
        Some(workflows) => execution_ids
            .iter()
            .filter_map(|id| workflows.execution(&ExecutionId((*id).to_owned())))
            .map(|record| {
                json!({
                    "id": record.id.0,
                    "name": record.name,
                    "definition": record.definition,
                    "status": record.status.name(),
                    "path": record.path(),
                    "current": record.current_state(),
                    "graph": workflows.graph(&record.definition).as_deref(),
                })
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(json!({
        "type": "session",
        "sessionId": id,
        "session": ops_api::session_row(&session),
        "timeline": timeline,
        "executions": executions,
    }))
}
