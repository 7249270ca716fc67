//! The local fleet: real game-server processes on loopback ports, one per placement.
//!
//! `place` starts a `queuematch-gameserver` process and hands it its session over the process's
//! control channel (see the game server's `control` module): the server prints
//! `{"event":"listening","port":N}` on stdout, the fleet writes the [`SessionAssignment`] (with the
//! session's secret) as one line on its stdin, and the server answers `{"event":"assigned",…}`. From
//! then on the placement polls as ready at `127.0.0.1:N`. The secret never appears in the process's
//! arguments or environment, where `ps` and `/proc` would show it.
//!
//! Each process has a supervisor task that owns it: it waits on the process, reads its events, and
//! kills it when the placement is released, when the server does not start in time, or when the
//! fleet is dropped. A process that exits on its own fails its placement, which then polls as
//! [`PortError::PlacementUnavailable`]; no process is ever placed twice, so a server that died is
//! never reused. The children are also `kill_on_drop`, so a runtime shutting down takes them along.
//!
//! The warm pool of issue 8 (idle servers waiting for sessions) fits the same channel: the server
//! goes back to idle after a game and takes the next assignment line.

use crate::lock;
use queuematch_core::identity::SessionSecret;
use queuematch_core::ids::{MatchId, SessionId};
use queuematch_core::matcher::Match;
use queuematch_core::ports::fleet::{Endpoint, Placement, PlacementId, SessionAssignment};
use queuematch_core::ports::{Fleet, PortError};
use serde::Deserialize;
use std::collections::HashMap;
use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The one region this fleet serves.
pub const REGION: &str = "local";

/// The game server's file name.
pub const GAMESERVER_BINARY: &str = "queuematch-gameserver";

/// What the children inherit from us and must not: in these the game server would find a session
/// of its own and host it instead of taking one from its control channel.
const SESSION_ENV: [&str; 4] = [
    "QUEUEMATCH_SESSION_ID",
    "QUEUEMATCH_SESSION_SECRET",
    "QUEUEMATCH_MATCH_ID",
    "QUEUEMATCH_PLAYERS",
];

/// Where the game servers' logs (JSON lines on their stderr) go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerLogs {
    /// To the fleet's own stderr, where `queuematch dev` shows them.
    #[default]
    Inherit,
    Discard,
}

/// How the fleet starts its servers.
#[derive(Debug, Clone)]
pub struct ProcessFleetConfig {
    /// The `queuematch-gameserver` executable.
    pub binary: PathBuf,
    /// The service's base URL, where servers send their reports.
    pub service_url: String,
    /// Servers starting or running at once, at most; beyond it `place` is `PlacementUnavailable`.
    pub max_servers: usize,
    /// How long a server may take to listen and take its session before its placement fails.
    pub startup_timeout: Duration,
    /// More arguments for every server (its lobby and move timeouts, say).
    pub server_args: Vec<OsString>,
    pub logs: ServerLogs,
}

impl ProcessFleetConfig {
    pub fn new(binary: impl Into<PathBuf>, service_url: impl Into<String>) -> Self {
        Self {
            binary: binary.into(),
            service_url: service_url.into(),
            max_servers: 16,
            startup_timeout: Duration::from_secs(10),
            server_args: Vec::new(),
            logs: ServerLogs::default(),
        }
    }
}

/// The game server installed beside the running executable: `queuematch` and
/// `queuematch-gameserver` are built into the same directory. A test executable lives one level
/// down, in `deps/`, so its parent is tried too.
pub fn gameserver_beside_current_exe() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let name = format!("{GAMESERVER_BINARY}{}", std::env::consts::EXE_SUFFIX);
    let in_deps = dir.ends_with("deps");
    for candidate in [Some(dir), dir.parent().filter(|_| in_deps)].into_iter().flatten() {
        let path = candidate.join(&name);
        if is_file(&path) {
            return Some(path);
        }
    }
    None
}

fn is_file(path: &Path) -> bool {
    path.metadata().map(|m| m.is_file()).unwrap_or(false)
}

/// Game-server processes on loopback. Dropping the fleet kills every server it started.
#[derive(Debug)]
pub struct ProcessFleet {
    config: ProcessFleetConfig,
    /// Shared with the supervisors, which hold it weakly: when the fleet goes, the state goes, its
    /// stop senders with it, and every supervisor kills its process.
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// Numbers placement ids: `local-1`, `local-2`, …; never reused.
    started: u64,
    by_session: HashMap<SessionId, PlacementId>,
    servers: HashMap<PlacementId, Server>,
}

/// One placement and its process. Kept after release or failure, so that a session placed again
/// gets its old answer rather than a second server.
#[derive(Debug)]
struct Server {
    match_id: MatchId,
    secret: SessionSecret,
    status: Status,
    pid: Option<u32>,
    /// Tells the supervisor to kill the process; taken by `release`.
    stop: Option<oneshot::Sender<()>>,
    /// The supervisor; `release` waits for it, so a released server's process is gone.
    supervisor: Option<JoinHandle<()>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Starting,
    Ready { port: u16 },
    Failed(String),
    Released,
}

impl Status {
    /// Whether the server holds a slot under `max_servers`: a dead or released one holds none.
    fn is_live(&self) -> bool {
        matches!(self, Status::Starting | Status::Ready { .. })
    }
}

impl ProcessFleet {
    pub fn new(config: ProcessFleetConfig) -> Self {
        Self {
            config,
            state: Arc::default(),
        }
    }

    /// The process id of a placement's server while it runs: for operators, and for tests that
    /// crash a server on purpose.
    pub fn pid(&self, placement: &PlacementId) -> Option<u32> {
        let state = lock(&self.state);
        let server = state.servers.get(placement)?;
        server.status.is_live().then_some(server.pid).flatten()
    }

    fn spawn(&self, placement: &PlacementId, assignment: &SessionAssignment) -> Result<Server, PortError> {
        let mut command = Command::new(&self.config.binary);
        command
            .arg("--service-url")
            .arg(&self.config.service_url)
            .arg("--listen")
            .arg(format!("{}:0", Ipv4Addr::LOCALHOST))
            .args(&self.config.server_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(match self.config.logs {
                ServerLogs::Inherit => Stdio::inherit(),
                ServerLogs::Discard => Stdio::null(),
            })
            .kill_on_drop(true);
        for name in SESSION_ENV {
            command.env_remove(name);
        }
        let mut child = command.spawn().map_err(|e| {
            PortError::PlacementUnavailable(format!(
                "cannot start the game server {}: {e}",
                self.config.binary.display()
            ))
        })?;
        let (stdin, stdout) = match (child.stdin.take(), child.stdout.take()) {
            (Some(stdin), Some(stdout)) => (stdin, stdout),
            // Both were asked for as pipes just above.
            _ => return Err(PortError::PlacementUnavailable("the game server has no pipes".into())),
        };
        let mut line = serde_json::to_string(assignment).map_err(|e| PortError::invalid(e.to_string()))?;
        line.push('\n');
        let (stop, stopped) = oneshot::channel();
        let pid = child.id();
        let supervisor = tokio::spawn(supervise(Supervised {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            assignment: line,
            session: assignment.session_id.clone(),
            placement: placement.clone(),
            state: Arc::downgrade(&self.state),
            stopped,
            startup_timeout: self.config.startup_timeout,
        }));
        Ok(Server {
            match_id: assignment.match_id.clone(),
            secret: assignment.secret.clone(),
            status: Status::Starting,
            pid,
            stop: Some(stop),
            supervisor: Some(supervisor),
        })
    }
}

/// A placement as the port reports it.
fn view(placement: &PlacementId, status: &Status) -> Result<Placement, PortError> {
    match status {
        Status::Starting => Ok(Placement::Pending {
            placement: placement.clone(),
        }),
        Status::Ready { port } => Ok(Placement::Ready {
            placement: placement.clone(),
            endpoint: Endpoint {
                address: Ipv4Addr::LOCALHOST.to_string(),
                port: *port,
            },
        }),
        Status::Failed(reason) => Err(PortError::PlacementUnavailable(format!("{}: {reason}", placement.0))),
        Status::Released => Err(PortError::PlacementUnavailable(format!("{} was released", placement.0))),
    }
}

#[async_trait::async_trait]
impl Fleet for ProcessFleet {
    async fn place(
        &self,
        session: &SessionId,
        matched: &Match,
        secret: &SessionSecret,
    ) -> Result<Placement, PortError> {
        if let Some(region) = matched.region.as_deref().filter(|&r| r != REGION) {
            return Err(PortError::PlacementUnavailable(format!(
                "the local fleet serves region {REGION}, not {region}"
            )));
        }
        // Everything below happens under the lock, the spawn included (a fork and exec, about a
        // millisecond, no await): two concurrent places of one session must not start two servers.
        let mut state = lock(&self.state);
        if let Some(placement) = state.by_session.get(session) {
            let server = state
                .servers
                .get(placement)
                .ok_or_else(|| PortError::transient(format!("placement {} of {session} is missing", placement.0)))?;
            if server.match_id != matched.id || &server.secret != secret {
                return Err(PortError::invalid(format!(
                    "session {session} was placed with another match or secret"
                )));
            }
            return view(placement, &server.status);
        }
        let live = state.servers.values().filter(|s| s.status.is_live()).count();
        if live >= self.config.max_servers {
            return Err(PortError::PlacementUnavailable(format!(
                "all {} local game servers are in use",
                self.config.max_servers
            )));
        }
        state.started += 1;
        let placement = PlacementId(format!("local-{}", state.started));
        let server = self.spawn(&placement, &SessionAssignment::new(session, matched, secret))?;
        let answer = view(&placement, &server.status);
        state.by_session.insert(session.clone(), placement.clone());
        state.servers.insert(placement, server);
        answer
    }

    async fn poll(&self, placement: &PlacementId) -> Result<Placement, PortError> {
        let state = lock(&self.state);
        let server = state
            .servers
            .get(placement)
            .ok_or_else(|| PortError::NotFound(format!("placement {}", placement.0)))?;
        view(placement, &server.status)
    }

    async fn release(&self, placement: &PlacementId) -> Result<(), PortError> {
        let (stop, supervisor) = {
            let mut state = lock(&self.state);
            let server = state
                .servers
                .get_mut(placement)
                .ok_or_else(|| PortError::NotFound(format!("placement {}", placement.0)))?;
            if server.status == Status::Released {
                return Ok(());
            }
            server.status = Status::Released;
            (server.stop.take(), server.supervisor.take())
        };
        if let Some(stop) = stop {
            // The supervisor may be gone already (its process died): nothing left to stop then.
            let _ = stop.send(());
        }
        if let Some(supervisor) = supervisor {
            // Returns once the process is killed and reaped. A supervisor that panicked has dropped
            // its child, which `kill_on_drop` killed.
            let _ = supervisor.await;
        }
        Ok(())
    }
}

/// What a game server tells its fleet on stdout (its `control::ServerEvent`, of which the fleet needs
/// only these). The fleet contract suite runs on the real binary, which keeps the two in step.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", tag = "event")]
enum ServerEvent {
    Listening {
        port: u16,
    },
    #[serde(rename_all = "camelCase")]
    Assigned {
        session_id: SessionId,
    },
    Refused {
        reason: String,
    },
    #[serde(other)]
    Other,
}

/// Everything a supervisor owns.
#[derive(Debug)]
struct Supervised {
    child: Child,
    /// Held until the end: its closing would tell the server that its fleet let it go.
    stdin: ChildStdin,
    stdout: BufReader<tokio::process::ChildStdout>,
    assignment: String,
    session: SessionId,
    placement: PlacementId,
    state: Weak<Mutex<State>>,
    stopped: oneshot::Receiver<()>,
    startup_timeout: Duration,
}

/// How a supervised process ended.
enum End {
    Stopped,
    Exited(std::io::Result<ExitStatus>),
    Failed(String),
}

/// Watches one server from its start to its end.
async fn supervise(mut s: Supervised) {
    let startup = tokio::time::sleep(s.startup_timeout);
    tokio::pin!(startup);
    let mut lines = (&mut s.stdout).lines();
    let mut port = None;
    let mut ready = false;
    let mut stdout_open = true;
    let end = loop {
        tokio::select! {
            // Released, or the fleet was dropped and the sender with it: either way, stop.
            _ = &mut s.stopped => break End::Stopped,
            status = s.child.wait() => break End::Exited(status),
            () = &mut startup, if !ready => break End::Failed("the game server did not start in time".into()),
            line = lines.next_line(), if stdout_open => match line {
                Ok(Some(line)) => match serde_json::from_str::<ServerEvent>(&line) {
                    Ok(ServerEvent::Listening { port: listening }) if port.is_none() => {
                        port = Some(listening);
                        let written = async {
                            s.stdin.write_all(s.assignment.as_bytes()).await?;
                            s.stdin.flush().await
                        };
                        if let Err(e) = written.await {
                            break End::Failed(format!("cannot hand the session to the game server: {e}"));
                        }
                    }
                    Ok(ServerEvent::Assigned { session_id }) if !ready => match port {
                        Some(_) if session_id != s.session => {
                            break End::Failed(format!("the game server took session {session_id}, not {}", s.session));
                        }
                        Some(port) => {
                            ready = true;
                            update(&s.state, &s.placement, Status::Ready { port });
                        }
                        None => break End::Failed("the game server took a session before listening".into()),
                    },
                    Ok(ServerEvent::Refused { reason }) if !ready => {
                        break End::Failed(format!("the game server refused its session: {reason}"));
                    }
                    // Later events (idle after the game) and lines that are not events change nothing.
                    _ => {}
                },
                Ok(None) | Err(_) => stdout_open = false,
            },
        }
    };
    let status = match end {
        End::Stopped => {
            kill(&mut s.child).await;
            return;
        }
        End::Exited(Ok(status)) => Status::Failed(format!("the game server exited ({status})")),
        End::Exited(Err(e)) => Status::Failed(format!("the game server cannot be waited on: {e}")),
        End::Failed(reason) => {
            kill(&mut s.child).await;
            Status::Failed(reason)
        }
    };
    update(&s.state, &s.placement, status);
}

async fn kill(child: &mut Child) {
    // Fails only if the process is already gone, which is what we want.
    let _ = child.kill().await;
}

/// Records a server's new status, unless its placement was released meanwhile: released is final.
fn update(state: &Weak<Mutex<State>>, placement: &PlacementId, status: Status) {
    let Some(state) = state.upgrade() else {
        return;
    };
    let mut state = lock(&state);
    if let Some(server) = state.servers.get_mut(placement) {
        if server.status != Status::Released {
            server.status = status;
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    //! The supervisor against stand-in servers: shell scripts that break the control protocol in
    //! each way a real server could. The real server's side is tested with the binary, in the game
    //! server's crate.

    use super::*;
    use queuematch_core::matcher::{MatchQuality, MatchTeam};
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Writes an executable `sh` script to a fresh path.
    fn script(body: &str) -> PathBuf {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = scratch();
        let path = dir.join(format!("server-{}.sh", NEXT.fetch_add(1, Ordering::Relaxed)));
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {path:?}: {e}"));
        path
    }

    /// This test process's scratch directory.
    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("qm-fleet-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {dir:?}: {e}"));
        dir
    }

    fn fleet(binary: PathBuf) -> ProcessFleet {
        let mut config = ProcessFleetConfig::new(binary, "http://127.0.0.1:9");
        config.startup_timeout = Duration::from_millis(500);
        config.logs = ServerLogs::Discard;
        ProcessFleet::new(config)
    }

    fn duel(region: Option<&str>) -> Match {
        Match {
            id: "m-1".into(),
            queue: "duel".into(),
            created_at: queuematch_core::Timestamp(0),
            teams: [MatchTeam {
                name: "red".into(),
                tickets: ["t-1".into()].into(),
                players: ["p-1".into()].into(),
            }]
            .into_iter()
            .collect(),
            region: region.map(Into::into),
            collections: Default::default(),
            quality: MatchQuality {
                skill_spread: None,
                team_imbalance: None,
                worst_latency_ms: None,
                waits_ms: [0].into_iter().collect(),
                expansion_steps: [].into(),
            },
        }
    }

    fn secret() -> SessionSecret {
        SessionSecret::from_random_bytes(&[5; 32])
    }

    /// Polls until the placement fails, and returns why.
    async fn failure(fleet: &ProcessFleet, placement: &Placement) -> String {
        let id = match placement {
            Placement::Pending { placement } | Placement::Ready { placement, .. } => placement.clone(),
        };
        for _ in 0..200 {
            match fleet.poll(&id).await {
                Err(PortError::PlacementUnavailable(reason)) => return reason,
                Err(other) => panic!("unexpected {other:?}"),
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        panic!("{id:?} never failed")
    }

    #[tokio::test]
    async fn a_server_that_exits_fails_its_placement_and_frees_its_slot() {
        let fleet = fleet(script("exit 3"));
        let placed = fleet.place(&"s-1".into(), &duel(None), &secret()).await.unwrap();
        assert!(failure(&fleet, &placed).await.contains("exited"));
        assert_eq!(fleet.pid(&PlacementId("local-1".into())), None);
        let live = lock(&fleet.state)
            .servers
            .values()
            .filter(|s| s.status.is_live())
            .count();
        assert_eq!(live, 0);
    }

    #[tokio::test]
    async fn a_server_that_never_listens_is_killed_after_the_startup_timeout() {
        let fleet = fleet(script("exec sleep 30"));
        let placed = fleet.place(&"s-1".into(), &duel(None), &secret()).await.unwrap();
        assert!(failure(&fleet, &placed).await.contains("did not start in time"));
    }

    #[tokio::test]
    async fn a_server_that_refuses_its_session_fails_its_placement() {
        let fleet = fleet(script(
            r#"echo '{"event":"listening","port":4000}'; read assignment; echo '{"event":"refused","reason":"no thanks"}'; exec sleep 30"#,
        ));
        let placed = fleet.place(&"s-1".into(), &duel(None), &secret()).await.unwrap();
        assert!(failure(&fleet, &placed).await.contains("no thanks"));
    }

    #[tokio::test]
    async fn a_server_that_takes_another_session_fails_its_placement() {
        let fleet = fleet(script(
            r#"echo '{"event":"listening","port":4000}'; read assignment; echo '{"event":"assigned","sessionId":"s-other"}'; exec sleep 30"#,
        ));
        let placed = fleet.place(&"s-1".into(), &duel(None), &secret()).await.unwrap();
        assert!(failure(&fleet, &placed).await.contains("s-other"));
    }

    #[tokio::test]
    async fn the_assignment_reaches_the_server_on_its_stdin_and_never_on_its_command_line() {
        let seen = scratch().join("seen");
        let fleet = fleet(script(&format!(
            r#"echo "$@" > '{seen}.args'; echo '{{"event":"listening","port":4000}}'; read assignment; echo "$assignment" > '{seen}.stdin'; echo '{{"event":"assigned","sessionId":"s-1"}}'; exec sleep 30"#,
            seen = seen.display()
        )));
        let placed = fleet
            .place(&"s-1".into(), &duel(Some(REGION)), &secret())
            .await
            .unwrap();
        let mut ready = None;
        for _ in 0..200 {
            if let Placement::Ready { endpoint, .. } = fleet.poll(&PlacementId("local-1".into())).await.unwrap() {
                ready = Some(endpoint);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            ready,
            Some(Endpoint {
                address: "127.0.0.1".into(),
                port: 4000
            }),
            "{placed:?}"
        );
        let stdin = std::fs::read_to_string(format!("{}.stdin", seen.display())).unwrap();
        let assignment: SessionAssignment = serde_json::from_str(&stdin).unwrap();
        assert_eq!(
            assignment,
            SessionAssignment::new(&"s-1".into(), &duel(None), &secret())
        );
        let args = std::fs::read_to_string(format!("{}.args", seen.display())).unwrap();
        assert!(!args.contains(secret().expose()), "{args}");
        assert!(args.contains("--service-url http://127.0.0.1:9"), "{args}");
        fleet.release(&PlacementId("local-1".into())).await.unwrap();
    }

    #[tokio::test]
    async fn a_match_for_another_region_or_a_missing_binary_is_unavailable() {
        let local = fleet(script("exit 0"));
        let elsewhere = local.place(&"s-1".into(), &duel(Some("eu-west-1")), &secret()).await;
        assert!(
            matches!(elsewhere, Err(PortError::PlacementUnavailable(_))),
            "{elsewhere:?}"
        );
        let missing = fleet(PathBuf::from("/nonexistent/queuematch-gameserver"));
        let placed = missing.place(&"s-1".into(), &duel(None), &secret()).await;
        assert!(matches!(placed, Err(PortError::PlacementUnavailable(_))), "{placed:?}");
    }
}
