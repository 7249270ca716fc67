//! The functions' configuration: one typed struct per binary, read once from the environment at
//! cold start. A missing or malformed variable stops the function before it takes an event, with
//! a message naming the variable, what it is for, and the binary that needs it.

use std::collections::HashMap;
use std::fmt;

/// Why a function cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{binary}: the environment variable {name} is not set; it holds {what}")]
    Missing {
        binary: &'static str,
        name: &'static str,
        what: &'static str,
    },
    #[error("{binary}: the environment variable {name}={value:?} is not valid: {why}")]
    Invalid {
        binary: &'static str,
        name: &'static str,
        value: String,
        why: String,
    },
}

/// Looks a variable up by name.
type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Where variables come from: the process's environment, or a map in tests.
pub struct Env {
    binary: &'static str,
    lookup: Lookup,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("binary", &self.binary)
            .finish_non_exhaustive()
    }
}

impl Env {
    /// The process's environment, for `binary`.
    pub fn process(binary: &'static str) -> Self {
        Self {
            binary,
            lookup: Box::new(|name| std::env::var(name).ok()),
        }
    }

    /// Fixed variables, for tests.
    pub fn from_map(binary: &'static str, vars: HashMap<String, String>) -> Self {
        Self {
            binary,
            lookup: Box::new(move |name| vars.get(name).cloned()),
        }
    }

    /// A variable that must be set and not blank.
    pub fn required(&self, name: &'static str, what: &'static str) -> Result<String, ConfigError> {
        match (self.lookup)(name) {
            Some(value) if !value.trim().is_empty() => Ok(value),
            _ => Err(ConfigError::Missing {
                binary: self.binary,
                name,
                what,
            }),
        }
    }

    /// A variable that may be unset; blank counts as unset.
    pub fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// A comma-separated list; unset or blank is empty.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.optional(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn invalid(&self, name: &'static str, value: String, why: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            binary: self.binary,
            name,
            value,
            why: why.into(),
        }
    }
}

/// The user pool whose tokens the functions accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CognitoConfig {
    /// `https://cognito-idp.<region>.amazonaws.com/<pool id>`: the tokens' `iss`.
    pub issuer: String,
    /// The game client's app client id: an ID token's `aud`, an access token's `client_id`.
    pub client_id: String,
    /// Where the pool's signing keys are: `COGNITO_JWKS_URL`, by default the issuer's
    /// `/.well-known/jwks.json`.
    pub jwks_url: String,
}

impl CognitoConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let issuer = env.required(
            "COGNITO_ISSUER",
            "the user pool's issuer URL, https://cognito-idp.<region>.amazonaws.com/<pool id>",
        )?;
        if !issuer.starts_with("https://") {
            return Err(env.invalid("COGNITO_ISSUER", issuer, "an issuer is an https:// URL"));
        }
        let issuer = issuer.trim_end_matches('/').to_owned();
        let client_id = env.required("COGNITO_CLIENT_ID", "the game client's app client id")?;
        let jwks_url = env
            .optional("COGNITO_JWKS_URL")
            .unwrap_or_else(|| format!("{issuer}/.well-known/jwks.json"));
        Ok(Self {
            issuer,
            client_id,
            jwks_url,
        })
    }
}

/// Where game sessions are placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetConfig {
    GameLift {
        /// The game session queue placements go to.
        queue_name: String,
    },
    Ecs {
        cluster: String,
        task_definition: String,
        subnets: Vec<String>,
        security_groups: Vec<String>,
    },
}

impl FleetConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let kind = env.required("FLEET", "where sessions are placed: gamelift or ecs")?;
        match kind.as_str() {
            "gamelift" => Ok(FleetConfig::GameLift {
                queue_name: env.required(
                    "GAMELIFT_QUEUE_NAME",
                    "the GameLift game session queue placements go to",
                )?,
            }),
            "ecs" => {
                let fleet = FleetConfig::Ecs {
                    cluster: env.required("ECS_CLUSTER", "the ECS cluster game servers run in")?,
                    task_definition: env.required("ECS_TASK_DEFINITION", "the game server's task definition family")?,
                    subnets: env.list("ECS_SUBNETS"),
                    security_groups: env.list("ECS_SECURITY_GROUPS"),
                };
                if let FleetConfig::Ecs { subnets, .. } = &fleet {
                    if subnets.is_empty() {
                        return Err(env.invalid(
                            "ECS_SUBNETS",
                            String::new(),
                            "new game-server tasks need at least one subnet (comma-separated ids)",
                        ));
                    }
                }
                Ok(fleet)
            }
            _ => Err(env.invalid("FLEET", kind, "expected gamelift or ecs")),
        }
    }
}

/// The tickets queue and its dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrls {
    pub url: String,
    pub dlq_url: String,
}

impl QueueUrls {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            url: env.required("TICKETS_QUEUE_URL", "the URL of the tickets queue")?,
            dlq_url: env.required("TICKETS_DLQ_URL", "the URL of the tickets queue's dead-letter queue")?,
        })
    }
}

fn table(env: &Env) -> Result<String, ConfigError> {
    env.required("TABLE_NAME", "the DynamoDB single table")
}

fn bus(env: &Env) -> Result<String, ConfigError> {
    env.required("EVENT_BUS_NAME", "the EventBridge bus domain events go to")
}

fn placement_arn(env: &Env) -> Result<String, ConfigError> {
    state_machine_arn(
        env,
        "PLACEMENT_STATE_MACHINE_ARN",
        "the ARN of the session-placement state machine",
    )
}

fn completion_arn(env: &Env) -> Result<String, ConfigError> {
    state_machine_arn(
        env,
        "COMPLETION_STATE_MACHINE_ARN",
        "the ARN of the session-completion state machine",
    )
}

fn state_machine_arn(env: &Env, name: &'static str, what: &'static str) -> Result<String, ConfigError> {
    let arn = env.required(name, what)?;
    if !arn.starts_with("arn:") || !arn.contains(":states:") {
        return Err(env.invalid(name, arn, "expected a Step Functions state machine ARN"));
    }
    Ok(arn)
}

/// `matcher`: admission and rounds, so the table, the queue (pool ticks), the placement workflow,
/// the bus, and the user pool for party tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatcherConfig {
    pub table_name: String,
    pub queue: QueueUrls,
    pub event_bus_name: String,
    pub placement_state_machine_arn: String,
    pub cognito: CognitoConfig,
}

impl MatcherConfig {
    pub const BINARY: &'static str = "matcher";

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: table(env)?,
            queue: QueueUrls::from_env(env)?,
            event_bus_name: bus(env)?,
            placement_state_machine_arn: placement_arn(env)?,
            cognito: CognitoConfig::from_env(env)?,
        })
    }
}

/// `tickets-api`: reads and cancels tickets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketsApiConfig {
    pub table_name: String,
    pub event_bus_name: String,
}

impl TicketsApiConfig {
    pub const BINARY: &'static str = "tickets-api";

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: table(env)?,
            event_bus_name: bus(env)?,
        })
    }
}

/// `ops-api`: the operators' views under /v1/ops/ and the DLQ's redrive. It reads the table and
/// the tickets queue's attributes and dead letters; it writes nothing but the redrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpsApiConfig {
    pub table_name: String,
    pub queue: QueueUrls,
}

impl OpsApiConfig {
    pub const BINARY: &'static str = "ops-api";

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: table(env)?,
            queue: QueueUrls::from_env(env)?,
        })
    }
}

/// `workflow-tasks`: places, activates and fails sessions; requeues tickets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowTasksConfig {
    pub table_name: String,
    pub queue: QueueUrls,
    pub event_bus_name: String,
    pub fleet: FleetConfig,
}

impl WorkflowTasksConfig {
    pub const BINARY: &'static str = "workflow-tasks";

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: table(env)?,
            queue: QueueUrls::from_env(env)?,
            event_bus_name: bus(env)?,
            fleet: FleetConfig::from_env(env)?,
        })
    }
}

/// `session-reports`: records reports and releases the servers of ended sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionReportsConfig {
    pub table_name: String,
    /// A slot opened for backfill sends its pool a tick.
    pub queue: QueueUrls,
    pub event_bus_name: String,
    pub completion_state_machine_arn: String,
    pub fleet: FleetConfig,
}

impl SessionReportsConfig {
    pub const BINARY: &'static str = "session-reports";

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: table(env)?,
            queue: QueueUrls::from_env(env)?,
            event_bus_name: bus(env)?,
            completion_state_machine_arn: completion_arn(env)?,
            fleet: FleetConfig::from_env(env)?,
        })
    }
}

/// `sweeper`: every minute, times out tickets, fails stuck sessions, restarts lost placements and
/// releases the servers of abandoned sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweeperConfig {
    pub table_name: String,
    pub queue: QueueUrls,
    pub event_bus_name: String,
    pub placement_state_machine_arn: String,
    pub fleet: FleetConfig,
}

impl SweeperConfig {
    pub const BINARY: &'static str = "sweeper";

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: table(env)?,
            queue: QueueUrls::from_env(env)?,
            event_bus_name: bus(env)?,
            placement_state_machine_arn: placement_arn(env)?,
            fleet: FleetConfig::from_env(env)?,
        })
    }
}

/// Every binary of the crate, in `src/bin/`.
pub const BINARIES: &[&str] = &[
    MatcherConfig::BINARY,
    TicketsApiConfig::BINARY,
    OpsApiConfig::BINARY,
    WorkflowTasksConfig::BINARY,
    SessionReportsConfig::BINARY,
    WsAuthorizerConfig::BINARY,
    WsConnectionsConfig::BINARY,
    NotifierConfig::BINARY,
    SweeperConfig::BINARY,
];

/// Loads the configuration of `binary` from `env`, to check it: what a deployment must set.
pub fn check(binary: &str, env: &Env) -> Result<(), ConfigError> {
    match binary {
        MatcherConfig::BINARY => MatcherConfig::from_env(env).map(drop),
        TicketsApiConfig::BINARY => TicketsApiConfig::from_env(env).map(drop),
        OpsApiConfig::BINARY => OpsApiConfig::from_env(env).map(drop),
        WorkflowTasksConfig::BINARY => WorkflowTasksConfig::from_env(env).map(drop),
        SessionReportsConfig::BINARY => SessionReportsConfig::from_env(env).map(drop),
        WsAuthorizerConfig::BINARY => WsAuthorizerConfig::from_env(env).map(drop),
        WsConnectionsConfig::BINARY => WsConnectionsConfig::from_env(env).map(drop),
        NotifierConfig::BINARY => NotifierConfig::from_env(env).map(drop),
        SweeperConfig::BINARY => SweeperConfig::from_env(env).map(drop),
        _ => Err(ConfigError::Invalid {
            binary: "queuematch-lambda",
            name: "binary",
            value: binary.to_owned(),
            why: format!("no such function; the functions are {}", BINARIES.join(", ")),
        }),
    }
}

/// `ws-authorizer`: only the user pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsAuthorizerConfig {
    pub cognito: CognitoConfig,
}

impl WsAuthorizerConfig {
    pub const BINARY: &'static str = "ws-authorizer";

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            cognito: CognitoConfig::from_env(env)?,
        })
    }
}

/// `ws-connections`: the table, for the CONN# items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsConnectionsConfig {
    pub table_name: String,
}

impl WsConnectionsConfig {
    pub const BINARY: &'static str = "ws-connections";

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: env.required("TABLE_NAME", "the DynamoDB single table")?,
        })
    }
}

/// `notifier`: the table and the WebSocket API's management endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierConfig {
    pub table_name: String,
    /// `https://<api id>.execute-api.<region>.amazonaws.com/<stage>`.
    pub websocket_endpoint: String,
}

impl NotifierConfig {
    pub const BINARY: &'static str = "notifier";

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let table_name = env.required("TABLE_NAME", "the DynamoDB single table")?;
        let websocket_endpoint = env.required(
            "WEBSOCKET_ENDPOINT",
            "the WebSocket API's https:// endpoint with its stage, for PostToConnection",
        )?;
        if !websocket_endpoint.starts_with("https://") && !websocket_endpoint.starts_with("http://") {
            return Err(env.invalid("WEBSOCKET_ENDPOINT", websocket_endpoint, "expected an http(s):// URL"));
        }
        Ok(Self {
            table_name,
            websocket_endpoint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(binary: &'static str, vars: &[(&str, &str)]) -> Env {
        Env::from_map(
            binary,
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        )
    }

    const POOL: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC";

    #[test]
    fn a_missing_variable_is_named_with_what_it_holds_and_who_needs_it() {
        let error = WsAuthorizerConfig::from_env(&env("ws-authorizer", &[("COGNITO_ISSUER", POOL)])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "ws-authorizer: the environment variable COGNITO_CLIENT_ID is not set; it holds the game client's app client id"
        );
    }

    #[test]
    fn a_blank_variable_counts_as_missing() {
        let error = NotifierConfig::from_env(&env("notifier", &[("TABLE_NAME", "  ")])).unwrap_err();
        assert!(
            matches!(error, ConfigError::Missing { name: "TABLE_NAME", .. }),
            "{error}"
        );
    }

    #[test]
    fn the_jwks_defaults_to_the_issuers_well_known_keys() {
        let config =
            CognitoConfig::from_env(&env("x", &[("COGNITO_ISSUER", POOL), ("COGNITO_CLIENT_ID", "c")])).unwrap();
        assert_eq!(config.jwks_url, format!("{POOL}/.well-known/jwks.json"));
        let config = CognitoConfig::from_env(&env(
            "x",
            &[
                ("COGNITO_ISSUER", POOL),
                ("COGNITO_CLIENT_ID", "c"),
                ("COGNITO_JWKS_URL", "http://127.0.0.1:9/jwks"),
            ],
        ))
        .unwrap();
        assert_eq!(config.jwks_url, "http://127.0.0.1:9/jwks");
    }

    #[test]
    fn an_issuer_that_is_not_https_is_refused_with_the_value() {
        let error = CognitoConfig::from_env(&env(
            "x",
            &[("COGNITO_ISSUER", "eu-west-1_AbC"), ("COGNITO_CLIENT_ID", "c")],
        ))
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "x: the environment variable COGNITO_ISSUER=\"eu-west-1_AbC\" is not valid: an issuer is an https:// URL"
        );
    }

    #[test]
    fn a_placement_arn_must_be_a_state_machines() {
        let vars = [
            ("TABLE_NAME", "t"),
            ("TICKETS_QUEUE_URL", "https://sqs/q"),
            ("TICKETS_DLQ_URL", "https://sqs/dlq"),
            ("EVENT_BUS_NAME", "b"),
            ("PLACEMENT_STATE_MACHINE_ARN", "arn:aws:lambda:eu-west-1:1:function:f"),
            ("COGNITO_ISSUER", POOL),
            ("COGNITO_CLIENT_ID", "c"),
        ];
        let error = MatcherConfig::from_env(&env("matcher", &vars)).unwrap_err();
        assert!(
            matches!(
                error,
                ConfigError::Invalid {
                    name: "PLACEMENT_STATE_MACHINE_ARN",
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn every_binary_can_be_checked_and_an_unknown_one_is_named() {
        for binary in BINARIES {
            let error = check(binary, &env("x", &[])).unwrap_err();
            assert!(matches!(error, ConfigError::Missing { .. }), "{binary}: {error}");
        }
        assert!(check("matchmaker", &env("x", &[]))
            .unwrap_err()
            .to_string()
            .contains("no such function"));
    }

    #[test]
    fn the_fleet_is_gamelift_or_ecs_with_what_each_needs() {
        assert_eq!(
            FleetConfig::from_env(&env("x", &[("FLEET", "gamelift"), ("GAMELIFT_QUEUE_NAME", "q")])).unwrap(),
            FleetConfig::GameLift { queue_name: "q".into() }
        );
        assert_eq!(
            FleetConfig::from_env(&env(
                "x",
                &[
                    ("FLEET", "ecs"),
                    ("ECS_CLUSTER", "c"),
                    ("ECS_TASK_DEFINITION", "gs"),
                    ("ECS_SUBNETS", "subnet-1, subnet-2"),
                    ("ECS_SECURITY_GROUPS", ""),
                ]
            ))
            .unwrap(),
            FleetConfig::Ecs {
                cluster: "c".into(),
                task_definition: "gs".into(),
                subnets: vec!["subnet-1".into(), "subnet-2".into()],
                security_groups: vec![],
            }
        );
        let error = FleetConfig::from_env(&env("x", &[("FLEET", "k8s")])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "x: the environment variable FLEET=\"k8s\" is not valid: expected gamelift or ecs"
        );
        let error = FleetConfig::from_env(&env(
            "x",
            &[("FLEET", "ecs"), ("ECS_CLUSTER", "c"), ("ECS_TASK_DEFINITION", "gs")],
        ))
        .unwrap_err();
        assert!(
            matches!(
                error,
                ConfigError::Invalid {
                    name: "ECS_SUBNETS",
                    ..
                }
            ),
            "{error}"
        );
        let error = FleetConfig::from_env(&env("x", &[("FLEET", "gamelift")])).unwrap_err();
        assert!(
            matches!(
                error,
                ConfigError::Missing {
                    name: "GAMELIFT_QUEUE_NAME",
                    ..
                }
            ),
            "{error}"
        );
    }
}
