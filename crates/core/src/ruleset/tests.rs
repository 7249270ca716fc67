//! Unit tests of the rule-set reader: every rule type's parsing and every kind of bad rule set.

use super::*;
use crate::attribute::AttributeType;
use serde_json::{json, Value};

/// A good rule set using every rule type; each test breaks one thing in it.
fn base() -> Value {
    json!({
        "name": "ranked-5v5",
        "ruleLanguageVersion": "1.0",
        "playerAttributes": [
            {"name": "skill", "type": "number", "default": 1500},
            {"name": "roles", "type": "string_list", "default": ["dps"]},
            {"name": "mode", "type": "string", "default": "ranked"},
            {"name": "maps", "type": "string_list"},
            {"name": "ping", "type": "string_number_map"}
        ],
        "teams": [{"name": "red", "minPlayers": 5, "maxPlayers": 5}, {"name": "blue", "minPlayers": 5, "maxPlayers": 5}],
        "rules": [
            {"name": "fair", "type": "distance", "attribute": "skill", "maxDistance": 150},
            {"name": "even", "type": "teamBalance", "attribute": "skill", "maxDifference": 40},
            {"name": "ping", "type": "latency", "maxLatency": 80},
            {"name": "sameMode", "type": "comparison", "attribute": "mode", "operation": "="},
            {"name": "map", "type": "collection", "attribute": "maps", "minCount": 2},
            {"name": "roles", "type": "composition", "attribute": "roles", "perTeam": {"tank": 1, "healer": 1, "dps": 3}}
        ],
        "expansions": [
            {"target": "rules[fair].maxDistance", "steps": [{"waitTimeSeconds": 10, "value": 300}, {"waitTimeSeconds": 30, "value": 600}]},
            {"target": "rules[ping].maxLatency", "steps": [{"waitTimeSeconds": 20, "value": 150}]}
        ],
        "queue": {"timeoutSeconds": 120, "acceptance": {"required": false, "timeoutSeconds": 20}, "backfillMode": "MANUAL"}
    })
}

/// `base()` with the value at `pointer` replaced (or added, for a new object member).
fn with(pointer: &str, value: Value) -> Value {
    let mut doc = base();
    set(&mut doc, pointer, value);
    doc
}

fn set(doc: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    match doc.pointer_mut(parent).unwrap() {
        Value::Object(map) => {
            map.insert(key.to_owned(), value);
        }
        Value::Array(items) => {
            let i: usize = key.parse().unwrap();
            if i == items.len() {
                items.push(value);
            } else {
                items[i] = value;
            }
        }
        other => panic!("cannot set {pointer} inside {other}"),
    }
}

fn without(pointer: &str) -> Value {
    let mut doc = base();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    doc.pointer_mut(parent).unwrap().as_object_mut().unwrap().remove(key);
    doc
}

/// The errors of `doc`, as `(path, message)` pairs.
fn errors(doc: &Value) -> Vec<(String, String)> {
    match RuleSet::from_json(doc) {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(|e| (e.path.to_string(), e.message.clone())).collect(),
    }
}

/// Asserts `doc` has exactly one error, at `path`, whose message contains `needle`.
#[track_caller]
fn assert_one_error(doc: &Value, path: &str, needle: &str) {
    let errs = errors(doc);
    assert_eq!(errs.len(), 1, "expected one error at {path}, got {errs:#?}");
    assert_eq!(errs[0].0, path, "{errs:#?}");
    assert!(
        errs[0].1.contains(needle),
        "message {:?} does not contain {needle:?}",
        errs[0].1
    );
}

fn parse(doc: &Value) -> RuleSet {
    match RuleSet::from_json(doc) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

// ---- every rule type parses ----

#[test]
fn the_base_rule_set_reads_whole() {
    let rs = parse(&base());
    assert_eq!(rs.name, "ranked-5v5");
    assert_eq!(rs.player_attributes.len(), 5);
    assert_eq!(rs.attribute("roles").map(|a| a.kind), Some(AttributeType::StringList));
    assert_eq!(rs.attribute("maps").and_then(|a| a.default.clone()), None);
    assert_eq!(rs.rules.len(), 6);
    assert_eq!(rs.max_players(), 10);
}

#[test]
fn a_distance_rule_reads_its_attribute_limit_and_aggregation() {
    let rs = parse(&base());
    assert_eq!(
        rs.rule("fair").map(|r| &r.kind),
        Some(&RuleKind::Distance {
            attribute: "skill".into(),
            max_distance: 150.0,
            party_aggregation: PartyAggregation::Avg
        })
    );
    for (agg, want) in [
        ("avg", PartyAggregation::Avg),
        ("min", PartyAggregation::Min),
        ("max", PartyAggregation::Max),
    ] {
        let rs = parse(&with("/rules/0/partyAggregation", json!(agg)));
        assert!(matches!(rs.rules[0].kind, RuleKind::Distance { party_aggregation, .. } if party_aggregation == want));
    }
}

#[test]
fn a_team_balance_rule_reads() {
    assert_eq!(
        parse(&base()).rule("even").map(|r| &r.kind),
        Some(&RuleKind::TeamBalance {
            attribute: "skill".into(),
            max_difference: 40.0
        })
    );
}

#[test]
fn a_latency_rule_reads() {
    assert_eq!(
        parse(&base()).rule("ping").map(|r| &r.kind),
        Some(&RuleKind::Latency { max_latency: 80 })
    );
}

#[test]
fn a_comparison_rule_reads_both_operations_on_strings_and_numbers() {
    assert_eq!(
        parse(&base()).rule("sameMode").map(|r| &r.kind),
        Some(&RuleKind::Comparison {
            attribute: "mode".into(),
            operation: ComparisonOp::Equal
        })
    );
    let doc = with(
        "/rules/3",
        json!({"name": "c", "type": "comparison", "attribute": "skill", "operation": "!="}),
    );
    assert_eq!(
        parse(&doc).rule("c").map(|r| &r.kind),
        Some(&RuleKind::Comparison {
            attribute: "skill".into(),
            operation: ComparisonOp::NotEqual
        })
    );
}

#[test]
fn a_collection_rule_reads_and_its_min_count_defaults_to_one() {
    assert_eq!(
        parse(&base()).rule("map").map(|r| &r.kind),
        Some(&RuleKind::Collection {
            attribute: "maps".into(),
            min_count: 2
        })
    );
    let doc = with(
        "/rules/4",
        json!({"name": "map", "type": "collection", "attribute": "maps"}),
    );
    assert!(matches!(
        parse(&doc).rules[4].kind,
        RuleKind::Collection { min_count: 1, .. }
    ));
}

#[test]
fn a_composition_rule_reads_its_roles() {
    let rs = parse(&base());
    let Some(RuleKind::Composition { attribute, per_team }) = rs.rule("roles").map(|r| &r.kind) else {
        panic!("not a composition rule");
    };
    assert_eq!(attribute, "roles");
    assert_eq!(
        per_team.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(),
        [("dps", 3), ("healer", 1), ("tank", 1)]
    );
}

#[test]
fn expansions_read_their_targets_and_steps() {
    let rs = parse(&base());
    let fair = ExpansionTarget::Rule {
        rule: "fair".into(),
        field: RuleField::MaxDistance,
    };
    let expansion = rs.expansion_for(&fair).unwrap();
    assert_eq!(expansion.value_after(5.0), None);
    assert_eq!(expansion.value_after(10.0), Some(300.0));
    assert_eq!(expansion.value_after(29.9), Some(300.0));
    assert_eq!(expansion.value_after(31.0), Some(600.0));
}

#[test]
fn a_team_min_players_expansion_reads() {
    let doc = with(
        "/expansions/2",
        json!({"target": "teams[red].minPlayers", "steps": [{"waitTimeSeconds": 60, "value": 4}]}),
    );
    let rs = parse(&doc);
    assert_eq!(
        rs.expansions[2].target,
        ExpansionTarget::Team {
            team: "red".into(),
            field: TeamField::MinPlayers
        }
    );
}

#[test]
fn teams_with_a_quantity_unroll_into_slots() {
    let doc = with(
        "/teams",
        json!([{"name": "solo", "minPlayers": 1, "maxPlayers": 1, "quantity": 3}]),
    );
    let doc = {
        let mut d = doc;
        d["rules"] = json!([]);
        d["expansions"] = json!([]);
        d
    };
    let rs = parse(&doc);
    let names: Vec<_> = rs.team_slots().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["solo-1", "solo-2", "solo-3"]);
    assert_eq!((rs.min_players(), rs.max_players()), (3, 3));
    assert_eq!(rs.fewest_players(), 3, "no expansion lowers it");
}

#[test]
fn the_fewest_players_count_the_last_step_of_a_min_players_expansion() {
    let mut doc = base();
    doc["teams"] = json!([{"name": "lobby", "minPlayers": 50, "maxPlayers": 60}]);
    doc["rules"] = json!([]);
    doc["expansions"] = json!([{"target": "teams[lobby].minPlayers", "steps": [
        {"waitTimeSeconds": 30, "value": 40}, {"waitTimeSeconds": 90, "value": 24}]}]);
    let rs = parse(&doc);
    assert_eq!((rs.min_players(), rs.fewest_players()), (50, 24));
}

#[test]
fn the_queue_block_takes_defaults_when_left_out() {
    let rs = parse(&without("/queue"));
    assert_eq!(rs.queue.timeout_seconds, 120);
    assert!(!rs.queue.acceptance.required);
    assert_eq!(rs.queue.placement_timeout_seconds, 60);
    assert_eq!(rs.queue.backfill_mode, BackfillMode::Manual);
}

#[test]
fn every_example_rule_set_reads() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/rulesets");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let rs = RuleSet::from_json_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!rs.expansions.is_empty(), "{} has no expansions", path.display());
        assert_eq!(
            Some(rs.name.as_str()),
            path.file_stem().and_then(|s| s.to_str()),
            "file named after its queue"
        );
        seen += 1;
    }
    assert!(seen >= 4);
}

// ---- wrong types ----

#[test]
fn a_wrong_type_names_what_was_expected_and_found() {
    assert_one_error(
        &with("/name", json!(5)),
        "$.name",
        "expected a string, found an integer",
    );
    assert_one_error(
        &with("/rules/0/maxDistance", json!("far")),
        "$.rules[0].maxDistance",
        "expected a number, found a string",
    );
    assert_one_error(
        &with("/teams/0/maxPlayers", json!(5.5)),
        "$.teams[0].maxPlayers",
        "expected an integer, found a number",
    );
    assert_one_error(
        &with("/queue/acceptance/required", json!("yes")),
        "$.queue.acceptance.required",
        "expected a boolean",
    );
    assert_one_error(
        &with("/rules", json!({})),
        "$.rules",
        "expected an array, found an object",
    );
    assert_one_error(
        &with("/rules/3", json!("comparison")),
        "$.rules[3]",
        "expected an object, found a string",
    );
}

#[test]
fn a_default_of_the_wrong_type_is_refused() {
    assert_one_error(
        &with("/playerAttributes/0/default", json!("high")),
        "$.playerAttributes[0].default",
        "expected a number",
    );
    assert_one_error(
        &with("/playerAttributes/1/default", json!(["a", 2])),
        "$.playerAttributes[1].default",
        "an array of strings",
    );
}

#[test]
fn a_rule_on_an_attribute_of_the_wrong_type_is_refused() {
    assert_one_error(
        &with("/rules/0/attribute", json!("mode")),
        "$.rules[0].attribute",
        "attribute `mode` is a string attribute; this rule reads `number`",
    );
    assert_one_error(
        &with("/rules/5/attribute", json!("skill")),
        "$.rules[5].attribute",
        "reads `string_list`",
    );
    assert_one_error(
        &with("/rules/3/attribute", json!("roles")),
        "$.rules[3].attribute",
        "reads `number`, `string`",
    );
}

#[test]
fn an_unknown_type_name_is_refused() {
    assert_one_error(
        &with("/playerAttributes/0/type", json!("integer")),
        "$.playerAttributes[0].type",
        "unknown attribute type `integer`",
    );
    assert_one_error(
        &with("/rules/0/type", json!("teleport")),
        "$.rules[0].type",
        "unknown rule type `teleport`",
    );
    assert_one_error(
        &with("/rules/3/operation", json!("<")),
        "$.rules[3].operation",
        "expected `=` or `!=`",
    );
    assert_one_error(
        &with("/rules/0/partyAggregation", json!("sum")),
        "$.rules[0].partyAggregation",
        "`avg`, `min`, `max`",
    );
    assert_one_error(
        &with("/queue/backfillMode", json!("auto")),
        "$.queue.backfillMode",
        "`AUTOMATIC` or `MANUAL`",
    );
}

// ---- unknown attributes ----

#[test]
fn a_rule_on_an_undeclared_attribute_is_refused_with_the_declared_ones() {
    assert_one_error(
        &with("/rules/0/attribute", json!("skil")),
        "$.rules[0].attribute",
        "unknown attribute `skil`: it is not in playerAttributes (declared: `skill`, `roles`, `mode`, `maps`, `ping`)",
    );
}

// ---- impossible teams ----

#[test]
fn impossible_teams_are_refused() {
    assert_one_error(
        &with("/teams/0/minPlayers", json!(6)),
        "$.teams[0].minPlayers",
        "minPlayers 6 is more than maxPlayers 5",
    );
    assert_one_error(&with("/teams", json!([])), "$.teams", "at least one team");
    assert_one_error(
        &with(
            "/teams/1",
            json!({"name": "blue", "minPlayers": 5, "maxPlayers": 5, "quantity": 40}),
        ),
        "$.teams",
        "the teams hold 205 players in all; a match holds at most 200",
    );
    // Teams whose players add up to 2^32 + 10: a sum in u32 wrapped to 10 and let them through.
    let mut teams: Vec<Value> = (0..107_374)
        .map(|i| json!({"name": format!("t{i}"), "minPlayers": 200, "maxPlayers": 200, "quantity": 200}))
        .collect();
    teams.push(json!({"name": "x", "minPlayers": 192, "maxPlayers": 192, "quantity": 38}));
    teams.extend(base()["teams"].as_array().into_iter().flatten().cloned());
    assert_one_error(
        &with("/teams", Value::Array(teams)),
        "$.teams",
        "the teams hold 4294967306 players in all; a match holds at most 200",
    );
    assert_one_error(
        &with("/rules/5/perTeam/dps", json!(4)),
        "$.rules[5].perTeam",
        "needs 6 players per team, but team `red` holds at most 5",
    );
}

#[test]
fn team_balance_needs_two_teams() {
    let mut doc = with("/teams", json!([{"name": "all", "minPlayers": 10, "maxPlayers": 10}]));
    doc["expansions"] = json!([]);
    let errs = errors(&doc);
    assert_eq!(
        errs,
        [(
            "$.rules[1].type".to_owned(),
            "a teamBalance rule needs at least two teams to balance".to_owned()
        )]
    );
}

#[test]
fn an_attribute_whose_name_is_refused_is_not_also_undeclared_for_the_rules_reading_it() {
    let mut doc = with("/playerAttributes/0/name", json!("умение"));
    set(&mut doc, "/rules/0/attribute", json!("умение"));
    set(&mut doc, "/rules/1/attribute", json!("умение"));
    assert_one_error(
        &doc,
        "$.playerAttributes[0].name",
        "attribute name `умение` is not valid: use 1 to 64 ASCII letters",
    );
}

// ---- expansions ----

#[test]
fn an_expansion_of_a_rule_that_does_not_exist_is_refused() {
    assert_one_error(
        &with("/expansions/0/target", json!("rules[fare].maxDistance")),
        "$.expansions[0].target",
        "target names rule `fare`, which does not exist",
    );
    assert_one_error(
        &with("/expansions/0/target", json!("teams[green].minPlayers")),
        "$.expansions[0].target",
        "target names team `green`, which does not exist (teams: `red`, `blue`)",
    );
}

#[test]
fn an_expansion_of_a_field_the_rule_does_not_have_is_refused() {
    assert_one_error(
        &with("/expansions/0/target", json!("rules[fair].maxLatency")),
        "$.expansions[0].target",
        "rule `fair` is a distance rule and has no expandable field `maxLatency`; its expandable field is `maxDistance`",
    );
    assert_one_error(
        &with("/expansions/0/target", json!("rules[sameMode].operation")),
        "$.expansions[0].target",
        "comparison rule and has no field an expansion can loosen",
    );
    assert_one_error(
        &with("/expansions/0/target", json!("teams[red].maxPlayers")),
        "$.expansions[0].target",
        "`minPlayers`",
    );
    assert_one_error(
        &with("/expansions/0/target", json!("rules.fair.maxDistance")),
        "$.expansions[0].target",
        "is not of the form",
    );
}

#[test]
fn non_monotonic_steps_are_refused() {
    assert_one_error(
        &with("/expansions/0/steps/1/waitTimeSeconds", json!(10)),
        "$.expansions[0].steps[1].waitTimeSeconds",
        "steps must wait longer each time: 10 s is not after the previous step's 10 s",
    );
    assert_one_error(
        &with("/expansions/0/steps/1/value", json!(200)),
        "$.expansions[0].steps[1].value",
        "steps must loosen maxDistance each time: 200 is not larger than the previous step's 300",
    );
    assert_one_error(
        &with("/expansions/0/steps/0/value", json!(100)),
        "$.expansions[0].steps[0].value",
        "100 is not larger than the value before any expansion, 150",
    );
}

#[test]
fn a_min_count_or_min_players_expansion_must_loosen_downward() {
    let doc = with(
        "/expansions/1",
        json!({"target": "rules[map].minCount", "steps": [{"waitTimeSeconds": 10, "value": 3}]}),
    );
    assert_one_error(
        &doc,
        "$.expansions[1].steps[0].value",
        "3 is not smaller than the value before any expansion, 2",
    );
    let doc = with(
        "/expansions/1",
        json!({"target": "teams[red].minPlayers", "steps": [{"waitTimeSeconds": 10, "value": 4.5}]}),
    );
    assert_one_error(
        &doc,
        "$.expansions[1].steps[0].value",
        "minPlayers must be a whole number",
    );
}

#[test]
fn a_step_after_the_ticket_timeout_never_applies_and_is_refused() {
    assert_one_error(
        &with("/expansions/0/steps/1/waitTimeSeconds", json!(120)),
        "$.expansions[0].steps[1].waitTimeSeconds",
        "this step never applies: tickets time out after 120 s",
    );
}

#[test]
fn an_expansion_cannot_loosen_a_latency_past_what_the_rule_itself_may_be() {
    let steps = |value: f64| json!([{"waitTimeSeconds": 20, "value": value}]);
    let at = "/expansions/1/steps";
    assert_eq!(errors(&with(at, steps(10_000.0))), []);
    assert_one_error(
        &with(at, steps(10_001.0)),
        "$.expansions[1].steps[0].value",
        "10001 is out of range: maxLatency must be from 1 to 10000, as the rule's own",
    );
    // Far out of range, in scientific notation rather than in hundreds of digits.
    assert_one_error(
        &with(at, steps(1e12)),
        "$.expansions[1].steps[0].value",
        "1e12 is out of range",
    );
    assert_one_error(
        &with(at, steps(1e300)),
        "$.expansions[1].steps[0].value",
        "1e300 is out of range: maxLatency must be from 1 to 10000",
    );
    assert_one_error(
        &with("/expansions/0/steps/0/value", json!(1e-200)),
        "$.expansions[0].steps[0].value",
        "1e-200 is not larger than the value before any expansion, 150",
    );
}

#[test]
fn an_expansion_without_steps_is_refused() {
    assert_one_error(
        &with("/expansions/0/steps", json!([])),
        "$.expansions[0].steps",
        "at least one step",
    );
}

// ---- out-of-range values ----

#[test]
fn whole_numbers_past_any_integer_type_are_out_of_range_not_of_the_wrong_type() {
    for (huge, spelt) in [
        (json!(10_000_000_000_000_000_000_u64), "10000000000000000000"),
        (
            serde_json::from_str::<Value>("100000000000000000000").unwrap_or_default(),
            "1e20",
        ),
        (json!(-1e30), "-1e30"),
    ] {
        assert_one_error(
            &with("/queue/timeoutSeconds", huge),
            "$.queue.timeoutSeconds",
            &format!("{spelt} is out of range: must be from 1 to 43200"),
        );
    }
    assert_one_error(
        &with("/queue/timeoutSeconds", json!(5.5)),
        "$.queue.timeoutSeconds",
        "expected an integer, found a number",
    );
    assert_one_error(
        &with("/queue/timeoutSeconds", json!(5.0)),
        "$.queue.timeoutSeconds",
        "expected an integer, found a number",
    );
}

#[test]
fn out_of_range_values_name_the_range() {
    assert_one_error(
        &with("/rules/2/maxLatency", json!(0)),
        "$.rules[2].maxLatency",
        "0 is out of range: must be from 1 to 10000",
    );
    assert_one_error(
        &with("/rules/0/maxDistance", json!(-1)),
        "$.rules[0].maxDistance",
        "-1 is out of range: must be at least 0",
    );
    assert_one_error(
        &with("/queue/timeoutSeconds", json!(0)),
        "$.queue.timeoutSeconds",
        "must be from 1 to 43200",
    );
    assert_one_error(
        &with("/teams/0/quantity", json!(0)),
        "$.teams[0].quantity",
        "must be from 1 to 200",
    );
    assert_one_error(
        &with("/rules/4/minCount", json!(0)),
        "$.rules[4].minCount",
        "must be from 1 to 100",
    );
    assert_one_error(
        &with("/rules/5/perTeam/tank", json!(0)),
        "$.rules[5].perTeam.tank",
        "must be from 1 to 200",
    );
    assert_one_error(
        &with("/ruleLanguageVersion", json!("2.0")),
        "$.ruleLanguageVersion",
        "the only version is `1.0`",
    );
    assert_one_error(
        &with("/name", json!("Ranked 5v5")),
        "$.name",
        "queue name `Ranked 5v5` is not valid",
    );
}

// ---- duplicate names ----

#[test]
fn duplicate_names_are_refused_at_the_second() {
    assert_one_error(
        &with("/rules/1/name", json!("fair")),
        "$.rules[1].name",
        "duplicate rule name `fair`",
    );
    assert_one_error(
        &with("/teams/1/name", json!("red")),
        "$.teams[1].name",
        "duplicate team name `red`",
    );
    assert_one_error(
        &with("/playerAttributes/5", json!({"name": "skill", "type": "number"})),
        "$.playerAttributes[5].name",
        "duplicate attribute name `skill`",
    );
    assert_one_error(
        &with(
            "/expansions/1",
            json!({"target": "rules[fair].maxDistance", "steps": [{"waitTimeSeconds": 5, "value": 200}]}),
        ),
        "$.expansions[1].target",
        "duplicate expansion",
    );
}

// ---- unknown fields ----

#[test]
fn unknown_fields_are_refused_with_a_suggestion() {
    assert_one_error(
        &with("/expansion", json!([])),
        "$.expansion",
        "unknown field `expansion`; did you mean `expansions`?",
    );
    assert_one_error(
        &with("/rules/0/maxDistnce", json!(1)),
        "$.rules[0].maxDistnce",
        "did you mean `maxDistance`?",
    );
    assert_one_error(
        &with("/teams/0/MaxPlayers", json!(5)),
        "$.teams[0].MaxPlayers",
        "did you mean `maxPlayers`?",
    );
    assert_one_error(
        &with("/queue/timeout", json!(5)),
        "$.queue.timeout",
        "unknown field `timeout`",
    );
    assert_one_error(
        &with("/queue/acceptance/requried", json!(true)),
        "$.queue.acceptance.requried",
        "did you mean `required`?",
    );
    assert_one_error(
        &with("/expansions/0/steps/0/wait", json!(1)),
        "$.expansions[0].steps[0].wait",
        "unknown field `wait`",
    );
    assert_one_error(
        &with("/playerAttributes/0/defualt", json!(1)),
        "$.playerAttributes[0].defualt",
        "did you mean `default`?",
    );
}

#[test]
fn a_field_of_another_rule_type_is_unknown_here() {
    assert_one_error(
        &with("/rules/2/maxDistance", json!(100)),
        "$.rules[2].maxDistance",
        "unknown field `maxDistance`",
    );
}

#[test]
fn missing_required_fields_are_named() {
    assert_one_error(
        &without("/teams/0/minPlayers"),
        "$.teams[0]",
        "missing required field `minPlayers`",
    );
    assert_one_error(
        &without("/rules/2/maxLatency"),
        "$.rules[2]",
        "missing required field `maxLatency`",
    );
    assert_one_error(
        &without("/ruleLanguageVersion"),
        "$",
        "missing required field `ruleLanguageVersion`",
    );
}

// ---- acceptance plus placement ----

#[test]
fn acceptance_plus_placement_over_240_seconds_is_refused() {
    let doc = with(
        "/queue",
        json!({"acceptance": {"required": true, "timeoutSeconds": 200}, "placementTimeoutSeconds": 60}),
    );
    assert_one_error(&doc, "$.queue", "is 260 s; together they must be at most 240 s");
    let fits = with(
        "/queue",
        json!({"acceptance": {"required": true, "timeoutSeconds": 180}, "placementTimeoutSeconds": 60}),
    );
    assert_eq!(errors(&fits), []);
}

#[test]
fn an_acceptance_timeout_counts_only_when_acceptance_is_required() {
    let doc = with(
        "/queue",
        json!({"acceptance": {"required": false, "timeoutSeconds": 600}, "placementTimeoutSeconds": 60}),
    );
    assert_eq!(errors(&doc), []);
}

// ---- all at once ----

#[test]
fn every_error_is_reported_at_once() {
    let mut doc = base();
    set(&mut doc, "/name", json!(""));
    set(&mut doc, "/teams/0/minPlayers", json!(9));
    set(&mut doc, "/rules/0/attribute", json!("nope"));
    set(&mut doc, "/rules/2/maxLatency", json!(-3));
    set(&mut doc, "/expansions/0/steps/1/waitTimeSeconds", json!(5));
    set(&mut doc, "/queue/surprise", json!(true));
    let paths: Vec<_> = errors(&doc).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        [
            "$.name",
            "$.teams[0].minPlayers",
            "$.queue.surprise",
            "$.rules[0].attribute",
            "$.rules[2].maxLatency",
            "$.expansions[0].steps[1].waitTimeSeconds",
        ]
    );
}

#[test]
fn a_syntax_error_carries_its_line_and_column() {
    let err = RuleSet::from_json_str("{\n  \"name\": \"x\",\n  oops\n}").unwrap_err();
    assert_eq!(err.len(), 1);
    let e = err.iter().next().unwrap();
    assert_eq!(e.position, Some((3, 3)));
    // The position is given once, not again at the end of serde_json's message.
    assert_eq!(e.message, "not valid JSON: key must be a string");
    assert_eq!(e.to_string(), "line 3, column 3: not valid JSON: key must be a string");
}

#[test]
fn a_syntax_error_at_the_end_of_the_text_names_a_column_from_one() {
    let position = |text: &str| {
        RuleSet::from_json_str(text)
            .unwrap_err()
            .iter()
            .next()
            .unwrap()
            .position
    };
    // serde_json says column 0 for all three.
    assert_eq!(position(""), Some((1, 1)));
    assert_eq!(position("   \n"), Some((1, 4)), "the line break after three spaces");
    assert_eq!(
        position("{\n  \"name\": \"é\",\n"),
        Some((2, 16)),
        "columns count bytes, as serde_json's"
    );
}

#[test]
fn a_byte_order_mark_before_the_json_is_ignored() {
    let text = serde_json::to_string_pretty(&base()).unwrap();
    assert_eq!(RuleSet::from_json_str(&format!("\u{feff}{text}")), Ok(parse(&base())));
    // A syntax error's position stays one in the text given: on the first line, after the mark's
    // three bytes; on the others, as without it.
    let first = RuleSet::from_json_str("\u{feff}{oops}").unwrap_err();
    assert_eq!(first.iter().next().unwrap().position, Some((1, 5)));
    let third = RuleSet::from_json_str("\u{feff}{\n  \"name\": \"x\",\n  oops\n}").unwrap_err();
    assert_eq!(third.iter().next().unwrap().position, Some((3, 3)));
    // Only at the start: a mark anywhere else is not JSON.
    assert!(RuleSet::from_json_str("{\u{feff}}").is_err());
}

#[test]
fn a_huge_negative_limit_is_quoted_short() {
    let errors = errors(&with("/rules/0/maxDistance", json!(-1e308)));
    assert_eq!(
        errors,
        [(
            "$.rules[0].maxDistance".to_owned(),
            "-1e+308 is out of range: must be at least 0".to_owned()
        )]
    );
}

#[test]
fn a_key_given_twice_is_refused_where_it_is_given_again() {
    let text = "{\n  \"name\": \"duel\",\n  \"name\": \"other\"\n}";
    let errors = RuleSet::from_json_str(text).unwrap_err();
    let e = errors.iter().next().unwrap();
    assert_eq!(e.message, "not valid JSON: the key `name` is given twice in one object");
    assert_eq!(e.position.map(|(line, _)| line), Some(3));
    // Nested objects too, and the same key in two objects is no repetition.
    let mut rule_set = serde_json::to_string(&base()).unwrap();
    assert!(RuleSet::from_json_str(&rule_set).is_ok());
    rule_set = rule_set.replacen("\"maxDistance\":", "\"maxDistance\":5000,\"maxDistance\":", 1);
    let errors = RuleSet::from_json_str(&rule_set).unwrap_err();
    assert!(
        errors
            .iter()
            .next()
            .unwrap()
            .message
            .contains("`maxDistance` is given twice"),
        "{errors}"
    );
}

#[test]
fn a_rule_set_that_is_not_an_object_is_refused() {
    assert_eq!(
        errors(&json!([1])),
        [("$".to_owned(), "expected an object, found an array".to_owned())]
    );
}

#[test]
fn a_rule_set_without_a_rule_loses_the_rule_and_its_expansions_only() {
    let mut doc = base();
    doc["rules"].as_array_mut().unwrap().remove(2);
    doc["expansions"].as_array_mut().unwrap().remove(1);
    assert_eq!(parse(&base()).without_rule("ping"), parse(&doc));
    assert_eq!(parse(&base()).without_rule("no-such-rule"), parse(&base()));
}
