//! Cognito's tokens, checked the way API Gateway's Cognito authorizer checks them: RS256 under one
//! of the user pool's published keys, issued by the pool, for the game client, unexpired.
//!
//! The keys come from the pool's JWKS: fetched once per cold start by the Lambda functions
//! (`queuematch_lambda::cognito::fetch`), read from a file by the `ws-authorizer` fixtures' replay.
//! Cognito rotates them rarely and announces new keys in the JWKS before it signs with them, so a
//! cold start's copy is current.
//!
//! On AWS a member's **party token** is that member's own Cognito token for the game client: Cognito
//! cannot mint tokens for another audience, and handing one's token to the party's leader is the
//! consent. Admission checks it names the member.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use queuematch_core::ids::PlayerId;
use queuematch_core::time::Timestamp;
use queuematch_core::usecases::PartyTokens;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;

use crate::ws_authorizer::PlayerTokens;

/// Why the pool's keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("cannot fetch the user pool's keys from {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("the user pool's keys at {url} are not a JWKS: {message}")]
    Parse { url: String, message: String },
    #[error("the user pool's JWKS has no usable RS256 key")]
    NoKeys,
}

/// The claims of a Cognito ID or access token that matter here.
#[derive(Debug, Clone, Deserialize)]
struct CognitoClaims {
    sub: String,
    exp: u64,
    token_use: String,
    /// ID tokens: the app client.
    #[serde(default)]
    aud: Option<String>,
    /// Access tokens: the app client.
    #[serde(default)]
    client_id: Option<String>,
}

/// Verifies tokens of one user pool and app client.
#[derive(Clone)]
pub struct CognitoTokens {
    issuer: String,
    client_id: String,
    keys: HashMap<String, DecodingKey>,
}

impl fmt::Debug for CognitoTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CognitoTokens")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl CognitoTokens {
    /// The tokens of the pool `issuer` (its `iss`) for the app client `client_id`, under the keys of
    /// `jwks`; keys that are not RS256 signing keys with a `kid` are left out.
    pub fn from_jwks(issuer: &str, client_id: &str, jwks: &JwkSet) -> Result<Self, JwksError> {
        let keys: HashMap<String, DecodingKey> = jwks
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some((kid, key))
            })
            .collect();
        if keys.is_empty() {
            return Err(JwksError::NoKeys);
        }
        Ok(Self {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            keys,
        })
    }

    /// The player a token names, or why it is refused. Expiry is judged at `now`, the domain clock.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<PlayerId, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "the token is not a well-formed JWT".to_owned())?;
        if header.alg != Algorithm::RS256 {
            return Err(format!("the token is signed with {:?}, not RS256", header.alg));
        }
        let kid = header.kid.ok_or("the token names no signing key (kid)")?;
        let key = self
            .keys
            .get(&kid)
            .ok_or_else(|| format!("the token's key {kid:?} is not one of the user pool's"))?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let claims = jsonwebtoken::decode::<CognitoClaims>(token, key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => "the token's signature is not valid".to_owned(),
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => "the token is not from this user pool".to_owned(),
                _ => format!("the token is not a Cognito token: {e}"),
            })?
            .claims;
        let now_s = now.as_millis() / 1000;
        if claims.exp <= now_s {
            return Err(format!("the token expired at {} (now {now_s})", claims.exp));
        }
        let client = match claims.token_use.as_str() {
            "id" => claims.aud.as_deref(),
            "access" => claims.client_id.as_deref(),
            other => return Err(format!("a {other:?} token is neither an ID nor an access token")),
        };
        if client != Some(self.client_id.as_str()) {
            return Err("the token is for another app client".to_owned());
        }
        if claims.sub.is_empty() {
            return Err("the token has no subject".to_owned());
        }
        Ok(PlayerId::new(claims.sub))
    }
}

impl PlayerTokens for CognitoTokens {
    fn verify_player(&self, token: &str, now: Timestamp) -> Result<PlayerId, String> {
        self.verify(token, now)
    }
}

impl PartyTokens for CognitoTokens {
    fn verify(&self, token: &str, member: &PlayerId, now: Timestamp) -> Result<(), String> {
        let player = CognitoTokens::verify(self, token, now)?;
        if &player == member {
            Ok(())
        } else {
            Err(format!("the party token is {player}'s, not {member}'s"))
        }
    }
}
