//! Scenario tests of the matcher: one behaviour each, in GIVEN / WHEN / THEN shape.

use super::check::check_match;
use super::*;
use crate::attribute::AttributeValue;
use crate::ids::{PlayerId, TicketId};
use crate::ticket::Player;
use serde_json::json;

fn rule_set(value: serde_json::Value) -> RuleSet {
    RuleSet::from_json(&value).unwrap()
}

fn duel(extra_rules: serde_json::Value, expansions: serde_json::Value) -> RuleSet {
    let mut rules = vec![json!({"name": "fair", "type": "distance", "attribute": "skill", "maxDistance": 100})];
    rules.extend(extra_rules.as_array().cloned().unwrap_or_default());
    rule_set(json!({
        "name": "duel",
        "ruleLanguageVersion": "1.0",
        "playerAttributes": [{"name": "skill", "type": "number", "default": 1500}],
        "teams": [{"name": "red", "minPlayers": 1, "maxPlayers": 1}, {"name": "blue", "minPlayers": 1, "maxPlayers": 1}],
        "rules": rules,
        "expansions": expansions,
        "queue": {"timeoutSeconds": 60}
    }))
}

fn player(id: &str, skill: f64) -> Player {
    Player::new(id).with_attribute("skill", AttributeValue::Number(skill))
}

fn ticket(id: &str, at_ms: u64, players: Vec<Player>) -> Ticket {
    Ticket::queued(id, "duel", players, Timestamp(at_ms))
}

fn solo(id: &str, at_ms: u64, skill: f64) -> Ticket {
    ticket(id, at_ms, vec![player(&format!("p-{id}"), skill)])
}

fn pairs(outcome: &RoundOutcome) -> Vec<Vec<&str>> {
    outcome
        .matches
        .iter()
        .map(|m| m.ticket_ids().map(|t| t.as_str()).collect())
        .collect()
}

fn assert_valid(outcome: &RoundOutcome, pool: &[Ticket], rules: &RuleSet) {
    for m in &outcome.matches {
        check_match(m, pool, rules).unwrap();
    }
}

#[test]
fn the_oldest_ticket_gets_the_closest_opponent_not_the_next_arrival() {
    // GIVEN a 1500 waiting first, then a 1590 and a 1510
    let rules = duel(json!([]), json!([]));
    let pool = vec![solo("a", 0, 1500.0), solo("b", 1, 1590.0), solo("c", 2, 1510.0)];
    // WHEN a round runs
    let outcome = round(&pool, &rules, Timestamp(1_000));
    // THEN the oldest plays the closest, and the third waits
    assert_eq!(pairs(&outcome), vec![vec!["a", "c"]]);
    assert_eq!(outcome.remaining, vec![TicketId::from("b")]);
    assert_eq!(outcome.matches[0].quality.skill_spread, Some(10.0));
    assert_valid(&outcome, &pool, &rules);
}

#[test]
fn a_new_ticket_holds_out_for_a_close_opponent_for_its_first_seconds() {
    // GIVEN two players 60 apart, within maxDistance 100
    let rules = duel(json!([]), json!([]));
    let pool = vec![solo("a", 0, 1500.0), solo("b", 0, 1560.0)];
    // WHEN they have just arrived, THEN they wait for someone closer
    assert!(round(&pool, &rules, Timestamp(500)).matches.is_empty());
    // WHEN they have waited, THEN they take each other, within the rule set's limit
    assert_eq!(
        pairs(&round(&pool, &rules, Timestamp(PATIENCE_MS))),
        vec![vec!["a", "b"]]
    );
    // First come, first served never waits
    let fcfs = round_with(&pool, &rules, Timestamp(500), Pairing::ArrivalOrder);
    assert_eq!(pairs(&fcfs), vec![vec!["a", "b"]]);
}

#[test]
fn first_come_first_served_pairs_in_arrival_order_within_the_rules() {
    let rules = duel(json!([]), json!([]));
    let pool = vec![solo("a", 0, 1500.0), solo("b", 1, 1590.0), solo("c", 2, 1510.0)];
    let outcome = round_with(&pool, &rules, Timestamp(1_000), Pairing::ArrivalOrder);
    assert_eq!(pairs(&outcome), vec![vec!["a", "b"]]);
    assert_valid(&outcome, &pool, &rules);
}

#[test]
fn first_come_first_served_looks_past_any_number_of_tickets_that_cannot_join() {
    // GIVEN a 1500 waiting first, then 300 arrivals far above it (who can play each other), then a
    // 1550 that fits it
    let rules = duel(json!([]), json!([]));
    let mut pool = vec![solo("first", 0, 1500.0)];
    pool.extend((0..300).map(|i| solo(&format!("far-{i:03}"), 1 + i, 4000.0)));
    pool.push(solo("fits", 400, 1550.0));
    // WHEN first come, first served runs a round
    let outcome = round_with(&pool, &rules, Timestamp(10_000), Pairing::ArrivalOrder);
    // THEN the first arrival plays the one that fits, however many arrived between them
    assert_eq!(pairs(&outcome)[0], vec!["first", "fits"]);
    assert_eq!(outcome.matches.len(), 151);
    assert!(outcome.remaining.is_empty());
    assert_valid(&outcome, &pool, &rules);
}

#[test]
fn a_ticket_that_waited_longer_wins_a_tie() {
    // GIVEN two equally close opponents for the oldest ticket
    let rules = duel(json!([]), json!([]));
    let pool = vec![
        solo("z-old", 0, 1500.0),
        solo("late", 20, 1550.0),
        solo("early", 10, 1450.0),
    ];
    let outcome = round(&pool, &rules, Timestamp(1_000));
    // THEN the one who waited longer is taken
    assert_eq!(pairs(&outcome), vec![vec!["z-old", "early"]]);
}

#[test]
fn expansions_follow_the_oldest_tickets_wait() {
    // GIVEN two players 150 apart, beyond maxDistance 100 until 10 s of waiting
    let rules = duel(
        json!([]),
        json!([{"target": "rules[fair].maxDistance", "steps": [{"waitTimeSeconds": 10, "value": 200}]}]),
    );
    let pool = vec![solo("a", 0, 1500.0), solo("b", 5_000, 1650.0)];
    // WHEN the oldest has waited 9 s, THEN nothing; at 10 s, THEN a match at the expanded level
    assert!(round(&pool, &rules, Timestamp(9_000)).matches.is_empty());
    let outcome = round(&pool, &rules, Timestamp(10_000));
    assert_eq!(pairs(&outcome), vec![vec!["a", "b"]]);
    assert_eq!(outcome.matches[0].quality.expansion_steps[..], [1]);
    assert_valid(&outcome, &pool, &rules);
}

#[test]
fn tickets_time_out_after_the_queue_timeout_and_the_next_change_is_announced() {
    let rules = duel(
        json!([]),
        json!([{"target": "rules[fair].maxDistance", "steps": [{"waitTimeSeconds": 10, "value": 200}]}]),
    );
    let pool = vec![solo("old", 0, 1500.0), solo("new", 55_000, 2500.0)];
    let outcome = round(&pool, &rules, Timestamp(60_000));
    assert_eq!(outcome.timed_out, vec![TicketId::from("old")]);
    assert_eq!(outcome.remaining, vec![TicketId::from("new")]);
    // `new` has waited 5 s: its first expansion step is 5 s away, before its timeout.
    assert_eq!(outcome.next_change_at, Some(Timestamp(65_000)));
}

#[test]
fn the_region_minimises_the_worst_latency_and_the_latency_rule_binds() {
    let rules = duel(
        json!([{"name": "ping", "type": "latency", "maxLatency": 80}]),
        json!([]),
    );
    let with = |id: &str, lat: &[(&str, u32)]| {
        let mut p = player(&format!("p-{id}"), 1500.0);
        for (r, ms) in lat {
            p = p.with_latency(r, *ms);
        }
        ticket(id, 0, vec![p])
    };
    let pool = vec![
        with("a", &[("eu", 30), ("us", 70)]),
        with("b", &[("eu", 75), ("us", 40)]),
        with("far", &[("ap", 20)]),
    ];
    let outcome = round(&pool, &rules, Timestamp(1_000));
    assert_eq!(pairs(&outcome), vec![vec!["a", "b"]]);
    // eu's worst is 75, us's is 70
    assert_eq!(outcome.matches[0].region.as_deref(), Some("us"));
    assert_eq!(outcome.matches[0].quality.worst_latency_ms, Some(70));
    assert_eq!(outcome.remaining, vec![TicketId::from("far")]);
    assert_valid(&outcome, &pool, &rules);
}

#[test]
fn without_a_latency_rule_or_latencies_no_region_is_needed() {
    let rules = duel(json!([]), json!([]));
    let pool = vec![solo("a", 0, 1500.0), solo("b", 0, 1500.0)];
    let outcome = round(&pool, &rules, Timestamp(0));
    assert_eq!(outcome.matches.len(), 1);
    assert_eq!(outcome.matches[0].region, None);
}

#[test]
fn an_equality_rule_partitions_the_pool() {
    let rules = rule_set(json!({
        "name": "modes", "ruleLanguageVersion": "1.0",
        "playerAttributes": [{"name": "mode", "type": "string", "default": "ranked"}],
        "teams": [{"name": "a", "minPlayers": 1, "maxPlayers": 1}, {"name": "b", "minPlayers": 1, "maxPlayers": 1}],
        "rules": [{"name": "same", "type": "comparison", "attribute": "mode", "operation": "="}]
    }));
    let casual = |id: &str| {
        ticket(
            id,
            0,
            vec![Player::new(id).with_attribute("mode", AttributeValue::String("casual".into()))],
        )
    };
    let ranked = |id: &str| ticket(id, 1, vec![Player::new(id)]);
    let pool = vec![casual("c1"), ranked("r1"), casual("c2"), ranked("r2")];
    let outcome = round(&pool, &rules, Timestamp(10));
    assert_eq!(pairs(&outcome), vec![vec!["c1", "c2"], vec!["r1", "r2"]]);
    assert_valid(&outcome, &pool, &rules);
}

fn five_v_five() -> RuleSet {
    rule_set(json!({
        "name": "ranked-5v5", "ruleLanguageVersion": "1.0",
        "playerAttributes": [
            {"name": "skill", "type": "number", "default": 1500},
            {"name": "roles", "type": "string_list", "default": ["dps"]}
        ],
        "teams": [{"name": "red", "minPlayers": 5, "maxPlayers": 5}, {"name": "blue", "minPlayers": 5, "maxPlayers": 5}],
        "rules": [
            {"name": "fair", "type": "distance", "attribute": "skill", "maxDistance": 400},
            {"name": "even", "type": "teamBalance", "attribute": "skill", "maxDifference": 40},
            {"name": "roles", "type": "composition", "attribute": "roles", "perTeam": {"tank": 1, "healer": 1, "dps": 3}}
        ]
    }))
}

fn role_player(id: &str, skill: f64, roles: &[&str]) -> Player {
    player(id, skill).with_attribute(
        "roles",
        AttributeValue::StringList(roles.iter().map(|r| r.to_string()).collect()),
    )
}

#[test]
fn five_v_five_fields_every_role_on_both_sides_and_balances_the_teams() {
    let mut pool = Vec::new();
    let specs: [(&str, f64, &[&str]); 10] = [
        ("t1", 1700.0, &["tank"]),
        ("t2", 1500.0, &["tank"]),
        ("h1", 1600.0, &["healer"]),
        ("h2", 1450.0, &["healer", "dps"]),
        ("d1", 1550.0, &["dps"]),
        ("d2", 1520.0, &["dps"]),
        ("d3", 1480.0, &["dps"]),
        ("d4", 1610.0, &["dps"]),
        ("d5", 1390.0, &["dps"]),
        ("d6", 1500.0, &["dps"]),
    ];
    for (i, (id, skill, roles)) in specs.iter().enumerate() {
        pool.push(ticket(
            id,
            i as u64,
            vec![role_player(&format!("p-{id}"), *skill, roles)],
        ));
    }
    let rules = five_v_five();
    // Waited long enough that the match may use its whole distance limit.
    let outcome = round(&pool, &rules, Timestamp(PATIENCE_MS));
    assert_eq!(outcome.matches.len(), 1);
    let m = &outcome.matches[0];
    assert_valid(&outcome, &pool, &rules);
    // Exhaustive search: no other valid split is more even than this one.
    assert!(m.quality.team_imbalance.unwrap() <= 10.0, "{:?}", m.quality);
}

#[test]
fn a_match_that_cannot_field_the_roles_is_not_formed() {
    let rules = five_v_five();
    let pool: Vec<Ticket> = (0..10)
        .map(|i| {
            ticket(
                &format!("d{i}"),
                i,
                vec![role_player(&format!("p{i}"), 1500.0, &["dps"])],
            )
        })
        .collect();
    let outcome = round(&pool, &rules, Timestamp(100));
    assert!(outcome.matches.is_empty());
    assert_eq!(outcome.remaining.len(), 10);
}

#[test]
fn a_party_is_never_split_and_fills_one_team() {
    let rules = rule_set(json!({
        "name": "trios", "ruleLanguageVersion": "1.0",
        "playerAttributes": [{"name": "skill", "type": "number", "default": 1500}],
        "teams": [{"name": "a", "minPlayers": 3, "maxPlayers": 3}, {"name": "b", "minPlayers": 3, "maxPlayers": 3}],
        "rules": [{"name": "even", "type": "teamBalance", "attribute": "skill", "maxDifference": 500}]
    }));
    let pool = vec![
        ticket("duo", 0, vec![player("d1", 1500.0), player("d2", 1500.0)]),
        ticket(
            "trio",
            1,
            vec![player("t1", 1500.0), player("t2", 1500.0), player("t3", 1500.0)],
        ),
        ticket("s1", 2, vec![player("s1", 1500.0)]),
    ];
    let outcome = round(&pool, &rules, Timestamp(10));
    assert_eq!(outcome.matches.len(), 1);
    let teams: Vec<Vec<&str>> = outcome.matches[0]
        .teams
        .iter()
        .map(|t| t.tickets.iter().map(|t| t.as_str()).collect())
        .collect();
    assert!(teams.contains(&vec!["trio"]), "{teams:?}");
    assert_valid(&outcome, &pool, &rules);
}

#[test]
fn a_collection_value_every_player_has_is_chosen_in_the_oldest_players_order() {
    let rules = rule_set(json!({
        "name": "maps", "ruleLanguageVersion": "1.0",
        "playerAttributes": [{"name": "maps", "type": "string_list"}],
        "teams": [{"name": "all", "minPlayers": 2, "maxPlayers": 2}],
        "rules": [{"name": "map", "type": "collection", "attribute": "maps", "minCount": 1}]
    }));
    let maps = |id: &str, at: u64, list: &[&str]| {
        let list = list.iter().map(|m| m.to_string()).collect();
        ticket(
            id,
            at,
            vec![Player::new(id).with_attribute("maps", AttributeValue::StringList(list))],
        )
    };
    let pool = vec![
        maps("a", 0, &["summit", "harbor"]),
        maps("b", 1, &["dunes"]),
        maps("c", 2, &["harbor", "summit"]),
    ];
    let outcome = round(&pool, &rules, Timestamp(10));
    assert_eq!(pairs(&outcome), vec![vec!["a", "c"]]);
    assert_eq!(outcome.matches[0].collections["map"], vec!["summit".to_string()]);
    assert_valid(&outcome, &pool, &rules);
}

#[test]
fn a_team_minimum_expansion_lets_a_match_start_short() {
    let rules = rule_set(json!({
        "name": "squad", "ruleLanguageVersion": "1.0",
        "teams": [{"name": "squad", "minPlayers": 4, "maxPlayers": 4}],
        "expansions": [{"target": "teams[squad].minPlayers", "steps": [{"waitTimeSeconds": 30, "value": 3}]}]
    }));
    let pool: Vec<Ticket> = (0..3)
        .map(|i| ticket(&format!("t{i}"), 0, vec![Player::new(format!("p{i}").as_str())]))
        .collect();
    assert!(round(&pool, &rules, Timestamp(29_999)).matches.is_empty());
    let outcome = round(&pool, &rules, Timestamp(30_000));
    assert_eq!(outcome.matches.len(), 1);
    assert_valid(&outcome, &pool, &rules);
}

#[test]
fn missing_attributes_take_the_default_and_a_missing_default_leaves_the_ticket_waiting() {
    let rules = rule_set(json!({
        "name": "d", "ruleLanguageVersion": "1.0",
        "playerAttributes": [{"name": "skill", "type": "number", "default": 1500}, {"name": "level", "type": "number"}],
        "teams": [{"name": "a", "minPlayers": 1, "maxPlayers": 1}, {"name": "b", "minPlayers": 1, "maxPlayers": 1}],
        "rules": [
            {"name": "fair", "type": "distance", "attribute": "skill", "maxDistance": 10},
            {"name": "lvl", "type": "distance", "attribute": "level", "maxDistance": 1000}
        ]
    }));
    let with_level = |id: &str| {
        ticket(
            id,
            0,
            vec![Player::new(id).with_attribute("level", AttributeValue::Number(3.0))],
        )
    };
    let pool = vec![
        with_level("a"),
        ticket("no-level", 0, vec![Player::new("x")]),
        with_level("b"),
    ];
    let outcome = round(&pool, &rules, Timestamp(0));
    assert_eq!(pairs(&outcome), vec![vec!["a", "b"]]);
    assert_eq!(outcome.remaining, vec![TicketId::from("no-level")]);
}

#[test]
fn an_empty_or_oversized_ticket_waits_instead_of_panicking() {
    let rules = duel(json!([]), json!([]));
    let pool = vec![
        ticket("empty", 0, vec![]),
        ticket("party", 0, vec![player("x", 1500.0), player("y", 1500.0)]),
    ];
    let outcome = round(&pool, &rules, Timestamp(0));
    assert!(outcome.matches.is_empty());
    assert_eq!(outcome.remaining.len(), 2);
}

#[test]
fn the_outcome_serialises_in_camel_case() {
    let rules = duel(json!([]), json!([]));
    let pool = vec![solo("a", 0, 1500.0), solo("b", 0, 1500.0)];
    let outcome = round(&pool, &rules, Timestamp(5));
    let value = serde_json::to_value(&outcome).unwrap();
    assert_eq!(value["matches"][0]["quality"]["skillSpread"], json!(0.0));
    assert_eq!(value["matches"][0]["quality"]["waitsMs"], json!([5, 5]));
    assert_eq!(value["timedOut"], json!([]));
    let back: RoundOutcome = serde_json::from_value(value).unwrap();
    assert_eq!(back, outcome);
}

#[test]
fn the_checker_catches_a_broken_match() {
    let rules = duel(json!([]), json!([]));
    let pool = vec![solo("a", 0, 1500.0), solo("b", 0, 1550.0), solo("far", 0, 1900.0)];
    let mut m = round(&pool, &rules, Timestamp(PATIENCE_MS)).matches.remove(0);
    m.teams[1].tickets = [TicketId::from("far")].into();
    m.teams[1].players = [PlayerId::from("p-far")].into();
    let err = check_match(&m, &pool, &rules).unwrap_err();
    assert!(err.reason.contains("rule fair"), "{err}");
}

#[test]
fn a_composition_of_many_roles_is_filled_by_augmenting_paths() {
    // GIVEN nine roles (past the few that Hall's condition handles) and one team of nine
    let roles: Vec<String> = (0..9).map(|r| format!("r{r}")).collect();
    let per_team: serde_json::Map<String, serde_json::Value> = roles.iter().map(|r| (r.clone(), json!(1))).collect();
    let rules = rule_set(json!({
        "name": "nine", "ruleLanguageVersion": "1.0",
        "playerAttributes": [{"name": "roles", "type": "string_list", "default": []}],
        "teams": [{"name": "crew", "minPlayers": 9, "maxPlayers": 9}],
        "rules": [{"name": "crew", "type": "composition", "attribute": "roles", "perTeam": per_team}]
    }));
    let with_roles = |i: usize, list: &[&str]| {
        let list = list.iter().map(|r| r.to_string()).collect();
        ticket(
            &format!("t{i}"),
            i as u64,
            vec![Player::new(format!("p{i}").as_str()).with_attribute("roles", AttributeValue::StringList(list))],
        )
    };
    // Each of the first eight can take its own role or the next one; a ninth only r0, which the
    // first holds: only moving everyone along makes room (r0 → t8, t0 → r1, … t7 → r8).
    let mut pool: Vec<Ticket> = (0..8)
        .map(|i| {
            let own = roles[i].as_str();
            let next = roles[i + 1].as_str();
            with_roles(i, &[own, next])
        })
        .collect();
    pool.push(with_roles(8, &["r0"]));
    // and a tenth who duplicates the ninth, so one of them must wait
    pool.push(with_roles(9, &["r0"]));
    let outcome = round(&pool, &rules, Timestamp(100));
    assert_eq!(outcome.matches.len(), 1);
    assert_eq!(outcome.remaining, vec![TicketId::from("t9")]);
    assert_valid(&outcome, &pool, &rules);
}

/// Runs `pool` through the fastest paths and the general ones, with both pairings, and fails unless
/// they decide the same, byte for byte; returns the outcomes.
fn fastest_as_general(
    pool: &[Ticket],
    rule_set: &RuleSet,
    now: Timestamp,
) -> Result<Vec<RoundOutcome>, proptest::test_runner::TestCaseError> {
    let mut outcomes = Vec::new();
    for pairing in [Pairing::ClosestSkill, Pairing::ArrivalOrder] {
        let fastest = round_by(pool, rule_set, now, pairing, Paths::Fastest);
        let general = round_by(pool, rule_set, now, pairing, Paths::General);
        proptest::prop_assert_eq!(
            serde_json::to_string(&fastest).unwrap(),
            serde_json::to_string(&general).unwrap()
        );
        outcomes.push(fastest);
    }
    Ok(outcomes)
}

/// [`fastest_as_general`], failing too unless every match passes the checker.
fn fastest_as_general_and_valid(
    pool: &[Ticket],
    rule_set: &RuleSet,
    now: Timestamp,
) -> Result<(), proptest::test_runner::TestCaseError> {
    for outcome in fastest_as_general(pool, rule_set, now)? {
        for m in &outcome.matches {
            proptest::prop_assert!(check_match(m, pool, rule_set).is_ok());
        }
    }
    Ok(())
}

/// Ticket `i` of a random pool, created at `created_at` rounded down to 5 s, so that ties on
/// created_at (broken by id) are common.
fn pooled(i: usize, created_at: u64, players: Vec<Player>) -> Ticket {
    ticket(&format!("t{i:02}"), created_at / 5_000 * 5_000, players)
}

/// Random pools of `tickets` tickets created within a minute (see [`pooled`]), each of the players
/// `party` draws: player `j` of ticket `i` is `player(i, j, drawn)`.
fn pools_of<D: std::fmt::Debug + 'static>(
    tickets: std::ops::Range<usize>,
    party: impl proptest::strategy::Strategy<Value = Vec<D>> + 'static,
    player: impl Fn(usize, usize, D) -> Player + 'static,
) -> impl proptest::strategy::Strategy<Value = Vec<Ticket>> {
    use proptest::strategy::Strategy;
    proptest::collection::vec((party, 0u64..=60_000), tickets).prop_map(move |tickets| {
        (tickets.into_iter().enumerate())
            .map(|(i, (drawn, created_at))| {
                let players = (drawn.into_iter().enumerate()).map(|(j, d)| player(i, j, d)).collect();
                pooled(i, created_at, players)
            })
            .collect()
    })
}

/// The duel path (a [`group::Pair`] for each anchor, and its matches built whole) must decide
/// exactly as the general path does, on every rule set it takes: the same outcome, byte for byte.
mod duel_path {
    use super::*;
    use proptest::prelude::*;

    /// A duel's rule set, from the rules a pair applies itself (distance, latency, `=`, team
    /// balance, with expansions), and now and then one that keeps it on the general path.
    fn duel_rule_sets() -> impl Strategy<Value = RuleSet> {
        let rules = (
            prop::option::of((0.0f64..400.0, 0usize..3)),
            prop::option::of(0.0f64..300.0),
            prop::option::of(20u32..250),
            any::<bool>(),
            any::<bool>(),
            0usize..8,
        );
        let expansions = (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), 30u32..=120);
        (rules, expansions).prop_filter_map("valid rule set", |(rules, expansions)| {
            let (distance, balance, latency, equal, quantity, general) = rules;
            let (expand_distance, expand_latency, expand_balance, expand_team, timeout) = expansions;
            let mut rules_json = Vec::new();
            if let Some((max, aggregation)) = distance {
                let aggregation = ["avg", "min", "max"][aggregation];
                rules_json.push(json!({"name": "fair", "type": "distance", "attribute": "skill", "maxDistance": max, "partyAggregation": aggregation}));
            }
            if let Some(max) = balance {
                rules_json.push(json!({"name": "even", "type": "teamBalance", "attribute": "skill", "maxDifference": max}));
            }
            if let Some(max) = latency {
                rules_json.push(json!({"name": "ping", "type": "latency", "maxLatency": max}));
            }
            if equal {
                rules_json.push(json!({"name": "mode", "type": "comparison", "attribute": "mode", "operation": "="}));
            }
            // Rules only the general path applies: the rule set must then take it.
            match general {
                1 => rules_json.push(json!({"name": "unique", "type": "comparison", "attribute": "badge", "operation": "!="})),
                2 => rules_json.push(json!({"name": "map", "type": "collection", "attribute": "maps", "minCount": 1})),
                3 => rules_json.push(json!({"name": "roles", "type": "composition", "attribute": "roles", "perTeam": {"tank": 1}})),
                _ => {}
            }
            let mut expansions_json = Vec::new();
            if expand_distance && distance.is_some() {
                expansions_json.push(json!({"target": "rules[fair].maxDistance", "steps": [{"waitTimeSeconds": 10, "value": 500}, {"waitTimeSeconds": 25, "value": 1500}]}));
            }
            if expand_latency && latency.is_some() {
                expansions_json.push(json!({"target": "rules[ping].maxLatency", "steps": [{"waitTimeSeconds": 15, "value": 400}]}));
            }
            if expand_balance && balance.is_some() {
                expansions_json.push(json!({"target": "rules[even].maxDifference", "steps": [{"waitTimeSeconds": 20, "value": 600}]}));
            }
            if expand_team {
                let team = if quantity { "side" } else { "red" };
                expansions_json.push(json!({"target": format!("teams[{team}].minPlayers"), "steps": [{"waitTimeSeconds": 20, "value": 0}]}));
            }
            let min_players = if general == 4 { 0 } else { 1 };
            let teams = if quantity {
                json!([{"name": "side", "minPlayers": min_players, "maxPlayers": 1, "quantity": 2}])
            } else {
                json!([{"name": "red", "minPlayers": 1, "maxPlayers": 1}, {"name": "blue", "minPlayers": min_players, "maxPlayers": 1}])
            };
            RuleSet::from_json(&json!({
                "name": "duel",
                "ruleLanguageVersion": "1.0",
                "playerAttributes": [
                    {"name": "skill", "type": "number", "default": 1500},
                    {"name": "mode", "type": "string", "default": "ranked"},
                    {"name": "badge", "type": "number", "default": 0},
                    {"name": "maps", "type": "string_list", "default": ["harbor"]},
                    {"name": "roles", "type": "string_list", "default": ["tank"]}
                ],
                "teams": teams,
                "rules": rules_json,
                "expansions": expansions_json,
                "queue": {"timeoutSeconds": timeout}
            }))
            .ok()
        })
    }

    /// Up to 80 tickets, mostly solos (a party cannot play a duel and waits), with missing skills,
    /// unmeasured regions, -0.0 and equal skills, and coarse ages so that ties are common.
    fn pools() -> impl Strategy<Value = Vec<Ticket>> {
        let player = (
            prop::option::of(prop_oneof![Just(-0.0f64), Just(1500.0), 1000.0f64..2000.0]),
            prop::option::of(prop::sample::select(vec!["ranked", "casual"])),
            prop::collection::btree_map(prop::sample::select(vec!["eu", "us", "ap"]), 10u32..200, 0..=3),
        );
        let party = prop::collection::vec(player, 1..=2);
        let tickets = prop::collection::vec((party, prop::bool::weighted(0.9), 0u64..=130_000), 0..80);
        tickets.prop_map(|tickets| {
            tickets
                .into_iter()
                .enumerate()
                .map(|(i, (party, solo, created_at))| {
                    let players = party
                        .into_iter()
                        .take(if solo { 1 } else { 2 })
                        .enumerate()
                        .map(|(j, (skill, mode, latencies))| {
                            let mut p = Player::new(format!("p{i}-{j}"));
                            if let Some(skill) = skill {
                                p = p.with_attribute("skill", AttributeValue::Number(skill.round()));
                            }
                            if let Some(mode) = mode {
                                p = p.with_attribute("mode", AttributeValue::String(mode.into()));
                            }
                            for (region, ms) in latencies {
                                p = p.with_latency(region, ms);
                            }
                            p
                        })
                        .collect();
                    pooled(i, created_at, players)
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        /// Also holds the plain solos' reading to the general reader: the rule sets with one
        /// distance rule and no `=` rule take it for their solo tickets.
        fn the_duel_path_decides_as_the_general_path(rule_set in duel_rule_sets(), pool in pools()) {
            fastest_as_general(&pool, &rule_set, Timestamp(130_000))?;
        }
    }

    #[test]
    fn the_duel_path_is_taken_by_duels_only() {
        let ranked = |name: &str| {
            let path = format!("{}/../../examples/rulesets/{name}.json", env!("CARGO_MANIFEST_DIR"));
            RuleSet::from_json_str(&std::fs::read_to_string(path).unwrap()).unwrap()
        };
        assert!(duels_only(&Plan::new(&ranked("ranked-1v1"))));
        assert!(duels_only(&Plan::new(&duel(json!([]), json!([])))));
        for name in ["ranked-5v5", "coop-4", "battle-royale-60"] {
            assert!(!duels_only(&Plan::new(&ranked(name))), "{name}");
        }
    }
}

/// A candidate no split can balance is refused without a draft on the fastest path: that must
/// decide exactly as drafting it does, on rule sets of many small teams with parties.
mod unbalanceable {
    use super::*;
    use proptest::prelude::*;

    fn squads() -> impl Strategy<Value = RuleSet> {
        (3u32..8, 1u32..3, 2u32..5, 0.0f64..400.0, any::<bool>()).prop_filter_map(
            "valid rule set",
            |(quantity, min, max, difference, expand)| {
                let expansions = if expand {
                    json!([{"target": "rules[even].maxDifference", "steps": [{"waitTimeSeconds": 20, "value": difference * 3.0}]}])
                } else {
                    json!([])
                };
                RuleSet::from_json(&json!({
                    "name": "squads",
                    "ruleLanguageVersion": "1.0",
                    "playerAttributes": [{"name": "skill", "type": "number", "default": 1500}],
                    "teams": [{"name": "squad", "minPlayers": min.min(max), "maxPlayers": max, "quantity": quantity}],
                    "rules": [{"name": "even", "type": "teamBalance", "attribute": "skill", "maxDifference": difference}],
                    "expansions": expansions,
                    "queue": {"timeoutSeconds": 120}
                }))
                .ok()
            },
        )
    }

    /// 15 to 60 tickets of one to three players, skills far apart and alike, coarse ages.
    fn pools() -> impl Strategy<Value = Vec<Ticket>> {
        let skill = prop_oneof![Just(1500.0f64), 500.0f64..2500.0];
        pools_of(15..60, prop::collection::vec(skill, 1..=3), |i, j, s| {
            player(&format!("p{i}-{j}"), s.round())
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn skipping_drafts_that_cannot_balance_changes_no_match(rule_set in squads(), pool in pools()) {
            fastest_as_general_and_valid(&pool, &rule_set, Timestamp(60_000))?;
        }
    }
}

/// A candidate whose split failed drops its newest member by undoing what it changed, on the fastest
/// path: that must decide exactly as offering the other members again does, under every rule the
/// undo restores (distance, latency, `!=`, roles by Hall's counters) and with a collection rule,
/// which it leaves to the rebuild. (More than eight roles, matched by augmenting paths, are left to
/// the rebuild too; they need teams of nine, see `a_composition_of_many_roles_is_filled_by_augmenting_paths`.)
/// Its small teams with roles are split exhaustively, so it also holds the splitter's role shortcuts
/// (`Splitter::roles_out_of_reach`, and the search turning back at a full team short of its roles)
/// to the full search.
mod dropping_the_newest {
    use super::*;
    use proptest::prelude::*;

    const ROLES: [&str; 5] = ["tank", "healer", "dps", "scout", "medic"];

    /// Two or three small teams under a tight balance rule, so that splits fail often, with any of
    /// the other rules.
    fn rule_sets() -> impl Strategy<Value = RuleSet> {
        let rules = (
            prop::option::of(50.0f64..600.0),
            prop::option::of(40u32..200),
            any::<bool>(),
            prop::option::of(any::<bool>()),
            any::<bool>(),
        );
        ((2u32..4, 2u32..4, 0.0f64..40.0), rules).prop_filter_map(
            "valid rule set",
            |((quantity, size, difference), (distance, latency, distinct, roles, collection))| {
                let mut rules = vec![
                    json!({"name": "even", "type": "teamBalance", "attribute": "skill", "maxDifference": difference}),
                ];
                if let Some(max) = distance {
                    rules.push(json!({"name": "fair", "type": "distance", "attribute": "skill", "maxDistance": max}));
                }
                if let Some(max) = latency {
                    rules.push(json!({"name": "ping", "type": "latency", "maxLatency": max}));
                }
                if distinct {
                    rules
                        .push(json!({"name": "unique", "type": "comparison", "attribute": "badge", "operation": "!="}));
                }
                // One role or two, each counted by Hall's condition.
                match roles {
                    Some(false) => rules.push(
                        json!({"name": "roles", "type": "composition", "attribute": "roles", "perTeam": {"tank": 1}}),
                    ),
                    Some(true) => rules.push(json!({"name": "roles", "type": "composition", "attribute": "roles",
                        "perTeam": {"tank": 1, "healer": 1}})),
                    None => {}
                }
                if collection {
                    rules.push(json!({"name": "map", "type": "collection", "attribute": "maps", "minCount": 1}));
                }
                RuleSet::from_json(&json!({
                    "name": "small-teams",
                    "ruleLanguageVersion": "1.0",
                    "playerAttributes": [
                        {"name": "skill", "type": "number", "default": 1500},
                        {"name": "badge", "type": "number", "default": 0},
                        {"name": "roles", "type": "string_list", "default": ["dps"]},
                        {"name": "maps", "type": "string_list", "default": ["harbor"]}
                    ],
                    "teams": [{"name": "side", "minPlayers": size, "maxPlayers": size, "quantity": quantity}],
                    "rules": rules,
                    "queue": {"timeoutSeconds": 120}
                }))
                .ok()
            },
        )
    }

    /// 10 to 50 tickets of one or two players: skills, badges (some shared), roles, maps and
    /// latencies at random, coarse ages.
    fn pools() -> impl Strategy<Value = Vec<Ticket>> {
        let player = (
            1000.0f64..2000.0,
            0u32..12,
            prop::sample::subsequence(ROLES.to_vec(), 1..=2),
            prop::sample::subsequence(vec!["harbor", "foundry"], 1..=2),
            prop::collection::vec(10u32..250, 2),
        );
        pools_of(
            10..50,
            prop::collection::vec(player, 1..=2),
            |i, j, (skill, badge, roles, maps, ms)| {
                let list = |v: Vec<&str>| AttributeValue::StringList(v.into_iter().map(str::to_owned).collect());
                role_player(&format!("p{i}-{j}"), skill.round(), &roles)
                    .with_attribute("badge", AttributeValue::Number(f64::from(badge)))
                    .with_attribute("maps", list(maps))
                    .with_latency("eu-west-1", ms[0])
                    .with_latency("us-east-1", ms[1])
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn undoing_the_newest_member_decides_as_rebuilding(rule_set in rule_sets(), pool in pools()) {
            fastest_as_general_and_valid(&pool, &rule_set, Timestamp(60_000))?;
        }
    }
}

/// Two teams are split by `teams::TwoTeams` on the fastest path: it must keep the leaves the general
/// search keeps, in its order, with the same imbalances to the bit. Teams of different bounds (so
/// the first ticket may go to either), parties, skills with fractions (sums that round), a second
/// balance rule, and up to two composition rules (their reach counts side by side in one word).
mod two_teams {
    use super::*;
    use proptest::prelude::*;

    const ROLES: [&str; 3] = ["tank", "healer", "dps"];

    fn rule_sets() -> impl Strategy<Value = RuleSet> {
        let team = (1u32..4, 0u32..3);
        let rules = (0.0f64..60.0, prop::option::of(0.0f64..20.0), 0usize..4, any::<bool>());
        ((team.clone(), team), rules).prop_filter_map(
            "valid rule set",
            |(((red_min, red_more), (blue_min, blue_more)), (difference, level, roles, gear))| {
                let mut rules = vec![
                    json!({"name": "even", "type": "teamBalance", "attribute": "skill", "maxDifference": difference}),
                    json!({"name": "fair", "type": "distance", "attribute": "skill", "maxDistance": 400}),
                ];
                if let Some(difference) = level {
                    rules.push(
                        json!({"name": "level", "type": "teamBalance", "attribute": "level", "maxDifference": difference}),
                    );
                }
                if roles > 0 {
                    let per_team: serde_json::Map<String, serde_json::Value> =
                        ROLES[..roles].iter().map(|&r| (r.to_owned(), json!(1))).collect();
                    rules.push(json!({"name": "roles", "type": "composition", "attribute": "roles", "perTeam": per_team}));
                }
                if gear {
                    rules.push(
                        json!({"name": "gear", "type": "composition", "attribute": "gear", "perTeam": {"shield": 1}}),
                    );
                }
                RuleSet::from_json(&json!({
                    "name": "two-teams",
                    "ruleLanguageVersion": "1.0",
                    "playerAttributes": [
                        {"name": "skill", "type": "number", "default": 1500},
                        {"name": "level", "type": "number", "default": 10},
                        {"name": "roles", "type": "string_list", "default": ["dps"]},
                        {"name": "gear", "type": "string_list", "default": ["sword"]}
                    ],
                    "teams": [
                        {"name": "red", "minPlayers": red_min, "maxPlayers": red_min + red_more},
                        {"name": "blue", "minPlayers": blue_min, "maxPlayers": blue_min + blue_more}
                    ],
                    "rules": rules,
                    "queue": {"timeoutSeconds": 120}
                }))
                .ok()
            },
        )
    }

    /// 6 to 40 tickets of one to three players.
    fn pools() -> impl Strategy<Value = Vec<Ticket>> {
        let player = (
            1000.0f64..2000.0,
            0.0f64..30.0,
            prop::sample::subsequence(ROLES.to_vec(), 1..=2),
            any::<bool>(),
        );
        pools_of(
            6..40,
            prop::collection::vec(player, 1..=3),
            |i, j, (skill, level, roles, shield)| {
                let gear = if shield { "shield" } else { "sword" };
                role_player(&format!("p{i}-{j}"), skill, &roles)
                    .with_attribute("level", AttributeValue::Number(level))
                    .with_attribute("gear", AttributeValue::StringList(vec![gear.to_owned()]))
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn splitting_in_two_decides_as_the_search(rule_set in rule_sets(), pool in pools()) {
            fastest_as_general_and_valid(&pool, &rule_set, Timestamp(60_000))?;
        }
    }
}

/// `by_skill` against sorting the whole keys, then the age ranks.
mod skill_order {
    use super::*;
    use proptest::prelude::*;

    /// The walked entries' age ranks by (key, age rank), the plain way.
    fn sorted_plainly(keys: &[u64], by_age: &[u32]) -> Vec<u32> {
        let mut ranks: Vec<u32> = (0..u32_of(by_age.len()))
            .filter(|&rank| keys[by_age[rank as usize] as usize] != OUT_OF_WALKS)
            .collect();
        ranks.sort_by_key(|&rank| (keys[by_age[rank as usize] as usize], rank));
        ranks
    }

    fn bits_of(keys: &[u64]) -> (u64, u64) {
        keys.iter()
            .filter(|&&k| k != OUT_OF_WALKS)
            .fold((u64::MAX, 0), |(and, or), &k| (and & k, or | k))
    }

    /// Skills near a few values: equal ones, ones that differ in their last bits only (ties in
    /// the top 32 bits that tell the keys apart), and a few far off, so that the keys differ in
    /// more than 32 bits; some no walk takes.
    fn skills() -> impl Strategy<Value = Vec<Option<f64>>> {
        let skill = prop_oneof![
            (0usize..3, 0u64..4)
                .prop_map(|(base, ulps)| f64::from_bits([1500.0f64, 1500.5, -3.25][base].to_bits() + ulps)),
            -1e6f64..1e6,
            (0i32..20).prop_map(f64::from),
        ];
        prop::collection::vec(prop::option::weighted(0.9, skill), 0..200)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        fn is_the_order_of_the_whole_keys(skills in skills(), seed in any::<u64>()) {
            let keys: Vec<u64> = skills.iter().map(|s| s.map_or(OUT_OF_WALKS, sortable)).collect();
            // Any age order: a permutation of the entries.
            let mut by_age: Vec<u32> = (0..u32_of(keys.len())).collect();
            let mut state = seed | 1;
            for i in (1..by_age.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                by_age.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let order = by_skill(&keys, bits_of(&keys), &by_age);
            prop_assert_eq!(order.to_vec(), sorted_plainly(&keys, &by_age));
        }
    }

    #[test]
    fn integer_skills_sort_exactly_and_ties_keep_their_age() {
        let keys: Vec<u64> = [1500.0, 1499.0, 1500.0, 1501.0, 1499.0].map(sortable).to_vec();
        let by_age = [4, 3, 2, 1, 0];
        // Ranks: entry 4 is rank 0 (1499), entry 3 rank 1 (1501), entry 2 rank 2 (1500), ...
        assert_eq!(by_skill(&keys, bits_of(&keys), &by_age).to_vec(), vec![0, 3, 2, 4, 1]);
    }

    #[test]
    fn keys_that_differ_in_33_bits_sort_by_all_of_them() {
        // 1500.0's key ends in 44 zero bits: these differ in bit 0 and bit 32.
        let x = sortable(1500.0);
        let keys = [x + (1 << 32), x + 1, x];
        assert_eq!(by_skill(&keys, bits_of(&keys), &[0, 1, 2]).to_vec(), vec![2, 1, 0]);
    }
}

/// `age_order`'s two ways (counted for a pool in id order over few milliseconds; radix sorted, ties
/// then ordered by id, for any other) against sorting by time and id.
mod age_order_of {
    use super::*;
    use proptest::prelude::*;

    /// Entries by (time, id): the plain way.
    fn sorted_plainly(pool: &[Ticket]) -> Vec<u32> {
        let mut order: Vec<u32> = (0..u32_of(pool.len())).collect();
        order.sort_by_key(|&e| (pool[e as usize].created_at, pool[e as usize].id.clone()));
        order
    }

    fn age_order_of(pool: &[Ticket], rules: &RuleSet) -> Vec<u32> {
        let plan = Plan::new(rules);
        age_order(&Pool::new(pool, &plan, 100_000, Paths::Fastest)).to_vec()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn is_by_time_then_id(times in prop::collection::vec(0u64..40, 1..300), spread in 1u64..3_000, reverse: bool) {
            let rules = duel(json!([]), json!([]));
            // Ids in pool order (the counting sort, while the span is small for the pool) or
            // the reverse (the radix sort and the ties by id).
            let mut pool: Vec<Ticket> = times
                .iter()
                .enumerate()
                .map(|(i, &t)| solo(&format!("t{i:04}"), 50_000 + t * spread, 1500.0))
                .collect();
            if reverse {
                pool.reverse();
            }
            prop_assert_eq!(age_order_of(&pool, &rules), sorted_plainly(&pool));
        }
    }
}
