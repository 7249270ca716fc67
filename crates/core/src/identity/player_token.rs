//! Player tokens: a player's ticket into one session's server.
//!
//! A token is `base64url(payload) "." base64url(HMAC-SHA256(secret, payload))`, where the payload
//! is `{"sessionId","playerId","exp"}` as JSON. The server holds the session's secret, so it checks
//! a token offline, without calling the service while players connect.

use super::SessionSecret;
use crate::ids::{PlayerId, SessionId};
use crate::time::Timestamp;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a player token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlayerTokenClaims {
    pub session_id: SessionId,
    pub player_id: PlayerId,
    /// Expiry, in seconds since the Unix epoch, as in JWTs.
    pub exp: u64,
}

/// Why a player token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlayerTokenError {
    #[error("the player token is malformed: {0}")]
    Malformed(&'static str),
    #[error("the player token's signature does not match this session")]
    BadSignature,
    #[error("the player token expired at {exp} (now {now})")]
    Expired { exp: u64, now: u64 },
    #[error("the player token is for session {actual}, not {expected}")]
    WrongSession { expected: SessionId, actual: SessionId },
}

fn mac(secret: &SessionSecret) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    match HmacSha256::new_from_slice(secret.key()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

/// Mints the token `claims.player_id` presents to the server of `claims.session_id`.
pub fn mint(secret: &SessionSecret, claims: &PlayerTokenClaims) -> String {
    // Serializing a struct of strings and a number cannot fail.
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let mut mac = mac(secret);
    mac.update(&payload);
    let signature = mac.finalize().into_bytes();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&payload),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// Checks a token presented to the server of `session`, at `now`.
pub fn verify(
    secret: &SessionSecret,
    session: &SessionId,
    token: &str,
    now: Timestamp,
) -> Result<PlayerTokenClaims, PlayerTokenError> {
    let (payload, signature) = token
        .split_once('.')
        .ok_or(PlayerTokenError::Malformed("no `.` separator"))?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| PlayerTokenError::Malformed("payload is not base64url"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| PlayerTokenError::Malformed("signature is not base64url"))?;
    let mut mac = mac(secret);
    mac.update(&payload);
    // Constant-time comparison: a timing side channel must not reveal the signature byte by byte.
    mac.verify_slice(&signature)
        .map_err(|_| PlayerTokenError::BadSignature)?;
    let claims: PlayerTokenClaims =
        serde_json::from_slice(&payload).map_err(|_| PlayerTokenError::Malformed("payload is not the claims JSON"))?;
    let now_s = now.as_millis() / 1000;
    if claims.exp <= now_s {
        return Err(PlayerTokenError::Expired {
            exp: claims.exp,
            now: now_s,
        });
    }
    if &claims.session_id != session {
        return Err(PlayerTokenError::WrongSession {
            expected: session.clone(),
            actual: claims.session_id,
        });
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(byte: u8) -> SessionSecret {
        SessionSecret::from_random_bytes(&[byte; 32])
    }

    fn claims() -> PlayerTokenClaims {
        PlayerTokenClaims {
            session_id: "s-1".into(),
            player_id: "p-1".into(),
            exp: 2_000,
        }
    }

    #[test]
    fn a_minted_token_verifies_with_its_session_secret() {
        let token = mint(&secret(1), &claims());
        assert_eq!(
            verify(&secret(1), &"s-1".into(), &token, Timestamp(1_999_000)),
            Ok(claims())
        );
    }

    #[test]
    fn another_sessions_secret_refuses_it() {
        let token = mint(&secret(1), &claims());
        assert_eq!(
            verify(&secret(2), &"s-1".into(), &token, Timestamp(0)),
            Err(PlayerTokenError::BadSignature)
        );
    }

    #[test]
    fn a_forged_payload_is_refused() {
        let token = mint(&secret(1), &claims());
        let (_, signature) = token.split_once('.').unwrap();
        let forged = PlayerTokenClaims {
            player_id: "p-evil".into(),
            ..claims()
        };
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let forged_token = format!("{forged_payload}.{signature}");
        assert_eq!(
            verify(&secret(1), &"s-1".into(), &forged_token, Timestamp(0)),
            Err(PlayerTokenError::BadSignature)
        );
    }

    #[test]
    fn an_expired_token_is_refused() {
        let token = mint(&secret(1), &claims());
        assert_eq!(
            verify(&secret(1), &"s-1".into(), &token, Timestamp(2_000_000)),
            Err(PlayerTokenError::Expired { exp: 2_000, now: 2_000 })
        );
    }

    #[test]
    fn a_token_for_another_session_is_refused() {
        let token = mint(&secret(1), &claims());
        assert!(matches!(
            verify(&secret(1), &"s-2".into(), &token, Timestamp(0)),
            Err(PlayerTokenError::WrongSession { .. })
        ));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for garbage in ["", "abc", "a.b.c", "!!!.???", "e30.AAAA"] {
            assert!(
                verify(&secret(1), &"s-1".into(), garbage, Timestamp(0)).is_err(),
                "{garbage}"
            );
        }
    }
}
