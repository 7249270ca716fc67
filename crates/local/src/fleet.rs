//! The local fleet: real game-server processes on loopback ports, with a warm pool.
//!
//! Each server is a `queuematch-gameserver` process driven over its control channel (see the game
//! server's `control` module): it prints `{"event":"listening","port":N}` on stdout once bound, takes
//! one [`SessionAssignment`] (with the session's secret) per line on its stdin, answers
//! `{"event":"assigned",…}`, and prints `{"event":"idle"}` when the game is over. The secret never
//! appears in a process's arguments or environment, where `ps` and `/proc` would show it.
//!
//! - **Warm pool.** [`ProcessFleetConfig::warm_servers`] idle servers are started ahead and kept:
//!   a placement takes one that is already listening, and the pool is topped up behind it.
//! - **Scale-up to a cap.** With no idle server, a placement starts one, up to
//!   [`ProcessFleetConfig::max_servers`] processes in all; beyond it, `place` is
//!   `PlacementUnavailable`. Servers beyond the warm size are stopped once their game is over.
//! - **Back to the pool.** A server that says `idle` after its game goes back to the pool (or is
//!   stopped, when the pool is full). Releasing a placement whose server has not said `idle` yet
//!   gives it [`ProcessFleetConfig::drain_timeout`] to finish its last reports and come back; one
//!   that does not is stopped. A placement that needs the room stops a draining server at once.
//!   When the pool is full already (always, with no warm servers), release stops the server and
//!   returns once its process is gone.
//! - **Health.** A supervisor task per process waits on its exit, reads its control channel, and
//!   holds it to deadlines: listening within `startup_timeout`, taking a session within the same,
//!   idle within `drain_timeout` of its release. A server that dies, closes its control channel,
//!   misses a deadline, refuses its session or takes another is retired: out of the fleet at once,
//!   never claimed again, its process killed. Heartbeats go to the service, not the fleet: a server
//!   that stops heartbeating has its session abandoned by the sweeper, which releases it, and the
//!   drain deadline then stops it unless it comes back idle.
//! - **Failover.** A session whose server died or failed before taking it is moved to another
//!   server (at most [`ProcessFleetConfig::failovers`] times), and its placement stays pending. A
//!   session whose server dies while hosting it fails its placement: polls answer
//!   `PlacementUnavailable`, and the sweeper abandons the session once its heartbeats stop.
//!
//! The book of servers and placements and every move between their states are in `pool`; the
//! processes' supervisors in `supervisor`. Dropping the fleet kills every server it started; the
//! children are also `kill_on_drop`, so a runtime shutting down takes them along.

mod pool;
mod supervisor;

use crate::lock;
use pool::{Inner, State, Status};
use queuematch_core::identity::SessionSecret;
use queuematch_core::ids::SessionId;
use queuematch_core::matcher::Match;
use queuematch_core::ports::fleet::{Endpoint, Placement, PlacementId, SessionAssignment};
use queuematch_core::ports::{Fleet, PortError};
use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// How the fleet starts and keeps its servers.
#[derive(Debug, Clone)]
pub struct ProcessFleetConfig {
    /// The `queuematch-gameserver` executable.
    pub binary: PathBuf,
    /// The service's base URL, where servers send their reports.
    pub service_url: String,
    /// Idle servers started ahead and kept for the next placements (at most `max_servers`). With 0,
    /// each placement starts its server and the server stops after its game.
    pub warm_servers: usize,
    /// Server processes at once, at most, whatever they are doing; beyond it `place` is
    /// `PlacementUnavailable`.
    pub max_servers: usize,
    /// How long a server may take to listen, and to take a session handed to it.
    pub startup_timeout: Duration,
    /// How long a released server may take to say `idle` (its game's last reports on their way)
    /// before it is stopped.
    pub drain_timeout: Duration,
    /// How many other servers a session is moved to when its server dies or fails before taking it.
    pub failovers: u32,
    /// More arguments for every server (its lobby and move timeouts, say).
    pub server_args: Vec<OsString>,
    pub logs: ServerLogs,
}

impl ProcessFleetConfig {
    pub fn new(binary: impl Into<PathBuf>, service_url: impl Into<String>) -> Self {
        Self {
            binary: binary.into(),
            service_url: service_url.into(),
            warm_servers: 0,
            max_servers: 16,
            startup_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            failovers: 2,
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

/// What a server is doing, as [`ProcessFleet::servers`] shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Started, not listening yet.
    Starting,
    /// In the warm pool.
    Idle,
    /// Taking a session.
    Assigning,
    /// Hosting a session.
    Hosting,
    /// Released before its game was over; on its way back to the pool, or out.
    Draining,
}

/// One live server, for operators and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `gs-N`, never reused.
    pub id: String,
    pub pid: Option<u32>,
    /// Where it listens, once it does.
    pub port: Option<u16>,
    pub state: ServerState,
    /// The placement it is starting for, taking or hosting.
    pub placement: Option<PlacementId>,
}

/// Game-server processes on loopback. Dropping the fleet kills every server it started.
#[derive(Debug)]
pub struct ProcessFleet {
    /// Shared with the supervisors, which hold it weakly: when the fleet goes, the book goes, the
    /// supervisors' command channels close, and each kills its process.
    inner: Arc<Inner>,
}

impl ProcessFleet {
    /// A fleet that starts its warm pool at once when called inside a tokio runtime (otherwise at
    /// the first placement).
    pub fn new(config: ProcessFleetConfig) -> Self {
        let inner = Arc::new(Inner {
            config,
            state: Mutex::new(State::default()),
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            let mut state = lock(&inner.state);
            inner.refill(&mut state);
        }
        Self { inner }
    }

    /// The process id of a placement's server while it takes or hosts its session: for operators,
    /// and for tests that crash a server on purpose.
    pub fn pid(&self, placement: &PlacementId) -> Option<u32> {
        lock(&self.inner.state).pid(placement)
    }

    /// Every live server, oldest first. A retired server is not among them, ever again.
    pub fn servers(&self) -> Vec<ServerInfo> {
        lock(&self.inner.state).servers()
    }
}

/// A placement as the port reports it.
fn view(placement: &PlacementId, status: &Status) -> Result<Placement, PortError> {
    match status {
        Status::Pending => Ok(Placement::Pending {
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
        // Everything below happens under the lock, a spawn included: two concurrent places of one
        // session must not claim two servers.
        let mut state = lock(&self.inner.state);
        if let Some(placement) = state.by_session.get(session) {
            let record = state
                .placements
                .get(placement)
                .ok_or_else(|| PortError::transient(format!("placement {} of {session} is missing", placement.0)))?;
            if record.assignment.match_id != matched.id || &record.assignment.secret != secret {
                return Err(PortError::invalid(format!(
                    "session {session} was placed with another match or secret"
                )));
            }
            return view(placement, &record.status);
        }
        let placement = self
            .inner
            .place(&mut state, SessionAssignment::new(session, matched, secret))
            .map_err(PortError::PlacementUnavailable)?;
        let status = state.placements.get(&placement).map(|p| p.status.clone());
        view(&placement, &status.unwrap_or(Status::Pending))
    }

    async fn poll(&self, placement: &PlacementId) -> Result<Placement, PortError> {
        let state = lock(&self.inner.state);
        let record = state
            .placements
            .get(placement)
            .ok_or_else(|| PortError::NotFound(format!("placement {}", placement.0)))?;
        view(placement, &record.status)
    }

    async fn release(&self, placement: &PlacementId) -> Result<(), PortError> {
        let stopping = {
            let mut state = lock(&self.inner.state);
            match state.placements.get(placement) {
                // Not this fleet's (a placement of the process before a restart): no server of
                // ours runs for it, so there is nothing to give back.
                None => return Ok(()),
                Some(record) if record.status == Status::Released => return Ok(()),
                Some(_) => self.inner.release(&mut state, placement),
            }
        };
        if let Some(supervisor) = stopping {
            // Returns once the process is killed and reaped. A supervisor that panicked has dropped
            // its child, which `kill_on_drop` killed.
            let _ = supervisor.await;
        }
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    //! The pool and its supervisors against stand-in servers: shell scripts that keep the control
    //! protocol, or break it in each way a real server could. The real server's side is tested with
    //! the binary, in the game server's crate.

    use super::*;
    use queuematch_core::matcher::{MatchQuality, MatchTeam};
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A server that keeps the protocol: listens, takes each session, plays for `game` seconds and
    /// says `idle`.
    fn well_behaved(game: &str) -> String {
        format!(
            r#"echo '{{"event":"listening","port":4000}}'
while read line; do
  sid=$(printf '%s' "$line" | sed 's/.*"sessionId":"\([^"]*\)".*/\1/')
  echo "{{\"event\":\"assigned\",\"sessionId\":\"$sid\"}}"
  sleep {game}
  echo '{{"event":"idle","lastSessionId":"'"$sid"'"}}'
done"#
        )
    }

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

    fn config(binary: PathBuf) -> ProcessFleetConfig {
        let mut config = ProcessFleetConfig::new(binary, "http://127.0.0.1:9");
        config.startup_timeout = Duration::from_millis(500);
        config.drain_timeout = Duration::from_millis(300);
        config.failovers = 0;
        config.logs = ServerLogs::Discard;
        config
    }

    fn fleet(binary: PathBuf) -> ProcessFleet {
        ProcessFleet::new(config(binary))
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
                expansion_steps: Default::default(),
            },
        }
    }

    fn secret() -> SessionSecret {
        SessionSecret::from_random_bytes(&[5; 32])
    }

    fn id_of(placement: &Placement) -> PlacementId {
        match placement {
            Placement::Pending { placement } | Placement::Ready { placement, .. } => placement.clone(),
        }
    }

    /// Polls until the placement fails, and returns why.
    async fn failure(fleet: &ProcessFleet, placement: &Placement) -> String {
        let id = id_of(placement);
        for _ in 0..300 {
            match fleet.poll(&id).await {
                Err(PortError::PlacementUnavailable(reason)) => return reason,
                Err(other) => panic!("unexpected {other:?}"),
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        panic!("{id:?} never failed")
    }

    /// Polls until the placement is ready.
    async fn ready(fleet: &ProcessFleet, placement: &Placement) -> Endpoint {
        let id = id_of(placement);
        for _ in 0..300 {
            match fleet.poll(&id).await {
                Ok(Placement::Ready { endpoint, .. }) => return endpoint,
                Ok(Placement::Pending { .. }) => tokio::time::sleep(Duration::from_millis(10)).await,
                Err(e) => panic!("{id:?} failed: {e}"),
            }
        }
        panic!("{id:?} never got ready")
    }

    /// Waits until the fleet's servers satisfy `what`, and returns them.
    async fn until_servers(fleet: &ProcessFleet, what: impl Fn(&[ServerInfo]) -> bool) -> Vec<ServerInfo> {
        for _ in 0..300 {
            let servers = fleet.servers();
            if what(&servers) {
                return servers;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the servers never got there: {:#?}", fleet.servers())
    }

    fn in_state(servers: &[ServerInfo], state: ServerState) -> Vec<ServerInfo> {
        servers.iter().filter(|s| s.state == state).cloned().collect()
    }

    /// Places session `session` of its own match `m-<session>`.
    async fn place_session(fleet: &ProcessFleet, session: &str) -> Result<Placement, PortError> {
        let matched = Match {
            id: format!("m-{session}").into(),
            ..duel(None)
        };
        fleet.place(&SessionId::from(session), &matched, &secret()).await
    }

    #[tokio::test]
    async fn a_server_that_exits_fails_its_placement_and_frees_its_slot() {
        let fleet = fleet(script("exit 3"));
        let placed = fleet.place(&"s-1".into(), &duel(None), &secret()).await.unwrap();
        assert!(failure(&fleet, &placed).await.contains("exited"));
        assert_eq!(fleet.pid(&PlacementId("local-1".into())), None);
        assert_eq!(fleet.servers(), []);
    }

    #[tokio::test]
    async fn a_server_that_never_listens_is_killed_after_the_startup_timeout() {
        let fleet = fleet(script("exec sleep 30"));
        let placed = fleet.place(&"s-1".into(), &duel(None), &secret()).await.unwrap();
        assert!(failure(&fleet, &placed).await.contains("did not start in time"));
        assert_eq!(fleet.servers(), []);
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
    async fn a_server_that_never_answers_its_assignment_is_retired() {
        let fleet = fleet(script(
            r#"echo '{"event":"listening","port":4000}'; read assignment; exec sleep 30"#,
        ));
        let placed = fleet.place(&"s-1".into(), &duel(None), &secret()).await.unwrap();
        assert!(failure(&fleet, &placed)
            .await
            .contains("did not take its session in time"));
        assert_eq!(fleet.servers(), []);
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
        assert_eq!(
            ready(&fleet, &placed).await,
            Endpoint {
                address: "127.0.0.1".into(),
                port: 4000
            },
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
        // Nothing was recorded: the session can be placed once the fleet can serve it.
        assert!(matches!(
            missing.poll(&PlacementId("local-1".into())).await,
            Err(PortError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_session_whose_server_dies_before_taking_it_moves_to_another_server() {
        // GIVEN servers of which the first to start dies at once, and a fleet allowed one failover
        let marker = scratch().join(format!("first-{}", std::process::id()));
        let body = format!(
            "if [ ! -e '{m}' ]; then touch '{m}'; exit 7; fi\n{}",
            well_behaved("30"),
            m = marker.display()
        );
        let mut config = config(script(&body));
        config.failovers = 1;
        let fleet = ProcessFleet::new(config);

        // WHEN a session is placed
        let placed = fleet.place(&"s-1".into(), &duel(None), &secret()).await.unwrap();

        // THEN it is ready on the second server, under the same placement, and only that one runs
        ready(&fleet, &placed).await;
        let servers = fleet.servers();
        assert_eq!(servers.len(), 1, "{servers:#?}");
        assert_eq!(servers[0].id, "gs-2");
        assert_eq!(servers[0].state, ServerState::Hosting);
        assert_eq!(servers[0].placement, Some(id_of(&placed)));
    }

    #[tokio::test]
    async fn a_warm_pool_is_started_ahead_serves_placements_at_once_and_refills() {
        // GIVEN a fleet of two warm servers, at most three
        let mut config = config(script(&well_behaved("30")));
        config.warm_servers = 2;
        config.max_servers = 3;
        let fleet = ProcessFleet::new(config);
        let warm = until_servers(&fleet, |s| in_state(s, ServerState::Idle).len() == 2).await;

        // WHEN a session is placed
        let placed = place_session(&fleet, "s-1").await.unwrap();

        // THEN it went to a server that was already listening, and the pool is topped up
        ready(&fleet, &placed).await;
        let pid = fleet.pid(&id_of(&placed));
        assert!(warm.iter().any(|s| s.pid == pid), "{warm:#?} {pid:?}");
        let servers = until_servers(&fleet, |s| in_state(s, ServerState::Idle).len() == 2).await;
        assert_eq!(servers.len(), 3);

        // AND scale-up stops at the cap: two more take the idle ones, a fourth is unavailable
        for session in ["s-2", "s-3"] {
            let placed = place_session(&fleet, session).await.unwrap();
            ready(&fleet, &placed).await;
        }
        let full = place_session(&fleet, "s-4").await;
        assert!(
            matches!(full, Err(PortError::PlacementUnavailable(ref e)) if e.contains("all 3")),
            "{full:?}"
        );
        assert_eq!(fleet.servers().len(), 3);
    }

    #[tokio::test]
    async fn a_server_goes_back_to_the_pool_after_its_game_and_serves_the_next_session() {
        // GIVEN one warm server whose games last 0.2 s
        let mut config = config(script(&well_behaved("0.2")));
        config.warm_servers = 1;
        config.max_servers = 1;
        let fleet = ProcessFleet::new(config);
        let warm = until_servers(&fleet, |s| in_state(s, ServerState::Idle).len() == 1).await;

        // WHEN a session is played on it, and released once its game is over
        let first = place_session(&fleet, "s-1").await.unwrap();
        ready(&fleet, &first).await;
        until_servers(&fleet, |s| in_state(s, ServerState::Idle).len() == 1).await;
        fleet.release(&id_of(&first)).await.unwrap();

        // THEN the same process takes the next session
        let second = place_session(&fleet, "s-2").await.unwrap();
        ready(&fleet, &second).await;
        assert_eq!(fleet.pid(&id_of(&second)), warm[0].pid);
        assert_ne!(id_of(&first), id_of(&second));
    }

    #[tokio::test]
    async fn a_server_released_mid_game_comes_back_when_it_goes_idle() {
        // GIVEN one server whose games last 0.1 s: it is released before it says idle
        let mut config = config(script(&well_behaved("0.1")));
        config.warm_servers = 1;
        config.max_servers = 1;
        config.drain_timeout = Duration::from_secs(5);
        let fleet = ProcessFleet::new(config);
        let placed = place_session(&fleet, "s-1").await.unwrap();
        ready(&fleet, &placed).await;
        let pid = fleet.pid(&id_of(&placed));
        fleet.release(&id_of(&placed)).await.unwrap();
        assert_eq!(in_state(&fleet.servers(), ServerState::Draining).len(), 1);

        // THEN it is back in the pool once its game is over
        let servers = until_servers(&fleet, |s| in_state(s, ServerState::Idle).len() == 1).await;
        assert_eq!(servers[0].pid, pid);
    }

    #[tokio::test]
    async fn a_released_server_that_never_goes_idle_makes_room_or_is_stopped_after_the_drain_timeout() {
        // GIVEN one warm server, at most one, whose games never end
        let mut config = config(script(&well_behaved("30")));
        config.warm_servers = 1;
        config.max_servers = 1;
        let fleet = ProcessFleet::new(config);
        let first = place_session(&fleet, "s-1").await.unwrap();
        ready(&fleet, &first).await;
        let first_pid = fleet.pid(&id_of(&first));

        // WHEN it is released, it drains; a placement that needs the room stops it at once
        fleet.release(&id_of(&first)).await.unwrap();
        assert_eq!(in_state(&fleet.servers(), ServerState::Draining).len(), 1);
        let second = place_session(&fleet, "s-2").await.unwrap();
        ready(&fleet, &second).await;
        let second_pid = fleet.pid(&id_of(&second));
        assert_ne!(second_pid, first_pid);
        assert_eq!(fleet.servers().len(), 1);

        // AND released with nobody waiting, it is stopped once the drain timeout passes, and a fresh
        // server takes its place in the pool
        fleet.release(&id_of(&second)).await.unwrap();
        let servers = until_servers(&fleet, |s| {
            s.len() == 1 && s[0].state == ServerState::Idle && s[0].pid != second_pid
        })
        .await;
        assert_eq!(servers[0].id, "gs-3");
    }

    #[tokio::test]
    async fn without_a_warm_pool_a_release_stops_the_server_before_it_returns() {
        let fleet = fleet(script(&well_behaved("30")));
        let placed = place_session(&fleet, "s-1").await.unwrap();
        ready(&fleet, &placed).await;
        fleet.release(&id_of(&placed)).await.unwrap();
        assert_eq!(fleet.servers(), []);
        assert_eq!(fleet.pid(&id_of(&placed)), None);
    }

    #[tokio::test]
    async fn a_warm_server_that_dies_is_replaced_and_never_claimed() {
        let mut config = config(script(&well_behaved("30")));
        config.warm_servers = 1;
        let fleet = ProcessFleet::new(config);
        let warm = until_servers(&fleet, |s| in_state(s, ServerState::Idle).len() == 1).await;
        let dead = warm[0].pid.unwrap();
        let killed = std::process::Command::new("kill")
            .arg("-KILL")
            .arg(dead.to_string())
            .status()
            .unwrap();
        assert!(killed.success());

        let servers = until_servers(&fleet, |s| {
            s.len() == 1 && s[0].state == ServerState::Idle && s[0].pid != Some(dead)
        })
        .await;
        assert_eq!(servers[0].id, "gs-2");
        let placed = place_session(&fleet, "s-1").await.unwrap();
        ready(&fleet, &placed).await;
        assert_ne!(fleet.pid(&id_of(&placed)), Some(dead));
    }

    #[tokio::test]
    async fn a_binary_that_keeps_dying_is_not_restarted_in_a_loop() {
        let mut config = config(script("exit 1"));
        config.warm_servers = 2;
        let fleet = ProcessFleet::new(config);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(fleet.servers(), []);
        assert!(lock(&fleet.inner.state).servers_started() <= u64::from(pool::MAX_BOOT_FAILURES) + 1);
    }
}
