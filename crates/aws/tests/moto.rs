//! The port contract suites of `queuematch-contract`, run against the AWS adapters on a moto server.
//!
//! `scripts/test` starts moto on a free port and exports its URL as `QUEUEMATCH_MOTO_ENDPOINT`. Each
//! case makes its own queues and tables (named by a fresh uuid), so cases run in parallel on one
//! server. moto runs on real time, so the suites' `advance` sleeps: SQS's visibility timeouts and
//! DynamoDB's TTLs really pass (`.config/nextest.toml` lets these sleeping tests run side by side).
//!
//! Without the variable, a developer's plain `cargo test` skips this binary with a message; under CI
//! (`CI` set) a missing variable is a failure, never a silent skip.
//!
//! What moto (5.2.5) does not do, and how the suites still hold:
//! - DynamoDB TTL: moto records the setting and never deletes. The adapter filters expired items
//!   and treats them as absent in conditions itself (DynamoDB deletes lazily too), which is what
//!   the TTL cases exercise.
//! - `ClientRequestToken`: moto ignores it. The port's idempotency token is the adapter's own
//!   token item, so the idempotency case runs the code AWS runs.
//! - Step Functions executions do not run on moto (no Lambda without Docker): the workflow cases
//!   check StartExecution and its idempotency only, as DESIGN.md says.
//! - GameLift and ECS are not tested here; their adapters run on recorded responses
//!   (`tests/gamelift.rs`, `tests/ecs.rs`).

use queuematch_aws::config;
use queuematch_aws::dynamo::{create_table, DynamoStore};
use queuematch_aws::eventbridge::{EventBridgeEvents, SOURCE};
use queuematch_aws::sfn::SfnWorkflows;
use queuematch_aws::sqs::{create_queues, SqsTicketQueue};
use queuematch_contract::events::{EventTap, EventsSubject};
use queuematch_contract::{Subject, Time};
use queuematch_core::ports::queue::DEFAULT_MAX_RECEIVES;
use queuematch_core::ports::{Clock, PortError, Store, Workflows};
use queuematch_core::{DomainEvent, Timestamp};
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

const ENDPOINT_VAR: &str = "QUEUEMATCH_MOTO_ENDPOINT";

/// The moto server's URL; without one, skips the whole binary (or fails it under CI).
fn endpoint() -> String {
    match std::env::var(ENDPOINT_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ if std::env::var_os("CI").is_some() => {
            panic!("{ENDPOINT_VAR} is not set: under CI the moto tests must run (scripts/test starts moto)")
        }
        _ => {
            eprintln!(
                "skipping the moto tests: {ENDPOINT_VAR} is not set. scripts/test starts a moto server and sets \
                 it; or run `moto_server -p 5000` and export {ENDPOINT_VAR}=http://127.0.0.1:5000"
            );
            std::process::exit(0)
        }
    }
}

fn sdk() -> aws_config::SdkConfig {
    config::local(&endpoint(), "us-east-1")
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Real time: moto's clock is the machine's, so time passes by sleeping.
#[derive(Debug, Clone, Copy)]
struct Real;

impl Clock for Real {
    fn now(&self) -> Timestamp {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Timestamp::from_millis(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
    }
}

impl Time for Real {
    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await
    }
}

async fn fresh_queue() -> Subject<Arc<SqsTicketQueue>, Real> {
    let client = aws_sdk_sqs::Client::new(&sdk());
    let (queue_url, dlq_url) = create_queues(&client, &unique("tickets"), DEFAULT_MAX_RECEIVES)
        .await
        .unwrap_or_else(|e| panic!("creating the test queues on moto: {e}"));
    Subject {
        port: Arc::new(SqsTicketQueue::new(client, queue_url, dlq_url)),
        time: Real,
    }
}

mod sqs {
    queuematch_contract::queue_contract!(super::fresh_queue);
}

async fn fresh_store() -> Subject<Arc<DynamoStore>, Real> {
    let client = aws_sdk_dynamodb::Client::new(&sdk());
    let table = unique("queuematch");
    create_table(&client, &table)
        .await
        .unwrap_or_else(|e| panic!("creating the test table on moto: {e}"));
    Subject {
        port: Arc::new(DynamoStore::with_clock(client, table, Real)),
        time: Real,
    }
}

mod dynamodb {
    queuematch_contract::store_contract!(super::fresh_store);
}

fn fail(what: &str, e: &dyn std::fmt::Display) -> ! {
    panic!("{what} on moto: {e}")
}

// ---- EventBridge --------------------------------------------------------------------------------

/// What the bus delivered, read from an SQS queue that a rule on the bus targets: the way a
/// consumer on AWS sees the events.
struct QueueTap {
    client: aws_sdk_sqs::Client,
    url: String,
    buffered: Mutex<VecDeque<DomainEvent>>,
}

impl EventTap for QueueTap {
    async fn next(&self, within: Duration) -> Option<DomainEvent> {
        let deadline = tokio::time::Instant::now() + within;
        let mut buffered = self.buffered.lock().await;
        loop {
            if let Some(e) = buffered.pop_front() {
                return Some(e);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            let out = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .wait_time_seconds(i32::try_from(left.as_secs().clamp(1, 20)).unwrap_or(1))
                .send()
                .await
                .unwrap_or_else(|e| panic!("receiving the tap: {e}"));
            for m in out.messages.unwrap_or_default() {
                let envelope: serde_json::Value = serde_json::from_str(m.body.as_deref().unwrap_or_default())
                    .unwrap_or_else(|e| panic!("an EventBridge envelope: {e}"));
                assert_eq!(envelope["source"], SOURCE, "{envelope}");
                let event: DomainEvent = serde_json::from_value(envelope["detail"].clone())
                    .unwrap_or_else(|e| panic!("a domain event in {envelope}: {e}"));
                assert_eq!(envelope["detail-type"], event.name(), "{envelope}");
                buffered.push_back(event);
                if let Some(receipt) = m.receipt_handle {
                    self.client
                        .delete_message()
                        .queue_url(&self.url)
                        .receipt_handle(receipt)
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("deleting from the tap: {e}"));
                }
            }
        }
    }
}

async fn fresh_bus() -> EventsSubject<EventBridgeEvents, QueueTap> {
    let config = sdk();
    let events = aws_sdk_eventbridge::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let bus = unique("bus");
    events
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .unwrap_or_else(|e| fail("creating the bus", &e));
    let (url, _) = create_queues(&sqs, &unique("tap"), DEFAULT_MAX_RECEIVES)
        .await
        .unwrap_or_else(|e| fail("creating the tap queue", &e));
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap_or_else(|e| fail("reading the tap queue's ARN", &e))
        .attributes
        .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .unwrap_or_else(|| panic!("the tap queue has no ARN"));
    events
        .put_rule()
        .name("all-events")
        .event_bus_name(&bus)
        .event_pattern(json!({ "source": [SOURCE] }).to_string())
        .send()
        .await
        .unwrap_or_else(|e| fail("creating the rule", &e));
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("tap")
        .arn(arn)
        .build()
        .unwrap_or_else(|e| fail("a target", &e));
    events
        .put_targets()
        .rule("all-events")
        .event_bus_name(&bus)
        .targets(target)
        .send()
        .await
        .unwrap_or_else(|e| fail("targeting the tap", &e));
    EventsSubject {
        port: EventBridgeEvents::new(events, bus),
        tap: QueueTap {
            client: sqs,
            url,
            buffered: Mutex::new(VecDeque::new()),
        },
    }
}

mod eventbridge {
    queuematch_contract::events_contract!(super::fresh_bus);
}

// ---- Step Functions -----------------------------------------------------------------------------

/// A state machine of `kind` on moto, and workflows naming it `session-placement`.
async fn state_machine(kind: aws_sdk_sfn::types::StateMachineType) -> (aws_sdk_sfn::Client, HashMap<String, String>) {
    let client = aws_sdk_sfn::Client::new(&sdk());
    let definition = json!({ "StartAt": "Done", "States": { "Done": { "Type": "Succeed" } } }).to_string();
    let out = client
        .create_state_machine()
        .name(unique("session-placement"))
        .definition(definition)
        .role_arn("arn:aws:iam::123456789012:role/queuematch-workflows")
        .r#type(kind)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating a state machine on moto: {e}"));
    let arns = HashMap::from([("session-placement".to_owned(), out.state_machine_arn)]);
    (client, arns)
}

#[tokio::test]
async fn sfn_a_start_is_idempotent_on_its_name_and_input() {
    let (client, arns) = state_machine(aws_sdk_sfn::types::StateMachineType::Standard).await;
    let workflows = SfnWorkflows::new(client, arns.clone());
    let input = json!({ "sessionId": "s-1", "matchId": "m-1" });
    let first = workflows
        .start("session-placement", "s-1", input.clone())
        .await
        .unwrap();
    assert!(first.0.contains(":execution:") && first.0.ends_with(":s-1"), "{first}");
    let again = workflows.start("session-placement", "s-1", input).await.unwrap();
    assert_eq!(again, first, "the same start answers with the first execution");
    let other = workflows
        .start("session-placement", "s-1", json!({ "sessionId": "s-2" }))
        .await;
    assert!(matches!(other, Err(PortError::Conflict(_))), "{other:?}");
    let second = workflows.start("session-placement", "s-2", json!({})).await.unwrap();
    assert_ne!(second, first);
}

#[tokio::test]
async fn sfn_unknown_definitions_and_bad_names_are_refused() {
    let (client, arns) = state_machine(aws_sdk_sfn::types::StateMachineType::Standard).await;
    let workflows = SfnWorkflows::new(client, arns);
    let unknown = workflows.start("session-completion", "s-1", json!({})).await;
    assert!(matches!(unknown, Err(PortError::NotFound(_))), "{unknown:?}");
    let bad = workflows.start("session-placement", "s 1", json!({})).await;
    assert!(matches!(bad, Err(PortError::Invalid(_))), "{bad:?}");
}

#[tokio::test]
async fn sfn_express_starts_are_deduplicated_through_the_store() {
    let (client, arns) = state_machine(aws_sdk_sfn::types::StateMachineType::Express).await;
    let store: Arc<dyn Store> = fresh_store().await.port;
    let workflows = SfnWorkflows::new(client, arns).deduplicated_by(Arc::clone(&store), Real);
    let input = json!({ "sessionId": "s-1" });
    let first = workflows
        .start("session-placement", "s-1", input.clone())
        .await
        .unwrap();
    let again = workflows.start("session-placement", "s-1", input).await.unwrap();
    assert_eq!(again, first);
    let other = workflows
        .start("session-placement", "s-1", json!({ "sessionId": "s-9" }))
        .await;
    assert!(matches!(other, Err(PortError::Conflict(_))), "{other:?}");
}
