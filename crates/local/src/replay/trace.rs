//! Traces of live traffic, and their replay on virtual time.
//!
//! A **trace** is JSON Lines. Its first line is the header, naming what was recorded; each other line
//! is one request the dev server accepted, at the time its clock read (epoch ms), in time order:
//!
//! ```text
//! {"kind":"header","version":1,"singleRegion":"local","ruleSets":[{…the rule set, as its file has it…}]}
//! {"kind":"ticket","at":1767225600000,"ticketId":"…","playerId":"alice","request":{…POST /v1/tickets' body…}}
//! {"kind":"cancel","at":1767225601000,"ticketId":"…","playerId":"alice","status":200}
//! {"kind":"accept","at":1767225602000,"ticketId":"…","playerId":"bob","acceptanceType":"ACCEPT","status":200}
//! {"kind":"report","at":1767225603000,"sessionId":"…","report":{…the signed report's body…},"status":202}
//! ```
//!
//! A ticket is recorded once it is accepted (202); a cancel, an acceptance or a report whenever its
//! caller was authenticated, with the status it was answered (`status`): a cancel refused live (the
//! ticket was already placing) may well succeed under another rule set.
//!
//! A **replay** runs the trace through the real use cases on in-memory ports and a manual clock:
//! each ticket is queued at its time, as `POST /v1/tickets` does, and the matcher handler takes the
//! queue's batches once a second (Lambda's batching window), which admits the tickets and runs the
//! pools' rounds, pool ticks included; cancels and acceptances go to their use cases at their time.
//! Nothing reads the wall clock, draws a random number or iterates a hash map, and every id comes
//! from the trace (match ids are the matcher's, from the round's time and the oldest ticket), so the
//! **match log** is the same, byte for byte, on every run:
//!
//! ```text
//! {"kind":"match","at":…,"queue":"ranked-1v1","matchId":"…","region":"local","teams":[{"name":"red","tickets":["…"],"players":["alice"]},…],"quality":{"skillSpread":20.0,"teamImbalance":20.0,"worstLatencyMs":0,"waitsMs":[1000,0],"expansionSteps":[0]}}
//! {"kind":"timeout","at":…,"queue":"…","ticketId":"…","players":["…"],"waitedMs":120000}
//! {"kind":"cancelled","at":…,"queue":"…","ticketId":"…","players":["…"],"waitedMs":3000}
//! {"kind":"cancelRefused","at":…,"ticketId":"…","playerId":"…","reason":"…"}
//! {"kind":"accept","at":…,"ticketId":"…","playerId":"…","acceptanceType":"ACCEPT","outcome":"…"}
//! {"kind":"failed","at":…,"ticketId":"…","players":["…"],"reason":"…"}
//! {"kind":"rejected","at":…,"queue":"…","matchId":"…","reason":"…","requeued":["…"],"cancelled":["…"]}
//! ```
//!
//! A match of a queue that requires acceptance is decided as the `session-placement` workflow
//! decides it live, by the same use cases: polled after every batch and every answer until every
//! player accepted (then it is logged as a match, at that time), someone rejected, or its window
//! closed (then it is logged as rejected: those who rejected or never answered cancelled, the
//! others back at the front of their pool, to be matched again).
//!
//! What a replay leaves out: placement and play. A match's players are free to queue again as soon
//! as it is formed, or accepted (their recorded next ticket came after their game), and server
//! reports are counted but not applied (the replay places no session).

use super::{from_value, parse_json, AcceptingWorkflows, JsonError};
use crate::{ManualClock, MemoryQueue, MemoryStore, QueueConfig};
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use queuematch_core::event::DomainEvent;
use queuematch_core::identity::SessionSecret;
use queuematch_core::ids::SessionId;
use queuematch_core::ids::{PlayerId, TicketId};
use queuematch_core::matcher::{Match, MatchQuality};
use queuematch_core::ports::fleet::{Placement, PlacementId};
use queuematch_core::ports::store::items::{self, TicketRecord};
use queuematch_core::ports::store::Condition;
use queuematch_core::ports::Fleet;
use queuematch_core::ports::{Clock, Events, PortError, Store, TicketQueue};
use queuematch_core::ticket::AcceptanceType;
use queuematch_core::time::Timestamp;
use queuematch_core::usecases::acceptance::{AcceptanceState, Acceptances};
use queuematch_core::usecases::messages::{Message, TicketMessage};
use queuematch_core::usecases::placement::{Placements, Step};
use queuematch_core::usecases::{tickets, PartyTokens, Queues, Settings, UseCaseError};
use queuematch_core::{RuleSet, TicketStatus};
use queuematch_handlers::{matcher, Service};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The trace format this code writes and reads.
pub const TRACE_VERSION: u32 = 1;

/// Lambda's batching window: the matcher takes a batch once a second.
const BATCHING_WINDOW: Duration = Duration::from_secs(1);
const BATCH_SIZE: usize = 1_000;
const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);
/// Ticks are at most 15 minutes apart, so a replay runs on at most this long after its last record
/// and the last ticket's timeout before it stops with tickets still waiting (it never loops forever).
const DRAIN_MARGIN: Duration = Duration::from_secs(15 * 60);

/// The first line of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TraceHeader {
    pub version: u32,
    /// The one region the recording server's fleet served: tickets without latencies are placed
    /// next to it, as they were live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_region: Option<String>,
    /// The rule sets the server served, in the rule-set format.
    pub rule_sets: Vec<Value>,
}

/// One line of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum TraceLine {
    Header(TraceHeader),
    Ticket(TicketArrival),
    #[serde(rename_all = "camelCase")]
    Cancel {
        at: Timestamp,
        ticket_id: String,
        player_id: String,
        status: u16,
    },
    #[serde(rename_all = "camelCase")]
    Accept {
        at: Timestamp,
        ticket_id: String,
        player_id: String,
        acceptance_type: AcceptanceType,
        status: u16,
    },
    #[serde(rename_all = "camelCase")]
    Report {
        at: Timestamp,
        session_id: String,
        report: Value,
        status: u16,
    },
}

/// A ticket accepted by `POST /v1/tickets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TicketArrival {
    pub at: Timestamp,
    pub ticket_id: String,
    pub player_id: String,
    pub request: Value,
}

/// The fields of a cancel, an acceptance and a report, read on their own: see [`parse_line`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CancelFields {
    at: Timestamp,
    ticket_id: String,
    player_id: String,
    status: u16,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AcceptFields {
    at: Timestamp,
    ticket_id: String,
    player_id: String,
    acceptance_type: AcceptanceType,
    status: u16,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReportFields {
    at: Timestamp,
    session_id: String,
    report: Value,
    status: u16,
}

/// The latest time a record may have: the last millisecond of 9999. A record near the end of `u64`
/// left the replay's virtual clock no room to pass the tickets' timeouts, and it ran for ever.
const LATEST: Timestamp = Timestamp(253_402_300_799_999);

/// The kinds of line, as `kind` names them.
const KINDS: &str = "header, ticket, cancel, accept, report";

/// One line of a trace. serde reads an internally tagged enum through a buffer that forgets where
/// a value was, so a bad `at` would only be "invalid type" somewhere in the line: the line is read
/// as JSON first, then its `kind`, then the fields of that kind, each bad one named by its path.
fn parse_line(raw: &str) -> Result<TraceLine, JsonError> {
    let mut value: Value = parse_json(raw)?;
    let field_error = |field: &str, message: String| JsonError {
        line: 1,
        column: 0,
        field: Some(field.to_owned()),
        message,
    };
    let Some(object) = value.as_object_mut() else {
        return Err(field_error("$", "a trace line is a JSON object".into()));
    };
    let kind = match object.remove("kind") {
        Some(Value::String(kind)) => kind,
        Some(other) => return Err(field_error("$.kind", format!("{other} is not one of {KINDS}"))),
        None => return Err(field_error("$", format!("missing field `kind` ({KINDS})"))),
    };
    Ok(match kind.as_str() {
        "header" => TraceLine::Header(from_value(value)?),
        "ticket" => TraceLine::Ticket(from_value(value)?),
        "cancel" => {
            let f: CancelFields = from_value(value)?;
            TraceLine::Cancel {
                at: f.at,
                ticket_id: f.ticket_id,
                player_id: f.player_id,
                status: f.status,
            }
        }
        "accept" => {
            let f: AcceptFields = from_value(value)?;
            TraceLine::Accept {
                at: f.at,
                ticket_id: f.ticket_id,
                player_id: f.player_id,
                acceptance_type: f.acceptance_type,
                status: f.status,
            }
        }
        "report" => {
            let f: ReportFields = from_value(value)?;
            TraceLine::Report {
                at: f.at,
                session_id: f.session_id,
                report: f.report,
                status: f.status,
            }
        }
        other => {
            return Err(field_error(
                "$.kind",
                format!("unknown kind `{other}`, expected one of {KINDS}"),
            ))
        }
    })
}

impl TraceLine {
    /// When it happened; the header has no time.
    pub fn at(&self) -> Option<Timestamp> {
        match self {
            TraceLine::Header(_) => None,
            TraceLine::Ticket(t) => Some(t.at),
            TraceLine::Cancel { at, .. } | TraceLine::Accept { at, .. } | TraceLine::Report { at, .. } => Some(*at),
        }
    }

    /// The line at `time` instead; the header has no time and stays as it is.
    pub fn set_at(&mut self, time: Timestamp) {
        match self {
            TraceLine::Header(_) => {}
            TraceLine::Ticket(t) => t.at = time,
            TraceLine::Cancel { at, .. } | TraceLine::Accept { at, .. } | TraceLine::Report { at, .. } => *at = time,
        }
    }

    /// The line as it is written: one JSON object, no newline.
    pub fn to_line(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What is wrong with a trace, or with a rule set given to its replay.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{path}: cannot read it: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A line that is not JSON (at its column), or a record with a bad field (named by its path).
    #[error("{path}:{line}:{}{}", line_position(error), error.what())]
    Line {
        path: String,
        line: usize,
        error: JsonError,
    },
    #[error("{path}:{line}: {message}")]
    Invalid { path: String, line: usize, message: String },
    #[error("{path}: the trace is empty: its first line must be the header")]
    Empty { path: String },
    #[error("{0}")]
    RuleSet(String),
    #[error("the replay failed at {at}: {source}")]
    Port {
        at: Timestamp,
        #[source]
        source: PortError,
    },
}

/// `COLUMN: ` for a line that is not JSON; for a bad field, whose path says where it is, a space.
fn line_position(error: &JsonError) -> String {
    if error.field.is_none() {
        format!("{}: ", error.column)
    } else {
        " ".into()
    }
}

/// A trace, read and checked.
#[derive(Debug, Clone)]
pub struct Trace {
    pub header: TraceHeader,
    /// The records after the header, in time order.
    pub records: Vec<TraceLine>,
    /// The rule sets of the header, validated.
    pub rule_sets: Vec<RuleSet>,
}

impl Trace {
    /// Reads the trace at `path`.
    pub fn read(path: &Path) -> Result<Self, TraceError> {
        let text = std::fs::read_to_string(path).map_err(|source| TraceError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Parses a trace's text; `path` names it in errors, each with its line number.
    pub fn parse(path: &str, text: &str) -> Result<Self, TraceError> {
        let invalid = |line: usize, message: String| TraceError::Invalid {
            path: path.to_owned(),
            line,
            message,
        };
        let mut header: Option<TraceHeader> = None;
        let mut records = Vec::new();
        let mut last: Option<(usize, Timestamp)> = None;
        // Each ticket's id, and the line it arrived on.
        let mut arrivals: BTreeMap<String, usize> = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let number = i + 1;
            if raw.trim().is_empty() {
                continue;
            }
            let line = parse_line(raw).map_err(|error| TraceError::Line {
                path: path.to_owned(),
                line: number,
                error,
            })?;
            match (line, &header) {
                (TraceLine::Header(h), None) => {
                    if h.version != TRACE_VERSION {
                        return Err(invalid(
                            number,
                            format!(
                                "$.version: this is a version {} trace; this replay reads version {TRACE_VERSION}",
                                h.version
                            ),
                        ));
                    }
                    header = Some(h);
                }
                (TraceLine::Header(_), Some(_)) => {
                    return Err(invalid(
                        number,
                        "a second header; a trace has one, on its first line".into(),
                    ))
                }
                (_, None) => {
                    return Err(invalid(
                        number,
                        "a record before the header; the first line must be {\"kind\":\"header\",…}".into(),
                    ))
                }
                (record, Some(_)) => {
                    let at = record.at().unwrap_or_default();
                    if at > LATEST {
                        return Err(invalid(
                            number,
                            format!(
                                "$.at: {at} is after 9999-12-31, not a time a trace records (milliseconds since 1970)"
                            ),
                        ));
                    }
                    if let Some((previous_line, previous)) = last.filter(|(_, previous)| at < *previous) {
                        return Err(invalid(
                            number,
                            format!(
                                "$.at: {at} is before {previous}, the time of line {previous_line}; records are in time order"
                            ),
                        ));
                    }
                    last = Some((number, at));
                    if let TraceLine::Ticket(arrival) = &record {
                        if let Some(first) = arrivals.insert(arrival.ticket_id.clone(), number) {
                            return Err(invalid(
                                number,
                                format!(
                                    "$.ticketId: ticket `{}` arrived already, on line {first}; each ticket arrives once",
                                    arrival.ticket_id
                                ),
                            ));
                        }
                    }
                    records.push(record);
                }
            }
        }
        let header = header.ok_or_else(|| TraceError::Empty { path: path.to_owned() })?;
        let mut rule_sets = Vec::new();
        for (i, rule_set) in header.rule_sets.iter().enumerate() {
            let parsed: RuleSet = RuleSet::from_json_str(&rule_set.to_string())
                .map_err(|e| invalid(1, format!("$.ruleSets[{i}]: not a valid rule set: {e}")))?;
            if let Some(first) = rule_sets.iter().position(|r: &RuleSet| r.name == parsed.name) {
                return Err(invalid(
                    1,
                    format!(
                        "$.ruleSets[{i}]: queue `{}` is $.ruleSets[{first}] already; a queue has one rule set",
                        parsed.name
                    ),
                ));
            }
            rule_sets.push(parsed);
        }
        Ok(Self {
            header,
            records,
            rule_sets,
        })
    }

    /// The queues the trace's tickets asked for, each once, in the order of their first ticket.
    pub fn ticket_queues(&self) -> Vec<&str> {
        let mut queues: Vec<&str> = Vec::new();
        for record in &self.records {
            if let TraceLine::Ticket(arrival) = record {
                if let Some(queue) = arrival.request.get("queue").and_then(Value::as_str) {
                    if !queues.contains(&queue) {
                        queues.push(queue);
                    }
                }
            }
        }
        queues
    }

    /// The rule sets to replay on: the recorded ones, with `replacement` standing for the one of its
    /// name, if given.
    pub fn queues(&self, replacement: Option<&RuleSet>) -> Result<Queues, TraceError> {
        let mut rule_sets = self.rule_sets.clone();
        if let Some(replacement) = replacement {
            let Some(slot) = rule_sets.iter_mut().find(|r| r.name == replacement.name) else {
                let names: Vec<&str> = self.rule_sets.iter().map(|r| r.name.as_str()).collect();
                return Err(TraceError::RuleSet(format!(
                    "the rule set is queue `{}`, and the trace has no such queue; its queues: {}",
                    replacement.name,
                    names.join(", ")
                )));
            };
            *slot = replacement.clone();
        }
        Ok(Queues::new(rule_sets))
    }
}

/// One line of the match log.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum LogLine {
    #[serde(rename_all = "camelCase")]
    Match {
        at: Timestamp,
        queue: String,
        match_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        region: Option<String>,
        teams: Vec<LogTeam>,
        quality: MatchQuality,
    },
    #[serde(rename_all = "camelCase")]
    Timeout {
        at: Timestamp,
        queue: String,
        ticket_id: String,
        players: Vec<String>,
        waited_ms: u64,
    },
    #[serde(rename_all = "camelCase")]
    Cancelled {
        at: Timestamp,
        queue: String,
        ticket_id: String,
        players: Vec<String>,
        waited_ms: u64,
    },
    #[serde(rename_all = "camelCase")]
    CancelRefused {
        at: Timestamp,
        ticket_id: String,
        player_id: String,
        reason: String,
    },
    #[serde(rename_all = "camelCase")]
    Accept {
        at: Timestamp,
        ticket_id: String,
        player_id: String,
        acceptance_type: AcceptanceType,
        outcome: String,
    },
    #[serde(rename_all = "camelCase")]
    Failed {
        at: Timestamp,
        ticket_id: String,
        players: Vec<String>,
        reason: String,
    },
    /// A match that needed acceptance and did not get it.
    #[serde(rename_all = "camelCase")]
    Rejected {
        at: Timestamp,
        queue: String,
        match_id: String,
        reason: String,
        requeued: Vec<String>,
        cancelled: Vec<String>,
    },
}

/// A team of a logged match.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogTeam {
    pub name: String,
    pub tickets: Vec<String>,
    pub players: Vec<String>,
}

impl LogLine {
    /// `matched`, as logged at `at`: when it was formed, or when its players had all accepted it.
    fn of_match(matched: &Match, at: Timestamp) -> Self {
        LogLine::Match {
            at,
            queue: matched.queue.to_string(),
            match_id: matched.id.to_string(),
            region: matched.region.as_ref().map(|r| r.to_string()),
            teams: matched
                .teams
                .iter()
                .map(|t| LogTeam {
                    name: t.name.to_string(),
                    tickets: t.tickets.iter().map(|id| id.to_string()).collect(),
                    players: t.players.iter().map(|id| id.to_string()).collect(),
                })
                .collect(),
            quality: matched.quality.clone(),
        }
    }

    /// The line as the log has it: one JSON object, no newline.
    pub fn to_line(&self) -> String {
        // Plain data with string keys; floats are finite (spreads and averages of numbers).
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What a replay did: the match log, and the counts its summary is made of.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Replay {
    pub log: Vec<LogLine>,
    pub tickets: usize,
    pub reports_skipped: usize,
    /// Tickets still waiting when the replay stopped.
    pub still_waiting: usize,
}

impl Replay {
    /// The match log as JSON Lines, each line ending in `\n`.
    pub fn log_text(&self) -> String {
        self.log.iter().map(|l| l.to_line() + "\n").collect()
    }

    /// The figures of this replay, to compare one rule set with another.
    pub fn summary(&self) -> Summary {
        let mut summary = Summary {
            tickets: self.tickets,
            still_waiting: self.still_waiting,
            ..Summary::default()
        };
        let mut waits: Vec<u64> = Vec::new();
        let mut spreads: Vec<f64> = Vec::new();
        for line in &self.log {
            match line {
                LogLine::Match { quality, teams, .. } => {
                    summary.matches += 1;
                    summary.matched_tickets += teams.iter().map(|t| t.tickets.len()).sum::<usize>();
                    waits.extend(quality.waits_ms.iter().copied());
                    spreads.extend(quality.skill_spread);
                }
                LogLine::Timeout { .. } => summary.timed_out += 1,
                LogLine::Cancelled { .. } => summary.cancelled += 1,
                LogLine::Failed { .. } => summary.failed += 1,
                LogLine::Rejected { cancelled, .. } => summary.cancelled += cancelled.len(),
                LogLine::CancelRefused { .. } | LogLine::Accept { .. } => {}
            }
        }
        waits.sort_unstable();
        let percentile = |p: usize| -> Option<u64> { (!waits.is_empty()).then(|| waits[(waits.len() - 1) * p / 100]) };
        summary.wait_p50_ms = percentile(50);
        summary.wait_p90_ms = percentile(90);
        summary.wait_max_ms = waits.last().copied();
        let mean = (!spreads.is_empty()).then(|| spreads.iter().sum::<f64>() / spreads.len() as f64);
        summary.mean_skill_spread = mean;
        summary
    }
}

/// The figures of a replay.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub tickets: usize,
    pub matches: usize,
    pub matched_tickets: usize,
    pub timed_out: usize,
    pub cancelled: usize,
    pub failed: usize,
    pub still_waiting: usize,
    pub wait_p50_ms: Option<u64>,
    pub wait_p90_ms: Option<u64>,
    pub wait_max_ms: Option<u64>,
    pub mean_skill_spread: Option<f64>,
}

/// The domain events a replay's use cases publish, kept in order: failures of admission are read
/// from them.
#[derive(Debug, Default)]
struct RecordedEvents(Mutex<Vec<DomainEvent>>);

#[async_trait::async_trait]
impl Events for RecordedEvents {
    async fn publish(&self, event: DomainEvent) -> Result<(), PortError> {
        crate::lock(&self.0).push(event);
        Ok(())
    }
}

impl RecordedEvents {
    fn take(&self) -> Vec<DomainEvent> {
        std::mem::take(&mut *crate::lock(&self.0))
    }
}

/// Party members' consent was checked when the trace was recorded (the dev server refuses a party
/// token it cannot verify, up front), and the tokens were signed with the recording server's secret
/// and have expired since; so a replay takes every recorded ticket's consent as given.
#[derive(Debug, Clone, Copy)]
struct RecordedConsent;

impl PartyTokens for RecordedConsent {
    fn verify(&self, _: &str, _: &PlayerId, _: Timestamp) -> Result<(), String> {
        Ok(())
    }
}

/// The replay places no session: a fleet that is never asked for a server. Failing a match before
/// its session exists, as an acceptance that failed does, releases nothing.
#[derive(Debug, Clone, Copy)]
struct NoFleet;

#[async_trait::async_trait]
impl Fleet for NoFleet {
    async fn place(&self, session: &SessionId, _: &Match, _: &SessionSecret) -> Result<Placement, PortError> {
        Err(PortError::invalid(format!("a replay places no session ({session})")))
    }
    async fn poll(&self, placement: &PlacementId) -> Result<Placement, PortError> {
        Err(PortError::invalid(format!(
            "a replay places no session ({})",
            placement.0
        )))
    }
    async fn release(&self, _: &PlacementId) -> Result<(), PortError> {
        Ok(())
    }
}

type ReplayService =
    Service<MemoryStore, MemoryQueue, AcceptingWorkflows, RecordedEvents, Arc<ManualClock>, RecordedConsent>;

/// Replays `trace` on `queues` (see the module's docs).
pub async fn replay(trace: &Trace, queues: Queues) -> Result<Replay, TraceError> {
    let start = trace.records.first().and_then(TraceLine::at).unwrap_or_default();
    let clock = Arc::new(ManualClock::new(start));
    let settings = Settings {
        single_region: trace.header.single_region.clone(),
        ..Settings::default()
    };
    let longest_timeout = queues.timeouts().max().unwrap_or_default();
    let service: ReplayService = Service {
        store: MemoryStore::new(clock.clone()),
        queue: MemoryQueue::new(clock.clone(), QueueConfig::default()),
        workflows: AcceptingWorkflows,
        events: RecordedEvents::default(),
        clock: clock.clone(),
        party_tokens: RecordedConsent,
        queues: Arc::new(queues),
        settings: Arc::new(settings),
    };
    let mut run = Run {
        service: &service,
        clock: &clock,
        replay: Replay::default(),
        queue_of: BTreeMap::new(),
        cancelled: BTreeSet::new(),
        accepting: Vec::new(),
        invocation: 0,
    };
    let mut next_batch = start.plus(BATCHING_WINDOW);
    for record in &trace.records {
        let at = record.at().unwrap_or(start);
        // Every batch due before this record runs first; an idle queue skips to the record's window.
        while next_batch <= at {
            if run.idle().await? {
                // Nothing queued, nothing due: the next batch that can find anything is the first
                // window after the record.
                let window = duration_ms(BATCHING_WINDOW);
                let skip = at.since(next_batch).as_millis() / u128::from(window) + 1;
                next_batch = next_batch.plus(Duration::from_millis(window * u64::try_from(skip).unwrap_or(1)));
                break;
            }
            run.batch(next_batch).await?;
            next_batch = next_batch.plus(BATCHING_WINDOW);
        }
        // A cancel or an acceptance of a recorded ticket the replay has not admitted yet: live, the
        // dev server's matcher admits within the window, often well before its end, and the player
        // saw the ticket before answering. The matcher runs now, as it had live.
        if run.awaits_admission(record, at).await? {
            run.batch(at).await?;
        }
        clock.set(at);
        run.apply(record, at).await?;
    }
    // Then until nothing is left to do: the last tickets matched, timed out, or the margin passed.
    let end = clock.now().plus(longest_timeout).plus(DRAIN_MARGIN);
    while next_batch <= end && !run.idle().await? {
        run.batch(next_batch).await?;
        next_batch = next_batch.plus(BATCHING_WINDOW);
    }
    run.replay.still_waiting = run.still_waiting().await?;
    Ok(run.replay)
}

/// A replay under way.
struct Run<'a> {
    service: &'a ReplayService,
    clock: &'a ManualClock,
    replay: Replay,
    /// Each recorded ticket's queue, for the lines of its cancel and timeout.
    queue_of: BTreeMap<String, String>,
    /// Tickets a recorded cancel cancelled: a second cancel changes nothing and is not logged.
    cancelled: BTreeSet<String>,
    /// Matches formed in a queue that requires acceptance, not decided yet, oldest first.
    accepting: Vec<Match>,
    invocation: u64,
}

impl Run<'_> {
    fn port(at: Timestamp) -> impl Fn(PortError) -> TraceError {
        move |source| TraceError::Port { at, source }
    }

    /// Whether there is nothing to do: no ticket to admit, no tick to come, no acceptance to decide.
    async fn idle(&self) -> Result<bool, TraceError> {
        let depth = self.service.queue.depth().await.map_err(Self::port(self.clock.now()))?;
        Ok(depth.visible + depth.in_flight + depth.delayed == 0 && self.accepting.is_empty())
    }

    /// The matcher's invocation at `at`: one batch of the queue, as Lambda's event source hands it.
    async fn batch(&mut self, at: Timestamp) -> Result<(), TraceError> {
        self.clock.set(at);
        let port = Self::port(at);
        let messages = self
            .service
            .queue
            // What is visible now: the window has passed on the virtual clock already.
            .receive_batch(BATCH_SIZE, Duration::ZERO, VISIBILITY_TIMEOUT)
            .await
            .map_err(&port)?;
        if messages.is_empty() {
            return self.settle_acceptances(at).await;
        }
        self.invocation += 1;
        let mut event = SqsEvent::default();
        event.records = messages
            .iter()
            .map(|m| {
                let mut record = SqsMessage::default();
                record.message_id = Some(m.message_id.clone());
                record.receipt_handle = Some(m.receipt.0.clone());
                record.body = Some(m.body.clone());
                record
            })
            .collect();
        let outcome = matcher::handle(self.service, event, &format!("replay-{}", self.invocation)).await;
        let failed: BTreeSet<&str> = outcome
            .response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        for message in messages.iter().filter(|m| !failed.contains(m.message_id.as_str())) {
            self.service.queue.delete(&message.receipt).await.map_err(&port)?;
        }
        for event in self.service.events.take() {
            if let DomainEvent::MatchmakingFailed {
                ticket_id,
                player_ids,
                reason,
            } = event
            {
                self.replay.log.push(LogLine::Failed {
                    at,
                    ticket_id: ticket_id.to_string(),
                    players: player_ids.iter().map(ToString::to_string).collect(),
                    reason,
                });
            }
        }
        for (pool, report) in &outcome.rounds {
            for matched in &report.matches {
                let accepting = self
                    .service
                    .queues
                    .get(&matched.queue)
                    .is_some_and(|rules| rules.queue.acceptance.required);
                if accepting {
                    self.accepting.push(matched.clone());
                } else {
                    self.replay.log.push(LogLine::of_match(matched, matched.created_at));
                    self.free_players(matched, at).await?;
                }
            }
            for id in &report.timed_out {
                let record = self.ticket(id, at).await?;
                self.replay.log.push(LogLine::Timeout {
                    at,
                    queue: pool.queue.clone(),
                    ticket_id: id.to_string(),
                    players: record.ticket.player_ids().map(ToString::to_string).collect(),
                    waited_ms: duration_ms(at.since(record.ticket.created_at)),
                });
            }
        }
        self.settle_acceptances(at).await
    }

    /// The game is not replayed: the players of a match are free again at once.
    async fn free_players(&self, matched: &Match, at: Timestamp) -> Result<(), TraceError> {
        for player in matched.player_ids() {
            self.service
                .store
                .delete(&items::player_guard_key(player), Condition::Any)
                .await
                .map_err(Self::port(at))?;
        }
        Ok(())
    }

    /// Decides the acceptances that can be decided at `at`, as the workflow's poll and its Catch
    /// would: an accepted match is logged and its players freed; a rejected or timed-out one is
    /// failed, which cancels those who rejected or never answered and requeues the others.
    async fn settle_acceptances(&mut self, at: Timestamp) -> Result<(), TraceError> {
        let service = self.service;
        let port = Self::port(at);
        let placements = Placements {
            store: &service.store,
            queue: &service.queue,
            fleet: &NoFleet,
            events: &service.events,
            clock: &service.clock,
            queues: &service.queues,
            settings: &service.settings,
        };
        let mut undecided = Vec::new();
        for matched in std::mem::take(&mut self.accepting) {
            let progress = placements.poll_acceptance(&matched.id).await.map_err(&port)?;
            match progress.acceptance {
                AcceptanceState::Pending => undecided.push(matched),
                AcceptanceState::Accepted => {
                    self.replay.log.push(LogLine::of_match(&matched, at));
                    self.free_players(&matched, at).await?;
                }
                AcceptanceState::Rejected | AcceptanceState::TimedOut => {
                    let reason = progress.reason.unwrap_or_default();
                    let step = Step {
                        execution_id: format!("replay:{}", matched.id),
                        state: "AcceptanceFailed".into(),
                    };
                    let failed = placements.fail(&matched.id, &reason, &step).await.map_err(&port)?;
                    let ids = |ids: Vec<TicketId>| ids.iter().map(ToString::to_string).collect();
                    self.replay.log.push(LogLine::Rejected {
                        at,
                        queue: matched.queue.to_string(),
                        match_id: matched.id.to_string(),
                        reason,
                        requeued: ids(failed.requeued),
                        cancelled: ids(failed.cancelled),
                    });
                }
            }
        }
        self.accepting = undecided;
        service.events.take();
        Ok(())
    }

    async fn ticket(&self, id: &TicketId, at: Timestamp) -> Result<TicketRecord, TraceError> {
        let stored = self
            .service
            .store
            .get(&items::ticket_key(id))
            .await
            .map_err(Self::port(at))?
            .ok_or_else(|| TraceError::Port {
                at,
                source: PortError::invalid(format!("ticket {id} was reported but is not stored")),
            })?;
        let record: items::Versioned<TicketRecord> = items::read(&stored).map_err(Self::port(at))?;
        Ok(record.value)
    }

    /// Whether `record` answers a recorded ticket that is still queued, not yet admitted.
    async fn awaits_admission(&self, record: &TraceLine, at: Timestamp) -> Result<bool, TraceError> {
        let (TraceLine::Cancel { ticket_id, .. } | TraceLine::Accept { ticket_id, .. }) = record else {
            return Ok(false);
        };
        if !self.queue_of.contains_key(ticket_id) {
            return Ok(false);
        }
        let stored = self
            .service
            .store
            .get(&items::ticket_key(&TicketId::from(ticket_id.as_str())))
            .await
            .map_err(Self::port(at))?;
        Ok(stored.is_none())
    }

    /// One record, at its time.
    async fn apply(&mut self, record: &TraceLine, at: Timestamp) -> Result<(), TraceError> {
        let service = self.service;
        match record {
            TraceLine::Header(_) => {}
            TraceLine::Ticket(arrival) => {
                self.replay.tickets += 1;
                if let Some(queue) = arrival.request.get("queue").and_then(Value::as_str) {
                    self.queue_of.insert(arrival.ticket_id.clone(), queue.to_owned());
                }
                let message = Message::Ticket(TicketMessage {
                    ticket_id: arrival.ticket_id.as_str().into(),
                    player_id: PlayerId::new(arrival.player_id.as_str()),
                    received_at: at,
                    request: arrival.request.clone(),
                });
                service
                    .queue
                    .send(message.to_body(), Duration::ZERO)
                    .await
                    .map_err(Self::port(at))?;
            }
            TraceLine::Cancel {
                ticket_id, player_id, ..
            } => {
                let id = TicketId::from(ticket_id.as_str());
                let caller = PlayerId::new(player_id.as_str());
                let result = tickets::cancel(
                    &service.store,
                    &service.events,
                    &service.clock,
                    &service.settings,
                    &caller,
                    &id,
                )
                .await;
                service.events.take();
                let line = match result {
                    // A ticket the trace never had (it defers the cancels of its queued ones until
                    // they are admitted): the cancel waits for a ticket that never comes.
                    Ok(tickets::Cancel::WhenAdmitted) => return Ok(()),
                    Ok(tickets::Cancel::Done(view))
                        if view.status == TicketStatus::Cancelled && self.cancelled.insert(ticket_id.clone()) =>
                    {
                        let record = self.ticket(&id, at).await?;
                        LogLine::Cancelled {
                            at,
                            queue: self.queue_of.get(ticket_id).cloned().unwrap_or_default(),
                            ticket_id: ticket_id.clone(),
                            players: record.ticket.player_ids().map(ToString::to_string).collect(),
                            waited_ms: duration_ms(at.since(record.ticket.created_at)),
                        }
                    }
                    // A cancel of a ticket cancelled already: the API answers it unchanged, and
                    // nothing happened to log.
                    Ok(tickets::Cancel::Done(_)) => return Ok(()),
                    Err(UseCaseError::Port(e)) => return Err(TraceError::Port { at, source: e }),
                    Err(refused) => LogLine::CancelRefused {
                        at,
                        ticket_id: ticket_id.clone(),
                        player_id: player_id.clone(),
                        reason: refused.to_string(),
                    },
                };
                self.replay.log.push(line);
            }
            TraceLine::Accept {
                ticket_id,
                player_id,
                acceptance_type,
                ..
            } => {
                let acceptances = Acceptances {
                    store: &service.store,
                    events: &service.events,
                    clock: &service.clock,
                    queues: &service.queues,
                    settings: &service.settings,
                };
                let result = acceptances
                    .respond(
                        &PlayerId::new(player_id.as_str()),
                        &TicketId::from(ticket_id.as_str()),
                        *acceptance_type,
                    )
                    .await;
                service.events.take();
                let outcome = match result {
                    Ok(view) => format!("the ticket is {}", view.status),
                    Err(UseCaseError::Port(e)) => return Err(TraceError::Port { at, source: e }),
                    Err(refused) => format!("refused: {refused}"),
                };
                self.replay.log.push(LogLine::Accept {
                    at,
                    ticket_id: ticket_id.clone(),
                    player_id: player_id.clone(),
                    acceptance_type: *acceptance_type,
                    outcome,
                });
                // The workflow polls again within a second; the answer may have decided the match.
                self.settle_acceptances(at).await?;
            }
            TraceLine::Report { .. } => self.replay.reports_skipped += 1,
        }
        Ok(())
    }

    /// The recorded tickets still searching.
    async fn still_waiting(&self) -> Result<usize, TraceError> {
        let at = self.clock.now();
        let mut waiting = 0;
        for id in self.queue_of.keys() {
            let id = TicketId::from(id.as_str());
            if let Some(stored) = self
                .service
                .store
                .get(&items::ticket_key(&id))
                .await
                .map_err(Self::port(at))?
            {
                let record: items::Versioned<TicketRecord> = items::read(&stored).map_err(Self::port(at))?;
                if !record.value.ticket.status.is_terminal() && record.value.match_id.is_none() {
                    waiting += 1;
                }
            }
        }
        Ok(waiting)
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn examples() -> Vec<RuleSet> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/rulesets");
        let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        names
            .iter()
            .map(|p| RuleSet::from_json_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    fn header() -> String {
        TraceLine::Header(TraceHeader {
            version: TRACE_VERSION,
            single_region: Some("local".into()),
            rule_sets: examples().iter().map(|r| serde_json::to_value(r).unwrap()).collect(),
        })
        .to_line()
    }

    fn ticket(at: u64, id: &str, skill: u32) -> String {
        TraceLine::Ticket(TicketArrival {
            at: Timestamp(at),
            ticket_id: id.into(),
            player_id: format!("p-{id}"),
            request: json!({"queue": "ranked-1v1", "players": [{"id": format!("p-{id}"), "attributes": {"skill": skill}}]}),
        })
        .to_line()
    }

    #[test]
    fn a_served_rule_set_written_in_the_header_reads_back_the_same() {
        let trace = Trace::parse("t", &header()).unwrap();
        assert_eq!(trace.rule_sets, examples());
    }

    #[test]
    fn bad_lines_are_refused_with_their_line_and_what_is_wrong() {
        let h = header();
        let cases = [
            (ticket(1, "a", 1500), "t:1: a record before the header"),
            (format!("{h}\n{h}"), "t:2: a second header"),
            (
                format!("{h}\n{}\n{}", ticket(2000, "a", 1500), ticket(1000, "b", 1500)),
                "t:3: $.at: 1000ms is before 2000ms, the time of line 2",
            ),
            (
                format!("{h}\n{{\"kind\":\"teleport\",\"at\":1}}"),
                "t:2: $.kind: unknown kind `teleport`",
            ),
            (
                format!("{h}\n{{\"kind\":\"cancel\",\"at\":\"soon\",\"ticketId\":\"a\",\"playerId\":\"p\",\"status\":200}}"),
                "t:2: $.at: invalid type: string \"soon\", expected u64",
            ),
            (
                format!("{h}\n{{\"kind\":\"ticket\",\"at\":1,\"ticketId\":\"a\",\"playerId\":7,\"request\":{{}}}}"),
                "t:2: $.playerId: invalid type: integer `7`, expected a string",
            ),
            (format!("{h}\n{{\"at\":1}}"), "t:2: $: missing field `kind`"),
            (
                format!("{h}\n{{\"kind\":\"cancel\",\"at\":1,\"ticketId\":\"a\",\"playerId\":\"p\",\"status\":200,\"why\":1}}"),
                "unknown field `why`",
            ),
            (format!("{h}\n{{\"kind\":\"cancel\",\"at\":1}}"), "t:2: $: missing field `ticketId`"),
            (format!("{h}\nnot json"), "t:2:2: expected ident"),
            (
                "{\"kind\":\"header\",\"version\":9,\"ruleSets\":[]}".to_owned(),
                "t:1: $.version: this is a version 9 trace",
            ),
            (
                "{\"kind\":\"header\",\"version\":1,\"ruleSets\":[{\"name\":\"x\"}]}".to_owned(),
                "t:1: $.ruleSets[0]: not a valid rule set",
            ),
            (String::new(), "t: the trace is empty"),
            (
                format!("{h}\n{}", ticket(u64::MAX - 100_000, "a", 1500)),
                "t:2: $.at: 18446744073709451615ms is after 9999-12-31",
            ),
            (
                format!("{h}\n{{\"kind\":\"cancel\",\"at\":1,\"at\":5,\"ticketId\":\"a\",\"playerId\":\"p\",\"status\":200}}"),
                "t:2: $: the key `at` is given twice in one object",
            ),
            (
                format!("{h}\n{}\n{}", ticket(1000, "a", 1500), ticket(2000, "a", 1600)),
                "t:3: $.ticketId: ticket `a` arrived already, on line 2",
            ),
            (
                format!(
                    "{{\"kind\":\"header\",\"version\":1,\"ruleSets\":[{one},{one}]}}",
                    one = serde_json::to_value(&examples()[0]).unwrap()
                ),
                "$.ruleSets[1]: queue `battle-royale-60` is $.ruleSets[0] already",
            ),
        ];
        for (text, expected) in cases {
            let error = Trace::parse("t", &text).unwrap_err().to_string();
            assert!(
                error.starts_with(expected) || error.contains(expected),
                "{text:?}: {error}"
            );
        }
    }

    #[tokio::test]
    async fn a_replay_on_virtual_time_matches_times_out_and_is_the_same_every_time() {
        let text = [
            header(),
            ticket(1_000_000, "a", 1500),
            ticket(1_000_100, "b", 1530),
            ticket(1_000_200, "c", 3000),
            // After three hours of quiet, one more: the replay skips the idle time.
            ticket(11_800_000, "d", 1500),
        ]
        .join("\n");
        let trace = Trace::parse("t", &text).unwrap();
        let first = replay(&trace, trace.queues(None).unwrap()).await.unwrap();
        let lines: Vec<Value> = first
            .log_text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0]["kind"], "match");
        // Matched at the first batch after `b`: the window's end.
        assert_eq!(lines[0]["at"], 1_001_000);
        assert_eq!(lines[0]["quality"]["skillSpread"], 30.0);
        assert_eq!(lines[0]["region"], "local");
        assert_eq!(lines[1]["kind"], "timeout");
        assert_eq!(lines[1]["ticketId"], "c");
        assert_eq!(lines[1]["waitedMs"], 120_000 + 800);
        assert_eq!(lines[2]["kind"], "timeout");
        assert_eq!(lines[2]["ticketId"], "d");
        let second = replay(&trace, trace.queues(None).unwrap()).await.unwrap();
        assert_eq!(first.log_text(), second.log_text());
        let summary = first.summary();
        assert_eq!((summary.tickets, summary.matches, summary.timed_out), (4, 1, 2));
        assert_eq!(summary.still_waiting, 0);
    }

    #[tokio::test]
    async fn a_cancel_refused_is_logged_with_why_and_a_cancel_repeated_is_not_logged_again() {
        let cancel = |at: u64, id: &str| {
            TraceLine::Cancel {
                at: Timestamp(at),
                ticket_id: id.into(),
                player_id: format!("p-{id}"),
                status: 200,
            }
            .to_line()
        };
        // GIVEN a and b matched, then cancels of a (being placed), and of c twice
        let text = [
            header(),
            ticket(1_000_000, "a", 1500),
            ticket(1_000_100, "b", 1530),
            ticket(1_000_200, "c", 3000),
            cancel(1_002_000, "a"),
            cancel(1_003_000, "c"),
            cancel(1_004_000, "c"),
        ]
        .join("\n");
        let trace = Trace::parse("t", &text).unwrap();
        // WHEN it is replayed
        let log = replay(&trace, trace.queues(None).unwrap()).await.unwrap().log_text();
        // THEN a's cancel is refused with the reason the API gave, and c is cancelled once: the API
        // answers the second cancel with the ticket unchanged, and nothing happened to log
        let lines: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["match", "cancelRefused", "cancelled"], "{log}");
        assert_eq!(lines[1]["ticketId"], "a");
        assert!(lines[1]["reason"].as_str().unwrap().contains("PLACING"), "{log}");
        assert_eq!(lines[2]["ticketId"], "c");
    }

    #[tokio::test]
    async fn acceptances_are_decided_as_the_workflow_decides_them() {
        // GIVEN a duel queue that requires acceptance within 20 s (no expansions, so the three
        // pairs, a thousand points apart, never meet)
        let mut accepting = examples().remove(2);
        assert_eq!(accepting.name, "ranked-1v1");
        accepting.name = "accept-1v1".into();
        accepting.queue.acceptance.required = true;
        accepting.expansions.clear();
        let header = TraceLine::Header(TraceHeader {
            version: TRACE_VERSION,
            single_region: Some("local".into()),
            rule_sets: vec![serde_json::to_value(&accepting).unwrap()],
        })
        .to_line();
        let ticket = |at: u64, id: &str, skill: u32| {
            TraceLine::Ticket(TicketArrival {
                at: Timestamp(at),
                ticket_id: id.into(),
                player_id: format!("p-{id}"),
                request: json!({"queue": "accept-1v1", "players": [{"id": format!("p-{id}"), "attributes": {"skill": skill}}]}),
            })
            .to_line()
        };
        let answer = |at: u64, id: &str, acceptance_type| {
            TraceLine::Accept {
                at: Timestamp(at),
                ticket_id: id.into(),
                player_id: format!("p-{id}"),
                acceptance_type,
                status: 200,
            }
            .to_line()
        };
        // a and b both accept; c accepts and d rejects; e and f never answer
        let text = [
            header,
            ticket(1_000_000, "a", 1500),
            ticket(1_000_100, "b", 1530),
            ticket(1_000_200, "c", 2500),
            ticket(1_000_300, "d", 2530),
            ticket(1_000_400, "e", 3500),
            ticket(1_000_500, "f", 3530),
            answer(1_003_000, "a", AcceptanceType::Accept),
            answer(1_003_500, "c", AcceptanceType::Accept),
            answer(1_004_000, "b", AcceptanceType::Accept),
            answer(1_004_500, "d", AcceptanceType::Reject),
        ]
        .join("\n");
        let trace = Trace::parse("t", &text).unwrap();
        // WHEN it is replayed
        let replayed = replay(&trace, trace.queues(None).unwrap()).await.unwrap();
        let log = replayed.log_text();
        let lines: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
        // THEN a–b is a match once b accepted, at that moment; c–d is rejected at d's answer, d
        // cancelled and c requeued (then timing out alone); e–f is rejected when the window closes,
        // both cancelled
        assert_eq!(
            kinds,
            ["accept", "accept", "accept", "match", "accept", "rejected", "rejected", "timeout"],
            "{log}"
        );
        assert_eq!(lines[3]["at"], 1_004_000);
        assert_eq!(lines[3]["teams"][0]["tickets"][0], "a");
        assert_eq!(
            (lines[5]["at"].clone(), lines[5]["reason"].clone()),
            (
                json!(1_004_500),
                json!(format!("p-d rejected match {}", lines[5]["matchId"].as_str().unwrap()))
            )
        );
        assert_eq!(
            (lines[5]["requeued"].clone(), lines[5]["cancelled"].clone()),
            (json!(["c"]), json!(["d"]))
        );
        assert_eq!(lines[6]["cancelled"], json!(["e", "f"]));
        assert!(lines[6]["reason"].as_str().unwrap().contains("did not accept"), "{log}");
        assert_eq!(lines[7]["ticketId"], "c");
        let summary = replayed.summary();
        assert_eq!(
            (
                summary.matches,
                summary.matched_tickets,
                summary.cancelled,
                summary.timed_out,
                summary.still_waiting
            ),
            (1, 2, 3, 1, 0)
        );
        // The same bytes on every run
        assert_eq!(
            replay(&trace, trace.queues(None).unwrap()).await.unwrap().log_text(),
            log
        );
    }

    #[tokio::test]
    async fn a_cancel_recorded_before_the_window_ends_finds_its_ticket_admitted() {
        // GIVEN a ticket cancelled 200 ms after it arrived: live, the dev server had admitted it
        let cancel = TraceLine::Cancel {
            at: Timestamp(1_000_200),
            ticket_id: "a".into(),
            player_id: "p-a".into(),
            status: 200,
        };
        let text = [header(), ticket(1_000_000, "a", 1500), cancel.to_line()].join("\n");
        let trace = Trace::parse("t", &text).unwrap();
        // WHEN it is replayed
        let log = replay(&trace, trace.queues(None).unwrap()).await.unwrap().log_text();
        // THEN the cancel cancels it, as it did live, rather than finding no ticket
        let lines: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 1, "{log}");
        assert_eq!(lines[0]["kind"], "cancelled");
        assert_eq!(lines[0]["waitedMs"], 200);
    }
}
