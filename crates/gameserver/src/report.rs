//! Reports to the service: `POST <service>/v1/sessions/<id>/events`, signed with the session secret.
//!
//! Each attempt is signed afresh, with a new timestamp and nonce: a retry after a long backoff must
//! still be inside the service's 60-second window, and a nonce is accepted only once. A retry that
//! repeats a report the service did record changes nothing there (DESIGN.md, invariant 4).
//! Transient failures (no connection, a timeout, 429, 5xx) are retried with exponential backoff and
//! full jitter; a refusal (any other 4xx) is not, since the same report would be refused again.

use queuematch_core::identity::{report, SessionSecret};
use queuematch_core::ids::{PlayerId, SessionId};
use queuematch_core::ports::error::with_causes;
use queuematch_core::Timestamp;
use rand::Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const TIMESTAMP_HEADER: &str = "X-Queuematch-Timestamp";
pub const NONCE_HEADER: &str = "X-Queuematch-Nonce";
pub const SIGNATURE_HEADER: &str = "X-Queuematch-Signature";

/// A report's body, as `infra/openapi.yaml` (`SessionReport`) has it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Report {
    Ready,
    Heartbeat,
    Result {
        result: GameResult,
    },
    End {
        reason: String,
    },
    /// A player left mid-game: their slot is open, for the service to backfill.
    PlayerLeft {
        #[serde(rename = "playerId")]
        player_id: PlayerId,
    },
    /// A player who left is back in their slot.
    PlayerReturned {
        #[serde(rename = "playerId")]
        player_id: PlayerId,
    },
}

impl Report {
    fn kind(&self) -> &'static str {
        match self {
            Report::Ready => "ready",
            Report::Heartbeat => "heartbeat",
            Report::Result { .. } => "result",
            Report::End { .. } => "end",
            Report::PlayerLeft { .. } => "playerLeft",
            Report::PlayerReturned { .. } => "playerReturned",
        }
    }
}

/// The outcome of a game: each player's score, the higher the better.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GameResult {
    pub scores: BTreeMap<PlayerId, f64>,
}

/// How a report is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The ceiling of the first retry's delay; it doubles with each retry…
    pub base: Duration,
    /// …up to this.
    pub cap: Duration,
}

impl Default for Backoff {
    /// Six attempts over at most about 20 s: a service restarting on the same machine is back by then.
    fn default() -> Self {
        Self {
            attempts: 6,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(8),
        }
    }
}

impl Backoff {
    /// The delay before retry `retry` (0 for the first), drawn uniformly below its ceiling: full jitter,
    /// so servers that failed together do not retry together.
    pub fn delay(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.base.saturating_mul(2u32.saturating_pow(retry)).min(self.cap);
        Duration::from_secs_f64(rng.gen_range(0.0..=ceiling.as_secs_f64()))
    }
}

/// Why a report did not get through.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the service refused the {kind} report with {status}: {body}")]
    Refused {
        kind: &'static str,
        status: reqwest::StatusCode,
        body: String,
    },
    #[error("the {kind} report failed {attempts} times; the last failure: {last}")]
    GaveUp {
        kind: &'static str,
        attempts: u32,
        last: String,
    },
}

/// Sends one session's reports.
#[derive(Debug, Clone)]
pub struct Reporter {
    client: reqwest::Client,
    url: String,
    secret: SessionSecret,
    backoff: Backoff,
}

/// The longest an attempt may take: a hung service must not hold a report past the signature window.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// How much of a refusal's body is kept for the log.
const REFUSAL_BODY_LIMIT: usize = 512;

impl Reporter {
    pub fn new(client: reqwest::Client, service_url: &str, session: &SessionId, secret: SessionSecret) -> Self {
        Self {
            client,
            url: format!("{service_url}/v1/sessions/{session}/events"),
            secret,
            backoff: Backoff::default(),
        }
    }

    pub fn with_backoff(self, backoff: Backoff) -> Self {
        Self { backoff, ..self }
    }

    /// Sends `report`, retrying transient failures.
    pub async fn send(&self, report: &Report) -> Result<(), ReportError> {
        let body = serde_json::to_vec(report).unwrap_or_default();
        let mut last = String::new();
        for attempt in 0..self.backoff.attempts.max(1) {
            if attempt > 0 {
                let delay = self.backoff.delay(attempt - 1, &mut rand::thread_rng());
                tokio::time::sleep(delay).await;
            }
            match self.attempt(&body).await {
                Ok(()) => {
                    tracing::debug!(report = report.kind(), attempt, "report delivered");
                    return Ok(());
                }
                Err(Attempt::Refused(status, text)) => {
                    return Err(ReportError::Refused {
                        kind: report.kind(),
                        status,
                        body: text,
                    })
                }
                Err(Attempt::Transient(why)) => {
                    tracing::warn!(report = report.kind(), attempt, error = %why, "report failed; retrying");
                    last = why;
                }
            }
        }
        Err(ReportError::GaveUp {
            kind: report.kind(),
            attempts: self.backoff.attempts.max(1),
            last,
        })
    }

    /// Sends `report` once: for heartbeats, where the next one is as good as a retry.
    pub async fn send_once(&self, report: &Report) -> Result<(), ReportError> {
        let body = serde_json::to_vec(report).unwrap_or_default();
        match self.attempt(&body).await {
            Ok(()) => Ok(()),
            Err(Attempt::Refused(status, body)) => Err(ReportError::Refused {
                kind: report.kind(),
                status,
                body,
            }),
            Err(Attempt::Transient(last)) => Err(ReportError::GaveUp {
                kind: report.kind(),
                attempts: 1,
                last,
            }),
        }
    }

    async fn attempt(&self, body: &[u8]) -> Result<(), Attempt> {
        let timestamp = now();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let signature = report::sign(&self.secret, timestamp, &nonce, body);
        let response = self
            .client
            .post(&self.url)
            .timeout(ATTEMPT_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp.as_millis().to_string())
            .header(NONCE_HEADER, nonce)
            .header(SIGNATURE_HEADER, signature)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| Attempt::Transient(with_causes(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(Attempt::Transient(format!("the service answered {status}")));
        }
        let text = response.text().await.unwrap_or_default();
        Err(Attempt::Refused(
            status,
            text.chars().take(REFUSAL_BODY_LIMIT).collect(),
        ))
    }
}

enum Attempt {
    Refused(reqwest::StatusCode, String),
    Transient(String),
}

/// Wall-clock time: the service checks report timestamps against its own clock.
pub fn now() -> Timestamp {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    Timestamp::from_millis(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn reports_serialise_as_the_api_has_them() {
        let result = Report::Result {
            result: GameResult {
                scores: BTreeMap::from([("p-1".into(), 70.0), ("p-2".into(), 100.0)]),
            },
        };
        assert_eq!(
            serde_json::to_value(&result).unwrap(),
            serde_json::json!({"type": "result", "result": {"scores": {"p-1": 70.0, "p-2": 100.0}}})
        );
        assert_eq!(
            serde_json::to_value(Report::End {
                reason: "game over".into()
            })
            .unwrap(),
            serde_json::json!({"type": "end", "reason": "game over"})
        );
        assert_eq!(
            serde_json::to_value(Report::Heartbeat).unwrap(),
            serde_json::json!({"type": "heartbeat"})
        );
    }

    #[test]
    fn backoff_delays_are_jittered_below_a_doubling_capped_ceiling() {
        let backoff = Backoff {
            attempts: 10,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(700),
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for retry in 0..8 {
            let ceiling = Duration::from_millis((100u64 << retry).min(700));
            let delays: Vec<Duration> = (0..200).map(|_| backoff.delay(retry, &mut rng)).collect();
            assert!(delays.iter().all(|d| *d <= ceiling), "retry {retry}");
            assert!(
                delays.iter().any(|d| *d < ceiling / 4),
                "full jitter reaches low delays too (retry {retry})"
            );
        }
    }

    #[test]
    fn a_huge_retry_count_does_not_overflow() {
        let delay = Backoff::default().delay(u32::MAX, &mut rand::thread_rng());
        assert!(delay <= Backoff::default().cap);
    }
}
