//! The fleet's book of servers and placements, and every move between their states.
//!
//! Everything here runs under the fleet's one lock and never awaits: a move is computed and applied
//! in one critical section, so a placement and its server always agree. Processes are started here
//! (a fork and exec, about a millisecond) and stopped by a message to their supervisor, which owns
//! the child and does the waiting.
//!
//! A server goes `Starting → Idle → Assigning → Hosting → Idle …` until it is stopped or dies:
//!
//! - **Starting**: spawned, not listening yet; possibly reserved for a placement that asked for a
//!   server when none was idle (a scale-up).
//! - **Idle**: in the warm pool, listening, holding no session.
//! - **Assigning**: its session's line is written on its stdin; `assigned` makes it Hosting.
//! - **Hosting**: its placement polls as ready. `idle` (the game is over) puts it back in the pool.
//! - **Draining**: its placement was released before the server said `idle`: it is given
//!   `drain_timeout` to finish its last reports and come back, or it is stopped.
//!
//! A server that dies, closes its control channel, misses a deadline or takes the wrong session is
//! **retired**: removed from the book at once, so it is never claimed again. A session it had not
//! started yet (its server starting or taking it) fails over to another server, at most
//! `failovers` times; one it was hosting fails, and the sweeper abandons it once its heartbeats stop.

use super::supervisor::{self, Command};
use super::{ProcessFleetConfig, ServerInfo, ServerState};
use queuematch_core::ids::SessionId;
use queuematch_core::ports::fleet::{PlacementId, SessionAssignment};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// After this many servers in a row die before listening, the pool stops refilling itself (a broken
/// binary would otherwise be restarted in a tight loop); a placement still starts servers on demand,
/// and the first server that listens resets the count.
pub(super) const MAX_BOOT_FAILURES: u32 = 3;

/// What the supervisors and the port share.
#[derive(Debug)]
pub(super) struct Inner {
    pub(super) config: ProcessFleetConfig,
    pub(super) state: Mutex<State>,
}

#[derive(Debug, Default)]
pub(super) struct State {
    /// Numbers placement ids: `local-1`, `local-2`, …; never reused.
    placements_made: u64,
    /// Numbers servers: `gs-1`, `gs-2`, …; never reused, so a retired server's number never comes back.
    servers_started: u64,
    pub(super) by_session: HashMap<SessionId, PlacementId>,
    /// Every placement ever made, kept after its end so that a session placed again gets its old
    /// answer rather than a second server.
    pub(super) placements: HashMap<PlacementId, PlacementRecord>,
    /// Live servers only: a retired one is gone from here, which is what "never reused" rests on.
    servers: BTreeMap<u64, ServerRecord>,
    /// Servers that died before listening, in a row.
    boot_failures: u32,
}

#[derive(Debug)]
pub(super) struct PlacementRecord {
    /// Its `Debug` redacts the secret.
    pub(super) assignment: SessionAssignment,
    pub(super) status: Status,
    /// The server starting for it, taking it or hosting it; `None` once the game is over or the
    /// server is gone.
    server: Option<u64>,
    /// Servers it was moved off before it started.
    failovers: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Status {
    Pending,
    Ready { port: u16 },
    Failed(String),
    Released,
}

#[derive(Debug)]
struct ServerRecord {
    pid: Option<u32>,
    /// Known once it said `listening`.
    port: Option<u16>,
    phase: Phase,
    /// When the current phase gives up: starting, taking a session, draining. The supervisor sleeps
    /// until it.
    deadline: Option<Instant>,
    commands: mpsc::UnboundedSender<Command>,
    /// Its supervisor, which returns once the process is killed and reaped: a release that stops the
    /// server waits on it, so the process is gone when the release returns.
    supervisor: Option<JoinHandle<()>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Starting { reserved: Option<PlacementId> },
    Idle,
    Assigning(PlacementId),
    Hosting(PlacementId),
    Draining,
}

/// What a server's supervisor saw.
#[derive(Debug)]
pub(super) enum Seen {
    Listening(u16),
    Assigned(SessionId),
    Refused(String),
    Idle,
    /// Its deadline passed.
    Deadline,
    /// It died, or its control channel broke: the reason.
    Fault(String),
}

/// Whether the supervisor keeps watching its server.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Watch {
    Continue,
    /// Retired or stopped: kill the process.
    Stop,
}

pub(super) fn server_name(id: u64) -> String {
    format!("gs-{id}")
}

impl State {
    pub(super) fn next_placement_id(&mut self) -> PlacementId {
        self.placements_made += 1;
        PlacementId(format!("local-{}", self.placements_made))
    }

    /// The process of the server taking or hosting `placement`.
    pub(super) fn pid(&self, placement: &PlacementId) -> Option<u32> {
        let record = self.placements.get(placement)?;
        let server = self.servers.get(&record.server?)?;
        match &server.phase {
            Phase::Assigning(p) | Phase::Hosting(p) if p == placement => server.pid,
            _ => None,
        }
    }

    #[cfg(test)]
    pub(super) fn servers_started(&self) -> u64 {
        self.servers_started
    }

    pub(super) fn deadline(&self, server: u64) -> Option<Option<Instant>> {
        self.servers.get(&server).map(|s| s.deadline)
    }

    pub(super) fn servers(&self) -> Vec<ServerInfo> {
        self.servers
            .iter()
            .map(|(id, s)| {
                let (state, placement) = match &s.phase {
                    Phase::Starting { reserved } => (ServerState::Starting, reserved.clone()),
                    Phase::Idle => (ServerState::Idle, None),
                    Phase::Assigning(p) => (ServerState::Assigning, Some(p.clone())),
                    Phase::Hosting(p) => (ServerState::Hosting, Some(p.clone())),
                    Phase::Draining => (ServerState::Draining, None),
                };
                ServerInfo {
                    id: server_name(*id),
                    pid: s.pid,
                    port: s.port,
                    state,
                    placement,
                }
            })
            .collect()
    }

    /// Idle servers, and starting ones no placement waits for: what the next placements can take
    /// without starting anything.
    fn spare(&self) -> usize {
        self.spare_besides(None)
    }

    fn spare_besides(&self, besides: Option<u64>) -> usize {
        self.servers
            .iter()
            .filter(|(id, s)| {
                Some(**id) != besides && matches!(s.phase, Phase::Idle | Phase::Starting { reserved: None })
            })
            .count()
    }
}

impl Inner {
    /// Records `assignment` as a new placement and finds it a server. Nothing is recorded when no
    /// server can be had, so the session can be placed later.
    pub(super) fn place(
        self: &Arc<Self>,
        state: &mut State,
        assignment: SessionAssignment,
    ) -> Result<PlacementId, String> {
        let placement = state.next_placement_id();
        let session = assignment.session_id.clone();
        state.placements.insert(
            placement.clone(),
            PlacementRecord {
                assignment,
                status: Status::Pending,
                server: None,
                failovers: 0,
            },
        );
        if let Err(e) = self.claim(state, &placement) {
            state.placements.remove(&placement);
            return Err(e);
        }
        state.by_session.insert(session, placement.clone());
        self.refill(state);
        Ok(placement)
    }

    /// Gives `placement` a server: an idle one, else one starting for nobody, else a new one while
    /// under the cap, else one draining is stopped to make room.
    fn claim(self: &Arc<Self>, state: &mut State, placement: &PlacementId) -> Result<(), String> {
        let idle = state
            .servers
            .iter()
            .find(|(_, s)| s.phase == Phase::Idle)
            .map(|(id, _)| *id);
        if let Some(server) = idle {
            self.assign(state, server, placement);
            return Ok(());
        }
        let starting = state
            .servers
            .iter_mut()
            .find(|(_, s)| s.phase == Phase::Starting { reserved: None });
        if let Some((id, server)) = starting {
            server.phase = Phase::Starting {
                reserved: Some(placement.clone()),
            };
            let id = *id;
            set_server(state, placement, Some(id));
            return Ok(());
        }
        if state.servers.len() >= self.config.max_servers {
            let draining = state
                .servers
                .iter()
                .find(|(_, s)| s.phase == Phase::Draining)
                .map(|(id, _)| *id);
            match draining {
                Some(server) => {
                    tracing::info!(server = %server_name(server), "stopping a draining game server to make room");
                    stop(state, server);
                }
                None => return Err(format!("all {} local game servers are in use", self.config.max_servers)),
            }
        }
        let server = self.spawn(state, Some(placement.clone()))?;
        set_server(state, placement, Some(server));
        Ok(())
    }

    /// Hands `placement` to the idle server `server`.
    fn assign(&self, state: &mut State, server: u64, placement: &PlacementId) {
        let Some(record) = state.placements.get_mut(placement) else {
            return;
        };
        record.server = Some(server);
        let line = match serde_json::to_string(&record.assignment) {
            Ok(mut line) => {
                line.push('\n');
                line
            }
            // A SessionAssignment is plain strings; this cannot fail, but if it did the placement
            // must fail rather than hang.
            Err(e) => {
                record.status = Status::Failed(format!("cannot write the session assignment: {e}"));
                record.server = None;
                return;
            }
        };
        if let Some(s) = state.servers.get_mut(&server) {
            s.phase = Phase::Assigning(placement.clone());
            s.deadline = Some(Instant::now() + self.config.startup_timeout);
            // A supervisor that is gone has retired its server already, and this record with it.
            let _ = s.commands.send(Command::Assign(line));
        }
    }

    /// Starts a server process, reserved for `reserved` when a placement waits for it.
    fn spawn(self: &Arc<Self>, state: &mut State, reserved: Option<PlacementId>) -> Result<u64, String> {
        let (commands, received) = mpsc::unbounded_channel();
        let started = supervisor::start(&self.config, received).inspect_err(|_| state.boot_failures += 1)?;
        state.servers_started += 1;
        let id = state.servers_started;
        tracing::info!(server = %server_name(id), pid = ?started.pid, reserved = ?reserved.as_ref().map(|p| &p.0), "game server started");
        let pid = started.pid;
        let supervisor = tokio::spawn(supervisor::supervise(id, started, Arc::downgrade(self)));
        state.servers.insert(
            id,
            ServerRecord {
                pid,
                port: None,
                phase: Phase::Starting { reserved },
                deadline: Some(Instant::now() + self.config.startup_timeout),
                commands,
                supervisor: Some(supervisor),
            },
        );
        Ok(id)
    }

    /// Starts servers until the pool holds `warm_servers` spare ones, within the cap.
    pub(super) fn refill(self: &Arc<Self>, state: &mut State) {
        let warm = self.config.warm_servers.min(self.config.max_servers);
        while state.spare() < warm && state.servers.len() < self.config.max_servers {
            if state.boot_failures >= MAX_BOOT_FAILURES {
                tracing::warn!(
                    failures = state.boot_failures,
                    "game servers keep dying before they listen; the warm pool waits for the next placement"
                );
                return;
            }
            if let Err(error) = self.spawn(state, None) {
                tracing::warn!(%error, "cannot start a warm game server");
                return;
            }
        }
    }

    /// Applies what the supervisor of `server` saw.
    pub(super) fn seen(self: &Arc<Self>, state: &mut State, server: u64, seen: Seen) -> Watch {
        let Some(record) = state.servers.get(&server) else {
            return Watch::Stop;
        };
        let phase = record.phase.clone();
        match seen {
            Seen::Listening(port) => {
                let Phase::Starting { reserved } = phase else {
                    return Watch::Continue;
                };
                state.boot_failures = 0;
                if let Some(s) = state.servers.get_mut(&server) {
                    s.port = Some(port);
                }
                match reserved {
                    Some(placement) => self.assign(state, server, &placement),
                    None => self.became_idle(state, server),
                }
            }
            // A server released while it was taking its session stays on its way out: only one
            // still taking it becomes its host.
            Seen::Assigned(session) => {
                if let Phase::Assigning(placement) = phase {
                    let wanted = state
                        .placements
                        .get(&placement)
                        .map(|p| p.assignment.session_id.clone());
                    if wanted.as_ref() != Some(&session) {
                        let wanted = wanted.map_or_else(|| "none".to_owned(), |s| s.to_string());
                        return self.retire(
                            state,
                            server,
                            format!("the game server took session {session}, not {wanted}"),
                        );
                    }
                    let port = state.servers.get(&server).and_then(|s| s.port);
                    let (Some(record), Some(port)) = (state.placements.get_mut(&placement), port) else {
                        return self.retire(state, server, "the game server took a session before listening".into());
                    };
                    if record.status == Status::Pending {
                        record.status = Status::Ready { port };
                    }
                    if let Some(s) = state.servers.get_mut(&server) {
                        s.phase = Phase::Hosting(placement);
                        s.deadline = None;
                    }
                }
            }
            Seen::Refused(reason) => {
                if matches!(phase, Phase::Assigning(_)) {
                    return self.retire(state, server, format!("the game server refused its session: {reason}"));
                }
            }
            Seen::Idle => match phase {
                Phase::Hosting(placement) => {
                    // The game is over. The placement keeps its answer until it is released; the
                    // server is no longer its own.
                    set_server(state, &placement, None);
                    self.became_idle(state, server);
                }
                Phase::Draining => self.became_idle(state, server),
                _ => {}
            },
            Seen::Deadline => {
                let reason = match phase {
                    Phase::Starting { .. } => "the game server did not start in time",
                    Phase::Assigning(_) => "the game server did not take its session in time",
                    Phase::Draining => "the game server did not go idle in time after its release",
                    // No deadline is set in the other phases; a stale wake-up changes nothing.
                    Phase::Idle | Phase::Hosting(_) => return Watch::Continue,
                };
                return self.retire(state, server, reason.to_owned());
            }
            Seen::Fault(reason) => return self.retire(state, server, reason),
        }
        if state.servers.contains_key(&server) {
            Watch::Continue
        } else {
            Watch::Stop
        }
    }

    /// `server` holds no session any more: into the pool, unless the pool is full.
    fn became_idle(self: &Arc<Self>, state: &mut State, server: u64) {
        let warm = self.config.warm_servers.min(self.config.max_servers);
        if state.spare_besides(Some(server)) >= warm {
            tracing::info!(server = %server_name(server), "game server stopped: the warm pool is full");
            stop(state, server);
            return;
        }
        if let Some(s) = state.servers.get_mut(&server) {
            s.phase = Phase::Idle;
            s.deadline = None;
        }
    }

    /// Takes `server` out of the fleet for good, for `reason`, and deals with its session.
    fn retire(self: &Arc<Self>, state: &mut State, server: u64, reason: String) -> Watch {
        let Some(record) = stop(state, server) else {
            return Watch::Stop;
        };
        tracing::warn!(server = %server_name(server), pid = ?record.pid, %reason, "game server retired");
        if record.port.is_none() {
            state.boot_failures += 1;
        }
        match record.phase {
            Phase::Starting {
                reserved: Some(placement),
            }
            | Phase::Assigning(placement) => {
                self.fail_over(state, &placement, &reason);
            }
            Phase::Hosting(placement) => {
                if let Some(p) = state.placements.get_mut(&placement) {
                    p.server = None;
                    if p.status != Status::Released {
                        p.status = Status::Failed(reason);
                    }
                }
            }
            Phase::Starting { reserved: None } | Phase::Idle | Phase::Draining => {}
        }
        self.refill(state);
        Watch::Stop
    }

    /// Moves a placement that has not started onto another server, or fails it.
    fn fail_over(self: &Arc<Self>, state: &mut State, placement: &PlacementId, reason: &str) {
        let Some(record) = state.placements.get_mut(placement) else {
            return;
        };
        record.server = None;
        if record.status == Status::Released {
            return;
        }
        if record.failovers >= self.config.failovers {
            record.status = Status::Failed(match record.failovers {
                0 => reason.to_owned(),
                n => format!("{reason} (after {n} failovers)"),
            });
            return;
        }
        record.failovers += 1;
        tracing::info!(placement = %placement.0, %reason, "session moved to another game server");
        if let Err(e) = self.claim(state, placement) {
            if let Some(record) = state.placements.get_mut(placement) {
                record.status = Status::Failed(format!("{reason}; no other server to move to: {e}"));
            }
        }
    }

    /// The placement is over for the service. Its server, if still its own, goes draining when the
    /// pool would take it back after its game; otherwise it is stopped now, and the supervisor to
    /// wait on is returned.
    pub(super) fn release(&self, state: &mut State, placement: &PlacementId) -> Option<JoinHandle<()>> {
        let record = state.placements.get_mut(placement)?;
        record.status = Status::Released;
        let server = record.server.take()?;
        let warm = self.config.warm_servers.min(self.config.max_servers);
        let keep = state.spare_besides(Some(server)) < warm;
        let phase = state.servers.get(&server)?.phase.clone();
        match phase {
            Phase::Starting { reserved: Some(p) } if &p == placement => {
                if let Some(s) = state.servers.get_mut(&server) {
                    s.phase = Phase::Starting { reserved: None };
                }
                None
            }
            Phase::Assigning(p) | Phase::Hosting(p) if &p == placement => {
                if !keep {
                    tracing::info!(server = %server_name(server), "game server stopped on release: the warm pool is full");
                    return stop(state, server).and_then(|mut r| r.supervisor.take());
                }
                let s = state.servers.get_mut(&server)?;
                s.phase = Phase::Draining;
                s.deadline = Some(Instant::now() + self.config.drain_timeout);
                let _ = s.commands.send(Command::Wake);
                None
            }
            _ => None,
        }
    }
}

fn set_server(state: &mut State, placement: &PlacementId, server: Option<u64>) {
    if let Some(p) = state.placements.get_mut(placement) {
        p.server = server;
    }
}

/// Removes `server` from the book and tells its supervisor to kill it.
fn stop(state: &mut State, server: u64) -> Option<ServerRecord> {
    let record = state.servers.remove(&server)?;
    // Its supervisor may be the caller, or gone: either way it stops.
    let _ = record.commands.send(Command::Stop);
    Some(record)
}
