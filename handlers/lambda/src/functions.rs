//! Each function's handler: a Lambda event in, the handler of `queuematch-handlers` called, its
//! result in Lambda's shape out. The binaries run these; the tests replay fixtures through them.

use crate::metrics;
use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerResponse, ApiGatewayProxyRequest,
    ApiGatewayProxyResponse,
};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Diagnostic, LambdaEvent};
use queuematch_core::ids::{SessionId, TicketId};
use queuematch_core::ports::store::items::{self, MatchRecord, SessionRecord, TicketRecord};
use queuematch_core::ports::store::Key;
use queuematch_core::ports::{Clock, Events, Fleet, PortError, Store, TicketQueue, Workflows};
use queuematch_core::usecases::PartyTokens;
use queuematch_core::{SessionStatus, TicketStatus};
use queuematch_handlers::push::{self, Connections, RouteEvent};
use queuematch_handlers::workflow_tasks::{self, TaskFailure};
use queuematch_handlers::ws_authorizer::{self, PlayerTokens};
use queuematch_handlers::{matcher, ops_api, players_api, session_reports, sweeper, tickets_api, Service};
use serde_json::Value;

/// A port error at the Lambda boundary: its stable `errorType` (DESIGN.md "Errors and limits").
pub fn diagnostic(error: &PortError) -> Diagnostic {
    Diagnostic {
        error_type: error.error_type().as_str().into(),
        error_message: error.to_string(),
    }
}

/// A task's failure at the Lambda boundary: the workflows' Retry and Catch match its `errorType`.
pub fn task_diagnostic(failure: TaskFailure) -> Diagnostic {
    Diagnostic {
        error_type: failure.error_type.as_str().into(),
        error_message: failure.error_message,
    }
}

/// `matcher`: one batch of the tickets queue. Messages to try again are in `batchItemFailures`;
/// the invocation itself never fails, which would redeliver the whole batch. The Lambda request id
/// names this invocation on the pool leases.
pub async fn matcher<S, Q, W, E, C, P>(
    service: &Service<S, Q, W, E, C, P>,
    event: LambdaEvent<SqsEvent>,
    metrics: &metrics::Sink,
) -> Result<SqsBatchResponse, Diagnostic>
where
    S: Store,
    Q: TicketQueue,
    W: Workflows,
    E: Events,
    C: Clock,
    P: PartyTokens,
{
    let received = event.payload.records.len();
    let outcome = matcher::handle(service, event.payload, &event.context.request_id).await;
    tracing::info!(
        received,
        admitted = outcome.admitted,
        duplicates = outcome.duplicates,
        failed_tickets = outcome.failed_tickets,
        cancelled_tickets = outcome.cancelled_tickets,
        unreadable = outcome.unreadable,
        rounds = outcome.rounds.len(),
        retried = outcome.response.batch_item_failures.len(),
        "batch"
    );
    for (message, why) in &outcome.retried {
        tracing::warn!(message = %message, why = %why, "a message goes back to the queue");
    }
    if outcome.without_id > 0 {
        tracing::warn!(records = outcome.without_id, "records without a messageId were skipped");
    }
    let now = service.clock.now();
    for record in metrics::batch_records(&outcome, now) {
        metrics.emit(&record);
    }
    Ok(outcome.response)
}

/// `tickets-api`: GET and DELETE /v1/tickets/{ticketId}, POST its acceptance, and GET
/// /v1/players/{playerId}/ratings. Every outcome is an HTTP response.
pub async fn tickets_api<S, Q, W, E, C, P>(
    service: &Service<S, Q, W, E, C, P>,
    event: LambdaEvent<ApiGatewayProxyRequest>,
    metrics: &metrics::Sink,
) -> Result<ApiGatewayProxyResponse, Diagnostic>
where
    S: Store,
    E: Events,
    C: Clock,
{
    let request = event.payload;
    if request.resource.as_deref() == Some(players_api::RATINGS_RESOURCE) {
        return Ok(players_api::handle(service, request).await);
    }
    // A cancel's time to cancel, counted when this call is the one that cancelled: the ticket was
    // not finished before it, and the answer says CANCELLED (a repeated DELETE answers the same).
    let cancelling = match request.path_parameters.get("ticketId") {
        Some(id) if request.http_method == aws_lambda_events::http::Method::DELETE => {
            read::<TicketRecord, _>(&service.store, &items::ticket_key(&TicketId::from(id.as_str())))
                .await
                .filter(|record| !record.ticket.status.is_terminal())
        }
        _ => None,
    };
    let response = tickets_api::handle(service, request).await;
    if let Some(before) = cancelling {
        let cancelled = response.status_code == 200
            && response_json(&response).is_some_and(|body| body["status"] == TicketStatus::Cancelled.as_str());
        if cancelled {
            metrics.emit(&metrics::cancel_record(&before.ticket, service.clock.now()));
        }
    }
    Ok(response)
}

/// The item at `key`, when it can be read; a metric is not worth failing a request for.
async fn read<T: serde::de::DeserializeOwned, S: Store>(store: &S, key: &Key) -> Option<T> {
    let stored = store.get(key).await.ok()??;
    items::read::<T>(&stored).ok().map(|versioned| versioned.value)
}

fn response_json(response: &ApiGatewayProxyResponse) -> Option<Value> {
    match response.body.as_ref()? {
        Body::Text(text) => serde_json::from_str(text).ok(),
        Body::Binary(bytes) => serde_json::from_slice(bytes).ok(),
        Body::Empty => None,
        _ => None,
    }
}

/// `ops-api`: the operators' routes under /v1/ops/. Express keeps no execution history, so a
/// session's timeline stands for it. Every outcome is an HTTP response.
pub async fn ops_api<S, Q, W, E, C, P>(
    service: &Service<S, Q, W, E, C, P>,
    event: LambdaEvent<ApiGatewayProxyRequest>,
) -> Result<ApiGatewayProxyResponse, Diagnostic>
where
    S: Store,
    Q: TicketQueue,
    C: Clock,
{
    Ok(ops_api::handle(service, &ops_api::TimelineOnly, event.payload).await)
}

/// `session-reports`: POST /v1/sessions/{sessionId}/events. Every outcome is an HTTP response.
pub async fn session_reports<S, Q, W, E, C, P, F>(
    service: &Service<S, Q, W, E, C, P>,
    fleet: &F,
    event: LambdaEvent<ApiGatewayProxyRequest>,
) -> Result<ApiGatewayProxyResponse, Diagnostic>
where
    S: Store,
    Q: TicketQueue,
    W: Workflows,
    E: Events,
    C: Clock,
    F: Fleet,
{
    Ok(session_reports::handle(service, fleet, event.payload).await)
}

/// `workflow-tasks`: one Task state of a session workflow. A failure is the function's error with
/// its `errorType`, which Step Functions hands to the state's Retry and Catch.
pub async fn workflow_tasks<S, Q, W, E, C, P, F>(
    service: &Service<S, Q, W, E, C, P>,
    fleet: &F,
    event: LambdaEvent<Value>,
    metrics: &metrics::Sink,
) -> Result<Value, Diagnostic>
where
    S: Store,
    Q: TicketQueue,
    E: Events,
    C: Clock,
    F: Fleet,
{
    let task = event
        .payload
        .get("task")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    // A session's activation places its match: counted when this call is the one that made the
    // session ACTIVE (Express may run a task twice).
    let activating = match (task.as_str(), event.payload.get("sessionId").and_then(Value::as_str)) {
        ("activate", Some(id)) => read::<SessionRecord, _>(&service.store, &items::session_key(&SessionId::from(id)))
            .await
            .filter(|session| session.status != SessionStatus::Active),
        _ => None,
    };
    let output = workflow_tasks::handle(service, fleet, event.payload).await.map_err(|failure| {
        tracing::warn!(task, error_type = failure.error_type.as_str(), error = %failure.error_message, "task failed");
        task_diagnostic(failure)
    })?;
    if let Some(session) = activating.filter(|_| output["status"] == SessionStatus::Active.as_str()) {
        if let Some(record) = read::<MatchRecord, _>(&service.store, &items::match_key(&session.match_id)).await {
            metrics.emit(&metrics::placed_record(&record.matched, service.clock.now()));
        }
    }
    Ok(output)
}

/// `sweeper`: one sweep per scheduled event. A failure is the function's error, which the schedule
/// retries; what one sweep leaves undone, the next one does.
pub async fn sweeper<S, Q, W, E, C, P, F>(
    service: &Service<S, Q, W, E, C, P>,
    fleet: &F,
    event: LambdaEvent<EventBridgeEvent<Value>>,
) -> Result<Value, Diagnostic>
where
    S: Store,
    Q: TicketQueue,
    W: Workflows,
    E: Events,
    C: Clock,
    F: Fleet,
{
    let run = event.payload.id.clone();
    sweeper::handle(service, fleet, event.payload).await.map_err(|failure| {
        tracing::warn!(run, error_type = failure.error_type.as_str(), error = %failure.error_message, "sweep failed");
        task_diagnostic(failure)
    })
}

/// `ws-authorizer`: allows the `$connect` of a verified player. A refusal is the error
/// `Unauthorized`, which API Gateway answers with 401; its reason is logged, never told.
pub async fn ws_authorizer<T: PlayerTokens, C: Clock>(
    tokens: &T,
    clock: &C,
    event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>,
) -> Result<ApiGatewayCustomAuthorizerResponse, Diagnostic> {
    ws_authorizer::handle(tokens, clock.now(), &event.payload).map_err(|refused| {
        tracing::info!(reason = %refused.reason, request_id = %event.context.request_id, "connection refused");
        Diagnostic {
            error_type: "Unauthorized".into(),
            error_message: refused.to_string(),
        }
    })
}

/// `ws-connections`: the WebSocket API's `$connect`, `$disconnect` and `subscribe` routes.
pub async fn ws_connections<S: Store, C: Clock>(
    store: &S,
    clock: &C,
    event: LambdaEvent<RouteEvent>,
) -> Result<ApiGatewayProxyResponse, Diagnostic> {
    Ok(push::handle_route(store, clock, event.payload).await)
}

/// `notifier`: one domain event from EventBridge, pushed to every connection of its players. A
/// failure is returned as the function's error, for EventBridge to retry and then dead-letter.
pub async fn notifier<S: Store, N: Connections>(
    store: &S,
    connections: &N,
    event: LambdaEvent<EventBridgeEvent<Value>>,
) -> Result<Value, Diagnostic> {
    let detail_type = event.payload.detail_type.clone();
    let notified = push::handle_event(store, connections, event.payload)
        .await
        .map_err(|failure| {
            tracing::warn!(error = %failure, event = detail_type, "push failed");
            task_diagnostic(failure)
        })?;
    tracing::info!(event = detail_type, sent = %notified["sent"], gone = %notified["gone"], "pushed");
    Ok(notified)
}
