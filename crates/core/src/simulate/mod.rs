//! The rule-set simulator: synthetic traffic through the real matcher, on virtual time.
//!
//! Players arrive as a Poisson process; every simulated second a round runs over the pool, as the
//! matcher Lambda does after SQS's one-second batching window. The same arrivals also go through the
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

/// What to simulate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimulationConfig {
    /// Players in all, in tickets of one or more.
    pub players: u32,
    /// Players arriving per second.
    pub rate: f64,
    pub seed: u64,
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
}

/// How one strategy fared.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StrategyReport {
    pub matches: u64,
    pub matched_tickets: u64,
    /// Seconds from a ticket's arrival to its match, over matched tickets.
    pub time_to_match: Percentiles,
    /// Mean over matches of max − min skill (see `MatchQuality::skill_spread`).
    pub mean_skill_spread: f64,
    /// Mean over matches of the largest difference between team averages.
    pub mean_team_imbalance: f64,
    /// Mean over matches of the worst player's latency to the match's region, in ms.
    pub mean_worst_latency_ms: f64,
    /// The worst latency of any player in any match, in ms.
    pub worst_latency_ms: u32,
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

/// Runs the simulation; `progress` is told as tickets are settled.
pub fn simulate(rule_set: &RuleSet, config: &SimulationConfig, mut progress: impl FnMut(Progress)) -> SimulationReport {
    let arrivals = Population::new(rule_set, config.seed).arrivals(config.players, config.rate);
    let tickets = arrivals.len() as u64;
    let total = 2 * tickets;
    let matcher = run(rule_set, &arrivals, Pairing::ClosestSkill, &mut |done| {
        progress(Progress { done, total });
    });
    let fcfs = run(rule_set, &arrivals, Pairing::ArrivalOrder, &mut |done| {
        progress(Progress {
            done: tickets + done,
            total,
        });
    });
    SimulationReport {
        rule_set: rule_set.name.clone(),
        players: config.players,
        tickets,
        rate: config.rate,
        seed: config.seed,
        matcher,
        fcfs,
    }
}

/// Feeds `arrivals` (oldest first) through rounds every second until every ticket is settled.
fn run(rule_set: &RuleSet, arrivals: &[Ticket], pairing: Pairing, progress: &mut dyn FnMut(u64)) -> StrategyReport {
    let mut pool: Vec<Ticket> = Vec::new();
    let mut next = 0;
    let mut now = 0;
    let mut waits_ms: Vec<u64> = Vec::new();
    let (mut matches, mut spread, mut imbalance, mut latency_sum, mut worst_latency) = (0u64, 0.0, 0.0, 0.0, 0u32);
    let mut timed_out = 0u64;
    while next < arrivals.len() || !pool.is_empty() {
        now += ROUND_INTERVAL_MS;
        while next < arrivals.len() && arrivals[next].created_at.as_millis() <= now {
            pool.push(arrivals[next].clone());
            next += 1;
        }
        if pool.is_empty() {
            continue;
        }
        let outcome = round_with(&pool, rule_set, Timestamp(now), pairing);
        for m in &outcome.matches {
            matches += 1;
            spread += m.quality.skill_spread.unwrap_or(0.0);
            imbalance += m.quality.team_imbalance.unwrap_or(0.0);
            let worst = m.quality.worst_latency_ms.unwrap_or(0);
            latency_sum += f64::from(worst);
            worst_latency = worst_latency.max(worst);
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
    }

    waits_ms.sort_unstable();
    let mean = |sum: f64| {
        if matches == 0 {
            0.0
        } else {
            round3(sum / matches as f64)
        }
    };
    StrategyReport {
        matches,
        matched_tickets: waits_ms.len() as u64,
        time_to_match: Percentiles {
            p50: percentile(&waits_ms, 50.0),
            p95: percentile(&waits_ms, 95.0),
            p99: percentile(&waits_ms, 99.0),
        },
        mean_skill_spread: mean(spread),
        mean_team_imbalance: mean(imbalance),
        mean_worst_latency_ms: mean(latency_sum),
        worst_latency_ms: worst_latency,
        timed_out_percent: if arrivals.is_empty() {
            0.0
        } else {
            round3(100.0 * timed_out as f64 / arrivals.len() as f64)
        },
    }
}

/// The nearest-rank percentile of sorted waits, in seconds.
fn percentile(sorted_ms: &[u64], p: f64) -> f64 {
    if sorted_ms.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_ms.len() as f64).ceil() as usize;
    sorted_ms[rank.clamp(1, sorted_ms.len()) - 1] as f64 / 1000.0
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
        let a = simulate(&rules, &config, |_| {});
        let b = simulate(&rules, &config, |_| {});
        assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
        let c = simulate(&rules, &SimulationConfig { seed: 8, ..config }, |_| {});
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
        );
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
        );
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
    fn percentiles_use_the_nearest_rank() {
        let waits: Vec<u64> = (1..=100).map(|s| s * 1000).collect();
        assert_eq!(percentile(&waits, 50.0), 50.0);
        assert_eq!(percentile(&waits, 95.0), 95.0);
        assert_eq!(percentile(&waits, 99.0), 99.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
