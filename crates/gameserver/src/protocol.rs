//! The players' protocol: JSON text messages over a WebSocket (`ws://HOST:PORT/`, any path).
//!
//! ```text
//! client                                   server
//!   {"type":"hello","token":"…"}      →                       (within 10 s of connecting)
//!                                     ←  {"type":"welcome","sessionId":…,"playerId":…,"team":"red",
//!                                          "ticksPerSecond":20,"gameTicks":200}
//!                                        or {"type":"denied","reason":"…"}, and the socket closes
//!                                     ←  {"type":"tick","tick":0,"ticksLeft":200,"target":{"x":…,"y":…},
//!                                          "velocity":{"x":…,"y":…}}        (once the game starts)
//!   {"type":"aim","tick":0,"x":…,"y":…} →                     (your aim at the target's next position)
//!                                     ←  {"type":"tick","tick":1,…}         (every 1/ticksPerSecond s)
//!                                     ←  {"type":"error","reason":"…"}      (a bad message; play on)
//!                                     ←  {"type":"result","winners":["red"],"teams":[…],"scores":{…}}
//!                                        and the socket closes
//! ```
//!
//! An aim answers the tick it names; one that arrives after the next tick was played is too late
//! and ignored, and a player's last aim for a tick counts. A player who disconnects may connect
//! again with the same token and plays on from the current tick.

use crate::game::{Outcome, Point, TickView};
use queuematch_core::ids::{PlayerId, SessionId};
use serde::{Deserialize, Serialize};

/// The largest message either side sends: a token is a few hundred bytes, an aim a few dozen.
pub const MAX_MESSAGE: usize = 4096;

/// What a player sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type", deny_unknown_fields)]
pub enum ClientMessage {
    /// The first message: the player token the ticket showed.
    Hello { token: String },
    /// An aim for tick `tick`.
    Aim { tick: u32, x: f64, y: f64 },
}

impl ClientMessage {
    pub fn aim(tick: u32, at: Point) -> Self {
        ClientMessage::Aim { tick, x: at.x, y: at.y }
    }
}

/// Who a player is in the session, told once they are in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Welcome {
    pub session_id: SessionId,
    pub player_id: PlayerId,
    pub team: String,
    pub ticks_per_second: u32,
    pub game_ticks: u32,
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum ServerMessage {
    Welcome(Welcome),
    Denied { reason: String },
    Tick(TickView),
    Error { reason: String },
    Result(Outcome),
}

impl ServerMessage {
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Reads a client's message, or says what is wrong with it (told to the client).
pub fn parse_client(text: &str) -> Result<ClientMessage, String> {
    serde_json::from_str(text).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "a message of the wrong shape",
            _ => "not JSON",
        };
        // serde_json says column 0 at the end of a text (an empty message): the position names
        // the character where the message stopped instead.
        let (line, column) = queuematch_core::json::position(text, &e);
        format!(
            "{what} (line {line} column {column}): send {{\"type\":\"hello\",\"token\":…}} or {{\"type\":\"aim\",\"tick\":N,\"x\":…,\"y\":…}}"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::Point;

    #[test]
    fn messages_read_and_write_as_documented() {
        assert_eq!(
            parse_client(r#"{"type":"hello","token":"abc"}"#),
            Ok(ClientMessage::Hello { token: "abc".into() })
        );
        assert_eq!(
            parse_client(r#"{"type":"aim","tick":3,"x":0.5,"y":0.25}"#),
            Ok(ClientMessage::aim(3, Point::new(0.5, 0.25)))
        );
        let tick = ServerMessage::Tick(TickView {
            tick: 1,
            ticks_left: 9,
            target: Point::new(0.5, 0.5),
            velocity: Point::new(0.0, 0.04),
        });
        assert_eq!(
            serde_json::to_value(&tick).unwrap(),
            serde_json::json!({"type": "tick", "tick": 1, "ticksLeft": 9, "target": {"x": 0.5, "y": 0.5},
                "velocity": {"x": 0.0, "y": 0.04}})
        );
        let back: ServerMessage = serde_json::from_str(&tick.to_json()).unwrap();
        assert_eq!(back, tick);
        assert_eq!(
            ServerMessage::Denied { reason: "no".into() }.to_json(),
            r#"{"type":"denied","reason":"no"}"#
        );
    }

    #[test]
    fn garbage_is_refused_with_what_to_send() {
        for bad in [
            "",
            "42",
            "{",
            r#"{"type":"fire"}"#,
            r#"{"type":"aim","tick":-1,"x":0,"y":0}"#,
            r#"{"type":"hello"}"#,
        ] {
            let error = parse_client(bad).unwrap_err();
            assert!(error.contains(r#"{"type":"hello","token":…}"#), "{bad}: {error}");
        }
        assert!(parse_client(r#"{"type":"hello","token":"t","extra":1}"#).is_err());
    }

    #[test]
    fn a_refusal_names_a_column_from_one() {
        // GIVEN messages cut short, at their start and after a character
        // WHEN they are read
        // THEN the refusal points at a real character, never column 0
        assert!(parse_client("").unwrap_err().starts_with("not JSON (line 1 column 1)"));
        assert!(parse_client("{").unwrap_err().starts_with("not JSON (line 1 column 1)"));
        assert!(parse_client(r#"{"type":"aim""#)
            .unwrap_err()
            .starts_with("not JSON (line 1 column 13)"));
    }
}
