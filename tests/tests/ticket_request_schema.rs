//! `infra/schemas/ticket-request.json` is generated from the rule sets, and it judges requests as
//! the reader does.

use queuematch_core::ticket_request::{json_schema, TicketRequest, DEFAULT_MAX_PLAYERS_PER_TICKET};
use queuematch_core::RuleSet;
use queuematch_e2e::repo_root;
use serde_json::{json, Value};

fn example_queues() -> Vec<String> {
    let dir = repo_root().join("examples/rulesets");
    let mut queues: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            RuleSet::from_json_str(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .name
        })
        .collect();
    queues.sort();
    queues
}

fn checked_in() -> Value {
    let path = repo_root().join("infra/schemas/ticket-request.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_checked_in_schema_is_the_one_the_example_rule_sets_generate() {
    let queues = example_queues();
    let queues: Vec<&str> = queues.iter().map(String::as_str).collect();
    assert_eq!(
        checked_in(),
        json_schema(&queues, DEFAULT_MAX_PLAYERS_PER_TICKET),
        "regenerate it: queuematch schema ticket-request --rulesets examples/rulesets > infra/schemas/ticket-request.json"
    );
}

#[test]
fn schema_and_reader_agree_on_good_and_bad_requests() {
    let schema = jsonschema::draft4::new(&checked_in()).unwrap_or_else(|e| panic!("draft 4: {e}"));
    let queues = example_queues();
    let queues: Vec<&str> = queues.iter().map(String::as_str).collect();
    let eleven: Vec<Value> = (0..11).map(|i| json!({"id": format!("p{i}")})).collect();
    let cases = [
        (
            json!({"queue": "ranked-1v1", "players": [{"id": "p-1", "attributes": {"skill": 1500}}]}),
            true,
        ),
        (
            json!({"queue": "ranked-5v5", "players": [
                {"id": "p-1", "attributes": {"roles": ["tank"], "mode": "ranked"}, "latencies": {"local": 1}},
                {"id": "p-2", "partyToken": "t"}
            ]}),
            true,
        ),
        (json!({"queue": "ranked-9v9", "players": [{"id": "p-1"}]}), false),
        (json!({"queue": "ranked-1v1", "players": []}), false),
        (json!({"queue": "ranked-1v1", "players": eleven}), false),
        (json!({"queue": "ranked-1v1"}), false),
        (json!({"players": [{"id": "p-1"}]}), false),
        (json!({"queue": "ranked-1v1", "players": [{"id": "p 1"}]}), false),
        (
            json!({"queue": "ranked-1v1", "players": [{"id": "p-1", "nick": "x"}]}),
            false,
        ),
        (
            json!({"queue": "ranked-1v1", "players": [{"id": "p-1", "latencies": {"eu": -5}}]}),
            false,
        ),
        (
            json!({"queue": "ranked-1v1", "players": [{"id": "p-1", "latencies": {"eu": 1.5}}]}),
            false,
        ),
        (
            json!({"queue": "ranked-1v1", "players": [{"id": "p-1"}], "extra": 1}),
            false,
        ),
        (json!({"queue": 7, "players": [{"id": "p-1"}]}), false),
        (json!([]), false),
    ];
    for (body, good) in cases {
        assert_eq!(schema.is_valid(&body), good, "schema on {body}");
        let read = TicketRequest::parse(&body, &queues, DEFAULT_MAX_PLAYERS_PER_TICKET);
        assert_eq!(read.is_ok(), good, "reader on {body}: {read:?}");
    }
}

#[test]
fn attribute_values_of_the_wrong_shape_are_refused_by_the_schema_and_by_the_rule_set() {
    // The edge knows only JSON shapes; the queue's rule set knows each attribute's type. A value
    // the schema refuses must be one the rule set refuses too.
    let schema = jsonschema::draft4::new(&checked_in()).unwrap_or_else(|e| panic!("draft 4: {e}"));
    let path = repo_root().join("examples/rulesets/ranked-5v5.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rule_set = RuleSet::from_json_str(&text).unwrap_or_else(|e| panic!("{e}"));
    for attributes in [
        json!({"skill": true}),
        json!({"roles": [1]}),
        json!({"skill": null}),
        json!({"mode": {"a": "b"}}),
    ] {
        let body = json!({"queue": "ranked-5v5", "players": [{"id": "p-1", "attributes": attributes}]});
        assert!(!schema.is_valid(&body), "schema on {body}");
        let request = TicketRequest::parse(&body, &["ranked-5v5"], DEFAULT_MAX_PLAYERS_PER_TICKET)
            .unwrap_or_else(|e| panic!("structurally fine: {e:?}"));
        assert!(request.players_for(&rule_set).is_err(), "rule set on {body}");
    }
}
