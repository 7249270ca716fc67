//! Each function's handler: a Lambda event in, the handler of `queuematch-handlers` called, its
//! result in Lambda's shape out. The binaries run these; the tests replay fixtures through them.

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerResponse, ApiGatewayProxyResponse,
};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{Diagnostic, LambdaEvent};
use queuematch_core::event::DomainEvent;
use queuematch_core::ports::{Clock, PortError, Store};
use queuematch_handlers::push::{self, Connections, RouteEvent};
use queuematch_handlers::ws_authorizer::{self, PlayerTokens};
use serde_json::{json, Value};

/// A port error at the Lambda boundary: its stable `errorType` (DESIGN.md "Errors and limits").
pub fn diagnostic(error: &PortError) -> Diagnostic {
    Diagnostic {
        error_type: error.error_type().as_str().into(),
        error_message: error.to_string(),
    }
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
    let detail_type = event.payload.detail_type;
    let domain_event: DomainEvent = serde_json::from_value(event.payload.detail).map_err(|e| Diagnostic {
        error_type: "Invalid".into(),
        error_message: format!("the detail of a {detail_type:?} event is not a domain event: {e}"),
    })?;
    let notified = push::notify(store, connections, &domain_event).await.map_err(|e| {
        tracing::warn!(error = %e, event = detail_type, "push failed; EventBridge retries");
        diagnostic(&e)
    })?;
    tracing::info!(
        event = detail_type,
        sent = notified.sent,
        gone = notified.gone,
        "pushed"
    );
    Ok(json!({"sent": notified.sent, "gone": notified.gone}))
}
