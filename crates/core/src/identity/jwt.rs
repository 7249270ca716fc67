//! Caller identity from JWTs, and the HS256 dev tokens that stand in for Cognito locally.
//!
//! The caller is the token's subject: players never name themselves. A party ticket lists every
//! member, and each member other than the caller proves consent with a party token: a short JWT of
//! that member whose audience is `party`, which an API token can never be mistaken for.

use crate::ids::PlayerId;
use crate::time::Timestamp;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// The issuer of dev tokens.
pub const DEV_ISSUER: &str = "queuematch-dev";

/// How long a party token lives: long enough to gather a party, short enough not to be reused.
pub const PARTY_TOKEN_TTL: Duration = Duration::from_secs(300);

/// What a token is for. A token is accepted only where its audience is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Calls to the API, as a player or an operator.
    Api,
    /// A party member's consent to be queued by someone else.
    Party,
}

impl Audience {
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Api => "queuematch",
            Audience::Party => "party",
        }
    }
}

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Player,
    /// Watches and repairs the system: the `/v1/ops/` routes.
    Operator,
}

/// The claims queuematch reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The caller: a player id, or an operator's name.
    pub sub: String,
    pub aud: String,
    pub iss: String,
    /// Issued at and expiry, in seconds since the Unix epoch.
    pub iat: u64,
    pub exp: u64,
    #[serde(default)]
    pub role: Role,
}

impl Claims {
    pub fn player_id(&self) -> PlayerId {
        PlayerId::new(self.sub.clone())
    }
}

/// Why a token was refused; each is a 401 at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token expired at {exp} (now {now})")]
    Expired { exp: u64, now: u64 },
    #[error("the token's audience is not `{expected}`")]
    WrongAudience { expected: &'static str },
    #[error("the token has no subject")]
    NoSubject,
    #[error("the token could not be signed: {0}")]
    Signing(String),
}

/// Mints and checks HS256 dev tokens with one shared secret.
#[derive(Clone)]
pub struct DevTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl fmt::Debug for DevTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DevTokens(<secret redacted>)")
    }
}

impl DevTokens {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// Mints a token for `subject`, valid for `ttl` from `now`.
    pub fn mint(
        &self,
        subject: &str,
        audience: Audience,
        role: Role,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<String, AuthError> {
        let iat = now.as_millis() / 1000;
        // A token that expires as it is minted, or whose expiry overflows into the past, is refused
        // rather than minted.
        let exp = iat.checked_add(ttl.as_secs()).filter(|&exp| exp > iat).ok_or_else(|| {
            AuthError::Signing(format!("a lifetime of {} s is not one a token can have", ttl.as_secs()))
        })?;
        let claims = Claims {
            sub: subject.to_owned(),
            aud: audience.as_str().to_owned(),
            iss: DEV_ISSUER.to_owned(),
            iat,
            exp,
            role,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Signing(e.to_string()))
    }

    /// Checks `token` for `audience` at `now` and returns its claims.
    ///
    /// Expiry is checked against `now`, the domain clock, not the machine's: tests on virtual time
    /// see tokens expire when their clock says so.
    pub fn verify(&self, token: &str, audience: Audience, now: Timestamp) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.set_audience(&[audience.as_str()]);
        validation.set_issuer(&[DEV_ISSUER]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::InvalidAudience => AuthError::WrongAudience {
                expected: audience.as_str(),
            },
            _ => AuthError::Malformed,
        })?;
        let claims = data.claims;
        let now_s = now.as_millis() / 1000;
        if claims.exp <= now_s {
            return Err(AuthError::Expired {
                exp: claims.exp,
                now: now_s,
            });
        }
        if claims.sub.is_empty() {
            return Err(AuthError::NoSubject);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);
    const NOW: Timestamp = Timestamp(1_700_000_000_000);

    fn tokens() -> DevTokens {
        DevTokens::new(b"a dev secret of reasonable length")
    }

    #[test]
    fn a_minted_api_token_verifies_and_names_its_player() {
        let token = tokens().mint("p-1", Audience::Api, Role::Player, NOW, HOUR).unwrap();
        let claims = tokens().verify(&token, Audience::Api, NOW).unwrap();
        assert_eq!(claims.player_id(), PlayerId::from("p-1"));
        assert_eq!(claims.role, Role::Player);
    }

    #[test]
    fn a_token_is_not_minted_expired() {
        for ttl in [Duration::ZERO, Duration::from_secs(u64::MAX)] {
            let refused = tokens().mint("p-1", Audience::Api, Role::Player, NOW, ttl);
            assert!(matches!(refused, Err(AuthError::Signing(_))), "{ttl:?}: {refused:?}");
        }
    }

    #[test]
    fn an_operator_token_carries_its_role() {
        let token = tokens().mint("ops", Audience::Api, Role::Operator, NOW, HOUR).unwrap();
        assert_eq!(
            tokens().verify(&token, Audience::Api, NOW).unwrap().role,
            Role::Operator
        );
    }

    #[test]
    fn a_party_token_is_not_an_api_token_nor_the_reverse() {
        let party = tokens()
            .mint("p-2", Audience::Party, Role::Player, NOW, PARTY_TOKEN_TTL)
            .unwrap();
        assert_eq!(
            tokens().verify(&party, Audience::Api, NOW),
            Err(AuthError::WrongAudience { expected: "queuematch" })
        );
        assert!(tokens().verify(&party, Audience::Party, NOW).is_ok());
        let api = tokens().mint("p-2", Audience::Api, Role::Player, NOW, HOUR).unwrap();
        assert_eq!(
            tokens().verify(&api, Audience::Party, NOW),
            Err(AuthError::WrongAudience { expected: "party" })
        );
    }

    #[test]
    fn a_token_expires_on_the_domain_clock() {
        let token = tokens().mint("p-1", Audience::Api, Role::Player, NOW, HOUR).unwrap();
        let later = NOW.plus(HOUR);
        assert!(matches!(
            tokens().verify(&token, Audience::Api, later),
            Err(AuthError::Expired { .. })
        ));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let token = DevTokens::new(b"another secret")
            .mint("p-1", Audience::Api, Role::Player, NOW, HOUR)
            .unwrap();
        assert_eq!(
            tokens().verify(&token, Audience::Api, NOW),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        for garbage in ["", "abc", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.x"] {
            assert!(tokens().verify(garbage, Audience::Api, NOW).is_err(), "{garbage}");
        }
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        assert_eq!(format!("{:?}", tokens()), "DevTokens(<secret redacted>)");
    }
}
