//! SDK clients built once, from the environment, with the retry policy of DESIGN.md.
//!
//! The SDK reads region, credentials and endpoint from the environment itself: `AWS_REGION`, the
//! Lambda role's credentials, and `AWS_ENDPOINT_URL` (or `AWS_ENDPOINT_URL_<SERVICE>`, e.g.
//! `AWS_ENDPOINT_URL_DYNAMODB`), which points every client at a local AWS API such as moto. An
//! explicit override given to [`load`] wins over all of them.
//!
//! **Retries.** The SDK's standard retry strategy already retries what DESIGN.md asks for:
//! throttling (`ThrottlingException`, `ProvisionedThroughputExceededException`,
//! `RequestLimitExceeded`, `TooManyRequestsException`, …) and transient failures (5xx, timeouts,
//! dropped connections), with exponential backoff and *full* jitter (each delay is drawn uniformly
//! from zero to the exponential bound). [`retry_config`] configures it rather than wrapping calls in
//! a retry loop of our own; what is still failing after the last attempt reaches the adapters as
//! `Throttled` or `Transient`, for the caller's own Retry (workflows) or redelivery (SQS).

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use std::time::Duration;

/// Attempts per call, the first included.
pub const MAX_ATTEMPTS: u32 = 5;
/// The bound of the first retry's delay; each retry doubles it, up to [`MAX_BACKOFF`].
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(50);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Standard retries: throttling and transient errors, exponential backoff with full jitter.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(INITIAL_BACKOFF)
        .with_max_backoff(MAX_BACKOFF)
}

/// Connect and per-attempt bounds, so that a dead endpoint fails over to a retry instead of eating
/// the Lambda's whole timeout. A long-poll receive waits up to 20 s, hence the attempt bound.
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(30))
        .build()
}

/// The shared SDK config from the environment; `endpoint_override` (e.g. a moto server's URL) wins
/// over `AWS_ENDPOINT_URL`.
pub async fn load(endpoint_override: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config());
    if let Some(url) = endpoint_override {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// A config for a local AWS API (moto, LocalStack) at `endpoint`: static dummy credentials and a
/// fixed region, nothing read from the environment. For tests and local tooling.
pub fn local(endpoint: &str, region: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            Credentials::new("testing", "testing", None, None, "queuematch-local"),
        ))
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .build()
}

/// One client per service, built once from one config. Clients are cheap to clone (an `Arc`), and
/// each holds its own connection pool.
#[derive(Debug, Clone)]
pub struct Clients {
    pub sqs: aws_sdk_sqs::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
    pub gamelift: aws_sdk_gamelift::Client,
    pub ecs: aws_sdk_ecs::Client,
}

impl Clients {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            sqs: aws_sdk_sqs::Client::new(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sfn: aws_sdk_sfn::Client::new(config),
            eventbridge: aws_sdk_eventbridge::Client::new(config),
            gamelift: aws_sdk_gamelift::Client::new(config),
            ecs: aws_sdk_ecs::Client::new(config),
        }
    }
}
