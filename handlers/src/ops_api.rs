//! The `ops-api` function: the operators' read-only views and the DLQ's redrive, under `/v1/ops/`,
//! behind API Gateway (and the dev server, which hands it the same proxy events).
//!
//! - `GET /v1/ops/tickets`, `/v1/ops/matches`, `/v1/ops/sessions`: listings by status and time from
//!   GSI1 (`TICKETS#<status>`, `MATCHES#<status>`, `SESSIONS#<status>`, each sorted by creation
//!   time), newest first, `limit` at a time, with a cursor.
//! - `GET /v1/ops/sessions/{sessionId}`: a session, its timeline, and each workflow execution the
//!   timeline names with the states it went through. On AWS, where Express keeps no history, the
//!   timeline *is* that history; locally the engine's own record is added (see [`ExecutionHistories`]).
//! - `GET /v1/ops/queues`: per queue, its tickets by status and the age of its oldest waiting ticket;
//!   and the tickets queue's depths, DLQ included.
//! - `GET /v1/ops/dlq` and `POST /v1/ops/dlq/redrive`: the dead letters, and SQS's redrive.
//! - `GET /v1/ops/metrics`: FlexMatch's matchmaking metrics, and match quality as histograms,
//!   derived from what the store holds (see `metrics` below).
//!
//! Only the operator role passes: no caller is 401, a player is 403. Every bad filter is a 400 that
//! names its query parameter; nothing a caller sends makes it panic or answer 5xx, except a port
//! failure (503, or 429 when throttled).

use crate::problem::{json_response, Problem};
use crate::tickets_api::caller;
use crate::Service;
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use base64::Engine as _;
use queuematch_core::ids::{MatchId, SessionId};
use queuematch_core::ports::store::items::{self, MatchRecord, SessionRecord, TicketRecord, TimelineEntry};
use queuematch_core::ports::store::{Index, Query, Stored, MAX_PAGE_ITEMS};
use queuematch_core::ports::{Clock, PortError, Store, TicketQueue};
use queuematch_core::ticket_request::FieldError;
use queuematch_core::time::Timestamp;
use queuematch_core::usecases::placement::session_id_for;
use queuematch_core::usecases::Queues;
use queuematch_core::{SessionStatus, TicketStatus};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

pub const TICKETS_RESOURCE: &str = "/v1/ops/tickets";
pub const MATCHES_RESOURCE: &str = "/v1/ops/matches";
pub const SESSIONS_RESOURCE: &str = "/v1/ops/sessions";
pub const SESSION_RESOURCE: &str = "/v1/ops/sessions/{sessionId}";
pub const QUEUES_RESOURCE: &str = "/v1/ops/queues";
pub const DLQ_RESOURCE: &str = "/v1/ops/dlq";
pub const REDRIVE_RESOURCE: &str = "/v1/ops/dlq/redrive";
pub const METRICS_RESOURCE: &str = "/v1/ops/metrics";

/// Every resource this function serves, with its one method.
pub const ROUTES: [(&str, &str); 8] = [
    ("GET", TICKETS_RESOURCE),
    ("GET", MATCHES_RESOURCE),
    ("GET", SESSIONS_RESOURCE),
    ("GET", SESSION_RESOURCE),
    ("GET", QUEUES_RESOURCE),
    ("GET", DLQ_RESOURCE),
    ("POST", REDRIVE_RESOURCE),
    ("GET", METRICS_RESOURCE),
];

/// A listing's page size when none is asked for, and the most one page holds.
pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;
/// The most timeline entries a session's detail shows.
const TIMELINE_SHOWN: usize = 500;
/// The most dead letters one inspection shows: the queue port's most per call (SQS's).
const DEAD_LETTERS_SHOWN: usize = 10;

/// The engine's own record of a workflow execution, where one is kept. On AWS none is (Express keeps
/// no history but CloudWatch Logs), so the timeline stands for it; `queuematch dev` adds the embedded
/// engine's status, path and events.
pub trait ExecutionHistories: Send + Sync {
    /// `{"status", "path", "current", "events"}` of execution `id`, if the engine knows it.
    fn history(&self, id: &str) -> Option<Value>;
}

/// What Lambda has: the timeline only.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimelineOnly;

impl ExecutionHistories for TimelineOnly {
    fn history(&self, _id: &str) -> Option<Value> {
        None
    }
}

/// The Cognito group whose members are operators (`OperatorsGroup` in `infra/template.yaml`).
pub const OPERATORS_GROUP: &str = "operators";

/// Whether the authorizer's claims name an operator: a dev token's `role`, or membership of the
/// Cognito group, which API Gateway hands over as the string `cognito:groups` (comma- or
/// space-separated, sometimes bracketed).
pub fn is_operator(request: &ApiGatewayProxyRequest) -> bool {
    let Some(claims) = request.request_context.authorizer.fields.get("claims") else {
        return false;
    };
    if claims.get("role").and_then(|role| role.as_str()) == Some("operator") {
        return true;
    }
    claims
        .get("cognito:groups")
        .and_then(|groups| groups.as_str())
        .is_some_and(|groups| {
            groups
                .split(|c: char| c == ',' || c == '[' || c == ']' || c.is_whitespace())
                .any(|group| group == OPERATORS_GROUP)
        })
}

/// Handles one request.
pub async fn handle<S, Q, W, E, C, P>(
    service: &Service<S, Q, W, E, C, P>,
    histories: &dyn ExecutionHistories,
    request: ApiGatewayProxyRequest,
) -> ApiGatewayProxyResponse
where
    S: Store,
    Q: TicketQueue,
    C: Clock,
{
    let Some(caller) = caller(&request) else {
        return Problem::unauthorized("no caller: the request carries no verified token").into_response();
    };
    if !is_operator(&request) {
        return Problem::forbidden(format!(
            "{caller} is a player; /v1/ops/ is for operators (`queuematch token --operator`)"
        ))
        .into_response();
    }
    let resource = request.resource.clone().unwrap_or_default();
    let Some((method, resource)) = ROUTES.iter().find(|(_, r)| *r == resource) else {
        return Problem::not_found("no such route; see infra/openapi.yaml").into_response();
    };
    if request.http_method.as_str() != *method {
        return Problem::method_not_allowed(
            format!("{} is not allowed on {resource}; use {method}", request.http_method),
            &[method],
        )
        .into_response();
    }
    let params = match Params::read(&request, resource) {
        Ok(params) => params,
        Err(problem) => return problem.into_response(),
    };
    let now = service.clock.now();
    let answer = match *resource {
        TICKETS_RESOURCE => list_tickets(&service.store, &params).await,
        MATCHES_RESOURCE => list_matches(&service.store, &params).await,
        SESSIONS_RESOURCE => list_sessions(&service.store, &params).await,
        SESSION_RESOURCE => {
            let id = request.path_parameters.get("sessionId").cloned().unwrap_or_default();
            session_detail(&service.store, histories, &id).await
        }
        QUEUES_RESOURCE => queues(&service.store, &service.queue, &service.queues, now)
            .await
            .map_err(|e| Box::new(Problem::unavailable(&e))),
        DLQ_RESOURCE => dead_letters(&service.queue).await,
        REDRIVE_RESOURCE => match service.queue.redrive().await {
            Ok(moved) => Ok(json!({"moved": moved})),
            Err(e) => Err(Box::new(Problem::unavailable(&e))),
        },
        METRICS_RESOURCE => metrics(&service.store, &service.queues, &params, now).await,
        _ => Err(Box::new(Problem::not_found("no such route; see infra/openapi.yaml"))),
    };
    match answer {
        Ok(body) => json_response(200, &body),
        Err(problem) => problem.into_response(),
    }
}

/// The GSI1 partitions a listing reads are this prefix and a status; its cursors carry it, so that a
/// cursor of one listing is not taken by another.
fn listing_prefix(resource: &str) -> Option<&'static str> {
    match resource {
        TICKETS_RESOURCE => Some("TICKETS#"),
        MATCHES_RESOURCE => Some("MATCHES#"),
        SESSIONS_RESOURCE => Some("SESSIONS#"),
        _ => None,
    }
}

fn allowed_params(resource: &str) -> &'static [&'static str] {
    match resource {
        TICKETS_RESOURCE | MATCHES_RESOURCE | SESSIONS_RESOURCE => &["status", "since", "until", "limit", "cursor"],
        METRICS_RESOURCE => &["since", "until"],
        _ => &[],
    }
}

// ---- filters -----------------------------------------------------------------------------------

/// A query parameter that is wrong: a 400 naming it.
fn bad_param(name: &str, message: impl Into<String>) -> Box<Problem> {
    let message = message.into();
    Box::new(Problem::bad_request(
        format!("query parameter `{name}`: {message}"),
        vec![FieldError {
            pointer: format!("/query/{name}"),
            message,
        }],
    ))
}

/// The filters of a listing or of the metrics, read and checked.
#[derive(Debug, Default)]
struct Params {
    status: Option<String>,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    limit: usize,
    /// The GSI1 sort key of the last item of the previous page: this page starts below it.
    before: Option<String>,
}

impl Params {
    fn read(request: &ApiGatewayProxyRequest, resource: &str) -> Result<Self, Box<Problem>> {
        let allowed = allowed_params(resource);
        let query = &request.query_string_parameters;
        for (name, _) in query.iter() {
            if !allowed.contains(&name) {
                let expected = if allowed.is_empty() {
                    "this route takes no query parameters".to_owned()
                } else {
                    format!("this route takes {}", allowed.join(", "))
                };
                return Err(bad_param(name, format!("unknown parameter; {expected}")));
            }
        }
        let one = |name: &str| -> Result<Option<String>, Box<Problem>> {
            let values = query.all(name).unwrap_or_default();
            match values.as_slice() {
                [] => Ok(None),
                [value] => Ok(Some((*value).to_owned())),
                _ => Err(bad_param(name, "given more than once")),
            }
        };
        let (since_text, until_text) = (one("since")?, one("until")?);
        let since = since_text.as_ref().map(|v| timestamp("since", v)).transpose()?;
        let until = until_text.as_ref().map(|v| timestamp("until", v)).transpose()?;
        if let (Some(since), Some(until), Some(since_text), Some(until_text)) = (since, until, &since_text, &until_text)
        {
            if since > until {
                // Quoted as given: a time may be milliseconds or RFC 3339.
                return Err(bad_param(
                    "since",
                    format!("`{since_text}` is after `until` (`{until_text}`)"),
                ));
            }
        }
        let limit = match one("limit")? {
            None => DEFAULT_LIMIT,
            // Digits only: Rust's parse also takes `+5`, which the document's integer does not.
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) && text.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(bad_param(
                        "limit",
                        format!("{text:?} is not a whole number from 1 to {MAX_LIMIT}"),
                    ))
                }
            },
        };
        let before = match (one("cursor")?, listing_prefix(resource)) {
            (Some(cursor), Some(listing)) => Some(decode_cursor(&cursor, listing)?),
            _ => None,
        };
        Ok(Self {
            status: one("status")?,
            since,
            until,
            limit,
            before,
        })
    }

    /// The GSI1 sort key a listing's page reads below, newest first: the cursor's, or the first past
    /// `until`, whichever is lower. The store starts there, so a deep page costs what the first does.
    fn sort_before(&self) -> Option<String> {
        let until = self
            .until
            .map(|until| items::padded(Timestamp(until.as_millis().saturating_add(1))));
        match (&self.before, until) {
            (Some(cursor), Some(until)) => Some(cursor.clone().min(until)),
            (cursor, until) => cursor.clone().or(until),
        }
    }

    fn within(&self, at: Timestamp) -> bool {
        self.since.is_none_or(|s| at >= s) && self.until.is_none_or(|u| at <= u)
    }
}

/// An instant: epoch milliseconds, or RFC 3339 (`2026-12-04T22:00:00Z`).
fn timestamp(name: &str, text: &str) -> Result<Timestamp, Box<Problem>> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(Timestamp)
            .map_err(|_| bad_param(name, format!("{text:?} is too large for epoch milliseconds")));
    }
    match chrono::DateTime::parse_from_rfc3339(text) {
        Ok(at) => u64::try_from(at.timestamp_millis())
            .map(Timestamp)
            .map_err(|_| bad_param(name, format!("{text:?} is before 1970"))),
        Err(e) => Err(bad_param(
            name,
            format!("{text:?} is neither epoch milliseconds nor RFC 3339 ({e})"),
        )),
    }
}

/// Cursors are opaque to callers: base64url of `v1:<listing prefix><GSI1 sort key>`
/// (`v1:TICKETS#<created>#<id>`).
fn encode_cursor(listing: &str, sort_key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1:{listing}{sort_key}"))
}

/// The sort key of a cursor `listing` gave.
fn decode_cursor(text: &str, listing: &str) -> Result<String, Box<Problem>> {
    let refuse = |why: &str| {
        bad_param(
            "cursor",
            format!("{text:?} is not a cursor {why}; start again without one"),
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| refuse("this API gave"))?;
    let decoded = String::from_utf8(bytes).map_err(|_| refuse("this API gave"))?;
    let tagged = decoded.strip_prefix("v1:").ok_or_else(|| refuse("this API gave"))?;
    let Some(sort_key) = tagged.strip_prefix(listing) else {
        let of = listing.trim_end_matches('#').to_lowercase();
        return Err(refuse(&format!("of the {of} listing")));
    };
    if created_at(sort_key).is_none() {
        return Err(refuse("this API gave"));
    }
    Ok(sort_key.to_owned())
}

/// The creation time a GSI1 sort key starts with (`<20-digit ms>#<id>`).
fn created_at(sort_key: &str) -> Option<Timestamp> {
    let (millis, id) = sort_key.split_once('#')?;
    if millis.len() != 20 || id.is_empty() {
        return None;
    }
    millis.parse().ok().map(Timestamp)
}

/// The status filter: one of `names`, or every one of them when absent.
fn statuses(params: &Params, names: &[String], refused: &[(&str, &str)]) -> Result<Vec<String>, Box<Problem>> {
    match &params.status {
        None => Ok(names.to_vec()),
        Some(status) if names.contains(status) => Ok(vec![status.clone()]),
        Some(status) => {
            if let Some((_, why)) = refused.iter().find(|(name, _)| name == status) {
                return Err(bad_param("status", format!("{status}: {why}")));
            }
            Err(bad_param(
                "status",
                format!("{status:?} is not one of {}", names.join(", ")),
            ))
        }
    }
}

// ---- listings ----------------------------------------------------------------------------------

/// One page of a listing over GSI1 partitions `<prefix><status>`, newest first, merged across
/// statuses: at most `limit` items created within the window and below the cursor, and the cursor
/// of the next page when more may follow.
///
/// The cursor is the last item's GSI1 sort key (`<created>#<id>`), not the store's own cursor: one
/// page merges several partitions, each read further than the page shows. The store port has no
/// sort-key range condition, so each page reads its partitions from the newest and skips to the
/// cursor; `since` stops a partition early. Operator volumes make that acceptable; a
/// `KeyConditionExpression` on `gsi1sk` would be the step up.
async fn page<S: Store>(
    store: &S,
    prefix: &str,
    statuses: &[String],
    params: &Params,
) -> Result<(Vec<Stored>, Option<String>), PortError> {
    let mut found: Vec<(String, Stored)> = Vec::new();
    for status in statuses {
        // One more than a page tells whether another page follows.
        let partition = format!("{prefix}{status}");
        for stored in within_window(store, partition, params, params.limit + 1).await? {
            let Some(sort_key) = stored.item.gsi1.as_ref().map(|k| k.sk.clone()) else {
                continue;
            };
            if created_at(&sort_key).is_some() {
                found.push((sort_key, stored));
            }
        }
    }
    found.sort_by(|a, b| b.0.cmp(&a.0));
    let more = found.len() > params.limit;
    found.truncate(params.limit);
    let next = if more {
        found.last().map(|(sk, _)| encode_cursor(prefix, sk))
    } else {
        None
    };
    Ok((found.into_iter().map(|(_, stored)| stored).collect(), next))
}

fn listing(kind: &str, rows: Vec<Value>, next: Option<String>) -> Value {
    json!({ kind: rows, "nextCursor": next })
}

fn names<T: std::fmt::Display>(all: impl IntoIterator<Item = T>) -> Vec<String> {
    all.into_iter().map(|s| s.to_string()).collect()
}

fn unavailable(e: PortError) -> Box<Problem> {
    Box::new(Problem::unavailable(&e))
}

async fn list_tickets<S: Store>(store: &S, params: &Params) -> Result<Value, Box<Problem>> {
    let stored = names(TicketStatus::ALL.into_iter().filter(|s| *s != TicketStatus::Queued));
    let refused = [(
        "QUEUED",
        "a QUEUED ticket is a message in the tickets queue, not yet in the store; see /v1/ops/queues",
    )];
    let statuses = statuses(params, &stored, &refused)?;
    let (items, next) = page(store, "TICKETS#", &statuses, params).await.map_err(unavailable)?;
    let rows = items
        .iter()
        .map(|stored| items::read::<TicketRecord>(stored).map(|r| ticket_row(&r.value)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(unavailable)?;
    Ok(listing("tickets", rows, next))
}

fn ticket_row(record: &TicketRecord) -> Value {
    let t = &record.ticket;
    json!({
        "ticketId": t.id,
        "queue": t.queue,
        "status": t.status,
        "players": t.player_ids().collect::<Vec<_>>(),
        "createdAt": t.created_at,
        "reason": t.reason,
        "matchId": record.match_id,
    })
}

/// Match statuses as GSI1 lists them.
const MATCH_STATUSES: [&str; 2] = ["COMMITTED", "PENDING"];

async fn list_matches<S: Store>(store: &S, params: &Params) -> Result<Value, Box<Problem>> {
    let statuses = statuses(params, &names(MATCH_STATUSES), &[])?;
    let (items, next) = page(store, "MATCHES#", &statuses, params).await.map_err(unavailable)?;
    let records = items
        .iter()
        .map(|stored| items::read::<MatchRecord>(stored).map(|r| r.value))
        .collect::<Result<Vec<_>, _>>()
        .map_err(unavailable)?;
    // A match has a session once it is placed; one rejected, or still awaiting acceptance, has none,
    // and its row names none rather than an id that leads nowhere. The page's sessions are read at
    // once: one round trip to the table rather than one per row.
    let sessions = futures::future::try_join_all(records.iter().map(|record| async move {
        let session = session_id_for(&record.matched.id);
        let exists = store.get(&items::session_key(&session)).await?.is_some();
        Ok::<_, PortError>(exists.then_some(session))
    }))
    .await
    .map_err(unavailable)?;
    let rows = records
        .iter()
        .zip(sessions)
        .map(|(record, session)| match_row(record, session))
        .collect();
    Ok(listing("matches", rows, next))
}

fn match_row(record: &MatchRecord, session: Option<SessionId>) -> Value {
    let m = &record.matched;
    json!({
        "matchId": m.id,
        "queue": m.queue,
        "status": record.status,
        "createdAt": m.created_at,
        "region": m.region,
        "teams": m.teams,
        "collections": m.collections,
        "quality": m.quality,
        "sessionId": session,
    })
}

async fn list_sessions<S: Store>(store: &S, params: &Params) -> Result<Value, Box<Problem>> {
    let statuses = statuses(params, &names(SessionStatus::ALL), &[])?;
    let (items, next) = page(store, "SESSIONS#", &statuses, params).await.map_err(unavailable)?;
    let rows = items
        .iter()
        .map(|stored| items::read::<SessionRecord>(stored).map(|r| session_row(&r.value)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(unavailable)?;
    Ok(listing("sessions", rows, next))
}

/// A session as operators see it: every field but its secret.
pub fn session_row(session: &SessionRecord) -> Value {
    json!({
        "sessionId": session.session_id,
        "matchId": session.match_id,
        "queue": session.queue,
        "status": session.status,
        "players": session.player_ids,
        "createdAt": session.created_at,
        "endpoint": session.endpoint.as_ref().map(|e| format!("{}:{}", e.address, e.port)),
        "reason": session.reason,
    })
}

// ---- one session -------------------------------------------------------------------------------

/// A session's timeline, oldest first.
pub async fn timeline<S: Store>(store: &S, id: &SessionId, most: usize) -> Result<Vec<TimelineEntry>, PortError> {
    let mut query = Query::new(Index::Table, format!("SESSION#{id}"), most.clamp(1, MAX_PAGE_ITEMS))
        .with_prefix(items::TIMELINE_PREFIX);
    let mut out = Vec::new();
    loop {
        let page = store.query(query.clone()).await?;
        for stored in &page.items {
            out.push(items::read::<TimelineEntry>(stored)?.value);
        }
        match page.next {
            Some(next) if out.len() < most => query = query.after(Some(next)),
            _ => break,
        }
    }
    out.truncate(most);
    Ok(out)
}

async fn session_detail<S: Store>(
    store: &S,
    histories: &dyn ExecutionHistories,
    id: &str,
) -> Result<Value, Box<Problem>> {
    if !SessionId::is_valid(id) {
        return Err(Box::new(Problem::not_found(format!(
            "no session {id:?}: {}",
            SessionId::RULE
        ))));
    }
    let id = SessionId::new(id);
    let Some(stored) = store.get(&items::session_key(&id)).await.map_err(unavailable)? else {
        return Err(Box::new(Problem::not_found(format!("no session {id}"))));
    };
    let session = items::read::<SessionRecord>(&stored).map_err(unavailable)?.value;
    let timeline = timeline(store, &id, TIMELINE_SHOWN).await.map_err(unavailable)?;
    // Each execution the timeline names, in the order it first appears, with its steps.
    let mut executions: Vec<(String, Vec<&TimelineEntry>)> = Vec::new();
    for entry in &timeline {
        match executions.iter_mut().find(|(id, _)| *id == entry.execution_id) {
            Some((_, steps)) => steps.push(entry),
            None => executions.push((entry.execution_id.clone(), vec![entry])),
        }
    }
    let executions: Vec<Value> = executions
        .into_iter()
        .map(|(execution_id, steps)| {
            json!({
                "executionId": execution_id,
                "workflow": workflow_of(&execution_id),
                "steps": steps.iter().map(|e| json!({"at": e.at, "state": e.state, "status": e.status, "detail": e.detail})).collect::<Vec<_>>(),
                "engine": histories.history(&execution_id),
            })
        })
        .collect();
    let matched = match store
        .get(&items::match_key(&session.match_id))
        .await
        .map_err(unavailable)?
    {
        // The match of a session: the session exists.
        Some(stored) => Some(match_row(
            &items::read::<MatchRecord>(&stored).map_err(unavailable)?.value,
            Some(session.session_id.clone()),
        )),
        None => None,
    };
    Ok(json!({
        "session": session_row(&session),
        "match": matched,
        "timeline": timeline,
        "executions": executions,
    }))
}

/// The workflow an execution ran, from its ARN (`…:execution:<state machine>:<name>`), if it says.
fn workflow_of(execution_id: &str) -> Option<&str> {
    let mut parts = execution_id.rsplit(':');
    let _name = parts.next()?;
    let machine = parts.next()?;
    (parts.next() == Some("execution")).then_some(machine)
}

// ---- queues ------------------------------------------------------------------------------------

/// The most items of one status a call reads: the metrics count the newest this many of each status
/// within their window (so a window's count past it is a floor), the queue counts the oldest.
pub const TICKETS_COUNTED: usize = 10_000;

/// Every item of one GSI1 partition, oldest first, up to `most`.
async fn partition<S: Store>(store: &S, partition: String, most: usize) -> Result<Vec<Stored>, PortError> {
    let mut query = Query::new(Index::Gsi1, partition, MAX_PAGE_ITEMS);
    let mut out = Vec::new();
    loop {
        let page = store.query(query.clone()).await?;
        out.extend(page.items);
        match page.next {
            Some(next) if out.len() < most => query = query.after(Some(next)),
            _ => break,
        }
    }
    out.truncate(most);
    Ok(out)
}

/// The items of one GSI1 partition created within `params`' window and below its cursor, newest
/// first, up to `most`: a listing's page, or a metric's items. A window of the last hour reads the
/// last hour, however many older items the partition holds (read oldest first, the metrics stopped
/// moving once a status had `most` tickets).
async fn within_window<S: Store>(
    store: &S,
    partition: String,
    params: &Params,
    most: usize,
) -> Result<Vec<Stored>, PortError> {
    let mut query = Query::new(Index::Gsi1, partition, MAX_PAGE_ITEMS).descending();
    if let Some(before) = params.sort_before() {
        query = query.before(before);
    }
    let mut out = Vec::new();
    loop {
        let page = store.query(query.clone()).await?;
        for stored in page.items {
            let created = stored.item.gsi1.as_ref().and_then(|k| created_at(&k.sk));
            if params.since.is_some_and(|since| created.is_some_and(|at| at < since)) {
                // Newest first: once one is older than the window, all that follow are.
                return Ok(out);
            }
            out.push(stored);
            if out.len() == most {
                return Ok(out);
            }
        }
        match page.next {
            Some(next) => query = query.after(Some(next)),
            None => return Ok(out),
        }
    }
}

/// Per queue served (in name order): its tickets searching, awaiting acceptance and placing, its
/// active sessions, and how long its oldest searching ticket has waited.
pub async fn queue_counts<S: Store>(store: &S, queues: &Queues, now: Timestamp) -> Result<Vec<Value>, PortError> {
    #[derive(Default)]
    struct Counts {
        searching: usize,
        acceptance: usize,
        placing: usize,
        active: usize,
        oldest: Option<Timestamp>,
    }
    let mut counts: BTreeMap<String, Counts> = queues
        .names()
        .iter()
        .map(|n| ((*n).to_owned(), Counts::default()))
        .collect();
    for status in [
        TicketStatus::Searching,
        TicketStatus::RequiresAcceptance,
        TicketStatus::Placing,
    ] {
        for stored in partition(store, format!("TICKETS#{status}"), TICKETS_COUNTED).await? {
            let ticket = items::read::<TicketRecord>(&stored)?.value.ticket;
            if let Some(count) = counts.get_mut(&ticket.queue) {
                match status {
                    TicketStatus::Searching => {
                        count.searching += 1;
                        count.oldest = Some(count.oldest.map_or(ticket.created_at, |o| o.min(ticket.created_at)));
                    }
                    TicketStatus::RequiresAcceptance => count.acceptance += 1,
                    _ => count.placing += 1,
                }
            }
        }
    }
    for stored in partition(store, format!("SESSIONS#{}", SessionStatus::Active), TICKETS_COUNTED).await? {
        let session = items::read::<SessionRecord>(&stored)?.value;
        if let Some(count) = counts.get_mut(&session.queue) {
            count.active += 1;
        }
    }
    Ok(counts
        .into_iter()
        .map(|(name, c)| {
            json!({
                "name": name,
                "searching": c.searching,
                "requiresAcceptance": c.acceptance,
                "placing": c.placing,
                "activeSessions": c.active,
                "oldestSearchingSeconds": c.oldest.map(|at| now.since(at).as_secs_f64()),
            })
        })
        .collect())
}

async fn queues<S: Store, Q: TicketQueue>(
    store: &S,
    queue: &Q,
    queues: &Queues,
    now: Timestamp,
) -> Result<Value, PortError> {
    let depth = queue.depth().await?;
    Ok(json!({
        "at": now,
        "ticketsQueue": {
            "visible": depth.visible,
            "inFlight": depth.in_flight,
            "delayed": depth.delayed,
            "dead": depth.dead,
        },
        "queues": queue_counts(store, queues, now).await?,
    }))
}

async fn dead_letters<Q: TicketQueue>(queue: &Q) -> Result<Value, Box<Problem>> {
    let depth = queue.depth().await.map_err(unavailable)?;
    let letters = queue.dead_letters(DEAD_LETTERS_SHOWN).await.map_err(unavailable)?;
    Ok(json!({
        "dead": depth.dead,
        "deadLetters": letters.iter().map(|l| json!({
            "messageId": l.message_id,
            "body": l.body,
            "receiveCount": l.receive_count,
            "sentAt": l.sent_at,
        })).collect::<Vec<_>>(),
    }))
}

// ---- metrics -----------------------------------------------------------------------------------

/// A histogram over fixed bucket bounds (the last bucket is open).
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub name: &'static str,
    pub title: &'static str,
    pub unit: &'static str,
    pub bounds: &'static [f64],
    pub counts: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    pub fn new(name: &'static str, title: &'static str, unit: &'static str, bounds: &'static [f64]) -> Self {
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

    /// Seconds, in the buckets every time histogram uses.
    pub fn seconds(name: &'static str, title: &'static str) -> Self {
        Self::new(name, title, "s", &[1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0])
    }

    pub fn add(&mut self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|&le| value <= le)
            .unwrap_or(self.bounds.len());
        self.counts[bucket] += 1;
        self.count += 1;
        self.sum += value;
    }

    pub fn to_json(&self) -> Value {
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

/// Time to match (each ticket's wait) and match quality over `matches`: skill spread, team
/// imbalance and worst latency.
pub fn quality_histograms<'a>(matches: impl IntoIterator<Item = &'a MatchRecord>) -> [Histogram; 4] {
    let mut wait = Histogram::seconds("TimeToMatch", "time to match");
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
    for quality in matches.into_iter().map(|m| &m.matched.quality) {
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
    [wait, spread, imbalance, latency]
}

/// FlexMatch's metrics over the tickets, matches and sessions created within the window (every one
/// the store holds when no window is given), and match quality as histograms. What each means is in
/// `infra/openapi.yaml` (`OpsMetrics`).
async fn metrics<S: Store>(store: &S, queues: &Queues, params: &Params, now: Timestamp) -> Result<Value, Box<Problem>> {
    metrics_over(store, queues, params, now).await.map_err(unavailable)
}

async fn metrics_over<S: Store>(
    store: &S,
    queues: &Queues,
    params: &Params,
    now: Timestamp,
) -> Result<Value, PortError> {
    // The partitions read up to TICKETS_COUNTED: what is counted over them is a floor.
    let mut capped: Vec<String> = Vec::new();
    let mut note_cap = |partition: &str, read: usize| {
        if read >= TICKETS_COUNTED {
            capped.push(partition.to_owned());
        }
    };
    let mut tickets: HashMap<TicketStatus, Vec<TicketRecord>> = HashMap::new();
    // The tickets in play now, whenever they were created: `CurrentTickets` is a gauge, not a count
    // over the window.
    let mut current = 0;
    for status in TicketStatus::ALL.into_iter().filter(|s| *s != TicketStatus::Queued) {
        let mut records = Vec::new();
        // Tickets still in play are all read, for the gauge; finished ones within the window.
        let name = format!("TICKETS#{status}");
        let listed = if status.is_terminal() {
            within_window(store, name.clone(), params, TICKETS_COUNTED).await?
        } else {
            partition(store, name.clone(), TICKETS_COUNTED).await?
        };
        note_cap(&name, listed.len());
        for stored in listed {
            let record = items::read::<TicketRecord>(&stored)?.value;
            if !status.is_terminal() {
                current += 1;
            }
            if params.within(record.ticket.created_at) {
                records.push(record);
            }
        }
        tickets.insert(status, records);
    }
    let count = |status: TicketStatus| tickets.get(&status).map_or(0, Vec::len);
    let mut matches: Vec<MatchRecord> = Vec::new();
    let committed = within_window(store, "MATCHES#COMMITTED".into(), params, TICKETS_COUNTED).await?;
    note_cap("MATCHES#COMMITTED", committed.len());
    for stored in committed {
        let record = items::read::<MatchRecord>(&stored)?.value;
        if params.within(record.matched.created_at) {
            matches.push(record);
        }
    }
    let mut sessions: HashMap<SessionId, SessionRecord> = HashMap::new();
    for status in SessionStatus::ALL {
        // Newest first: the sessions of the window's matches were made at or after them.
        let newest = Params {
            since: params.since,
            ..Params::default()
        };
        let name = format!("SESSIONS#{status}");
        let listed = within_window(store, name.clone(), &newest, TICKETS_COUNTED).await?;
        note_cap(&name, listed.len());
        for stored in listed {
            let record = items::read::<SessionRecord>(&stored)?.value;
            sessions.insert(record.session_id.clone(), record);
        }
    }
    // A match that required acceptance has a session only once every player accepted: the
    // placement workflow creates it after `IsAccepted`. Its acceptance was rejected (or timed out)
    // when its tickets left it, back to SEARCHING or CANCELLED, with no session made and none
    // PLACING.
    let (mut accepted, mut rejected, mut placed) = (0usize, 0usize, 0usize);
    for m in &matches {
        let session = sessions.get(&session_id_for(&m.matched.id));
        if session.is_some_and(|s| s.endpoint.is_some()) {
            placed += 1;
        }
        let needs_acceptance = queues
            .get(&m.matched.queue)
            .is_some_and(|r| r.queue.acceptance.required);
        if !needs_acceptance {
            continue;
        }
        // Between the last acceptance and the workflow's CreateSession, the tickets are already
        // PLACING: accepted, not yet placed.
        if session.is_some() || tickets_in(&tickets, TicketStatus::Placing, &m.matched.id) {
            accepted += 1;
        } else if !tickets_in(&tickets, TicketStatus::RequiresAcceptance, &m.matched.id) {
            rejected += 1;
        }
    }
    // Time to success: from a ticket's creation to its session going ACTIVE (the timeline's entry),
    // which is when the ticket became COMPLETED with its connection info.
    let mut to_success = Histogram::seconds("TimeToTicketSuccess", "time to ticket success");
    let mut active_at: HashMap<SessionId, Option<Timestamp>> = HashMap::new();
    for record in tickets.get(&TicketStatus::Completed).into_iter().flatten() {
        let Some(match_id) = &record.match_id else { continue };
        let session = session_id_for(match_id);
        if !active_at.contains_key(&session) {
            let at = timeline(store, &session, TIMELINE_SHOWN)
                .await?
                .into_iter()
                .find(|e| e.status == SessionStatus::Active)
                .map(|e| e.at);
            active_at.insert(session.clone(), at);
        }
        if let Some(Some(at)) = active_at.get(&session) {
            to_success.add(at.since(record.ticket.created_at).as_secs_f64());
        }
    }
    // Time to cancel: from a ticket's creation to its cancellation, by the player or for an
    // acceptance rejected or left unanswered. Tickets cancelled before the time was kept are left out.
    let mut to_cancel = Histogram::seconds("TimeToTicketCancel", "time to ticket cancel");
    for record in tickets.get(&TicketStatus::Cancelled).into_iter().flatten() {
        if let Some(at) = record.finished_at {
            to_cancel.add(at.since(record.ticket.created_at).as_secs_f64());
        }
    }
    let [to_match, spread, imbalance, latency] = quality_histograms(&matches);
    let started: usize = tickets.values().map(Vec::len).sum();
    Ok(json!({
        "at": now,
        "since": params.since,
        "until": params.until,
        "metrics": {
            "CurrentTickets": current,
            "TicketsStarted": started,
            "TicketsTimedOut": count(TicketStatus::TimedOut),
            "TicketsFailed": count(TicketStatus::Failed),
            "TicketsCancelled": count(TicketStatus::Cancelled),
            "TicketsCompleted": count(TicketStatus::Completed),
            "MatchesCreated": matches.len(),
            "MatchesAccepted": accepted,
            "MatchesRejected": rejected,
            "MatchesPlaced": placed,
            "TimeToMatch": to_match.to_json(),
            "TimeToTicketSuccess": to_success.to_json(),
            "TimeToTicketCancel": to_cancel.to_json(),
        },
        "quality": [spread.to_json(), imbalance.to_json(), latency.to_json()],
        "capped": capped,
    }))
}

/// Whether any ticket of `status` is in `match_id`.
fn tickets_in(tickets: &HashMap<TicketStatus, Vec<TicketRecord>>, status: TicketStatus, match_id: &MatchId) -> bool {
    tickets
        .get(&status)
        .into_iter()
        .flatten()
        .any(|t| t.match_id.as_ref() == Some(match_id))
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

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let sk = "00000001767225600000#t-1";
        assert_eq!(
            decode_cursor(&encode_cursor("TICKETS#", sk), "TICKETS#")
                .ok()
                .as_deref(),
            Some(sk)
        );
        for bad in ["", "!!", "djE6", "bm9wZQ", &encode_cursor("TICKETS#", "12#x")] {
            let refused = decode_cursor(bad, "TICKETS#").err().map(|p| p.status);
            assert_eq!(refused, Some(400), "{bad:?}");
        }
        // A cursor of one listing is refused by another, saying whose it is.
        let other = decode_cursor(&encode_cursor("TICKETS#", sk), "SESSIONS#").err();
        let detail = other.and_then(|p| p.detail).unwrap_or_default();
        assert!(detail.contains("is not a cursor of the sessions listing"), "{detail}");
    }

    #[test]
    fn times_are_epoch_millis_or_rfc3339() {
        assert_eq!(timestamp("since", "1000").ok(), Some(Timestamp(1000)));
        assert_eq!(timestamp("since", "1970-01-01T00:00:01Z").ok(), Some(Timestamp(1000)));
        for bad in ["", "yesterday", "-5", "1969-12-31T23:59:59Z", "99999999999999999999999"] {
            assert_eq!(timestamp("since", bad).err().map(|p| p.status), Some(400), "{bad:?}");
        }
    }

    fn claims(claims: Value) -> ApiGatewayProxyRequest {
        let mut request = ApiGatewayProxyRequest::default();
        request
            .request_context
            .authorizer
            .fields
            .insert("claims".into(), claims);
        request
    }

    #[test]
    fn operators_are_a_dev_token_role_or_the_cognito_group() {
        assert!(is_operator(&claims(json!({"sub": "ops", "role": "operator"}))));
        assert!(is_operator(&claims(
            json!({"sub": "ops", "cognito:groups": "operators"})
        )));
        assert!(is_operator(&claims(
            json!({"sub": "ops", "cognito:groups": "[admins operators]"})
        )));
        assert!(is_operator(&claims(
            json!({"sub": "ops", "cognito:groups": "admins,operators"})
        )));
        assert!(!is_operator(&claims(json!({"sub": "p", "role": "player"}))));
        assert!(!is_operator(&claims(
            json!({"sub": "p", "cognito:groups": "operators-to-be"})
        )));
        assert!(!is_operator(&ApiGatewayProxyRequest::default()));
    }

    #[test]
    fn the_workflow_is_read_from_the_execution_arn() {
        let arn = "arn:aws:states:eu-west-1:123456789012:express:session-placement:s-m-1:abc";
        assert_eq!(workflow_of(arn), None);
        let arn = "arn:aws:states:local:000000000000:execution:session-placement:s-m-1";
        assert_eq!(workflow_of(arn), Some("session-placement"));
    }
}
