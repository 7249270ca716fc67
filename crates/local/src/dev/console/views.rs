//! What the console shows, read from the ports: the snapshot's sessions, queues and histograms, and
//! one session's detail with its workflow executions.
//!
//! Everything is read from the store's operator listings (GSI1: `TICKETS#<status>` and
//! `SESSIONS#<status>`, newest first), the session's timeline and, for each execution the timeline
//! names, the embedded engine's record of it. The secret of a session is never read out: the detail
//! names its fields one by one.

use super::super::DevState;
use queuematch_core::ids::SessionId;
use queuematch_core::ports::store::items::{self, MatchRecord, SessionRecord, TicketRecord, TIMELINE_PREFIX};
use queuematch_core::ports::store::{Index, Query};
use queuematch_core::ports::workflows::ExecutionId;
use queuematch_core::ports::PortError;
use queuematch_core::{SessionStatus, TicketStatus};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The most sessions listed, newest first.
pub const SESSIONS_SHOWN: usize = 30;
/// The most tickets of one status counted; past it the count says "at least".
const TICKETS_COUNTED: usize = 1_000;
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
/// placing, and its active sessions.
pub(crate) async fn queues(
    state: &DevState,
    sessions: &[(SessionRecord, Option<MatchRecord>)],
) -> Result<Value, PortError> {
    let mut counts: BTreeMap<String, [usize; 3]> = state
        .service
        .queues
        .names()
        .iter()
        .map(|n| ((*n).to_owned(), [0; 3]))
        .collect();
    let statuses = [
        TicketStatus::Searching,
        TicketStatus::RequiresAcceptance,
        TicketStatus::Placing,
    ];
    for (slot, status) in statuses.into_iter().enumerate() {
        let mut query = Query::new(Index::Gsi1, format!("TICKETS#{status}"), TICKETS_COUNTED);
        let mut seen = 0;
        loop {
            let page = state.service.store.query(query.clone()).await?;
            for stored in &page.items {
                let ticket = items::read::<TicketRecord>(stored)?.value.ticket;
                if let Some(count) = counts.get_mut(&ticket.queue) {
                    count[slot] += 1;
                }
            }
            seen += page.items.len();
            match page.next {
                Some(next) if seen < TICKETS_COUNTED => query = query.after(Some(next)),
                _ => break,
            }
        }
    }
    let active = |queue: &str| {
        sessions
            .iter()
            .filter(|(s, _)| s.queue == queue && s.status == SessionStatus::Active)
            .count()
    };
    Ok(Value::Array(
        counts
            .into_iter()
            .map(|(name, [searching, acceptance, placing])| {
                json!({
                    "name": name,
                    "searching": searching,
                    "requiresAcceptance": acceptance,
                    "placing": placing,
                    "activeSessions": active(&name),
                })
            })
            .collect(),
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

/// A histogram over fixed bucket bounds (the last bucket is open).
struct Histogram {
    name: &'static str,
    title: &'static str,
    unit: &'static str,
    bounds: &'static [f64],
    counts: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    fn new(name: &'static str, title: &'static str, unit: &'static str, bounds: &'static [f64]) -> Self {
        Self {
            name,
            title,
            unit,
            bounds,
            counts: vec![0; bounds.len() + 1],
            count: 0,
            sum: 0.0,
        }
    }

    fn add(&mut self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|&le| value <= le)
            .unwrap_or(self.bounds.len());
        self.counts[bucket] += 1;
        self.count += 1;
        self.sum += value;
    }

    fn to_json(&self) -> Value {
        let buckets: Vec<Value> = self
            .counts
            .iter()
            .enumerate()
            .map(|(i, count)| json!({"le": self.bounds.get(i), "count": count}))
            .collect();
        json!({
            "name": self.name,
            "title": self.title,
            "unit": self.unit,
            "buckets": buckets,
            "count": self.count,
            "sum": self.sum,
        })
    }
}

/// Time to match (each ticket's wait) and the quality of the matches behind the sessions listed:
/// skill spread, team imbalance and worst latency, as FlexMatch's match quality reads.
pub(crate) fn histograms(sessions: &[(SessionRecord, Option<MatchRecord>)]) -> Value {
    let mut wait = Histogram::new(
        "TimeToMatch",
        "time to match",
        "s",
        &[1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0],
    );
    let mut spread = Histogram::new(
        "SkillSpread",
        "skill spread",
        "points",
        &[25.0, 50.0, 100.0, 150.0, 200.0, 300.0, 600.0],
    );
    let mut imbalance = Histogram::new(
        "TeamImbalance",
        "team imbalance",
        "points",
        &[5.0, 10.0, 20.0, 40.0, 80.0, 160.0],
    );
    let mut latency = Histogram::new(
        "WorstLatency",
        "worst latency",
        "ms",
        &[20.0, 40.0, 60.0, 80.0, 100.0, 150.0],
    );
    for quality in sessions
        .iter()
        .filter_map(|(_, m)| m.as_ref())
        .map(|m| &m.matched.quality)
    {
        for waited in &quality.waits_ms {
            wait.add(*waited as f64 / 1000.0);
        }
        if let Some(value) = quality.skill_spread {
            spread.add(value);
        }
        if let Some(value) = quality.team_imbalance {
            imbalance.add(value);
        }
        if let Some(value) = quality.worst_latency_ms {
            latency.add(f64::from(value));
        }
    }
    json!([wait.to_json(), spread.to_json(), imbalance.to_json(), latency.to_json()])
}

/// One session, its timeline, and each workflow execution its timeline names.
pub(crate) async fn session_detail(state: &DevState, id: &SessionId) -> Result<Value, PortError> {
    let store = &state.service.store;
    let Some(stored) = store.get(&items::session_key(id)).await? else {
        return Ok(json!({"type": "session", "sessionId": id, "error": format!("no session {id}")}));
    };
    let session = items::read::<SessionRecord>(&stored)?.value;
    let query = Query::new(Index::Table, format!("SESSION#{id}"), TIMELINE_SHOWN).with_prefix(TIMELINE_PREFIX);
    let timeline: Vec<items::TimelineEntry> = store
        .query(query)
        .await?
        .items
        .iter()
        .map(|stored| items::read(stored).map(|v| v.value))
        .collect::<Result<_, _>>()?;
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
                let status = match &record.status {
                    crate::workflows::ExecutionStatus::Running => "RUNNING",
                    crate::workflows::ExecutionStatus::Succeeded { .. } => "SUCCEEDED",
                    crate::workflows::ExecutionStatus::Failed { .. } => "FAILED",
                    crate::workflows::ExecutionStatus::TimedOut { .. } => "TIMED_OUT",
                };
                json!({
                    "id": record.id.0,
                    "name": record.name,
                    "definition": record.definition,
                    "status": status,
                    "path": record.path(),
                    "current": record.current_state(),
                    "graph": workflows.graph(&record.definition).as_deref(),
                })
            })
            .collect(),
        None => Vec::new(),
    };
    let endpoint = session.endpoint.as_ref().map(|e| format!("{}:{}", e.address, e.port));
    Ok(json!({
        "type": "session",
        "sessionId": id,
        "session": {
            "sessionId": session.session_id,
            "matchId": session.match_id,
            "queue": session.queue,
            "status": session.status,
            "players": session.player_ids,
            "createdAt": session.created_at,
            "endpoint": endpoint,
            "reason": session.reason,
        },
        "timeline": timeline,
        "executions": executions,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_puts_each_value_in_the_first_bucket_that_holds_it() {
        let mut h = Histogram::new("X", "x", "s", &[1.0, 5.0]);
        for value in [0.5, 1.0, 1.5, 5.0, 9.0] {
            h.add(value);
        }
        assert_eq!(h.counts, vec![2, 2, 1]);
        assert_eq!(
            h.to_json()["buckets"],
            json!([{"le": 1.0, "count": 2}, {"le": 5.0, "count": 2}, {"le": null, "count": 1}])
        );
        assert_eq!(h.to_json()["sum"], 17.0);
    }
}
