//! The lobby: where a connection proves it is a player of the session.
//!
//! A connection sends one line, its player token, within [`HELLO_TIMEOUT`]. The token is checked
//! offline against the session's secret; the answer is `OK <playerId>` or `DENIED <reason>` (and the
//! connection is closed). Anything a client sends is untrusted: a line is read with a length bound,
//! and garbage of any kind is refused, never a crash.

use queuematch_core::identity::player_token::{self, PlayerTokenError};
use queuematch_core::ids::PlayerId;
use queuematch_core::ports::fleet::SessionAssignment;
use queuematch_core::Timestamp;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// The longest line a client may send. Player tokens are a few hundred bytes; moves a few.
pub const MAX_LINE: usize = 4096;

/// How long a new connection has to present its token: a silent connection must not hold a slot.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// One line from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Text(String),
    /// The client closed its side.
    Closed,
    /// Longer than [`MAX_LINE`]; the rest of it was not read.
    TooLong,
    NotUtf8,
}

/// Reads one line of at most [`MAX_LINE`] bytes, without its `\n` or `\r\n`.
pub async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> io::Result<Line> {
    let mut bytes = Vec::new();
    // One byte past the limit tells a line of exactly MAX_LINE bytes from a longer one.
    let read = (&mut *reader)
        .take(MAX_LINE as u64 + 2)
        .read_until(b'\n', &mut bytes)
        .await?;
    if read == 0 {
        return Ok(Line::Closed);
    }
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    if bytes.len() > MAX_LINE {
        return Ok(Line::TooLong);
    }
    Ok(String::from_utf8(bytes).map_or(Line::NotUtf8, Line::Text))
}

/// Why a connection was refused; its `Display` is what the client is told after `DENIED`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("this server hosts no session now")]
    NoSession,
    #[error("{0}")]
    BadToken(#[from] PlayerTokenError),
    #[error("player {0} is not in this session")]
    NotAPlayer(PlayerId),
    #[error("the game has started")]
    GameStarted,
    #[error("send your player token first, on one line")]
    NoToken,
    #[error("the line is longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("the line is not UTF-8")]
    NotUtf8,
    #[error("no player token within {} s", HELLO_TIMEOUT.as_secs())]
    Timeout,
}

/// Checks `token` for the session of `assignment` at `now`: who the player is, or why not.
pub fn admit(assignment: &SessionAssignment, token: &str, now: Timestamp) -> Result<PlayerId, Denial> {
    let claims = player_token::verify(&assignment.secret, &assignment.session_id, token.trim(), now)?;
    // A correctly signed token names a player of the session, unless tokens were minted for someone
    // the assignment does not list; the server trusts the assignment's list.
    if !assignment.players.contains(&claims.player_id) {
        return Err(Denial::NotAPlayer(claims.player_id));
    }
    Ok(claims.player_id)
}

/// What a client's first line says about it, before the session has a look.
pub fn hello(line: Line) -> Result<String, Denial> {
    match line {
        Line::Text(token) if !token.trim().is_empty() => Ok(token),
        Line::Text(_) | Line::Closed => Err(Denial::NoToken),
        Line::TooLong => Err(Denial::LineTooLong),
        Line::NotUtf8 => Err(Denial::NotUtf8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use queuematch_core::identity::player_token::PlayerTokenClaims;
    use queuematch_core::identity::SessionSecret;

    async fn lines(input: &[u8]) -> Vec<Line> {
        let mut reader = tokio::io::BufReader::new(input);
        let mut out = Vec::new();
        loop {
            let line = read_line(&mut reader).await.unwrap();
            let done = line == Line::Closed;
            out.push(line);
            if done {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn lines_are_split_and_bounded() {
        assert_eq!(
            lines(b"one\r\ntwo\nlast").await,
            vec![
                Line::Text("one".into()),
                Line::Text("two".into()),
                Line::Text("last".into()),
                Line::Closed
            ]
        );
        let exact = vec![b'a'; MAX_LINE];
        assert_eq!(lines(&exact).await[0], Line::Text("a".repeat(MAX_LINE)));
        let long = vec![b'a'; MAX_LINE * 3];
        assert_eq!(lines(&long).await[0], Line::TooLong);
        assert_eq!(lines(b"\xff\xfe\n").await[0], Line::NotUtf8);
    }

    fn assignment() -> SessionAssignment {
        SessionAssignment {
            session_id: "s-1".into(),
            match_id: "m-1".into(),
            secret: SessionSecret::from_random_bytes(&[3; 32]),
            players: vec!["p-1".into()],
        }
    }

    fn token(secret: &SessionSecret, player: &str) -> String {
        player_token::mint(
            secret,
            &PlayerTokenClaims {
                session_id: "s-1".into(),
                player_id: player.into(),
                exp: 10_000,
            },
        )
    }

    #[test]
    fn a_players_token_is_admitted_and_others_are_denied() {
        let a = assignment();
        let now = Timestamp(1_000_000);
        assert_eq!(admit(&a, &token(&a.secret, "p-1"), now), Ok("p-1".into()));
        assert_eq!(
            admit(&a, &token(&a.secret, "p-9"), now),
            Err(Denial::NotAPlayer("p-9".into()))
        );
        let forger = SessionSecret::from_random_bytes(&[4; 32]);
        assert_eq!(
            admit(&a, &token(&forger, "p-1"), now),
            Err(Denial::BadToken(PlayerTokenError::BadSignature))
        );
        assert!(matches!(
            admit(&a, "garbage", now),
            Err(Denial::BadToken(PlayerTokenError::Malformed(_)))
        ));
    }

    #[test]
    fn a_first_line_that_is_no_token_is_denied() {
        assert_eq!(hello(Line::Text("  ".into())), Err(Denial::NoToken));
        assert_eq!(hello(Line::Closed), Err(Denial::NoToken));
        assert_eq!(hello(Line::TooLong), Err(Denial::LineTooLong));
        assert_eq!(hello(Line::Text("t".into())), Ok("t".into()));
    }
}
