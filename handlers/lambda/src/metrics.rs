//! CloudWatch metrics, as Embedded Metric Format (EMF) log lines.
//!
//! A Lambda function's stdout goes to CloudWatch Logs, and a line that is an EMF object there
//! becomes metrics with no API call, no client and no added latency: the cheapest way to publish
//! from a function. The names are FlexMatch's (`TicketsStarted`, `MatchesCreated`, `TimeToMatch` …)
//! so that its users find their dashboards' metrics, plus the match quality this matcher measures
//! (`SkillSpread`, `TeamImbalance`, `WorstLatency`), all in the namespace [`NAMESPACE`].
//!
//! Where the function knows the queue, a metric has the dimension `queue` (the rule set's name):
//! the matcher's rounds ([`batch_records`]), a session's activation ([`placed_record`]), a cancel
//! ([`cancel_record`]). What only a domain event tells (a ticket
//! failed or timed out, a match accepted or rejected, a session placed) is counted by [`Metered`],
//! the `Events` adapter the functions publish through, service-wide (no dimension), since domain
//! events carry no queue.
//!
//! The format: <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>.

use queuematch_core::event::{AcceptanceOutcome, DomainEvent};
use queuematch_core::matcher::Match;
use queuematch_core::ports::{Clock, Events, PortError};
use queuematch_core::time::Timestamp;
use queuematch_core::SessionStatus;
use queuematch_core::Ticket;
use queuematch_handlers::matcher::BatchOutcome;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// The CloudWatch namespace of every metric here.
pub const NAMESPACE: &str = "queuematch";
/// The dimension naming the queue.
pub const QUEUE: &str = "queue";

/// A metric, by its CloudWatch name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Tickets still searching after a round (a gauge, per queue).
    CurrentTickets,
    /// Tickets admitted into their pool.
    TicketsStarted,
    TicketsTimedOut,
    TicketsFailed,
    MatchesCreated,
    MatchesAccepted,
    MatchesRejected,
    /// Matches whose game session became ACTIVE.
    MatchesPlaced,
    /// From a ticket's creation to its match, per ticket.
    TimeToMatch,
    /// From a ticket's creation to COMPLETED (its session placed), per ticket.
    TimeToTicketSuccess,
    /// From a ticket's creation to its cancel, per ticket.
    TimeToTicketCancel,
    /// max − min of the skill attribute over a match.
    SkillSpread,
    /// The largest difference between team averages of a match.
    TeamImbalance,
    /// The highest latency of a match's players to its region, in ms.
    WorstLatency,
}

impl Metric {
    pub const ALL: [Metric; 14] = [
        Metric::CurrentTickets,
        Metric::TicketsStarted,
        Metric::TicketsTimedOut,
        Metric::TicketsFailed,
        Metric::MatchesCreated,
        Metric::MatchesAccepted,
        Metric::MatchesRejected,
        Metric::MatchesPlaced,
        Metric::TimeToMatch,
        Metric::TimeToTicketSuccess,
        Metric::TimeToTicketCancel,
        Metric::SkillSpread,
        Metric::TeamImbalance,
        Metric::WorstLatency,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::CurrentTickets => "CurrentTickets",
            Metric::TicketsStarted => "TicketsStarted",
            Metric::TicketsTimedOut => "TicketsTimedOut",
            Metric::TicketsFailed => "TicketsFailed",
            Metric::MatchesCreated => "MatchesCreated",
            Metric::MatchesAccepted => "MatchesAccepted",
            Metric::MatchesRejected => "MatchesRejected",
            Metric::MatchesPlaced => "MatchesPlaced",
            Metric::TimeToMatch => "TimeToMatch",
            Metric::TimeToTicketSuccess => "TimeToTicketSuccess",
            Metric::TimeToTicketCancel => "TimeToTicketCancel",
            Metric::SkillSpread => "SkillSpread",
            Metric::TeamImbalance => "TeamImbalance",
            Metric::WorstLatency => "WorstLatency",
        }
    }

    /// The CloudWatch unit.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::TimeToMatch | Metric::TimeToTicketSuccess | Metric::TimeToTicketCancel | Metric::WorstLatency => {
                "Milliseconds"
            }
            // Skill points: CloudWatch has no unit for them.
            Metric::SkillSpread | Metric::TeamImbalance => "None",
            _ => "Count",
        }
    }
}

/// One EMF line's worth: the values of some metrics at one time, for one queue or service-wide.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRecord {
    pub timestamp: Timestamp,
    /// The queue dimension; `None` for a service-wide record.
    pub queue: Option<String>,
    /// Each metric's values (EMF takes up to 100 values a metric; CloudWatch aggregates them).
    pub values: BTreeMap<Metric, Vec<f64>>,
}

/// EMF's limit on the values of one metric in one line.
const MAX_VALUES: usize = 100;

impl MetricRecord {
    pub fn new(timestamp: Timestamp, queue: Option<&str>) -> Self {
        Self {
            timestamp,
            queue: queue.map(str::to_owned),
            values: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, metric: Metric, value: f64) {
        self.values.entry(metric).or_default().push(value);
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The EMF objects of this record: one, unless a metric has more values than a line may hold.
    pub fn to_emf(&self) -> Vec<Value> {
        let lines = self
            .values
            .values()
            .map(|v| v.len().div_ceil(MAX_VALUES))
            .max()
            .unwrap_or(0);
        (0..lines).map(|i| self.emf_line(i)).collect()
    }

    fn emf_line(&self, index: usize) -> Value {
        let mut root = Map::new();
        let mut definitions = Vec::new();
        for (metric, values) in &self.values {
            let chunk: Vec<f64> = values
                .iter()
                .skip(index * MAX_VALUES)
                .take(MAX_VALUES)
                .copied()
                .collect();
            let value = match chunk.as_slice() {
                [] => continue,
                [one] => json!(one),
                many => json!(many),
            };
            definitions.push(json!({"Name": metric.name(), "Unit": metric.unit()}));
            root.insert(metric.name().to_owned(), value);
        }
        let dimensions: Vec<&str> = self.queue.iter().map(|_| QUEUE).collect();
        if let Some(queue) = &self.queue {
            root.insert(QUEUE.to_owned(), json!(queue));
        }
        root.insert(
            "_aws".to_owned(),
            json!({
                "Timestamp": self.timestamp.0,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [dimensions],
                    "Metrics": definitions,
                }],
            }),
        );
        Value::Object(root)
    }
}

/// Where EMF lines go: the function's stdout, which Lambda sends to CloudWatch Logs; or a list,
/// for whoever wants to read them back.
#[derive(Debug, Clone)]
pub enum Sink {
    Stdout,
    Memory(Arc<Mutex<Vec<Value>>>),
}

impl Sink {
    pub fn emit(&self, record: &MetricRecord) {
        for line in record.to_emf() {
            match self {
                Sink::Stdout => {
                    // One write of a whole line, so that it never interleaves with a log line.
                    let text = format!("{line}\n");
                    // A metric that cannot be written is lost; the function's work is not.
                    let _ = std::io::stdout().lock().write_all(text.as_bytes());
                }
                Sink::Memory(lines) => lines
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(line),
            }
        }
    }
}

/// The matcher's metrics of one batch, per queue: tickets admitted, matches and their quality,
/// each matched ticket's wait, tickets timed out in rounds, and those still searching.
pub fn batch_records(outcome: &BatchOutcome, now: Timestamp) -> Vec<MetricRecord> {
    let mut per_queue: BTreeMap<&str, MetricRecord> = BTreeMap::new();
    for (queue, admitted) in &outcome.admitted_per_queue {
        record(&mut per_queue, queue, now).add(Metric::TicketsStarted, *admitted as f64);
    }
    // Tickets still searching, summed over the partitions of a queue that this batch ran.
    let mut current: BTreeMap<&str, usize> = BTreeMap::new();
    for (pool, report) in &outcome.rounds {
        let queue = pool.queue.as_str();
        if report.lease_busy {
            continue;
        }
        *current.entry(queue).or_default() += report.remaining;
        let r = record(&mut per_queue, queue, now);
        r.add(Metric::MatchesCreated, report.matches.len() as f64);
        if !report.timed_out.is_empty() {
            r.add(Metric::TicketsTimedOut, report.timed_out.len() as f64);
        }
        for matched in &report.matches {
            for wait in &matched.quality.waits_ms {
                r.add(Metric::TimeToMatch, *wait as f64);
            }
            if let Some(spread) = matched.quality.skill_spread {
                r.add(Metric::SkillSpread, spread);
            }
            if let Some(imbalance) = matched.quality.team_imbalance {
                r.add(Metric::TeamImbalance, imbalance);
            }
            if let Some(latency) = matched.quality.worst_latency_ms {
                r.add(Metric::WorstLatency, f64::from(latency));
            }
        }
    }
    for (queue, remaining) in current {
        record(&mut per_queue, queue, now).add(Metric::CurrentTickets, remaining as f64);
    }
    per_queue.into_values().filter(|r| !r.is_empty()).collect()
}

/// The record of `queue` in `records`, new if it has none yet.
fn record<'m, 'q>(
    records: &'m mut BTreeMap<&'q str, MetricRecord>,
    queue: &'q str,
    now: Timestamp,
) -> &'m mut MetricRecord {
    records
        .entry(queue)
        .or_insert_with(|| MetricRecord::new(now, Some(queue)))
}

/// A ticket's cancel: how long it had waited, for its queue.
pub fn cancel_record(ticket: &Ticket, now: Timestamp) -> MetricRecord {
    let mut record = MetricRecord::new(now, Some(&ticket.queue));
    record.add(Metric::TimeToTicketCancel, millis(now.since(ticket.created_at)));
    record
}

/// A session made ACTIVE: its match placed, and each ticket's time from creation to COMPLETED.
/// A ticket was created its wait before the match was formed.
pub fn placed_record(matched: &Match, now: Timestamp) -> MetricRecord {
    let mut record = MetricRecord::new(now, Some(&matched.queue));
    record.add(Metric::MatchesPlaced, 1.0);
    let since_match = millis(now.since(matched.created_at));
    for wait in &matched.quality.waits_ms {
        record.add(Metric::TimeToTicketSuccess, since_match + *wait as f64);
    }
    record
}

fn millis(duration: std::time::Duration) -> f64 {
    duration.as_millis() as f64
}

/// What a domain event counts, service-wide; most events count nothing here, since the function
/// that knows their queue counts them there.
pub fn event_metrics(event: &DomainEvent) -> Option<Metric> {
    match event {
        DomainEvent::MatchmakingFailed { .. } => Some(Metric::TicketsFailed),
        DomainEvent::MatchmakingTimedOut { .. } => Some(Metric::TicketsTimedOut),
        DomainEvent::AcceptMatchCompleted { acceptance, .. } => Some(match acceptance {
            AcceptanceOutcome::Accepted => Metric::MatchesAccepted,
            AcceptanceOutcome::Rejected | AcceptanceOutcome::TimedOut => Metric::MatchesRejected,
        }),
        DomainEvent::SessionStatusChanged {
            status: SessionStatus::Active,
            ..
        } => Some(Metric::MatchesPlaced),
        _ => None,
    }
}

/// The `Events` adapter the functions publish through: publishes with the inner adapter, then
/// writes the event's service-wide metric, once the event is out (a failed publish is retried by
/// the use case, which would count it twice otherwise).
#[derive(Debug, Clone)]
pub struct Metered<E, C> {
    pub inner: E,
    pub clock: C,
    pub sink: Sink,
}

#[async_trait::async_trait]
impl<E: Events, C: Clock> Events for Metered<E, C> {
    async fn publish(&self, event: DomainEvent) -> Result<(), PortError> {
        let metric = event_metrics(&event);
        self.inner.publish(event).await?;
        if let Some(metric) = metric {
            let mut record = MetricRecord::new(self.clock.now(), None);
            record.add(metric, 1.0);
            self.sink.emit(&record);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use queuematch_core::ids::{MatchId, PlayerId, SessionId, TicketId};

    #[test]
    fn a_record_is_an_emf_object_with_its_queue_dimension() {
        // GIVEN a record of three metrics for ranked-1v1
        let mut record = MetricRecord::new(Timestamp(1_767_225_600_000), Some("ranked-1v1"));
        record.add(Metric::MatchesCreated, 2.0);
        record.add(Metric::TimeToMatch, 1000.0);
        record.add(Metric::TimeToMatch, 250.0);
        record.add(Metric::SkillSpread, 30.0);
        // THEN it is one EMF line, in exactly this shape
        assert_eq!(
            record.to_emf(),
            vec![json!({
                "_aws": {
                    "Timestamp": 1_767_225_600_000u64,
                    "CloudWatchMetrics": [{
                        "Namespace": "queuematch",
                        "Dimensions": [["queue"]],
                        "Metrics": [
                            {"Name": "MatchesCreated", "Unit": "Count"},
                            {"Name": "TimeToMatch", "Unit": "Milliseconds"},
                            {"Name": "SkillSpread", "Unit": "None"},
                        ],
                    }],
                },
                "queue": "ranked-1v1",
                "MatchesCreated": 2.0,
                "TimeToMatch": [1000.0, 250.0],
                "SkillSpread": 30.0,
            })]
        );
    }

    #[test]
    fn a_service_wide_record_has_an_empty_dimension_set() {
        let mut record = MetricRecord::new(Timestamp(5), None);
        record.add(Metric::TicketsFailed, 1.0);
        let lines = record.to_emf();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
        assert!(lines[0].get("queue").is_none());
        assert_eq!(lines[0]["TicketsFailed"], json!(1.0));
    }

    #[test]
    fn more_than_a_hundred_values_go_on_more_lines() {
        let mut record = MetricRecord::new(Timestamp(5), Some("q"));
        for i in 0..150 {
            record.add(Metric::TimeToMatch, f64::from(i));
        }
        record.add(Metric::MatchesCreated, 75.0);
        let lines = record.to_emf();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["TimeToMatch"].as_array().map(Vec::len), Some(100));
        assert_eq!(lines[0]["MatchesCreated"], json!(75.0));
        assert_eq!(lines[1]["TimeToMatch"].as_array().map(Vec::len), Some(50));
        assert_eq!(lines[1]["TimeToMatch"][0], json!(100.0));
        // The second line declares only the metric it carries.
        assert_eq!(
            lines[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            json!([{"Name": "TimeToMatch", "Unit": "Milliseconds"}])
        );
        assert!(lines[1].get("MatchesCreated").is_none());
        assert!(MetricRecord::new(Timestamp(5), None).to_emf().is_empty());
    }

    #[test]
    fn every_metric_has_a_distinct_name_and_a_cloudwatch_unit() {
        let names: std::collections::BTreeSet<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names.len(), Metric::ALL.len());
        for metric in Metric::ALL {
            assert!(["Count", "Milliseconds", "None"].contains(&metric.unit()), "{metric:?}");
        }
    }

    #[test]
    fn events_count_what_only_they_tell() {
        let players = vec![PlayerId::new("p1")];
        let ticket_id = TicketId::from("t-1");
        let cases = [
            (
                DomainEvent::MatchmakingFailed {
                    ticket_id: ticket_id.clone(),
                    player_ids: players.clone(),
                    reason: "x".into(),
                },
                Some(Metric::TicketsFailed),
            ),
            (
                DomainEvent::MatchmakingTimedOut {
                    ticket_id: ticket_id.clone(),
                    player_ids: players.clone(),
                    reason: "x".into(),
                },
                Some(Metric::TicketsTimedOut),
            ),
            (
                DomainEvent::AcceptMatchCompleted {
                    match_id: MatchId::from("m-1"),
                    acceptance: AcceptanceOutcome::TimedOut,
                    player_ids: players.clone(),
                    reason: None,
                },
                Some(Metric::MatchesRejected),
            ),
            (
                DomainEvent::AcceptMatchCompleted {
                    match_id: MatchId::from("m-1"),
                    acceptance: AcceptanceOutcome::Accepted,
                    player_ids: players.clone(),
                    reason: None,
                },
                Some(Metric::MatchesAccepted),
            ),
            (
                DomainEvent::SessionStatusChanged {
                    session_id: SessionId::from("s-m-1"),
                    player_ids: players.clone(),
                    status: SessionStatus::Active,
                    reason: None,
                },
                Some(Metric::MatchesPlaced),
            ),
            (
                DomainEvent::SessionStatusChanged {
                    session_id: SessionId::from("s-m-1"),
                    player_ids: players.clone(),
                    status: SessionStatus::Ended,
                    reason: None,
                },
                None,
            ),
            (
                DomainEvent::MatchmakingSearching {
                    ticket_id,
                    player_ids: players,
                },
                None,
            ),
        ];
        for (event, expected) in cases {
            assert_eq!(event_metrics(&event), expected, "{event:?}");
        }
    }
}
