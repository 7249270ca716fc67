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

/// How long the key set may take to arrive: a cold start waits for it, and Lambda's init phase is
/// ten seconds, so a Cognito that hangs must fail the start with this error, not use it up.
pub const JWKS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Fetches the pool's JWKS from `config.jwks_url`, within [`JWKS_TIMEOUT`].
pub async fn fetch(config: &CognitoConfig) -> Result<CognitoTokens, JwksError> {
    let url = config.jwks_url.clone();
    let fetch = |e: reqwest::Error| JwksError::Fetch {
        url: url.clone(),
        message: if e.is_timeout() {
            format!("no answer within {} s", JWKS_TIMEOUT.as_secs())
        } else {
            e.to_string()
        },
    };
    let client = reqwest::Client::builder()
        .timeout(JWKS_TIMEOUT)
        .build()
        .map_err(fetch)?;
    let body = client
        .get(&url)
        .send()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_set_that_never_arrives_fails_the_start_in_time_saying_so() {
        // GIVEN a JWKS address that takes the connection and never answers
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let held = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let config = CognitoConfig {
            issuer: "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_EXAMPLE".into(),
            client_id: "client".into(),
            jwks_url: format!("http://{address}/.well-known/jwks.json"),
        };
        // WHEN the keys are fetched THEN it fails after the timeout, naming the URL and why
        let started = std::time::Instant::now();
        let failed = fetch(&config).await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(started.elapsed() < JWKS_TIMEOUT * 2, "{:?}", started.elapsed());
        assert!(
            failed.contains("no answer within 5 s") && failed.contains(&address.to_string()),
            "{failed}"
        );
        held.abort();
    }
}
