//! The port contract suites of `queuematch-contract`, run against the AWS adapters on a moto server.
//!
//! `scripts/test` starts moto on a free port and exports its URL as `QUEUEMATCH_MOTO_ENDPOINT`. Each
//! case makes its own queues and tables (named by a fresh uuid), so cases run in parallel on one
//! server. moto runs on real time, so the suites' `advance` sleeps: SQS's visibility timeouts and
//! DynamoDB's TTLs really pass (`.config/nextest.toml` lets these sleeping tests run side by side).
//!
//! Without the variable, a developer's plain `cargo test` skips this binary with a message; under CI
//! (`CI` set) a missing variable is a failure, never a silent skip.

use queuematch_aws::config;
use queuematch_aws::dynamo::{create_table, DynamoStore};
use queuematch_aws::sqs::{create_queues, SqsTicketQueue};
use queuematch_contract::{Subject, Time};
use queuematch_core::ports::queue::DEFAULT_MAX_RECEIVES;
use queuematch_core::ports::Clock;
use queuematch_core::Timestamp;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
