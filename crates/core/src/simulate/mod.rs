//! The rule-set simulator: synthetic traffic through the real matcher, on virtual time.
//!
//! Players arrive as a Poisson process; every simulated second a round runs over the pool, as the
//! matcher Lambda does after SQS's one-second batching window (only those seconds in which a round
//! can decide something are simulated, which gives the same report). The same arrivals also go through the
//! first-come-first-served baseline ([`Pairing::ArrivalOrder`]), which obeys the same rules and
//! expansions but takes tickets in arrival order instead of the nearest in skill. The report is a
//! pure function of the rule set and the configuration: no wall clock, no hash order.

mod population;

pub use population::Population;

use crate::matcher::{round_with, Pairing};
use crate::ruleset::RuleSet;
use crate::ticket::Ticket;
use crate::time::Timestamp;
use serde::Serialize;
use std::collections::BTreeSet;

/// Rounds run this often, in virtual ms: SQS's batching window in front of the matcher.
pub const ROUND_INTERVAL_MS: u64 = 1_000;

/// The most players one simulation takes: every ticket is held in memory, about a kilobyte a player.
pub const MAX_PLAYERS: u32 = 10_000_000;

/// The longest stretch of virtual time the arrivals may be spread over, in seconds (100 years).
pub const MAX_ARRIVAL_SECONDS: f64 = 100.0 * SECONDS_A_YEAR;

const SECONDS_A_YEAR: f64 = 365.25 * 86_400.0;

/// What to simulate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimulationConfig {
    /// Players in all, in tickets of one or more.
    pub players: u32,
    /// Players arriving per second.
    pub rate: f64,
    pub seed: u64,
}

/// Why a [`SimulationConfig`] cannot be simulated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidConfig {
    #[error("--players must be at least 1")]
    NoPlayers,
    #[error("--players must be at most {MAX_PLAYERS} (a simulation holds every ticket in memory), not {0}")]
    TooManyPlayers(u32),
    #[error("--rate must be a positive number of players per second, not {}", crate::json::figure(*.0))]
    Rate(f64),
    #[error(
        "--players {players} at --rate {} spread the arrivals over {} of virtual time, and the \
         simulator covers at most 100 years: raise --rate or lower --players",
        crate::json::figure(*rate),
        about_years(*years)
    )]
    TooSparse { players: u32, rate: f64, years: f64 },
}

/// A count of years: whole, or in scientific notation to two figures when it is astronomical, or
/// past what a float holds (a rate of 5e-324 players a second).
fn about_years(years: f64) -> String {
    if !years.is_finite() {
        format!("more than {:.1e} years", f64::MAX)
    } else if years < 1e9 {
        format!("about {years:.0} years")
    } else {
        format!("about {years:.1e} years")
    }
}

impl SimulationConfig {
    /// Refuses what cannot be simulated: no players, more than memory holds, a rate that is not a
    /// positive number, or one so low the arrivals would spread over more than a century.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let Self { players, rate, .. } = *self;
        if players == 0 {
            return Err(InvalidConfig::NoPlayers);
        }
        if players > MAX_PLAYERS {
            return Err(InvalidConfig::TooManyPlayers(players));
        }
        if !(rate.is_finite() && rate > 0.0) {
            return Err(InvalidConfig::Rate(rate));
        }
        let seconds = f64::from(players) / rate;
        if seconds > MAX_ARRIVAL_SECONDS {
            let years = seconds / SECONDS_A_YEAR;
            return Err(InvalidConfig::TooSparse { players, rate, years });
        }
        Ok(())
    }
}

/// How far a simulation has got, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Tickets through both strategies so far (arrived and then matched or timed out).
    pub done: u64,
    pub total: u64,
}

/// The simulation's result: the same traffic, matched two ways.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimulationReport {
    pub rule_set: String,
    pub players: u32,
    pub tickets: u64,
    pub rate: f64,
    pub seed: u64,
    pub matcher: StrategyReport,
    pub fcfs: StrategyReport,
    /// When the matcher timed out at least [`HINT_TIMED_OUT_PERCENT`] of the tickets: for each rule,
    /// in the rule set's order, how the matcher fares on the same arrivals (the first
    /// [`HINT_TICKETS`] of them at most) without it and its expansions. Empty, and left out of the
    /// JSON, otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub without_each_rule: Vec<WithoutRule>,
}

/// The matcher's share of timed-out tickets from which a report says what each rule costs: at half,
/// most players would leave the queue, and the designer needs to know which rule holds them back.
pub const HINT_TIMED_OUT_PERCENT: f64 = 50.0;

/// The most tickets each run without a rule takes, the first to arrive: enough to tell which rule
/// holds players back, so that a large simulation that fails does not take one more run as long as
/// itself per rule.
pub const HINT_TICKETS: usize = 20_000;

/// The matcher on the same arrivals under the rule set without one rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WithoutRule {
    /// The rule left out.
    pub rule: String,
    /// The tickets the run took: the first to arrive, up to [`HINT_TICKETS`].
    pub tickets: u64,
    pub matched_tickets: u64,
    pub timed_out_percent: f64,
}

/// How one strategy fared.
///
/// A figure with nothing to measure is `None` (`null` in JSON), never a zero that reads as a perfect
/// score: no time to match when no ticket matched, no skill spread when the rule set reads no skill,
/// no latency when no match was placed in a region.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StrategyReport {
    pub matches: u64,
    pub matched_tickets: u64,
    /// Seconds from a ticket's arrival to its match, over matched tickets.
    pub time_to_match: Option<Percentiles>,
    /// Mean of max − min skill (see `MatchQuality::skill_spread`), over the matches that have one.
    pub mean_skill_spread: Option<f64>,
    /// Mean of the largest difference between team averages, over the matches that have one.
    pub mean_team_imbalance: Option<f64>,
    /// Mean of the worst player's latency to the match's region, in ms, over the matches placed in a
    /// region.
    pub mean_worst_latency_ms: Option<f64>,
    /// The worst latency of any player in any match, in ms.
    pub worst_latency_ms: Option<u32>,
    /// Tickets that timed out, as a percentage of all tickets.
    pub timed_out_percent: f64,
}

/// Time-to-match percentiles, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// A mean of the values that are there: matches without the figure are not counted as zeros.
#[derive(Debug, Default)]
struct Mean {
    sum: f64,
    count: u64,
}

impl Mean {
    fn add(&mut self, value: Option<f64>) {
        if let Some(value) = value {
            self.sum += value;
            self.count += 1;
        }
    }

    fn value(&self) -> Option<f64> {
        (self.count > 0).then(|| round3(self.sum / self.count as f64))
    }
}

/// Runs the simulation; `progress` is told as tickets are settled.
pub fn simulate(
    rule_set: &RuleSet,
    config: &SimulationConfig,
    progress: impl FnMut(Progress),
) -> Result<SimulationReport, InvalidConfig> {
    simulate_hinting_on(rule_set, config, HINT_TICKETS, progress)
}

/// [`simulate`], whose runs without each rule take the first `hint_tickets` arrivals at most.
fn simulate_hinting_on(
    rule_set: &RuleSet,
    config: &SimulationConfig,
    hint_tickets: usize,
    mut progress: impl FnMut(Progress),
) -> Result<SimulationReport, InvalidConfig> {
    config.validate()?;
    let arrivals = Population::new(rule_set, config.seed).arrivals(config.players, config.rate);
    let tickets = arrivals.len() as u64;
    let total = 2 * tickets;
    let matcher = run(
        rule_set,
        &arrivals,
        Pairing::ClosestSkill,
        Rounds::Deciding,
        &mut |done| {
            progress(Progress { done, total });
        },
    );
    let fcfs = run(
        rule_set,
        &arrivals,
        Pairing::ArrivalOrder,
        Rounds::Deciding,
        &mut |done| {
            progress(Progress {
                done: tickets + done,
                total,
            });
        },
    );
    let without_each_rule = if matcher.timed_out_percent >= HINT_TIMED_OUT_PERCENT {
        // Each rule's run is one more pass over (some of) the tickets: the bar grows to take them in.
        let some = &arrivals[..arrivals.len().min(hint_tickets)];
        let total = 2 * tickets + rule_set.rules.len() as u64 * some.len() as u64;
        without_each_rule(rule_set, some, &mut |run, done| {
            progress(Progress {
                done: 2 * tickets + run as u64 * some.len() as u64 + done,
                total,
            });
        })
    } else {
        Vec::new()
    };
    Ok(SimulationReport {
        rule_set: rule_set.name.clone(),
        players: config.players,
        tickets,
        rate: config.rate,
        seed: config.seed,
        matcher,
        fcfs,
        without_each_rule,
    })
}

/// The matcher on `arrivals` under `rule_set` without each of its rules in turn. The players stay
/// those drawn for the whole rule set: only the matching changes.
/// `progress` is told which rule's run this is and the tickets it has settled.
fn without_each_rule(
    rule_set: &RuleSet,
    arrivals: &[Ticket],
    progress: &mut dyn FnMut(usize, u64),
) -> Vec<WithoutRule> {
    rule_set
        .rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let fewer = rule_set.without_rule(&rule.name);
            let report = run(&fewer, arrivals, Pairing::ClosestSkill, Rounds::Deciding, &mut |done| {
                progress(i, done)
            });
            WithoutRule {
                rule: rule.name.clone(),
                tickets: arrivals.len() as u64,
                matched_tickets: report.matched_tickets,
                timed_out_percent: report.timed_out_percent,
            }
        })
        .collect()
}

/// Which of the once-a-second rounds a run holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rounds {
    /// Every one while tickets wait, as the service holds them: what the tests hold `Deciding` to.
    #[cfg(test)]
    EverySecond,
    /// Only those that can decide something, with the same report. A round that matched nothing and
    /// timed nothing out leaves the pool as it was, so the rounds after it see the same tickets under
    /// the same limits, and decide nothing either, until a ticket arrives or the outcome's
    /// `next_change_at` (an expansion step, the eager first seconds' recheck, a timeout). A round
    /// that settled tickets is followed by the next second's: fewer tickets can change what the
    /// walks reach.
    Deciding,
}

/// The first round's time at or after `at_ms`: rounds fall on whole intervals, the first one
/// interval in.
fn round_at_or_after(at_ms: u64) -> u64 {
    at_ms
        .div_ceil(ROUND_INTERVAL_MS)
        .max(1)
        .saturating_mul(ROUND_INTERVAL_MS)
}

/// Feeds `arrivals` (oldest first) through rounds, once a second at most, until every ticket is
/// settled. While the pool is empty no round runs: the next is the one after the next arrival.
fn run(
    rule_set: &RuleSet,
    arrivals: &[Ticket],
    pairing: Pairing,
    rounds: Rounds,
    progress: &mut dyn FnMut(u64),
) -> StrategyReport {
    let mut pool: Vec<Ticket> = Vec::new();
    let mut next = 0;
    let mut now = ROUND_INTERVAL_MS;
    let mut waits_ms: Vec<u64> = Vec::new();
    let mut matches = 0u64;
    let (mut spread, mut imbalance, mut latency) = (Mean::default(), Mean::default(), Mean::default());
    let mut worst_latency: Option<u32> = None;
    let mut timed_out = 0u64;
    loop {
        while next < arrivals.len() && arrivals[next].created_at.as_millis() <= now {
            pool.push(arrivals[next].clone());
            next += 1;
        }
        let next_arrival_ms = arrivals.get(next).map(|t| t.created_at.as_millis());
        if pool.is_empty() {
            match next_arrival_ms {
                Some(at) => {
                    now = round_at_or_after(at);
                    continue;
                }
                None => break,
            }
        }
        let outcome = round_with(&pool, rule_set, Timestamp(now), pairing);
        for m in &outcome.matches {
            matches += 1;
            spread.add(m.quality.skill_spread);
            imbalance.add(m.quality.team_imbalance);
            latency.add(m.quality.worst_latency_ms.map(f64::from));
            worst_latency = worst_latency.max(m.quality.worst_latency_ms);
            waits_ms.extend_from_slice(&m.quality.waits_ms);
        }
        timed_out += outcome.timed_out.len() as u64;
        let settled: BTreeSet<&str> = outcome
            .matches
            .iter()
            .flat_map(|m| m.ticket_ids())
            .chain(&outcome.timed_out)
            .map(|id| id.as_str())
            .collect();
        pool.retain(|t| !settled.contains(t.id.as_str()));
        progress(waits_ms.len() as u64 + timed_out);

        let next_second = now.saturating_add(ROUND_INTERVAL_MS);
        now = match rounds {
            Rounds::Deciding if settled.is_empty() => {
                let due = next_arrival_ms
                    .into_iter()
                    .chain(outcome.next_change_at.map(|t| t.as_millis()))
                    .min();
                due.map_or(next_second, |due| round_at_or_after(due).max(next_second))
            }
            _ => next_second,
        };
    }

    waits_ms.sort_unstable();
    StrategyReport {
        matches,
        matched_tickets: waits_ms.len() as u64,
        time_to_match: Percentiles::of(&waits_ms),
        mean_skill_spread: spread.value(),
        mean_team_imbalance: imbalance.value(),
        mean_worst_latency_ms: latency.value(),
        worst_latency_ms: worst_latency,
        timed_out_percent: if arrivals.is_empty() {
            0.0
        } else {
            round3(100.0 * timed_out as f64 / arrivals.len() as f64)
        },
    }
}

impl Percentiles {
    /// The nearest-rank percentiles of sorted waits, in seconds; `None` without any.
    fn of(sorted_ms: &[u64]) -> Option<Self> {
        let last = sorted_ms.len().checked_sub(1)?;
        let at = |p: f64| {
            let rank = ((p / 100.0) * sorted_ms.len() as f64).ceil() as usize;
            sorted_ms[rank.saturating_sub(1).min(last)] as f64 / 1000.0
        };
        Some(Self {
            p50: at(50.0),
            p95: at(95.0),
            p99: at(99.0),
        })
    }
}

/// Rounds to three decimals, so reports read cleanly (and still compare byte for byte).
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> RuleSet {
        let path = format!("{}/../../examples/rulesets/{name}.json", env!("CARGO_MANIFEST_DIR"));
        RuleSet::from_json_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_report_and_another_seed_another() {
        let rules = example("ranked-1v1");
        let config = SimulationConfig {
            players: 600,
            rate: 20.0,
            seed: 7,
        };
        let a = simulate(&rules, &config, |_| {}).unwrap();
        let b = simulate(&rules, &config, |_| {}).unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
        let c = simulate(&rules, &SimulationConfig { seed: 8, ..config }, |_| {}).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn every_ticket_is_matched_or_timed_out_and_progress_reaches_the_total() {
        let rules = example("ranked-5v5");
        let mut last = None;
        let report = simulate(
            &rules,
            &SimulationConfig {
                players: 400,
                rate: 20.0,
                seed: 3,
            },
            |p| last = Some(p),
        )
        .unwrap();
        for s in [&report.matcher, &report.fcfs] {
            let timed_out = (s.timed_out_percent / 100.0 * report.tickets as f64).round() as u64;
            assert_eq!(s.matched_tickets + timed_out, report.tickets);
            assert!(s.matches > 0, "{s:?}");
        }
        let last = last.unwrap();
        assert_eq!(last.done, last.total);
    }

    #[test]
    fn the_matcher_makes_closer_matches_than_first_come_first_served() {
        let report = simulate(
            &example("ranked-1v1"),
            &SimulationConfig {
                players: 2_000,
                rate: 50.0,
                seed: 1,
            },
            |_| {},
        )
        .unwrap();
        let spreads = [report.matcher.mean_skill_spread, report.fcfs.mean_skill_spread];
        assert!(
            matches!(spreads, [Some(matcher), Some(fcfs)] if matcher < fcfs),
            "{report:?}"
        );
    }

    #[test]
    fn with_a_short_timeout_the_matcher_matches_as_many_as_first_come_first_served() {
        // A ticket's patience must not outlast its queue's timeout: with 2 s to live, a ticket that
        // held out for a closer opponent timed out twice as often as under FCFS.
        let mut rules = example("ranked-1v1");
        rules.queue.timeout_seconds = 2;
        rules.expansions.clear();
        let report = simulate(
            &rules,
            &SimulationConfig {
                players: 4_000,
                rate: 50.0,
                seed: 1,
            },
            |_| {},
        )
        .unwrap();
        let (matcher, fcfs) = (report.matcher.matched_tickets, report.fcfs.matched_tickets);
        assert!(matcher * 100 >= fcfs * 99, "matcher {matcher}, fcfs {fcfs}: {report:?}");
        assert!(
            report.matcher.mean_skill_spread < report.fcfs.mean_skill_spread,
            "{report:?}"
        );
    }

    #[test]
    fn populations_give_players_what_the_rules_read() {
        let rules = example("ranked-5v5");
        let pool = Population::new(&rules, 1).waiting_pool(200, Timestamp(100_000), 30_000);
        let roles: BTreeSet<String> = pool
            .iter()
            .flat_map(|t| &t.players)
            .flat_map(|p| p.attributes["roles"].as_string_list().unwrap().to_vec())
            .collect();
        assert_eq!(roles, BTreeSet::from(["dps".into(), "healer".into(), "tank".into()]));
        assert!(pool.iter().any(|t| t.players.len() > 1));
        assert!(pool.iter().all(|t| t.players.iter().all(|p| p.latencies.len() == 3)));
        assert!(pool.iter().all(|t| t.created_at.as_millis() > 70_000));
    }

    #[test]
    fn players_list_as_many_values_as_a_collection_rule_asks_a_match_to_share() {
        // coop-4's players choose among three maps; a rule asking for four in common could never
        // be met by them, and every ticket timed out.
        let mut rules = example("coop-4");
        for rule in &mut rules.rules {
            if let crate::ruleset::RuleKind::Collection { min_count, .. } = &mut rule.kind {
                *min_count = 4;
            }
        }
        let pool = Population::new(&rules, 1).waiting_pool(500, Timestamp(100_000), 30_000);
        let lists: Vec<&[String]> = pool
            .iter()
            .flat_map(|t| &t.players)
            .map(|p| p.attributes["maps"].as_string_list().unwrap())
            .collect();
        assert!(lists.iter().all(|l| l.len() >= 4), "{lists:?}");
        let values: BTreeSet<&String> = lists.iter().copied().flatten().collect();
        assert!(values.len() > 4, "{values:?}");
        let report = simulate(
            &rules,
            &SimulationConfig {
                players: 400,
                rate: 20.0,
                seed: 1,
            },
            |_| {},
        )
        .unwrap();
        assert!(report.matcher.matches > 0 && report.fcfs.matches > 0, "{report:?}");
    }

    /// `coop-4` with a latency rule no player meets: none is within 10 ms of a region (15 ms at
    /// best), and the rule's expansion is gone; 400 players at 20 a second.
    fn coop_4_out_of_reach() -> (RuleSet, SimulationConfig) {
        let mut rules = example("coop-4");
        for rule in &mut rules.rules {
            if let crate::ruleset::RuleKind::Latency { max_latency } = &mut rule.kind {
                *max_latency = 10;
            }
        }
        rules
            .expansions
            .retain(|e| !matches!(&e.target, crate::ruleset::ExpansionTarget::Rule { rule, .. } if rule == "ping"));
        let config = SimulationConfig {
            players: 400,
            rate: 20.0,
            seed: 1,
        };
        (rules, config)
    }

    #[test]
    fn a_rule_no_player_meets_is_named_by_running_without_each_rule() {
        let (rules, config) = coop_4_out_of_reach();
        let mut last = None;
        let report = simulate(&rules, &config, |p| last = Some(p)).unwrap();
        assert_eq!(report.matcher.timed_out_percent, 100.0);
        let without: Vec<(&str, bool)> = report
            .without_each_rule
            .iter()
            .map(|w| {
                (
                    w.rule.as_str(),
                    w.timed_out_percent < HINT_TIMED_OUT_PERCENT && w.matched_tickets > 0,
                )
            })
            .collect();
        assert_eq!(without, [("loose", false), ("map", false), ("ping", true)]);
        assert!(report.without_each_rule.iter().all(|w| w.tickets == report.tickets));
        let last = last.unwrap();
        assert_eq!((last.done, last.total), (5 * report.tickets, 5 * report.tickets));

        // The same players under the example's own rules: nothing to say.
        let fine = simulate(&example("coop-4"), &config, |_| {}).unwrap();
        assert!(fine.without_each_rule.is_empty(), "{fine:?}");
    }

    #[test]
    fn the_runs_without_each_rule_take_the_first_arrivals_up_to_the_cap() {
        let (rules, config) = coop_4_out_of_reach();
        let cap = 60;
        let mut last = None;
        let report = simulate_hinting_on(&rules, &config, cap, |p| last = Some(p)).unwrap();
        assert!(report.tickets > cap as u64, "{report:?}");
        assert_eq!(report.without_each_rule.len(), rules.rules.len());
        // Each run is the matcher on the first `cap` arrivals of the whole simulation's players.
        let first = &Population::new(&rules, config.seed).arrivals(config.players, config.rate)[..cap];
        for without in &report.without_each_rule {
            let alone = run(
                &rules.without_rule(&without.rule),
                first,
                Pairing::ClosestSkill,
                Rounds::Deciding,
                &mut |_| {},
            );
            assert_eq!(without.tickets, cap as u64);
            assert_eq!(
                (without.matched_tickets, without.timed_out_percent),
                (alone.matched_tickets, alone.timed_out_percent),
                "{}",
                without.rule
            );
        }
        let last = last.unwrap();
        let total = 2 * report.tickets + 3 * cap as u64;
        assert_eq!((last.done, last.total), (total, total));
        // The cap changes only the hint.
        let whole = simulate(&rules, &config, |_| {}).unwrap();
        assert_eq!((&report.matcher, &report.fcfs), (&whole.matcher, &whole.fcfs));
    }

    #[test]
    fn skills_are_drawn_on_the_scale_of_their_default() {
        // (default, maxDistance) → (mean, standard deviation, values rounded to) as drawn.
        let cases = [
            (Some(1500.0), 100.0, 1500.0, 300.0, 1.0),
            (Some(10.0), 1.0, 10.0, 2.0, 0.01),
            (Some(0.0), 50.0, 0.0, 150.0, 1.0),
            (Some(-5.0), 100.0, -5.0, 1.0, 0.01),
            (None, 100.0, 1500.0, 300.0, 1.0),
        ];
        for (default, max_distance, mean, sd, unit) in cases {
            let mut rules = example("ranked-1v1");
            rules.player_attributes[0].default = default.map(crate::attribute::AttributeValue::Number);
            rules.rules[0].kind = crate::ruleset::RuleKind::Distance {
                attribute: "skill".into(),
                max_distance,
                party_aggregation: Default::default(),
            };
            let pool = Population::new(&rules, 5).waiting_pool(4_000, Timestamp(100_000), 30_000);
            let skills: Vec<f64> = pool
                .iter()
                .flat_map(|t| &t.players)
                .map(|p| p.attributes["skill"].as_number().unwrap())
                .collect();
            let n = skills.len() as f64;
            let drawn_mean = skills.iter().sum::<f64>() / n;
            let drawn_sd = (skills.iter().map(|s| (s - drawn_mean).powi(2)).sum::<f64>() / n).sqrt();
            let case = format!("default {default:?}: mean {drawn_mean}, sd {drawn_sd}");
            assert!((drawn_mean - mean).abs() < sd * 0.1, "{case}");
            assert!((drawn_sd / sd - 1.0).abs() < 0.1, "{case}");
            assert!(
                skills.iter().all(|s| ((s / unit).round() * unit - s).abs() < 1e-9),
                "{case}"
            );
            if mean > 0.0 {
                assert!(skills.iter().all(|&s| s >= 0.0), "{case}");
            }
        }
    }

    /// Holding only the rounds that can decide something gives the report every round gives, for
    /// each example rule set and both strategies, from traffic dense enough that the pool is never
    /// idle to traffic so sparse that most tickets wait alone and time out.
    #[test]
    fn skipping_rounds_that_cannot_decide_changes_nothing() {
        for name in ["ranked-1v1", "ranked-5v5", "coop-4", "battle-royale-60"] {
            let rules = example(name);
            for (players, rate, seed) in [(300, 40.0, 1), (240, 2.0, 2), (120, 0.05, 3), (60, 0.002, 4)] {
                let arrivals = Population::new(&rules, seed).arrivals(players, rate);
                for pairing in [Pairing::ClosestSkill, Pairing::ArrivalOrder] {
                    let mut calls = [0u64; 2];
                    let every = run(&rules, &arrivals, pairing, Rounds::EverySecond, &mut |_| calls[0] += 1);
                    let deciding = run(&rules, &arrivals, pairing, Rounds::Deciding, &mut |_| calls[1] += 1);
                    assert_eq!(deciding, every, "{name}, {players} players at {rate}/s, {pairing:?}");
                    // Sparse traffic leaves tickets waiting alone, whose rounds are skipped.
                    let fewer = if rate < 1.0 {
                        calls[1] < calls[0]
                    } else {
                        calls[1] <= calls[0]
                    };
                    assert!(fewer, "{name} at {rate}/s: {calls:?} rounds");
                }
            }
        }
    }

    #[test]
    fn rounds_skip_only_when_the_pool_cannot_change() {
        // A lone ticket never matches: after its first seconds' rechecks, rounds come at its
        // expansion steps (10, 20, 30 and 60 s for ranked-1v1) and its timeout (120 s), not every second.
        let rules = example("ranked-1v1");
        let arrivals = Population::new(&rules, 1).arrivals(1, 1.0);
        let mut rounds = 0;
        let report = run(&rules, &arrivals, Pairing::ClosestSkill, Rounds::Deciding, &mut |_| {
            rounds += 1
        });
        assert_eq!(report.timed_out_percent, 100.0);
        assert!((5..=12).contains(&rounds), "{rounds} rounds");
        let mut every = 0;
        run(
            &rules,
            &arrivals,
            Pairing::ClosestSkill,
            Rounds::EverySecond,
            &mut |_| every += 1,
        );
        assert!(every >= 120, "{every} rounds");
    }

    #[test]
    fn a_sparse_simulation_finishes_and_settles_every_ticket() {
        // A ticket an hour: every one waits alone and times out, across 50 days of virtual time.
        let report = simulate(
            &example("ranked-1v1"),
            &SimulationConfig {
                players: 1_200,
                rate: 1.0 / 3_600.0,
                seed: 5,
            },
            |_| {},
        )
        .unwrap();
        for s in [&report.matcher, &report.fcfs] {
            let timed_out = (s.timed_out_percent / 100.0 * report.tickets as f64).round() as u64;
            assert_eq!(s.matched_tickets + timed_out, report.tickets);
        }
    }

    #[test]
    fn configurations_that_cannot_be_simulated_are_refused_with_the_reason() {
        let config = |players, rate| SimulationConfig { players, rate, seed: 1 };
        let refused = |players, rate| simulate(&example("ranked-1v1"), &config(players, rate), |_| {}).unwrap_err();
        assert_eq!(refused(0, 50.0), InvalidConfig::NoPlayers);
        assert_eq!(
            refused(MAX_PLAYERS + 1, 50.0),
            InvalidConfig::TooManyPlayers(MAX_PLAYERS + 1)
        );
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(matches!(refused(10, rate), InvalidConfig::Rate(_)), "{rate}");
        }
        let sparse = refused(100, 1e-9);
        assert!(
            matches!(sparse, InvalidConfig::TooSparse { players: 100, .. }),
            "{sparse:?}"
        );
        let message = sparse.to_string();
        assert!(
            message.contains("3169 years") && message.contains("--rate"),
            "{message}"
        );
        // Figures far from the usual range read in scientific notation, not in hundreds of digits.
        let tiny = refused(10_000, 1e-300).to_string();
        assert!(
            tiny.contains("--rate 1e-300 ") && tiny.contains("about 3.2e296 years"),
            "{tiny}"
        );
        // Past what a float holds: no "inf years".
        let least = refused(1, 5e-324).to_string();
        assert!(least.contains("more than 1.8e308 years"), "{least}");
        // At the edges: a century of arrivals is simulated, and so is the largest pool.
        assert_eq!(config(1, 1.0 / MAX_ARRIVAL_SECONDS).validate(), Ok(()));
        assert_eq!(config(MAX_PLAYERS, 50.0).validate(), Ok(()));
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let waits: Vec<u64> = (1..=100).map(|s| s * 1000).collect();
        let expected = Percentiles {
            p50: 50.0,
            p95: 95.0,
            p99: 99.0,
        };
        assert_eq!(Percentiles::of(&waits), Some(expected));
        let one = Percentiles {
            p50: 7.5,
            p95: 7.5,
            p99: 7.5,
        };
        assert_eq!(Percentiles::of(&[7_500]), Some(one));
        assert_eq!(Percentiles::of(&[]), None);
    }

    /// What a strategy could not measure is reported as missing, not as a perfect zero: a lone
    /// player matches nobody, and duels under no rules read no skill and no latency.
    #[test]
    fn figures_with_nothing_to_measure_are_none() {
        let lone = simulate(
            &example("ranked-1v1"),
            &SimulationConfig {
                players: 1,
                rate: 1.0,
                seed: 1,
            },
            |_| {},
        )
        .unwrap();
        for s in [&lone.matcher, &lone.fcfs] {
            assert_eq!((s.matches, s.time_to_match, s.timed_out_percent), (0, None, 100.0));
            assert_eq!((s.mean_skill_spread, s.mean_team_imbalance), (None, None));
            assert_eq!((s.mean_worst_latency_ms, s.worst_latency_ms), (None, None));
        }
        let json = serde_json::to_value(&lone).unwrap();
        assert_eq!(json["matcher"]["timeToMatch"], serde_json::Value::Null);
        assert_eq!(json["fcfs"]["meanSkillSpread"], serde_json::Value::Null);

        let anyone = RuleSet::from_json_str(
            r#"{"name": "anyone", "ruleLanguageVersion": "1.0",
                "teams": [{"name": "a", "minPlayers": 1, "maxPlayers": 1},
                          {"name": "b", "minPlayers": 1, "maxPlayers": 1}],
                "rules": [], "queue": {"timeoutSeconds": 60}}"#,
        )
        .unwrap();
        let config = SimulationConfig {
            players: 200,
            rate: 10.0,
            seed: 2,
        };
        let report = simulate(&anyone, &config, |_| {}).unwrap();
        for s in [&report.matcher, &report.fcfs] {
            assert!(s.matches > 0 && s.time_to_match.is_some(), "{s:?}");
            assert_eq!(
                (s.mean_skill_spread, s.mean_worst_latency_ms, s.worst_latency_ms),
                (None, None, None)
            );
        }
    }
}
