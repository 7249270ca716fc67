//! Property tests of the matcher's invariants, over random rule sets and random pools.
//!
//! Rule sets are drawn from every rule type, with parties, several teams, team quantities and
//! expansions; pools mix parties, missing attributes, regions and ages on both sides of the timeout.
//! Every match is run through the independent checker, for both pairings.

use proptest::prelude::*;
use queuematch_core::matcher::check::check_match;
use queuematch_core::matcher::{round_with, Pairing, RoundOutcome};
use queuematch_core::{AttributeValue, Player, RuleSet, Ticket, Timestamp};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const NOW: u64 = 130_000;
const REGIONS: [&str; 3] = ["eu", "us", "ap"];
const MAPS: [&str; 3] = ["harbor", "foundry", "summit"];
const ROLES: [&str; 3] = ["tank", "healer", "dps"];

/// A random but valid rule set, as JSON.
fn rule_sets() -> impl Strategy<Value = RuleSet> {
    let teams = prop::collection::vec((1u32..=3, 0u32..=2, 1u32..=2), 1..=3);
    let rules = (
        prop::option::of((0.0f64..600.0, 0usize..3)),
        prop::option::of(0.0f64..300.0),
        prop::option::of(20u32..250),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(1u32..=2),
        any::<bool>(),
    );
    let expansions = (any::<bool>(), any::<bool>(), any::<bool>(), 30u32..=120);
    (teams, rules, expansions).prop_filter_map("valid rule set", |(teams, rules, expansions)| {
        let (distance, balance, latency, equal, distinct, collection, composition) = rules;
        let (expand_distance, expand_latency, expand_team, timeout) = expansions;
        let teams: Vec<Value> = teams
            .iter()
            .enumerate()
            .map(|(i, &(min, extra, quantity))| {
                json!({"name": format!("t{i}"), "minPlayers": min, "maxPlayers": min + extra, "quantity": quantity})
            })
            .collect();
        let smallest_team = teams
            .iter()
            .filter_map(|t| t["maxPlayers"].as_u64())
            .min()
            .unwrap_or(1);
        let mut rules_json = Vec::new();
        if let Some((max, aggregation)) = distance {
            let aggregation = ["avg", "min", "max"][aggregation];
            rules_json.push(json!({"name": "fair", "type": "distance", "attribute": "skill", "maxDistance": max, "partyAggregation": aggregation}));
        }
        let slots: u64 = teams.iter().filter_map(|t| t["quantity"].as_u64()).sum();
        if let Some(max) = balance.filter(|_| slots >= 2) {
            rules_json.push(json!({"name": "even", "type": "teamBalance", "attribute": "skill", "maxDifference": max}));
        }
        if let Some(max) = latency {
            rules_json.push(json!({"name": "ping", "type": "latency", "maxLatency": max}));
        }
        if equal {
            rules_json.push(json!({"name": "mode", "type": "comparison", "attribute": "mode", "operation": "="}));
        }
        if distinct {
            rules_json.push(json!({"name": "unique", "type": "comparison", "attribute": "badge", "operation": "!="}));
        }
        if let Some(min_count) = collection {
            rules_json.push(json!({"name": "map", "type": "collection", "attribute": "maps", "minCount": min_count}));
        }
        if composition {
            let per_team = if smallest_team >= 2 { json!({"tank": 1, "dps": 1}) } else { json!({"tank": 1}) };
            rules_json.push(json!({"name": "roles", "type": "composition", "attribute": "roles", "perTeam": per_team}));
        }
        let mut expansions_json = Vec::new();
        if expand_distance && distance.is_some() {
            expansions_json.push(json!({"target": "rules[fair].maxDistance", "steps": [{"waitTimeSeconds": 10, "value": 700}, {"waitTimeSeconds": 25, "value": 1500}]}));
        }
        if expand_latency && latency.is_some() {
            expansions_json.push(json!({"target": "rules[ping].maxLatency", "steps": [{"waitTimeSeconds": 15, "value": 400}]}));
        }
        if expand_team {
            expansions_json.push(json!({"target": "teams[t0].minPlayers", "steps": [{"waitTimeSeconds": 20, "value": 0}]}));
        }
        let value = json!({
            "name": "random",
            "ruleLanguageVersion": "1.0",
            "playerAttributes": [
                {"name": "skill", "type": "number", "default": 1500},
                {"name": "mode", "type": "string", "default": "ranked"},
                {"name": "badge", "type": "number"},
                {"name": "maps", "type": "string_list", "default": ["harbor"]},
                {"name": "roles", "type": "string_list", "default": ["dps"]}
            ],
            "teams": teams,
            "rules": rules_json,
            "expansions": expansions_json,
            "queue": {"timeoutSeconds": timeout}
        });
        RuleSet::from_json(&value).ok()
    })
}

fn subset(names: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set(prop::sample::select(names), 0..=names.len())
        .prop_map(|s| s.into_iter().map(str::to_owned).collect())
}

fn players() -> impl Strategy<Value = Player> {
    (
        prop::option::of(1000.0f64..2000.0),
        prop::option::of(prop::sample::select(vec!["ranked", "casual"])),
        0u32..40,
        prop::option::of(subset(&MAPS)),
        prop::option::of(subset(&ROLES)),
        prop::collection::btree_map(prop::sample::select(REGIONS.to_vec()), 10u32..200, 0..=6),
    )
        .prop_map(|(skill, mode, badge, maps, roles, latencies)| {
            let mut p = Player::new("unnamed").with_attribute("badge", AttributeValue::Number(f64::from(badge)));
            if let Some(skill) = skill {
                p = p.with_attribute("skill", AttributeValue::Number(skill.round()));
            }
            if let Some(mode) = mode {
                p = p.with_attribute("mode", AttributeValue::String(mode.into()));
            }
            if let Some(maps) = maps {
                p = p.with_attribute("maps", AttributeValue::StringList(maps));
            }
            if let Some(roles) = roles {
                p = p.with_attribute("roles", AttributeValue::StringList(roles));
            }
            for (region, ms) in latencies {
                p = p.with_latency(region, ms);
            }
            p
        })
}

/// Up to 60 tickets of 1 to 3 players, with ages from brand new to past any timeout.
fn pools() -> impl Strategy<Value = Vec<Ticket>> {
    prop::collection::vec((prop::collection::vec(players(), 1..=3), 0u64..=NOW), 0..60).prop_map(|tickets| {
        tickets
            .into_iter()
            .enumerate()
            .map(|(i, (mut party, created_at))| {
                for (j, p) in party.iter_mut().enumerate() {
                    p.id = format!("p{i}-{j}").into();
                }
                // Coarse ages, so that ties on created_at (broken by id) are common.
                Ticket::queued(
                    format!("t{i:02}"),
                    "random",
                    party,
                    Timestamp(created_at / 5_000 * 5_000),
                )
            })
            .collect()
    })
}

fn ids(outcome: &RoundOutcome) -> Vec<String> {
    outcome
        .matches
        .iter()
        .flat_map(|m| m.ticket_ids())
        .chain(&outcome.timed_out)
        .chain(&outcome.remaining)
        .map(|t| t.to_string())
        .collect()
}

fn check_invariants(pool: &[Ticket], rule_set: &RuleSet, pairing: Pairing) -> Result<(), TestCaseError> {
    let now = Timestamp(NOW);
    let outcome = round_with(pool, rule_set, now, pairing);

    // Nothing lost, nothing twice: matched + timed out + remaining is the pool, exactly.
    let mut seen = ids(&outcome);
    prop_assert_eq!(seen.len(), pool.len());
    seen.sort();
    let mut expected: Vec<String> = pool.iter().map(|t| t.id.to_string()).collect();
    expected.sort();
    prop_assert_eq!(seen, expected);

    let max_team: Vec<u32> = rule_set.team_slots().iter().map(|t| t.max_players).collect();
    for m in &outcome.matches {
        // Every match satisfies its rules at the level in force (parties whole, sizes in bounds…).
        if let Err(violation) = check_match(m, pool, rule_set) {
            return Err(TestCaseError::fail(violation.to_string()));
        }
        for (team, &max) in m.teams.iter().zip(&max_team) {
            prop_assert!(team.players.len() as u32 <= max);
        }
        let players: BTreeSet<_> = m.player_ids().collect();
        prop_assert_eq!(players.len(), m.player_ids().count());
    }

    // Timed out: exactly the tickets that waited the timeout.
    let timeout_ms = u64::from(rule_set.queue.timeout_seconds) * 1000;
    let due: BTreeSet<String> = pool
        .iter()
        .filter(|t| NOW - t.created_at.as_millis() >= timeout_ms)
        .map(|t| t.id.to_string())
        .collect();
    let timed_out: BTreeSet<String> = outcome.timed_out.iter().map(|t| t.to_string()).collect();
    prop_assert_eq!(timed_out, due);

    // Deterministic, and blind to the order the pool was read in.
    prop_assert_eq!(&round_with(pool, rule_set, now, pairing), &outcome);
    let reversed: Vec<Ticket> = pool.iter().rev().cloned().collect();
    prop_assert_eq!(&round_with(&reversed, rule_set, now, pairing), &outcome);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_matcher_keeps_every_invariant(rule_set in rule_sets(), pool in pools()) {
        check_invariants(&pool, &rule_set, Pairing::ClosestSkill)?;
    }

    #[test]
    fn the_first_come_first_served_baseline_keeps_every_invariant(rule_set in rule_sets(), pool in pools()) {
        check_invariants(&pool, &rule_set, Pairing::ArrivalOrder)?;
    }
}

/// Random pools under the shipped example rule sets, which the simulator and the benchmark use.
fn example(name: &str) -> RuleSet {
    let path = format!("{}/../../examples/rulesets/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    RuleSet::from_json_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_example_rule_sets_keep_every_invariant(
        which in 0usize..4,
        pool in prop::collection::vec(pools(), 1..=4).prop_map(|pools| {
            // Bigger pools, so that 5v5 and 60-player matches form.
            pools.into_iter().enumerate().flat_map(|(k, pool)| pool.into_iter().map(move |mut t| {
                t.id = format!("{k}-{}", t.id).into();
                for p in &mut t.players { p.id = format!("{k}-{}", p.id).into(); }
                t
            })).collect::<Vec<_>>()
        }),
    ) {
        let rule_set = example(["ranked-1v1", "ranked-5v5", "coop-4", "battle-royale-60"][which]);
        check_invariants(&pool, &rule_set, Pairing::ClosestSkill)?;
    }
}
