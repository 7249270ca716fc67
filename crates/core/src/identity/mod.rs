//! Who is calling, and what they may do.
//!
//! - [`jwt`]: the caller's identity. On AWS, Cognito issues the JWTs and API Gateway checks them;
//!   locally, HS256 dev tokens signed with the dev secret stand in for them. Party tokens are short
//!   JWTs of a party member with audience `party`, so nobody can queue someone else.
//! - [`player_token`]: what a player presents to the game server, checked offline with the
//!   session's secret.
//! - [`report`]: signatures on game-server reports, over body, timestamp and nonce.

pub mod jwt;
pub mod player_token;
pub mod report;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A session's random secret: created at placement, kept in the store, never in workflow state
/// or logs (its `Debug` is redacted for that reason).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionSecret(String);

/// The fewest random bytes a session secret may have: HMAC-SHA256 gains nothing past 32.
pub const SESSION_SECRET_BYTES: usize = 32;

impl SessionSecret {
    /// Wraps random bytes (from the caller's RNG: the core has no entropy source of its own).
    pub fn from_random_bytes(bytes: &[u8; SESSION_SECRET_BYTES]) -> Self {
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The secret as stored and as handed to the game server.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn from_stored(stored: impl Into<String>) -> Self {
        Self(stored.into())
    }

    fn key(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_secret_never_shows_in_debug_output() {
        let secret = SessionSecret::from_random_bytes(&[7; SESSION_SECRET_BYTES]);
        assert_eq!(format!("{secret:?}"), "SessionSecret(<redacted>)");
        assert_eq!(secret.expose().len(), 43, "32 bytes in unpadded base64url");
    }
}
