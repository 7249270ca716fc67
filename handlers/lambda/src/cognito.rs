//! Cognito's tokens for the functions: the verifier is `queuematch_handlers::cognito`'s (the
//! `ws-authorizer` fixtures' replay checks the same tokens with it); this fetches the user pool's
//! keys at cold start.

use jsonwebtoken::jwk::JwkSet;
pub use queuematch_handlers::cognito::{CognitoTokens, JwksError};

use crate::config::CognitoConfig;

/// The tokens of `config`'s pool and app client, under the keys of `jwks`.
pub fn from_jwks(config: &CognitoConfig, jwks: &JwkSet) -> Result<CognitoTokens, JwksError> {
    CognitoTokens::from_jwks(&config.issuer, &config.client_id, jwks)
}

/// Fetches the pool's JWKS from `config.jwks_url`.
pub async fn fetch(config: &CognitoConfig) -> Result<CognitoTokens, JwksError> {
    let url = config.jwks_url.clone();
    let fetch = |e: reqwest::Error| JwksError::Fetch {
        url: url.clone(),
        message: e.to_string(),
    };
    let body = reqwest::get(&url)
        .await
        .map_err(fetch)?
        .error_for_status()
        .map_err(fetch)?
        .bytes()
        .await
        .map_err(fetch)?;
    let jwks: JwkSet = serde_json::from_slice(&body).map_err(|e| JwksError::Parse {
        url: url.clone(),
        message: e.to_string(),
    })?;
    from_jwks(config, &jwks)
}
