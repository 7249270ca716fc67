//! Signatures on game-server reports (ready, heartbeat, result, end).
//!
//! A report carries `timestamp` (epoch ms), a `nonce` and `signature =
//! base64url(HMAC-SHA256(session secret, "<timestamp>\n<nonce>\n<body>"))`. The signature binds the
//! body to this session; the timestamp bounds a replay to a 60-second window; within it, the nonce
//! is refused a second time (the store remembers nonces for that window).

use super::SessionSecret;
use crate::time::Timestamp;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

/// How far a report's timestamp may be from the service's clock, either way.
pub const REPORT_WINDOW: Duration = Duration::from_secs(60);

/// Nonces are 8 to 64 characters: long enough not to repeat by chance, short enough to store.
const NONCE_LEN: std::ops::RangeInclusive<usize> = 8..=64;

/// Why a report's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportAuthError {
    #[error("the report's signature is not base64url")]
    Malformed,
    #[error("the report's signature does not match its body, timestamp and nonce")]
    BadSignature,
    #[error("the report's timestamp {timestamp} is more than 60 s from the service's clock ({now})")]
    OutsideWindow { timestamp: u64, now: u64 },
    #[error("the report's nonce must be 8 to 64 letters, digits, `-` or `_`")]
    BadNonce,
}

fn signed_text(timestamp: Timestamp, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut text = format!("{}\n{nonce}\n", timestamp.as_millis()).into_bytes();
    text.extend_from_slice(body);
    text
}

fn mac(secret: &SessionSecret, timestamp: Timestamp, nonce: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.key()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    mac.update(&signed_text(timestamp, nonce, body));
    mac
}

/// Signs a report as a game server does.
pub fn sign(secret: &SessionSecret, timestamp: Timestamp, nonce: &str, body: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(mac(secret, timestamp, nonce, body).finalize().into_bytes())
}

/// Checks a report's signature and window at `now`. The caller must still refuse a nonce it has
/// seen within the window: that needs the store, which this pure check does not have.
pub fn verify(
    secret: &SessionSecret,
    timestamp: Timestamp,
    nonce: &str,
    body: &[u8],
    signature: &str,
    now: Timestamp,
) -> Result<(), ReportAuthError> {
    if !NONCE_LEN.contains(&nonce.len()) || !nonce.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(ReportAuthError::BadNonce);
    }
    let skew = now.since(timestamp).max(timestamp.since(now));
    if skew > REPORT_WINDOW {
        return Err(ReportAuthError::OutsideWindow {
            timestamp: timestamp.as_millis(),
            now: now.as_millis(),
        });
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| ReportAuthError::Malformed)?;
    mac(secret, timestamp, nonce, body)
        .verify_slice(&signature)
        .map_err(|_| ReportAuthError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"type":"heartbeat"}"#;

    fn secret() -> SessionSecret {
        SessionSecret::from_random_bytes(&[9; 32])
    }

    #[test]
    fn a_signed_report_verifies_within_the_window() {
        let signature = sign(&secret(), Timestamp(100_000), "nonce-0001", BODY);
        for now in [40_000, 100_000, 160_000] {
            assert_eq!(
                verify(
                    &secret(),
                    Timestamp(100_000),
                    "nonce-0001",
                    BODY,
                    &signature,
                    Timestamp(now)
                ),
                Ok(())
            );
        }
    }

    #[test]
    fn a_report_outside_the_window_is_refused_either_way() {
        let signature = sign(&secret(), Timestamp(100_000), "nonce-0001", BODY);
        for now in [39_999, 160_001] {
            assert!(matches!(
                verify(
                    &secret(),
                    Timestamp(100_000),
                    "nonce-0001",
                    BODY,
                    &signature,
                    Timestamp(now)
                ),
                Err(ReportAuthError::OutsideWindow { .. })
            ));
        }
    }

    #[test]
    fn changing_body_timestamp_or_nonce_breaks_the_signature() {
        let signature = sign(&secret(), Timestamp(100_000), "nonce-0001", BODY);
        let now = Timestamp(100_000);
        let bad = Err(ReportAuthError::BadSignature);
        assert_eq!(
            verify(
                &secret(),
                Timestamp(100_000),
                "nonce-0001",
                br#"{"type":"end"}"#,
                &signature,
                now
            ),
            bad
        );
        assert_eq!(
            verify(&secret(), Timestamp(100_001), "nonce-0001", BODY, &signature, now),
            bad
        );
        assert_eq!(
            verify(&secret(), Timestamp(100_000), "nonce-0002", BODY, &signature, now),
            bad
        );
        let other = SessionSecret::from_random_bytes(&[1; 32]);
        assert_eq!(
            verify(&other, Timestamp(100_000), "nonce-0001", BODY, &signature, now),
            bad
        );
    }

    #[test]
    fn bad_nonces_and_signatures_are_refused() {
        let now = Timestamp(100_000);
        assert_eq!(
            verify(&secret(), now, "short", BODY, "x", now),
            Err(ReportAuthError::BadNonce)
        );
        assert_eq!(
            verify(&secret(), now, "has spaces in it", BODY, "x", now),
            Err(ReportAuthError::BadNonce)
        );
        assert_eq!(
            verify(&secret(), now, "nonce-0001", BODY, "%%%", now),
            Err(ReportAuthError::Malformed)
        );
    }
}
