//! The `Fleet` port on ECS: warm game servers registered in the table, claimed conditionally, and
//! RunTask to scale out when none is free.
//!
//! **Items** (partition `FLEET#<fleet>`):
//! - `SERVER#<id>`, a [`ServerRecord`]: a running server, its endpoint and task, and the session it
//!   serves. A server registers itself when it is up ([`EcsFleet::register_server`]); a claim writes
//!   the [`SessionAssignment`] into the item, conditional on the version read while it was free, so
//!   two sessions never get one server. That item is how the server learns its session and secret.
//! - `PLACEMENT#<session>`, a [`PlacementRecord`]: what the session's placement is (starting on a new
//!   task, claimed a server, failed, released) and a digest of its assignment. It is created
//!   conditionally with the claim or the RunTask, so a session is placed once however often `place`
//!   runs, and a second `place` with another match or secret is told apart by the digest.
//!
//! **Place**: claim a free server; if none is free, RunTask one (its failures, e.g. `RESOURCE:CPU`,
//! are `PlacementUnavailable`) and answer pending. **Poll**: a starting placement claims a server
//! once one is free, and fails when its task stopped; a claimed one is ready unless DescribeTasks
//! says its server's task stopped (then the server is marked dead and never claimed again).
//! **Release** frees the server and marks the placement released, in one transaction, once.

use crate::error;
use aws_sdk_ecs::types::{AssignPublicIp, AwsVpcConfiguration, LaunchType, NetworkConfiguration};
use aws_sdk_ecs::Client;
use queuematch_core::identity::SessionSecret;
use queuematch_core::ids::SessionId;
use queuematch_core::matcher::Match;
use queuematch_core::ports::fleet::{Endpoint, Placement, PlacementId, SessionAssignment};
use queuematch_core::ports::store::items::{self, Versioned};
use queuematch_core::ports::store::{Condition, Item, Key, Query, Store, Write};
use queuematch_core::ports::{Fleet, PortError};
use queuematch_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// ECS's limit on `startedBy`.
const MAX_STARTED_BY: usize = 36;
/// How often a claim or a release that lost a race is tried again.
const MAX_ATTEMPTS: usize = 8;

/// Where and how new servers are started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsFleetConfig {
    /// The fleet's name: its items live under `FLEET#<fleet>`.
    pub fleet: String,
    pub cluster: String,
    pub task_definition: String,
    /// Fargate's awsvpc networking; empty for tasks on EC2 with bridge networking.
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub assign_public_ip: bool,
}

/// A warm server, as it registered itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerRecord {
    pub server_id: String,
    pub endpoint: Endpoint,
    /// The ECS task it runs in, to see whether it is still alive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    /// The session it serves; `None` while it is free.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionAssignment>,
    /// Its task stopped: never claimed again.
    #[serde(default)]
    pub dead: bool,
    /// When the server last said it was alive ([`ServerRegistry::heartbeat`]). A self-registered
    /// server's item expires (the table's TTL) a few heartbeats later, so a server that stopped
    /// without a word is invisible, and never claimed, once its heartbeats are overdue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
}

/// Where a session's placement is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum PlacementState {
    /// A task was started for it; it claims the first free server.
    Starting {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task_arn: Option<String>,
    },
    Claimed {
        server_id: String,
    },
    Failed {
        reason: String,
    },
    Released,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementRecord {
    pub session_id: SessionId,
    /// SHA-256 of the assignment's JSON: tells a repeated place from one with another match or
    /// secret, without keeping the secret a second time.
    pub digest: String,
    /// The assignment, kept until a server is claimed for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignment: Option<SessionAssignment>,
    #[serde(flatten)]
    pub state: PlacementState,
}

/// Game servers as ECS tasks.
#[derive(Clone)]
pub struct EcsFleet {
    client: Client,
    store: Arc<dyn Store>,
    config: EcsFleetConfig,
}

impl std::fmt::Debug for EcsFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcsFleet")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A game server's own item in the table: it registers itself free when it starts, heartbeats, and
/// goes away when it stops (see the module's items). What `queuematch-gameserver --register-table`
/// runs on ECS.
///
/// Every write but the first is conditional on the version read, so a heartbeat never undoes a claim
/// made meanwhile: it reads again and keeps the claim. The item expires `ttl` after each heartbeat;
/// DynamoDB's TTL is lazy, but the store treats an expired item as absent for every read and
/// condition, so [`EcsFleet`] never sees, let alone claims, a server whose heartbeats stopped.
#[derive(Clone)]
pub struct ServerRegistry {
    store: Arc<dyn Store>,
    fleet: String,
}

impl std::fmt::Debug for ServerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerRegistry")
            .field("fleet", &self.fleet)
            .finish_non_exhaustive()
    }
}

impl ServerRegistry {
    pub fn new(store: Arc<dyn Store>, fleet: impl Into<String>) -> Self {
        Self {
            store,
            fleet: fleet.into(),
        }
    }

    fn key(&self, server: &str) -> Key {
        Key::new(format!("FLEET#{}", self.fleet), format!("SERVER#{server}"))
    }

    /// Puts the server's item, free and seen `now`, expiring `ttl` later. Registering again replaces
    /// it, free: a restarted server serves no session.
    pub async fn register(
        &self,
        server: &ServerRecord,
        now: Timestamp,
        ttl: std::time::Duration,
    ) -> Result<(), PortError> {
        let record = ServerRecord {
            session: None,
            dead: false,
            last_seen: Some(now),
            ..server.clone()
        };
        let item = Item::new(self.key(&server.server_id), body(&record)?).expiring_at(now.plus(ttl));
        self.store.put(item, Condition::Any).await.map(|_| ())
    }

    /// Marks the server seen `now`, expiring `ttl` later, keeping whatever claimed it. The item as it
    /// now is: its `session` is how the server learns what to host. `None` when the item is gone
    /// (it expired, or the server was deregistered): the caller registers again if it is free.
    pub async fn heartbeat(
        &self,
        server: &str,
        now: Timestamp,
        ttl: std::time::Duration,
    ) -> Result<Option<ServerRecord>, PortError> {
        let key = self.key(server);
        for _ in 0..MAX_ATTEMPTS {
            let Some(stored) = self.store.get(&key).await? else {
                return Ok(None);
            };
            let current: Versioned<ServerRecord> = items::read(&stored)?;
            let mut next = current.value.clone();
            next.last_seen = Some(now);
            let item = Item::new(key.clone(), body(&next)?).expiring_at(now.plus(ttl));
            match self.store.put(item, Condition::Version(current.version)).await {
                Ok(_) => return Ok(Some(next)),
                // Claimed or released meanwhile: read it again.
                Err(PortError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(PortError::transient(format!("server {server}'s item kept changing")))
    }

    /// The server's item as it is now, without touching it: a server between heartbeats looks here
    /// for a claim, so its players need not wait a whole heartbeat to be let in.
    pub async fn current(&self, server: &str) -> Result<Option<ServerRecord>, PortError> {
        match self.store.get(&self.key(server)).await? {
            Some(stored) => Ok(Some(items::read::<ServerRecord>(&stored)?.value)),
            None => Ok(None),
        }
    }

    /// The server is stopping: its item is deleted when it is free, and marked dead when a session
    /// claimed it (the session's placement then fails on its next poll rather than waiting).
    pub async fn deregister(&self, server: &str) -> Result<(), PortError> {
        let key = self.key(server);
        for _ in 0..MAX_ATTEMPTS {
            let Some(stored) = self.store.get(&key).await? else {
                return Ok(());
            };
            let current: Versioned<ServerRecord> = items::read(&stored)?;
            let outcome = if current.value.session.is_none() {
                self.store.delete(&key, Condition::Version(current.version)).await
            } else {
                let mut dead = current.value.clone();
                dead.dead = true;
                let item = Item::new(key.clone(), body(&dead)?);
                self.store
                    .put(item, Condition::Version(current.version))
                    .await
                    .map(|_| ())
            };
            match outcome {
                Ok(()) => return Ok(()),
                Err(PortError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(PortError::transient(format!("server {server}'s item kept changing")))
    }
}

fn body<T: Serialize>(value: &T) -> Result<serde_json::Value, PortError> {
    serde_json::to_value(value).map_err(|e| PortError::invalid(format!("a fleet item: {e}")))
}

fn digest(assignment: &SessionAssignment) -> Result<String, PortError> {
    let json = serde_json::to_vec(assignment).map_err(|e| PortError::invalid(format!("assignment: {e}")))?;
    Ok(Sha256::digest(&json).iter().map(|b| format!("{b:02x}")).collect())
}

impl EcsFleet {
    pub fn new(client: Client, store: Arc<dyn Store>, config: EcsFleetConfig) -> Self {
        Self { client, store, config }
    }

    fn partition(&self) -> String {
        format!("FLEET#{}", self.config.fleet)
    }

    fn server_key(&self, server: &str) -> Key {
        Key::new(self.partition(), format!("SERVER#{server}"))
    }

    fn placement_key(&self, session: &str) -> Key {
        Key::new(self.partition(), format!("PLACEMENT#{session}"))
    }

    /// Registers a server that is up and free (what the game server does when it starts on ECS).
    /// Registering it again replaces it, free.
    pub async fn register_server(&self, server: &ServerRecord) -> Result<(), PortError> {
        let record = ServerRecord {
            session: None,
            dead: false,
            ..server.clone()
        };
        let item = Item::new(self.server_key(&server.server_id), body(&record)?);
        self.store.put(item, Condition::Any).await.map(|_| ())
    }

    /// The server `id` as registered, with its version.
    pub async fn server(&self, id: &str) -> Result<Option<Versioned<ServerRecord>>, PortError> {
        self.store
            .get(&self.server_key(id))
            .await?
            .map(|s| items::read(&s))
            .transpose()
    }

    async fn placement(&self, session: &str) -> Result<Option<Versioned<PlacementRecord>>, PortError> {
        self.store
            .get(&self.placement_key(session))
            .await?
            .map(|s| items::read(&s))
            .transpose()
    }

    /// Every free, live server, oldest registration first.
    async fn free_servers(&self) -> Result<Vec<Versioned<ServerRecord>>, PortError> {
        let mut free = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .query(
                    Query::new(store_index(), self.partition(), 100)
                        .with_prefix("SERVER#")
                        .after(after),
                )
                .await?;
            for stored in &page.items {
                let server: Versioned<ServerRecord> = items::read(stored)?;
                if server.value.session.is_none() && !server.value.dead {
                    free.push(server);
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(free),
            }
        }
    }

    /// Claims a free server for `assignment`, moving the placement (read at `current`, or created
    /// when `None`) to Claimed. `Ok(None)` when no server is free; `Err(ConditionFailed)` on
    /// operation 1 when the placement changed meanwhile.
    async fn claim(
        &self,
        assignment: &SessionAssignment,
        digest: &str,
        current: Option<&Versioned<PlacementRecord>>,
    ) -> Result<Option<Endpoint>, PortError> {
        for server in self.free_servers().await? {
            let mut taken = server.value.clone();
            taken.session = Some(assignment.clone());
            let record = PlacementRecord {
                session_id: assignment.session_id.clone(),
                digest: digest.to_owned(),
                assignment: None,
                state: PlacementState::Claimed {
                    server_id: server.value.server_id.clone(),
                },
            };
            let condition = current.map_or(Condition::Absent, |c| Condition::Version(c.version));
            let writes = vec![
                Write::put(
                    Item::new(self.server_key(&server.value.server_id), body(&taken)?),
                    Condition::Version(server.version),
                ),
                Write::put(
                    Item::new(self.placement_key(assignment.session_id.as_str()), body(&record)?),
                    condition,
                ),
            ];
            match self.store.transact_write(writes, None).await {
                Ok(()) => return Ok(Some(server.value.endpoint)),
                // Someone else claimed this server first: the next one.
                Err(PortError::ConditionFailed { operation: Some(0), .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Starts one more server task; its failures mean no capacity.
    async fn run_task(&self, session: &SessionId) -> Result<String, PortError> {
        let mut call = self
            .client
            .run_task()
            .cluster(&self.config.cluster)
            .task_definition(&self.config.task_definition)
            .count(1)
            .started_by(session.as_str().chars().take(MAX_STARTED_BY).collect::<String>());
        if !self.config.subnets.is_empty() {
            let vpc = AwsVpcConfiguration::builder()
                .set_subnets(Some(self.config.subnets.clone()))
                .set_security_groups(Some(self.config.security_groups.clone()))
                .assign_public_ip(if self.config.assign_public_ip {
                    AssignPublicIp::Enabled
                } else {
                    AssignPublicIp::Disabled
                })
                .build()
                .map_err(|e| PortError::invalid(format!("the fleet's network configuration: {e}")))?;
            call = call
                .launch_type(LaunchType::Fargate)
                .network_configuration(NetworkConfiguration::builder().awsvpc_configuration(vpc).build());
        }
        let out = call.send().await.map_err(|e| map("RunTask", e))?;
        if let Some(failure) = out.failures().first() {
            return Err(PortError::PlacementUnavailable(format!(
                "RunTask could not start a server: {} {}",
                failure.reason().unwrap_or("no reason"),
                failure.detail().unwrap_or_default()
            )));
        }
        out.tasks()
            .first()
            .and_then(|t| t.task_arn())
            .map(str::to_owned)
            .ok_or_else(|| PortError::transient("RunTask answered without a task"))
    }

    /// Whether `task` has stopped, and why.
    async fn stopped(&self, task: &str) -> Result<Option<String>, PortError> {
        let out = self
            .client
            .describe_tasks()
            .cluster(&self.config.cluster)
            .tasks(task)
            .send()
            .await
            .map_err(|e| map("DescribeTasks", e))?;
        if let Some(t) = out.tasks().iter().find(|t| t.task_arn() == Some(task)) {
            return Ok((t.last_status() == Some("STOPPED")).then(|| t.stopped_reason().unwrap_or("stopped").to_owned()));
        }
        // ECS forgets stopped tasks after about an hour; a missing task is a stopped one.
        match out.failures().first() {
            Some(f) if f.reason() == Some("MISSING") => Ok(Some("the task is gone".to_owned())),
            Some(f) => Err(PortError::transient(format!(
                "DescribeTasks: {}",
                f.reason().unwrap_or("a failure without a reason")
            ))),
            None => Ok(Some("the task is gone".to_owned())),
        }
    }

    /// Marks a server dead so it is never claimed again.
    async fn bury(&self, server: &Versioned<ServerRecord>) -> Result<(), PortError> {
        let dead = ServerRecord {
            dead: true,
            ..server.value.clone()
        };
        let item = Item::new(self.server_key(&server.value.server_id), body(&dead)?);
        match self.store.put(item, Condition::Version(server.version)).await {
            Ok(_) | Err(PortError::ConditionFailed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// What a placement is now, moving it on where it can (a starting one claims a server).
    async fn answer(&self, current: Versioned<PlacementRecord>) -> Result<Placement, PortError> {
        let id = PlacementId(current.value.session_id.as_str().to_owned());
        match &current.value.state {
            PlacementState::Released => Err(PortError::PlacementUnavailable(format!(
                "placement {} was released",
                id.0
            ))),
            PlacementState::Failed { reason } => Err(PortError::PlacementUnavailable(format!(
                "placement {} failed: {reason}",
                id.0
            ))),
            PlacementState::Claimed { server_id } => {
                let server = self.server(server_id).await?;
                let Some(server) = server.filter(|s| {
                    !s.value.dead && s.value.session.as_ref().map(|a| &a.session_id) == Some(&current.value.session_id)
                }) else {
                    return Err(PortError::PlacementUnavailable(format!(
                        "the server of placement {} is gone",
                        id.0
                    )));
                };
                if let Some(task) = &server.value.task_arn {
                    if let Some(reason) = self.stopped(task).await? {
                        self.bury(&server).await?;
                        return Err(PortError::PlacementUnavailable(format!(
                            "the server of placement {} died: {reason}",
                            id.0
                        )));
                    }
                }
                Ok(Placement::Ready {
                    placement: id,
                    endpoint: server.value.endpoint,
                })
            }
            PlacementState::Starting { task_arn } => {
                let Some(assignment) = current.value.assignment.clone() else {
                    return Err(PortError::Corrupt {
                        key: self.placement_key(id.0.as_str()),
                        reason: "a starting placement without its assignment".into(),
                    });
                };
                match self.claim(&assignment, &current.value.digest, Some(&current)).await {
                    Ok(Some(endpoint)) => {
                        return Ok(Placement::Ready {
                            placement: id,
                            endpoint,
                        })
                    }
                    Ok(None) => {}
                    Err(PortError::ConditionFailed { .. }) => return Ok(Placement::Pending { placement: id }),
                    Err(e) => return Err(e),
                }
                if let Some(task) = task_arn {
                    if let Some(reason) = self.stopped(task).await? {
                        let failed = PlacementRecord {
                            assignment: None,
                            state: PlacementState::Failed { reason: reason.clone() },
                            ..current.value.clone()
                        };
                        let item = Item::new(self.placement_key(id.0.as_str()), body(&failed)?);
                        match self.store.put(item, Condition::Version(current.version)).await {
                            Ok(_) | Err(PortError::ConditionFailed { .. }) => {}
                            Err(e) => return Err(e),
                        }
                        return Err(PortError::PlacementUnavailable(format!(
                            "the server started for placement {} stopped: {reason}",
                            id.0
                        )));
                    }
                }
                Ok(Placement::Pending { placement: id })
            }
        }
    }
}

/// The table index a fleet's partition is read from.
fn store_index() -> queuematch_core::ports::store::Index {
    queuematch_core::ports::store::Index::Table
}

fn map<E>(operation: &str, err: aws_sdk_ecs::error::SdkError<E, aws_sdk_ecs::config::http::HttpResponse>) -> PortError
where
    E: aws_sdk_ecs::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match error::code(&err) {
        Some("ServerException") => PortError::Transient {
            message: error::describe(operation, &err),
            source: Some(Box::new(err)),
        },
        Some(
            "ClusterNotFoundException" | "ClientException" | "InvalidParameterException" | "AccessDeniedException",
        ) => PortError::Invalid(error::describe(operation, &err)),
        Some(
            "PlatformTaskDefinitionIncompatibilityException"
            | "PlatformUnknownException"
            | "UnsupportedFeatureException",
        ) => PortError::Invalid(error::describe(operation, &err)),
        Some("BlockedException") => PortError::PlacementUnavailable(error::describe(operation, &err)),
        _ => error::map(operation, err),
    }
}

#[async_trait::async_trait]
impl Fleet for EcsFleet {
    async fn place(
        &self,
        session: &SessionId,
        matched: &Match,
        secret: &SessionSecret,
    ) -> Result<Placement, PortError> {
        let assignment = SessionAssignment::new(session, matched, secret);
        let digest = digest(&assignment)?;
        for _ in 0..MAX_ATTEMPTS {
            if let Some(current) = self.placement(session.as_str()).await? {
                if current.value.digest != digest {
                    return Err(PortError::invalid(format!(
                        "session {session} was placed with another match or secret"
                    )));
                }
                return self.answer(current).await;
            }
            match self.claim(&assignment, &digest, None).await {
                Ok(Some(endpoint)) => {
                    return Ok(Placement::Ready {
                        placement: PlacementId(session.as_str().to_owned()),
                        endpoint,
                    })
                }
                Ok(None) => {}
                // A concurrent place of this session got there first: answer as it stands.
                Err(PortError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e),
            }
            // No server is free: record the placement first, so only one task starts for it.
            let starting = PlacementRecord {
                session_id: session.clone(),
                digest: digest.clone(),
                assignment: Some(assignment.clone()),
                state: PlacementState::Starting { task_arn: None },
            };
            let key = self.placement_key(session.as_str());
            let version = match self
                .store
                .put(Item::new(key.clone(), body(&starting)?), Condition::Absent)
                .await
            {
                Ok(v) => v,
                Err(PortError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e),
            };
            let outcome = self.run_task(session).await;
            let state = match &outcome {
                Ok(task) => PlacementState::Starting {
                    task_arn: Some(task.clone()),
                },
                Err(e) => PlacementState::Failed { reason: e.to_string() },
            };
            let record = PlacementRecord {
                assignment: outcome.is_ok().then(|| assignment.clone()),
                state,
                ..starting
            };
            match self
                .store
                .put(Item::new(key, body(&record)?), Condition::Version(version))
                .await
            {
                // A poll claimed a server meanwhile: that is the placement now.
                Ok(_) | Err(PortError::ConditionFailed { .. }) => {}
                Err(e) => return Err(e),
            }
            outcome?;
            return Ok(Placement::Pending {
                placement: PlacementId(session.as_str().to_owned()),
            });
        }
        Err(PortError::transient(format!("placing session {session} kept racing")))
    }

    async fn poll(&self, placement: &PlacementId) -> Result<Placement, PortError> {
        let current = self
            .placement(&placement.0)
            .await?
            .ok_or_else(|| PortError::NotFound(format!("no placement {}", placement.0)))?;
        self.answer(current).await
    }

    async fn release(&self, placement: &PlacementId) -> Result<(), PortError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some(current) = self.placement(&placement.0).await? else {
                return Ok(());
            };
            let released = PlacementRecord {
                assignment: None,
                state: PlacementState::Released,
                ..current.value.clone()
            };
            let mut writes = vec![Write::put(
                Item::new(self.placement_key(&placement.0), body(&released)?),
                Condition::Version(current.version),
            )];
            match &current.value.state {
                PlacementState::Released | PlacementState::Failed { .. } => return Ok(()),
                PlacementState::Starting { .. } => {}
                PlacementState::Claimed { server_id } => {
                    if let Some(server) = self.server(server_id).await? {
                        if server.value.session.as_ref().map(|a| &a.session_id) == Some(&current.value.session_id) {
                            let freed = ServerRecord {
                                session: None,
                                ..server.value.clone()
                            };
                            writes.push(Write::put(
                                Item::new(self.server_key(server_id), body(&freed)?),
                                Condition::Version(server.version),
                            ));
                        }
                    }
                }
            }
            match self.store.transact_write(writes, None).await {
                Ok(()) => return Ok(()),
                Err(PortError::ConditionFailed { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(PortError::transient(format!("releasing {} kept racing", placement.0)))
    }
}
