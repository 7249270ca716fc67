//! Game-server reports: `ready`, `heartbeat`, `result`, `end`, `playerLeft`, `playerReturned` and
//! `backfill`, signed with the session's secret.
//!
//! Each report is checked in this order, so that nothing unauthenticated is parsed, and nothing
//! refused is stored:
//! 1. the session exists;
//! 2. the signature holds over timestamp, nonce and body, within 60 s of the service's clock;
//! 3. the body is a report (each problem named at its JSON pointer), legal in the session's status;
//! 4. the nonce was never seen (it is stored, conditional on absence, until the window has passed):
//!    a replayed report is refused. Only then does the report change anything.
//!
//! A `result` (which must name the session's players only, with a score for each, and is taken
//! once) starts the `session-completion` workflow, named after the session: it rates the game,
//! ends the session and releases its server. An `end` after a result starts the same execution,
//! which is therefore started once; an `end` without a result finishes the session at once:
//! ENDED, with a timeline entry, its players freed to queue again, its server released.
//!
//! A `playerLeft` (`playerId`: a player seated in the ACTIVE session) opens that player's slot (a
//! `playerReturned` closes it again, when the player came back before backfill filled it), and
//! `backfill` asks for open slots to be filled (what a MANUAL queue waits for; an AUTOMATIC one fills
//! them unasked): see [`super::backfill`]. The departed player stays on the session's list, since
//! they played part of the game and the result scores them.

use super::backfill::{BackfillError, Backfills, RosterChange};
use super::completion::{self, Completions};
use super::messages::{Message, PoolTick};
use super::placement::Step;
use super::{Queues, Settings};
use crate::event::DomainEvent;
use crate::identity::report::{self, REPORT_WINDOW};
use crate::ids::{PlayerId, SessionId};
use crate::ports::fleet::Fleet;
use crate::ports::store::items::{self, SessionRecord, Versioned};
use crate::ports::store::{Condition, Item, Key};
use crate::ports::{Clock, Events, PortError, Store, TicketQueue, Workflows};
use crate::ruleset::RuleSet;
use crate::status::SessionStatus;
use crate::ticket_request::FieldError;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// What a game server reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// The server has its session and listens.
    Ready,
    /// The server is alive.
    Heartbeat,
    /// The game's outcome.
    Result { result: GameResult },
    /// The session is over.
    End { reason: Option<String> },
    /// A player left mid-game: their slot is open.
    PlayerLeft { player_id: PlayerId },
    /// A player who left is back in their slot: it is no longer open.
    PlayerReturned { player_id: PlayerId },
    /// The server asks for its open slots to be filled.
    Backfill,
}

impl Report {
    /// Reads a report body, `{"type", "result"?, "reason"?, "playerId"?}`, naming what is wrong at its JSON
    /// pointer. Read by hand rather than by serde, which names no field for a wrong type and lets
    /// unknown fields of unit variants through.
    pub fn parse(body: &[u8]) -> Result<Report, FieldError> {
        // A key given twice (a player scored twice) is refused, not its last value taken.
        let value: Value =
            crate::json::from_slice_unique(body).map_err(|e| FieldError::new("", format!("not valid JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(FieldError::new(
                "",
                format!("a report is a JSON object, not {}", json_kind(&value)),
            ));
        };
        if let Some(key) = map
            .keys()
            .find(|k| !matches!(k.as_str(), "type" | "result" | "reason" | "playerId"))
        {
            return Err(FieldError::new(
                pointer(&[key]),
                format!("unknown field `{key}`; a report has `type`, `result`, `reason` and `playerId`"),
            ));
        }
        let kind = match map.get("type") {
            Some(Value::String(kind)) => kind.as_str(),
            Some(other) => {
                return Err(FieldError::new(
                    "/type",
                    format!("`type` is a string, not {}", json_kind(other)),
                ))
            }
            None => return Err(FieldError::new("/type", "missing required field `type`")),
        };
        let reason = match map.get("reason") {
            None | Some(Value::Null) => None,
            Some(Value::String(reason)) => Some(reason.clone()),
            Some(other) => {
                return Err(FieldError::new(
                    "/reason",
                    format!("`reason` is a string, not {}", json_kind(other)),
                ))
            }
        };
        let player_id = match map.get("playerId") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) if !id.is_empty() => Some(PlayerId::from(id.as_str())),
            Some(Value::String(_)) => return Err(FieldError::new("/playerId", "`playerId` is empty")),
            Some(other) => {
                return Err(FieldError::new(
                    "/playerId",
                    format!("`playerId` is a string, not {}", json_kind(other)),
                ))
            }
        };
        let result = match map.get("result") {
            None | Some(Value::Null) => None,
            Some(result) => Some(read_result(result)?),
        };
        let extra = |field: &str| {
            Err(FieldError::new(
                pointer(&[field]),
                format!("a `{kind}` report has no `{field}`"),
            ))
        };
        if player_id.is_some() && !matches!(kind, "playerLeft" | "playerReturned") {
            return extra("playerId");
        }
        match (kind, result, reason) {
            ("ready" | "heartbeat" | "end" | "playerLeft" | "playerReturned" | "backfill", Some(_), _) => {
                extra("result")
            }
            ("ready" | "heartbeat" | "result" | "playerLeft" | "playerReturned" | "backfill", _, Some(_)) => {
                extra("reason")
            }
            ("playerReturned", None, None) => match player_id {
                Some(player_id) => Ok(Report::PlayerReturned { player_id }),
                None => Err(FieldError::new("/playerId", "a `playerReturned` report needs `playerId`")),
            },
            ("playerLeft", None, None) => match player_id {
                Some(player_id) => Ok(Report::PlayerLeft { player_id }),
                None => Err(FieldError::new("/playerId", "a `playerLeft` report needs `playerId`")),
            },
            ("backfill", None, None) => Ok(Report::Backfill),
            ("ready", None, None) => Ok(Report::Ready),
            ("heartbeat", None, None) => Ok(Report::Heartbeat),
            ("result", Some(result), None) => Ok(Report::Result { result }),
            ("result", None, _) => Err(FieldError::new("/result", "a `result` report needs `result`")),
            ("end", None, reason) => Ok(Report::End { reason }),
            (other, _, _) => Err(FieldError::new(
                "/type",
                format!(
                    "unknown report type `{other}`; expected ready, heartbeat, result, end, playerLeft, playerReturned or backfill"
                ),
            )),
        }
    }
}

/// `{"scores": {"<player>": <number>, ...}}`.
fn read_result(value: &Value) -> Result<GameResult, FieldError> {
    let Value::Object(map) = value else {
        return Err(FieldError::new(
            "/result",
            format!("`result` is an object with `scores`, not {}", json_kind(value)),
        ));
    };
    if let Some(key) = map.keys().find(|k| k.as_str() != "scores") {
        return Err(FieldError::new(
            pointer(&["result", key]),
            format!("unknown field `{key}`; a result has `scores`"),
        ));
    }
    let scores = match map.get("scores") {
        Some(Value::Object(scores)) => scores,
        Some(other) => {
            return Err(FieldError::new(
                "/result/scores",
                format!("`scores` maps each player to a number, not {}", json_kind(other)),
            ))
        }
        None => return Err(FieldError::new("/result/scores", "missing required field `scores`")),
    };
    let mut read = BTreeMap::new();
    for (player, score) in scores {
        let Some(score) = score.as_f64() else {
            return Err(FieldError::new(
                pointer(&["result", "scores", player]),
                format!("a score is a number, not {}", json_kind(score)),
            ));
        };
        read.insert(PlayerId::from(player.as_str()), score);
    }
    Ok(GameResult { scores: read })
}

/// The RFC 6901 pointer to a path of keys (`~` and `/` escaped).
fn pointer(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("/{}", k.replace('~', "~0").replace('/', "~1")))
        .collect()
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The outcome of a game: each player's score, the higher the better.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GameResult {
    pub scores: BTreeMap<PlayerId, f64>,
}

/// A report as it arrived: the signature's parts and the raw body they cover.
#[derive(Debug, Clone, Copy)]
pub struct SignedReport<'a> {
    pub timestamp: Timestamp,
    pub nonce: &'a str,
    pub signature: &'a str,
    pub body: &'a [u8],
}

/// Why a report was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("no session {0}")]
    NotFound(SessionId),
    #[error(transparent)]
    Unauthorized(#[from] report::ReportAuthError),
    #[error("nonce {0} was already used: a report is accepted once")]
    Replayed(String),
    /// The body is no report, or not one this session takes; at its JSON pointer.
    #[error("not a report: {0}")]
    Invalid(FieldError),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Port(#[from] PortError),
}

/// What the session looks like after a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recorded {
    pub session_id: SessionId,
    pub status: SessionStatus,
}

/// Where what a game server reported is kept, beside the session (last heartbeat, result).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SessionReports {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<GameResult>,
}

/// `SESSION#<id>` / `REPORTS`.
pub fn reports_key(session: &SessionId) -> Key {
    Key::new(format!("SESSION#{session}"), "REPORTS")
}

/// What the session's server has reported so far: nothing yet when the item is absent.
pub async fn read_reports<S: Store>(store: &S, session: &SessionId) -> Result<SessionReports, PortError> {
    Ok(match store.get(&reports_key(session)).await? {
        Some(stored) => items::read::<SessionReports>(&stored)?.value,
        None => SessionReports::default(),
    })
}

fn nonce_key(session: &SessionId, nonce: &str) -> Key {
    Key::new(format!("SESSION#{session}"), format!("NONCE#{nonce}"))
}

/// Records game-server reports.
#[derive(Debug)]
pub struct Reports<'a, S, Q, F, W, E, C> {
    pub store: &'a S,
    /// Takes a pool tick when a slot opens for backfill, so the pool's next round comes at once.
    pub queue: &'a Q,
    /// The rule sets: a queue's `backfillMode`.
    pub queues: &'a Queues,
    pub fleet: &'a F,
    /// Starts `session-completion` once a result is in.
    pub workflows: &'a W,
    pub events: &'a E,
    pub clock: &'a C,
    pub settings: &'a Settings,
}

impl<S: Store, Q: TicketQueue, F: Fleet, W: Workflows, E: Events, C: Clock> Reports<'_, S, Q, F, W, E, C> {
    pub async fn record(&self, session_id: &SessionId, signed: SignedReport<'_>) -> Result<Recorded, ReportError> {
        let now = self.clock.now();
        let session = self.read_session(session_id).await?;
        report::verify(
            &session.value.secret,
            signed.timestamp,
            signed.nonce,
            signed.body,
            signed.signature,
            now,
        )?;
        let report = Report::parse(signed.body).map_err(ReportError::Invalid)?;
        let status = session.value.status;
        match &report {
            // An ended session takes `end` again, changing nothing; only a running game ends.
            Report::End { .. } if !matches!(status, SessionStatus::Active | SessionStatus::Ended) => {
                return Err(ReportError::Conflict(format!(
                    "session {session_id} is {status}: only a running game ends"
                )))
            }
            Report::End { .. } => {}
            _ if status.is_terminal() => {
                return Err(ReportError::Conflict(format!(
                    "session {session_id} is {status}: it takes no more reports"
                )))
            }
            // Before the players were sent to the server there is no game to have a result: rating
            // one would rate a game nobody played, and the session could then never end.
            Report::Result { .. } if status != SessionStatus::Active => {
                return Err(ReportError::Conflict(format!(
                    "session {session_id} is {status}: a result is taken from a running game"
                )))
            }
            Report::Result { result } => {
                if let Err(why) = completion::check_result(&session.value, result) {
                    let at = result
                        .scores
                        .keys()
                        .find(|p| !session.value.player_ids.contains(p))
                        .map_or_else(
                            || "/result/scores".to_owned(),
                            |p| pointer(&["result", "scores", p.as_str()]),
                        );
                    return Err(ReportError::Invalid(FieldError::new(at, why)));
                }
                // A result is taken once: the same one again is a duplicate, another a conflict.
                if let Some(stored) = self.stored_result(session_id).await? {
                    if &stored == result {
                        return Ok(Recorded {
                            session_id: session_id.clone(),
                            status,
                        });
                    }
                    return Err(ReportError::Conflict(format!(
                        "session {session_id} has its result already; a game has one"
                    )));
                }
            }
            Report::PlayerLeft { .. } | Report::PlayerReturned { .. } | Report::Backfill
                if status != SessionStatus::Active =>
            {
                return Err(ReportError::Conflict(format!(
                    "session {session_id} is {status}: only a running game has open slots"
                )))
            }
            Report::PlayerLeft { player_id } | Report::PlayerReturned { player_id }
                if !session.value.player_ids.contains(player_id) =>
            {
                return Err(ReportError::Invalid(FieldError::new(
                    "/playerId",
                    format!("player {player_id} is not in session {session_id}"),
                )))
            }
            Report::Ready
            | Report::Heartbeat
            | Report::PlayerLeft { .. }
            | Report::PlayerReturned { .. }
            | Report::Backfill => {}
        }
        // The nonce outlives the window either side of the clock, so a replay is refused for as
        // long as its timestamp would still pass.
        let nonce = Item::new(nonce_key(session_id, signed.nonce), serde_json::json!({"at": now}))
            .expiring_at(now.plus(REPORT_WINDOW * 2));
        match self.store.put(nonce, Condition::Absent).await {
            Ok(_) => {}
            Err(PortError::ConditionFailed { .. }) => return Err(ReportError::Replayed(signed.nonce.to_owned())),
            Err(e) => return Err(e.into()),
        }
        match report {
            Report::End { reason } => {
                if self.stored_result(session_id).await?.is_some() {
                    self.start_completion(session_id).await?;
                } else {
                    return self.end(session, reason).await;
                }
            }
            Report::Ready => self.update_reports(session_id, |r| r.ready_at = Some(now)).await?,
            Report::Heartbeat => {
                self.update_reports(session_id, |r| r.last_heartbeat_at = Some(now))
                    .await?
            }
            Report::Result { result } => {
                self.update_reports(session_id, |r| r.result = Some(result.clone()))
                    .await?;
                self.start_completion(session_id).await?;
            }
            Report::PlayerLeft { player_id } => {
                let (backfills, rule_set) = self.backfills(&session.value)?;
                let changed = backfills.player_left(&session.value, &player_id, rule_set).await;
                self.after_roster_change(changed).await?;
            }
            Report::PlayerReturned { player_id } => {
                let (backfills, rule_set) = self.backfills(&session.value)?;
                let changed = backfills.player_returned(&session.value, &player_id, rule_set).await;
                self.after_roster_change(changed).await?;
            }
            Report::Backfill => {
                let (backfills, rule_set) = self.backfills(&session.value)?;
                let changed = backfills.request(&session.value, rule_set).await;
                self.after_roster_change(changed).await?;
            }
        }
        Ok(Recorded {
            session_id: session_id.clone(),
            status,
        })
    }

    /// Backfill over these ports, and the session's rule set.
    fn backfills(&self, session: &SessionRecord) -> Result<(Backfills<'_, S, E, C>, &RuleSet), ReportError> {
        let rule_set = self.queues.get(&session.queue).ok_or_else(|| {
            ReportError::Conflict(format!(
                "session {} is of queue `{}`, which is not served here",
                session.session_id, session.queue
            ))
        })?;
        let backfills = Backfills {
            store: self.store,
            events: self.events,
            clock: self.clock,
            settings: self.settings,
        };
        Ok((backfills, rule_set))
    }

    /// Sends the pool a tick when a roster is listed for backfill now.
    async fn after_roster_change(&self, changed: Result<RosterChange, BackfillError>) -> Result<(), ReportError> {
        let change = changed.map_err(|e| match e {
            BackfillError::NotSeated { .. } | BackfillError::SlotTaken { .. } => ReportError::Conflict(e.to_string()),
            BackfillError::Port(port) => ReportError::Port(port),
        })?;
        if let Some(pool) = change.listed {
            let tick = Message::PoolTick(PoolTick {
                queue: pool.queue,
                partition: pool.partition,
                due: self.clock.now(),
            });
            self.queue.send(tick.to_body(), Duration::ZERO).await?;
        }
        Ok(())
    }

    async fn read_session(&self, session_id: &SessionId) -> Result<Versioned<SessionRecord>, ReportError> {
        let stored = self.store.get(&items::session_key(session_id)).await?;
        let stored = stored.ok_or_else(|| ReportError::NotFound(session_id.clone()))?;
        Ok(items::read(&stored)?)
    }

    async fn update_reports(
        &self,
        session_id: &SessionId,
        change: impl Fn(&mut SessionReports),
    ) -> Result<(), PortError> {
        let key = reports_key(session_id);
        for _ in 0..5 {
            let current = self.store.get(&key).await?;
            let (mut reports, condition) = match &current {
                Some(stored) => {
                    let read: Versioned<SessionReports> = items::read(stored)?;
                    (read.value, Condition::Version(read.version))
                }
                None => (SessionReports::default(), Condition::Absent),
            };
            change(&mut reports);
            let body = serde_json::to_value(&reports).map_err(|e| PortError::invalid(e.to_string()))?;
            match self.store.put(Item::new(key.clone(), body), condition).await {
                Ok(_) => return Ok(()),
                Err(PortError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(PortError::transient(format!(
            "the reports of session {session_id} kept changing"
        )))
    }

    /// The result stored for the session, if one was reported.
    async fn stored_result(&self, session_id: &SessionId) -> Result<Option<GameResult>, PortError> {
        Ok(read_reports(self.store, session_id).await?.result)
    }

    /// Starts the session's completion; starting it again (a later `end`) starts nothing.
    async fn start_completion(&self, session_id: &SessionId) -> Result<(), PortError> {
        completion::start(self.workflows, session_id).await
    }

    /// ACTIVE → ENDED without a result, with its timeline entry, its players' guards freed and its
    /// server released. Ending an ended session again changes nothing.
    async fn end(&self, session: Versioned<SessionRecord>, reason: Option<String>) -> Result<Recorded, ReportError> {
        let session_id = session.value.session_id.clone();
        if session.value.status == SessionStatus::Ended {
            return Ok(Recorded {
                session_id,
                status: SessionStatus::Ended,
            });
        }
        let completions = Completions {
            store: self.store,
            fleet: self.fleet,
            events: self.events,
            clock: self.clock,
        };
        let step = Step {
            execution_id: "game-server".into(),
            state: "End".into(),
        };
        let detail = reason.unwrap_or_else(|| "the game server ended the session".into());
        let ended = completions
            .end(&session_id, &step, detail.clone())
            .await
            .map_err(|e| match e {
                PortError::Conflict(why) => ReportError::Conflict(why),
                other => ReportError::Port(other),
            })?;
        // Published before the server is released: the server asked to stop may be the one whose
        // report this is, and when its process goes, a server that handles the report for the
        // length of its request (the dev server) drops this call with it, at the release's await,
        // and the players were never told. The local fleet has stopped the server by then; what it
        // waits for is the process's exit.
        self.events
            .publish(DomainEvent::SessionStatusChanged {
                session_id: session_id.clone(),
                player_ids: ended.player_ids.clone(),
                status: SessionStatus::Ended,
                reason: Some(detail),
            })
            .await?;
        if let Some(placement) = &ended.placement {
            self.fleet.release(placement).await?;
        }
        Ok(Recorded {
            session_id,
            status: SessionStatus::Ended,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_read_in_their_wire_shape() {
        let Ok(Report::Result { result }) =
            Report::parse(br#"{"type":"result","result":{"scores":{"p-1":3,"p-2":1}}}"#)
        else {
            panic!("a result")
        };
        assert_eq!(result.scores[&PlayerId::from("p-1")], 3.0);
        assert_eq!(Report::parse(br#"{"type":"heartbeat"}"#), Ok(Report::Heartbeat));
        assert_eq!(
            Report::parse(br#"{"type":"end","reason":"game over"}"#),
            Ok(Report::End {
                reason: Some("game over".into())
            })
        );
    }

    #[test]
    fn a_departure_names_its_player_and_a_backfill_request_nothing() {
        assert_eq!(
            Report::parse(br#"{"type":"playerLeft","playerId":"p-2"}"#),
            Ok(Report::PlayerLeft {
                player_id: PlayerId::from("p-2")
            })
        );
        assert_eq!(Report::parse(br#"{"type":"backfill"}"#), Ok(Report::Backfill));
        let cases: [(&[u8], &str, &str); 5] = [
            (br#"{"type":"playerLeft"}"#, "/playerId", "needs `playerId`"),
            (
                br#"{"type":"playerLeft","playerId":7}"#,
                "/playerId",
                "is a string, not a number",
            ),
            (br#"{"type":"playerLeft","playerId":""}"#, "/playerId", "is empty"),
            (
                br#"{"type":"heartbeat","playerId":"p-1"}"#,
                "/playerId",
                "has no `playerId`",
            ),
            (br#"{"type":"backfill","reason":"x"}"#, "/reason", "has no `reason`"),
        ];
        for (body, pointer, why) in cases {
            let err = Report::parse(body).unwrap_err();
            assert_eq!(err.pointer, pointer, "{err}");
            assert!(err.message.contains(why), "{err} should say {why}");
        }
    }

    #[test]
    fn anything_else_is_refused_with_why_and_where() {
        let cases: [(&[u8], &str, &str); 13] = [
            (br#"{"type":"cheat"}"#, "/type", "unknown report type `cheat`"),
            (br#"{"type":"heartbeat","x/y":1}"#, "/x~1y", "unknown field `x/y`"),
            (br#"{"type":"result"}"#, "/result", "needs `result`"),
            (br#"{"type":"ready","reason":"x"}"#, "/reason", "has no `reason`"),
            (
                br#"{"type":"end","result":{"scores":{}}}"#,
                "/result",
                "has no `result`",
            ),
            (b"7", "", "a report is a JSON object, not a number"),
            (b"{oops", "", "not valid JSON"),
            (br#"{}"#, "/type", "missing required field `type`"),
            (br#"{"type":5}"#, "/type", "`type` is a string, not a number"),
            (br#"{"type":"end","reason":[]}"#, "/reason", "not an array"),
            (
                br#"{"type":"result","result":[]}"#,
                "/result",
                "an object with `scores`",
            ),
            (
                br#"{"type":"result","result":{"scores":{"p-1":"3"}}}"#,
                "/result/scores/p-1",
                "a score is a number",
            ),
            (
                br#"{"type":"result","result":{"score":{}}}"#,
                "/result/score",
                "unknown field `score`",
            ),
        ];
        for (body, pointer, why) in cases {
            let err = Report::parse(body).unwrap_err();
            assert_eq!(err.pointer, pointer, "{err}");
            assert!(err.message.contains(why), "{err} should say {why}");
        }
    }
}
