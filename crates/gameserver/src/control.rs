//! The control channel between a fleet and its server: JSON lines.
//!
//! - **stdout**, server → fleet: [`ServerEvent`]s, one per line: `listening` once the socket is bound,
//!   `assigned` once a session is taken (the fleet's placement is ready then), `refused` for an
//!   assignment line that is not one, `idle` after a session.
//! - **stdin**, fleet → server: one [`SessionAssignment`] per line, while the server is idle.
//!
//! Logs never go to stdout, so a fleet reads this channel without filtering.

use queuematch_core::ids::SessionId;
use queuematch_core::ports::fleet::SessionAssignment;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// What the server tells its fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "event")]
pub enum ServerEvent {
    Listening {
        port: u16,
    },
    #[serde(rename_all = "camelCase")]
    Assigned {
        session_id: SessionId,
    },
    Refused {
        reason: String,
    },
    #[serde(rename_all = "camelCase")]
    Idle {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_session_id: Option<SessionId>,
    },
}

/// Writes `event` as one line and flushes it: the fleet waits on each.
pub async fn emit<W: AsyncWrite + Unpin>(out: &mut W, event: &ServerEvent) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(event).unwrap_or_default();
    line.push(b'\n');
    out.write_all(&line).await?;
    out.flush().await
}

/// Reads an assignment line. The error is what the fleet is told, without echoing the line: it
/// carries a secret.
pub fn parse_assignment(line: &str) -> Result<SessionAssignment, String> {
    let assignment: SessionAssignment =
        serde_json::from_str(line).map_err(|e| format!("not a session assignment: {}", e.classify_name()))?;
    if assignment.players.is_empty() {
        return Err(format!("session {} has no players", assignment.session_id));
    }
    if assignment.secret.expose().is_empty() {
        return Err(format!("session {} has an empty secret", assignment.session_id));
    }
    Ok(assignment)
}

/// serde_json's category names, for messages that must not quote their input.
trait Classify {
    fn classify_name(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "invalid JSON",
            serde_json::error::Category::Data => "wrong fields",
            serde_json::error::Category::Eof => "truncated JSON",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_the_json_lines_a_fleet_reads() {
        assert_eq!(
            serde_json::to_string(&ServerEvent::Listening { port: 4100 }).unwrap(),
            r#"{"event":"listening","port":4100}"#
        );
        assert_eq!(
            serde_json::to_string(&ServerEvent::Assigned {
                session_id: "s-1".into()
            })
            .unwrap(),
            r#"{"event":"assigned","sessionId":"s-1"}"#
        );
        assert_eq!(
            serde_json::to_string(&ServerEvent::Idle { last_session_id: None }).unwrap(),
            r#"{"event":"idle"}"#
        );
    }

    #[test]
    fn an_assignment_is_read_and_garbage_refused_without_echoing_it() {
        let line = r#"{"sessionId":"s-1","matchId":"m-1","secret":"c2VjcmV0","players":["p-1"]}"#;
        assert_eq!(parse_assignment(line).unwrap().session_id, SessionId::from("s-1"));
        let secretive = r#"{"sessionId":"s-1","secret":"hunter2""#;
        let refusal = parse_assignment(secretive).unwrap_err();
        assert!(!refusal.contains("hunter2"), "{refusal}");
        assert!(parse_assignment("").is_err());
        assert!(parse_assignment(r#"{"sessionId":"s","matchId":"m","secret":"x","players":[]}"#).is_err());
    }
}
