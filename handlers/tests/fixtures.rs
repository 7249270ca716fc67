//! Every fixture under `tests/fixtures/` replays through its handler to its expected response, by
//! the very code `queuematch replay` runs (`queuematch_local::replay::fixtures`; its module docs say
//! what a fixture's `given` seeds and how each function's response is compared).

use aws_lambda_events::sqs::SqsEvent;
use queuematch_core::usecases::Queues;
use queuematch_core::RuleSet;
use queuematch_handlers::matcher;
use queuematch_local::replay::fixtures::{self, Fixture, Function};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn queues() -> Arc<Queues> {
    let dir = repo().join("examples/rulesets");
    let mut rule_sets = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        rule_sets.push(RuleSet::from_json_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    }
    Arc::new(Queues::new(rule_sets))
}

#[tokio::test]
async fn every_fixture_replays_to_its_expected_response() {
    let replayed = fixtures::replay_path(&repo().join("tests/fixtures"), &queues())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut failures = Vec::new();
    for r in &replayed {
        assert!(r.expected.is_some(), "{}: no expected response", r.path.display());
        let differences = r.differences();
        if !differences.is_empty() {
            failures.push(format!("{}:\n  {}", r.path.display(), differences.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every function with fixtures was replayed, each fixture once.
    let functions: BTreeSet<Function> = replayed.iter().map(|r| r.function).collect();
    let with_fixtures: BTreeSet<Function> = Function::ALL
        .into_iter()
        .filter(|f| repo().join("tests/fixtures").join(f.name()).is_dir())
        .collect();
    assert_eq!(functions, with_fixtures);
    let events = fixtures::discover(&repo().join("tests/fixtures")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(replayed.len(), events.len());
    assert!(replayed.len() >= 50, "only {} fixtures", replayed.len());
}

#[tokio::test]
async fn a_changed_expectation_is_reported_at_its_path() {
    let path = repo().join("tests/fixtures/tickets-api/get-a-searching-ticket.event.json");
    let mut fixture = Fixture::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let expected = fixture.expected.as_mut().unwrap_or_else(|| panic!("expected"));
    expected["body"]["status"] = "PLACING".into();
    let replayed = fixtures::replay(&fixture, &queues())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        replayed.differences(),
        vec!["$.body.status: expected \"PLACING\", got \"SEARCHING\""]
    );
}

/// The matcher's fixture `name` handled on the service its `given` seeds: what it did.
async fn matcher_batch(name: &str) -> matcher::BatchOutcome {
    let path = repo().join(format!("tests/fixtures/matcher/{name}.event.json"));
    let fixture = Fixture::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let service = fixtures::seeded(&fixture, &queues())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let event: SqsEvent = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    matcher::handle(&service, event, "fixture").await
}

#[tokio::test]
async fn a_matched_batch_leaves_its_tickets_placing() {
    // The response of `two-tickets-match` is an empty failure list; this checks what it did.
    let outcome = matcher_batch("two-tickets-match").await;
    assert_eq!(outcome.admitted, 2);
    assert_eq!(outcome.rounds.len(), 1);
    assert_eq!(outcome.rounds[0].1.matches.len(), 1);
}

#[tokio::test]
async fn each_message_handed_back_says_why() {
    let unparseable = matcher_batch("unparseable-message-goes-to-the-dlq").await;
    assert_eq!(unparseable.retried.len(), 1, "{:?}", unparseable.retried);
    assert!(
        unparseable.retried[0].1.starts_with("not a queue message: "),
        "{:?}",
        unparseable.retried
    );
    let tick = matcher_batch("pool-tick-for-an-unknown-queue-is-retried").await;
    assert_eq!(tick.retried.len(), 1, "{:?}", tick.retried);
    assert!(tick.retried[0].1.starts_with("the round of "), "{:?}", tick.retried);
    let matched = matcher_batch("two-tickets-match").await;
    assert!(matched.retried.is_empty(), "{:?}", matched.retried);
}
