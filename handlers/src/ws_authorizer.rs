//! The `ws-authorizer` function: the WebSocket API's `$connect` authorizer. It checks the same JWT
//! the REST API's Cognito authorizer checks, passed as `?token=` since browsers cannot set headers on
//! a WebSocket, and names the player as the `principalId` the connection routes read.

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use queuematch_core::identity::jwt::{Audience, DevTokens};
use queuematch_core::ids::PlayerId;
use queuematch_core::time::Timestamp;

/// Verifies a player's API token: Cognito's keys on AWS, the dev secret locally.
pub trait PlayerTokens: Send + Sync {
    /// The player `token` names, or why it is refused.
    fn verify_player(&self, token: &str, now: Timestamp) -> Result<PlayerId, String>;
}

impl PlayerTokens for DevTokens {
    fn verify_player(&self, token: &str, now: Timestamp) -> Result<PlayerId, String> {
        self.verify(token, Audience::Api, now)
            .map(|claims| claims.player_id())
            .map_err(|e| e.to_string())
    }
}

/// Why a connection is refused. Its message is exactly `Unauthorized`, which API Gateway turns into
/// a 401 (any other error would be a 500); the reason goes to the log, not to the client.
#[derive(Debug, thiserror::Error)]
#[error("Unauthorized")]
pub struct Unauthorized {
    pub reason: String,
}

/// Allows the connection for the token's player, or refuses it.
pub fn handle<T: PlayerTokens>(
    tokens: &T,
    now: Timestamp,
    request: &ApiGatewayCustomAuthorizerRequestTypeRequest,
) -> Result<ApiGatewayCustomAuthorizerResponse, Unauthorized> {
    let token = request
        .query_string_parameters
        .first("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Unauthorized {
            reason: "no ?token= on the connection".into(),
        })?;
    let player = tokens
        .verify_player(token, now)
        .map_err(|reason| Unauthorized { reason })?;
    let method_arn = request.method_arn.clone().ok_or_else(|| Unauthorized {
        reason: "the event names no methodArn to allow".into(),
    })?;
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".into()];
    statement.effect = IamPolicyEffect::Allow;
    statement.resource = vec![method_arn];
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".into());
    policy.statement = vec![statement];
    let mut response = ApiGatewayCustomAuthorizerResponse::default();
    response.principal_id = Some(player.as_str().to_owned());
    response.policy_document = policy;
    response.context = serde_json::json!({"playerId": player.as_str()});
    Ok(response)
}
