//! The lobby: where a connection proves it is a player of the session.
//!
//! A connection's first message is `{"type":"hello","token":…}`, within [`HELLO_TIMEOUT`]. The token
//! is checked offline against the session's secret: only the service, which holds that secret, mints
//! tokens, so a valid token names a player the service put in this session, a backfilled one too.
//! Whether there is room for them is the session's call. Anything a client sends is untrusted: a
//! message is bounded in size, and garbage of any kind is refused, never a crash.

use crate::protocol::{self, ClientMessage, MAX_MESSAGE};
use queuematch_core::identity::player_token::{self, PlayerTokenError};
use queuematch_core::ids::PlayerId;
use queuematch_core::ports::fleet::SessionAssignment;
use queuematch_core::Timestamp;
use std::time::Duration;

/// How long a new connection has to present its token: a silent connection must not hold a slot.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a connection was refused; its `Display` is the `reason` the client is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("this server hosts no session now")]
    NoSession,
    #[error("{0}")]
    BadToken(#[from] PlayerTokenError),
    #[error("player {0} is not in this session, and it has no open slot")]
    NoSlot(PlayerId),
    #[error("send your player token first: {{\"type\":\"hello\",\"token\":…}}")]
    NoHello,
    #[error("{0}")]
    BadMessage(String),
    #[error("a message is at most {MAX_MESSAGE} bytes of UTF-8 text")]
    BadFrame,
    #[error("messages are JSON text, not binary: send your player token as {{\"type\":\"hello\",\"token\":…}}")]
    Binary,
    #[error("no player token within {} s", HELLO_TIMEOUT.as_secs())]
    Timeout,
}

/// Checks `token` for the session of `assignment` at `now`: who the player is, or why not.
pub fn admit(assignment: &SessionAssignment, token: &str, now: Timestamp) -> Result<PlayerId, Denial> {
    let claims = player_token::verify(&assignment.secret, &assignment.session_id, token.trim(), now)?;
    Ok(claims.player_id)
}

/// The token of a client's first text message.
pub fn hello(text: &str) -> Result<String, Denial> {
    match protocol::parse_client(text).map_err(Denial::BadMessage)? {
        ClientMessage::Hello { token } if !token.trim().is_empty() => Ok(token),
        ClientMessage::Hello { .. } | ClientMessage::Aim { .. } => Err(Denial::NoHello),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use queuematch_core::identity::player_token::PlayerTokenClaims;
    use queuematch_core::identity::SessionSecret;

    fn assignment() -> SessionAssignment {
        SessionAssignment {
            session_id: "s-1".into(),
            match_id: "m-1".into(),
            secret: SessionSecret::from_random_bytes(&[3; 32]),
            players: vec!["p-1".into()],
            teams: Vec::new(),
        }
    }

    fn token(secret: &SessionSecret, session: &str, player: &str) -> String {
        player_token::mint(
            secret,
            &PlayerTokenClaims {
                session_id: session.into(),
                player_id: player.into(),
                exp: 10_000,
            },
        )
    }

    #[test]
    fn a_token_signed_for_this_session_is_admitted_and_others_are_denied() {
        let a = assignment();
        let now = Timestamp(1_000_000);
        assert_eq!(admit(&a, &token(&a.secret, "s-1", "p-1"), now), Ok("p-1".into()));
        // A player the service added later (backfill) carries a token signed the same way.
        assert_eq!(admit(&a, &token(&a.secret, "s-1", "p-9"), now), Ok("p-9".into()));
        let forger = SessionSecret::from_random_bytes(&[4; 32]);
        assert_eq!(
            admit(&a, &token(&forger, "s-1", "p-1"), now),
            Err(Denial::BadToken(PlayerTokenError::BadSignature))
        );
        assert!(
            admit(&a, &token(&a.secret, "s-2", "p-1"), now).is_err(),
            "another session's"
        );
        assert!(
            admit(&a, &token(&a.secret, "s-1", "p-1"), Timestamp(20_000_000)).is_err(),
            "expired"
        );
        assert!(matches!(
            admit(&a, "garbage", now),
            Err(Denial::BadToken(PlayerTokenError::Malformed(_)))
        ));
    }

    #[test]
    fn a_first_message_that_is_no_hello_is_denied() {
        assert_eq!(hello(r#"{"type":"hello","token":"t"}"#), Ok("t".into()));
        assert_eq!(hello(r#"{"type":"hello","token":"  "}"#), Err(Denial::NoHello));
        assert_eq!(hello(r#"{"type":"aim","tick":0,"x":0,"y":0}"#), Err(Denial::NoHello));
        assert!(matches!(hello("eyJ.token.as.a.line"), Err(Denial::BadMessage(_))));
    }
}
