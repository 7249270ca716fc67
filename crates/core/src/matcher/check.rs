//! An independent check that a match satisfies its rule set (invariant 3).
//!
//! It shares no code with the matcher: it reads the tickets and the rule set directly, recomputes the
//! expansion level from the match's oldest ticket, and uses plain algorithms (backtracking for
//! composition, scans for latency), so a bug in the matcher's fast paths cannot hide itself here.
//! Property tests run every match through it; operators' tools may too.

use super::outcome::Match;
use crate::attribute::{AttributeType, AttributeValue};
use crate::ruleset::{ComparisonOp, ExpansionTarget, PartyAggregation, RuleField, RuleKind, RuleSet, TeamField};
use crate::ticket::{Player, Ticket};
use std::collections::{BTreeMap, BTreeSet};

/// Sums of floats are not exact; limits are checked with this much slack.
const SLACK: f64 = 1e-6;

/// Why a match breaks its rule set.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("match {match_id}: {reason}")]
pub struct Violation {
    pub match_id: String,
    pub reason: String,
}

/// Checks `m`, formed from `pool` under `rule_set`, against every rule at the expansion level in force
/// for its oldest ticket at the match's creation.
pub fn check_match(m: &Match, pool: &[Ticket], rule_set: &RuleSet) -> Result<(), Violation> {
    let fail = |reason: String| Violation {
        match_id: m.id.to_string(),
        reason,
    };
    let by_id: BTreeMap<&str, &Ticket> = pool.iter().map(|t| (t.id.as_str(), t)).collect();

    // Teams: the rule set's slots, in order; tickets whole and each in one team only.
    let slots = rule_set.team_slots();
    let names: Vec<&str> = m.teams.iter().map(|t| &*t.name).collect();
    let expected: Vec<&str> = slots.iter().map(|s| s.name.as_str()).collect();
    if names != expected {
        return Err(fail(format!("teams are {names:?}, the rule set has {expected:?}")));
    }
    let mut seen = BTreeSet::new();
    let mut teams: Vec<Vec<&Player>> = Vec::new();
    let mut tickets: Vec<&Ticket> = Vec::new();
    for team in &m.teams {
        let mut players = Vec::new();
        for id in &team.tickets {
            let ticket = by_id
                .get(id.as_str())
                .ok_or_else(|| fail(format!("ticket {id} is not in the pool")))?;
            if !seen.insert(id.as_str()) {
                return Err(fail(format!("ticket {id} is in the match twice")));
            }
            players.extend(ticket.players.iter());
            tickets.push(ticket);
        }
        let listed: Vec<&str> = team.players.iter().map(|p| p.as_str()).collect();
        let whole: Vec<&str> = players.iter().map(|p| p.id.as_str()).collect();
        if listed != whole {
            return Err(fail(format!(
                "team {} lists players {listed:?} but its tickets hold {whole:?}",
                team.name
            )));
        }
        teams.push(players);
    }
    let oldest = tickets
        .iter()
        .map(|t| t.created_at)
        .min()
        .ok_or_else(|| fail("the match has no tickets".into()))?;
    let waited_ms = m.created_at.as_millis().saturating_sub(oldest.as_millis());
    if waited_ms >= u64::from(rule_set.queue.timeout_seconds) * 1000 {
        return Err(fail(format!("its oldest ticket had timed out ({waited_ms} ms)")));
    }
    let waited = waited_ms as f64 / 1000.0;
    let expanded = |target: ExpansionTarget| rule_set.expansion_for(&target).and_then(|e| e.value_after(waited));
    let rule_limit = |rule: &str, field: RuleField, base: f64| {
        expanded(ExpansionTarget::Rule {
            rule: rule.to_owned(),
            field,
        })
        .unwrap_or(base)
    };

    for (team, players) in rule_set
        .teams
        .iter()
        .flat_map(|t| (0..t.quantity).map(move |_| t))
        .zip(&teams)
    {
        let min = expanded(ExpansionTarget::Team {
            team: team.name.clone(),
            field: TeamField::MinPlayers,
        })
        .map_or(f64::from(team.min_players), |v| v.min(f64::from(team.min_players)));
        let n = players.len() as f64;
        if n + SLACK < min.round() || n > f64::from(team.max_players) {
            return Err(fail(format!(
                "team {} has {n} players; it needs {min} to {}",
                team.name, team.max_players
            )));
        }
    }

    let all: Vec<&Player> = teams.iter().flatten().copied().collect();

    for rule in &rule_set.rules {
        let name = &rule.name;
        match &rule.kind {
            RuleKind::Distance {
                attribute,
                max_distance,
                party_aggregation,
            } => {
                let limit = rule_limit(name, RuleField::MaxDistance, *max_distance);
                let mut values = Vec::new();
                for ticket in &tickets {
                    let members: Option<Vec<f64>> = ticket
                        .players
                        .iter()
                        .map(|p| resolve(rule_set, p, attribute).and_then(|v| v.as_number()))
                        .collect();
                    let members = members.ok_or_else(|| fail(format!("rule {name}: a player has no {attribute}")))?;
                    values.push(aggregate(&members, *party_aggregation));
                }
                let spread = spread(&values);
                if spread > limit + SLACK {
                    return Err(fail(format!(
                        "rule {name}: {attribute} spans {spread}, more than {limit}"
                    )));
                }
            }
            RuleKind::TeamBalance {
                attribute,
                max_difference,
            } => {
                let limit = rule_limit(name, RuleField::MaxDifference, *max_difference);
                let mut averages = Vec::new();
                for players in teams.iter().filter(|p| !p.is_empty()) {
                    let values: Option<Vec<f64>> = players
                        .iter()
                        .map(|p| resolve(rule_set, p, attribute).and_then(|v| v.as_number()))
                        .collect();
                    let values = values.ok_or_else(|| fail(format!("rule {name}: a player has no {attribute}")))?;
                    averages.push(values.iter().sum::<f64>() / values.len() as f64);
                }
                let difference = spread(&averages);
                if difference > limit + SLACK {
                    return Err(fail(format!(
                        "rule {name}: team averages differ by {difference}, more than {limit}"
                    )));
                }
            }
            RuleKind::Latency { max_latency } => {
                let limit = rule_limit(name, RuleField::MaxLatency, f64::from(*max_latency));
                let region = m
                    .region
                    .as_deref()
                    .ok_or_else(|| fail(format!("rule {name}: no region was chosen")))?;
                let worst = worst_latency(&all, region)
                    .ok_or_else(|| fail(format!("rule {name}: some player has no latency to {region}")))?;
                if f64::from(worst) > limit + SLACK {
                    return Err(fail(format!("rule {name}: {worst} ms to {region}, more than {limit}")));
                }
            }
            RuleKind::Comparison { attribute, operation } => {
                let values: Vec<String> = all
                    .iter()
                    .map(|p| resolve(rule_set, p, attribute).map(comparable))
                    .collect::<Option<_>>()
                    .ok_or_else(|| fail(format!("rule {name}: a player has no {attribute}")))?;
                let distinct: BTreeSet<&String> = values.iter().collect();
                let ok = match operation {
                    ComparisonOp::Equal => distinct.len() <= 1,
                    ComparisonOp::NotEqual => distinct.len() == values.len(),
                };
                if !ok {
                    return Err(fail(format!("rule {name}: {attribute} values {values:?}")));
                }
            }
            RuleKind::Collection { attribute, min_count } => {
                let limit = rule_limit(name, RuleField::MinCount, f64::from(*min_count)).round();
                let mut common: Option<BTreeSet<&str>> = None;
                for p in &all {
                    let list: BTreeSet<&str> = resolve(rule_set, p, attribute)
                        .and_then(|v| v.as_string_list())
                        .unwrap_or(&[])
                        .iter()
                        .map(String::as_str)
                        .collect();
                    common = Some(match common {
                        None => list,
                        Some(c) => c.intersection(&list).copied().collect(),
                    });
                }
                let common = common.unwrap_or_default();
                let chosen = m.collections.get(name.as_str()).map(Vec::as_slice).unwrap_or(&[]);
                let chosen_set: BTreeSet<&str> = chosen.iter().map(String::as_str).collect();
                if (common.len() as f64) < limit
                    || (chosen.len() as f64) < limit
                    || chosen_set.len() != chosen.len()
                    || !chosen_set.is_subset(&common)
                {
                    return Err(fail(format!(
                        "rule {name}: chose {chosen:?} from common values {common:?}; needs {limit}"
                    )));
                }
            }
            RuleKind::Composition { attribute, per_team } => {
                let slots: Vec<&str> = per_team
                    .iter()
                    .flat_map(|(role, &n)| (0..n).map(move |_| role.as_str()))
                    .collect();
                for (team, players) in m.teams.iter().zip(&teams) {
                    let roles: Vec<Vec<&str>> = players
                        .iter()
                        .map(|p| {
                            resolve(rule_set, p, attribute)
                                .and_then(|v| v.as_string_list())
                                .unwrap_or(&[])
                                .iter()
                                .map(String::as_str)
                                .collect()
                        })
                        .collect();
                    if !fill_roles(&slots, &roles, &mut vec![false; roles.len()]) {
                        return Err(fail(format!(
                            "rule {name}: team {} cannot field {per_team:?} from {roles:?}",
                            team.name
                        )));
                    }
                }
            }
        }
    }

    // Latency or not, a chosen region is the one with the lowest worst latency.
    if let Some(region) = &m.region {
        let worst =
            worst_latency(&all, region).ok_or_else(|| fail(format!("some player has no latency to {region}")))?;
        let regions: BTreeSet<&str> = all.iter().flat_map(|p| p.latencies.regions()).collect();
        if let Some(better) = regions
            .iter()
            .find(|r| worst_latency(&all, r).is_some_and(|w| w < worst))
        {
            return Err(fail(format!("region {region} ({worst} ms) was chosen over {better}")));
        }
        if m.quality.worst_latency_ms != Some(worst) {
            return Err(fail(format!(
                "reports a worst latency of {:?}, it is {worst}",
                m.quality.worst_latency_ms
            )));
        }
    } else if rule_set
        .rules
        .iter()
        .any(|r| matches!(r.kind, RuleKind::Latency { .. }))
    {
        return Err(fail("no region, under a latency rule".into()));
    }
    Ok(())
}

/// A player's value of an attribute, the rule set's default when it is missing or of the wrong type.
fn resolve<'a>(rule_set: &'a RuleSet, player: &'a Player, attribute: &str) -> Option<&'a AttributeValue> {
    let declared = rule_set.attribute(attribute)?;
    player
        .attributes
        .get(attribute)
        .filter(|v| v.kind() == declared.kind)
        .or(declared.default.as_ref())
        .filter(|v| v.kind() != AttributeType::Number || v.as_number().is_some_and(f64::is_finite))
}

fn comparable(v: &AttributeValue) -> String {
    match v {
        AttributeValue::Number(n) if *n == 0.0 => "n:0".to_owned(),
        AttributeValue::Number(n) => format!("n:{n}"),
        AttributeValue::String(s) => format!("s:{s}"),
        other => format!("{other:?}"),
    }
}

fn aggregate(values: &[f64], aggregation: PartyAggregation) -> f64 {
    match aggregation {
        PartyAggregation::Avg => values.iter().sum::<f64>() / values.len() as f64,
        PartyAggregation::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
        PartyAggregation::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    }
}

fn spread(values: &[f64]) -> f64 {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.is_empty() {
        0.0
    } else {
        hi - lo
    }
}

/// The highest latency of any player to `region`, or `None` if one did not measure it.
fn worst_latency(players: &[&Player], region: &str) -> Option<u32> {
    players
        .iter()
        .map(|p| p.latencies.get(region))
        .try_fold(0, |worst, l| l.map(|l| worst.max(l)))
}

/// Whether the role `slots` can each be given a different player who lists that role: backtracking.
fn fill_roles(slots: &[&str], roles: &[Vec<&str>], taken: &mut Vec<bool>) -> bool {
    let Some((role, rest)) = slots.split_first() else {
        return true;
    };
    for p in 0..roles.len() {
        if !taken[p] && roles[p].contains(role) {
            taken[p] = true;
            if fill_roles(rest, roles, taken) {
                return true;
            }
            taken[p] = false;
        }
    }
    false
}
