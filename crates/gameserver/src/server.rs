//! The server: a WebSocket lobby that is always open, and one session hosted at a time.
//!
//! Three kinds of task share the work:
//! - the **acceptor** takes every TCP connection and gives it a greeter;
//! - a **greeter** completes the WebSocket handshake, reads the `hello` and checks its token against
//!   the session in force (a `watch` of the current assignment): a refusal is answered there and
//!   then, an admitted player is handed to the session over a channel;
//! - the **session** (`host_session`) owns the players' seats: it waits for everyone (or the lobby
//!   timer), then runs the game's fixed-tick loop, and reports. Each seat has a reader task, which
//!   forwards the player's messages to the session, and a writer task with a bounded outbox, so a
//!   slow player never stalls the tick: a tick that does not fit in a full outbox is dropped for
//!   that player alone (the next one supersedes it). Reports go through a queue of their own, in
//!   order, so a slow service never stalls the players either.
//!
//! A player who disconnects mid-game leaves their slot open and keeps their score; the game goes
//! on. A player with a valid token for the session who connects during the game takes their own
//! team's slot back, or, if the session never listed them (backfill), the open slot of the team with
//! the most open slots.
//!
//! [`run`] takes its listener, its control input and output as arguments, so a test binds
//! `127.0.0.1:0` and drives a server in-process as well as through the binary.

use crate::config::Timing;
use crate::control::{self, ServerEvent};
use crate::game::{self, Game, Outcome, Point};
use crate::lobby::{self, Denial};
use crate::protocol::{self, ClientMessage, ServerMessage, Welcome, MAX_MESSAGE};
use crate::report::{self, Backoff, GameResult, Report, Reporter};
use futures::{SinkExt, StreamExt};
use queuematch_core::ids::{PlayerId, SessionId};
use queuematch_core::ports::fleet::SessionAssignment;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::WebSocketStream;
use tracing::Instrument;

/// How the server runs its sessions.
#[derive(Debug, Clone)]
pub struct Options {
    /// The service's base URL, without a trailing `/`.
    pub service_url: String,
    pub timing: Timing,
    pub backoff: Backoff,
}

/// Where the server's sessions come from.
#[derive(Debug)]
pub enum Sessions<R> {
    /// Assignment lines from a fleet, until the input ends.
    Control(R),
    /// This one session, then return.
    Fixed(SessionAssignment),
}

/// How many messages may wait for a slow player before ticks are dropped for them.
const OUTBOX: usize = 64;

/// The longest a write to one player may take before their seat is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

type Socket = WebSocketStream<TcpStream>;

/// Runs the server on `listener` until its sessions are done: the fixed one is played, or the control
/// input ends. Control events go to `out`.
pub async fn run<R, W>(
    listener: TcpListener,
    client: reqwest::Client,
    options: Options,
    sessions: Sessions<R>,
    mut out: W,
) -> io::Result<()>
where
    R: AsyncBufRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin,
{
    let port = listener.local_addr()?.port();
    let (current, watched) = watch::channel(None);
    let (joins_tx, joins) = mpsc::channel(64);
    let _acceptor = AbortOnDrop(tokio::spawn(accept(listener, watched, joins_tx)));
    tracing::info!(
        port,
        ticks_per_second = options.timing.ticks_per_second,
        game_ticks = options.timing.game_ticks,
        "listening"
    );
    control::emit(&mut out, &ServerEvent::Listening { port }).await?;
    let mut host = Host {
        client,
        options,
        current,
        joins,
    };

    let mut commands = match sessions {
        Sessions::Fixed(assignment) => {
            let assignment = host.assign(assignment, &mut out).await?;
            host.host(&assignment).await;
            return Ok(());
        }
        Sessions::Control(input) => read_commands(input),
    };
    loop {
        let command = tokio::select! {
            command = commands.recv() => command,
            // Admitted just as the last session ended: there is none to join now.
            Some(join) = host.joins.recv() => {
                join.deny(&Denial::NoSession).await;
                continue;
            }
        };
        let Some(line) = command else {
            tracing::info!("the control channel closed; exiting");
            return Ok(());
        };
        let assignment = match control::parse_assignment(&line) {
            Ok(assignment) => host.assign(assignment, &mut out).await?,
            Err(reason) => {
                tracing::warn!(%reason, "refused an assignment");
                control::emit(&mut out, &ServerEvent::Refused { reason }).await?;
                continue;
            }
        };
        let session_id = assignment.session_id.clone();
        let hosting = host.host(&assignment);
        tokio::pin!(hosting);
        let finished = loop {
            tokio::select! {
                () = &mut hosting => break true,
                command = commands.recv() => match command {
                    None => break false,
                    Some(_) => {
                        let reason = format!("busy with session {session_id}");
                        control::emit(&mut out, &ServerEvent::Refused { reason }).await?;
                    }
                },
            }
        };
        if !finished {
            // The fleet let this server go mid-session: there is nobody left to serve.
            tracing::info!(%session_id, "the control channel closed during the session; exiting");
            return Ok(());
        }
        let idle = ServerEvent::Idle {
            last_session_id: Some(session_id),
        };
        control::emit(&mut out, &idle).await?;
    }
}

/// What hosting a session needs, kept across sessions.
struct Host {
    client: reqwest::Client,
    options: Options,
    /// The session in force, as the greeters check tokens against it; `None` while idle.
    current: watch::Sender<Option<Arc<SessionAssignment>>>,
    /// Players the greeters admitted.
    joins: mpsc::Receiver<Join>,
}

impl Host {
    /// Makes `assignment` the session in force, and tells the fleet.
    async fn assign<W: AsyncWrite + Unpin>(
        &self,
        assignment: SessionAssignment,
        out: &mut W,
    ) -> io::Result<Arc<SessionAssignment>> {
        let assignment = Arc::new(assignment);
        self.current.send_replace(Some(assignment.clone()));
        let session_id = assignment.session_id.clone();
        control::emit(out, &ServerEvent::Assigned { session_id }).await?;
        Ok(assignment)
    }

    /// Hosts the session in force to its end; `host_session` ends it before its last reports go out.
    async fn host(&mut self, assignment: &SessionAssignment) {
        let reporter = Reporter::new(
            self.client.clone(),
            &self.options.service_url,
            &assignment.session_id,
            assignment.secret.clone(),
        )
        .with_backoff(self.options.backoff);
        let span = tracing::info_span!("session", session_id = %assignment.session_id);
        host_session(
            assignment,
            &self.current,
            &mut self.joins,
            reporter,
            self.options.timing,
        )
        .instrument(span)
        .await;
    }
}

/// Lines of the control input, read on a task of their own so that its end is seen mid-session too.
fn read_commands<R: AsyncBufRead + Unpin + Send + 'static>(input: R) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        let mut lines = input.lines();
        loop {
            match lines.next_line().await {
                Ok(Some(line)) if line.trim().is_empty() => continue,
                Ok(Some(line)) => {
                    if tx.send(line).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(%error, "the control channel is unreadable");
                    return;
                }
            }
        }
    });
    rx
}

/// A player admitted by a greeter, on its way to the session.
#[derive(Debug)]
struct Join {
    session_id: SessionId,
    player: PlayerId,
    socket: Socket,
    peer: SocketAddr,
}

impl Join {
    async fn deny(self, denial: &Denial) {
        deny(self.socket, self.peer, denial).await;
    }
}

/// Says why, and hangs up.
async fn deny(mut socket: Socket, peer: SocketAddr, denial: &Denial) {
    tracing::info!(%peer, reason = %denial, "connection denied");
    let denied = ServerMessage::Denied {
        reason: denial.to_string(),
    };
    // The client may be gone already; there is nobody to tell then.
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        let _ = socket.send(Message::text(denied.to_json())).await;
        let _ = socket.close(None).await;
    })
    .await;
}

fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// Takes connections for as long as the server runs.
async fn accept(
    listener: TcpListener,
    current: watch::Receiver<Option<Arc<SessionAssignment>>>,
    joins: mpsc::Sender<Join>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // Ticks are small and late ones are useless: send each at once.
                let _ = stream.set_nodelay(true);
                tokio::spawn(greet(stream, peer, current.clone(), joins.clone()));
            }
            Err(error) => {
                // Out of file descriptors, say: wait for some to free up rather than spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The first message's token, read within the hello timeout.
async fn read_hello(socket: &mut Socket) -> Result<String, Denial> {
    loop {
        match socket.next().await {
            None => return Err(Denial::NoHello),
            Some(Err(_)) => return Err(Denial::BadFrame),
            Some(Ok(Message::Text(text))) => return lobby::hello(text.as_str()),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Binary(_))) => return Err(Denial::Binary),
            Some(Ok(Message::Close(_))) => return Err(Denial::NoHello),
        }
    }
}

/// Completes the handshake, reads the connection's token and admits it to the session in force, or
/// refuses it.
async fn greet(
    stream: TcpStream,
    peer: SocketAddr,
    current: watch::Receiver<Option<Arc<SessionAssignment>>>,
    joins: mpsc::Sender<Join>,
) {
    let deadline = Instant::now() + lobby::HELLO_TIMEOUT;
    let handshake = tokio_tungstenite::accept_async_with_config(stream, Some(websocket_config()));
    let mut socket = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(socket)) => socket,
        Ok(Err(error)) => {
            tracing::info!(%peer, %error, "not a WebSocket handshake");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "no WebSocket handshake in time");
            return;
        }
    };
    let token = match tokio::time::timeout_at(deadline, read_hello(&mut socket)).await {
        Err(_) => Err(Denial::Timeout),
        Ok(token) => token,
    };
    let assignment = current.borrow().clone();
    let admitted = token.and_then(|token| {
        let assignment = assignment.ok_or(Denial::NoSession)?;
        let player = lobby::admit(&assignment, &token, report::now())?;
        Ok((assignment.session_id.clone(), player))
    });
    match admitted {
        Err(denial) => deny(socket, peer, &denial).await,
        Ok((session_id, player)) => {
            // Fails only when the server is shutting down; the connection closes with it.
            let _ = joins
                .send(Join {
                    session_id,
                    player,
                    socket,
                    peer,
                })
                .await;
        }
    }
}

/// What a seat's reader tells the session.
#[derive(Debug)]
enum Incoming {
    Text {
        player: PlayerId,
        seat: u64,
        text: String,
    },
    BadFrame {
        player: PlayerId,
        seat: u64,
    },
    /// The connection is gone, or is to be closed with `close` (a message over the size limit).
    Left {
        player: PlayerId,
        seat: u64,
        close: Option<CloseFrame>,
    },
}

/// A connected player.
#[derive(Debug)]
struct Seat {
    /// Numbers the seats of a session: a message from a replaced connection is told apart by it.
    id: u64,
    team: usize,
    outbox: mpsc::Sender<Message>,
    _reader: AbortOnDrop<()>,
}

/// The session's players: who is connected, on which team, and how to reach them.
struct Table<'a> {
    assignment: &'a SessionAssignment,
    rosters: Vec<(String, Vec<PlayerId>)>,
    timing: Timing,
    seats: BTreeMap<PlayerId, Seat>,
    next_seat: u64,
    incoming: mpsc::Sender<Incoming>,
}

impl<'a> Table<'a> {
    fn everyone_in(&self) -> bool {
        self.rosters
            .iter()
            .flat_map(|(_, p)| p)
            .all(|p| self.seats.contains_key(p))
    }

    /// Open slots of each team: its size in the match less its players connected now.
    fn open_slots(&self) -> Vec<usize> {
        self.rosters
            .iter()
            .enumerate()
            .map(|(i, (_, members))| {
                let seated = self.seats.values().filter(|s| s.team == i).count();
                members.len().saturating_sub(seated)
            })
            .collect()
    }

    /// Seats an admitted player on `team`: welcomes them and starts their reader and writer. A player
    /// already seated gets the new connection, and the old one is closed.
    async fn seat(&mut self, join: Join, team: usize) -> bool {
        let Join {
            player,
            mut socket,
            peer,
            ..
        } = join;
        let welcome = ServerMessage::Welcome(Welcome {
            session_id: self.assignment.session_id.clone(),
            player_id: player.clone(),
            team: self.rosters[team].0.clone(),
            ticks_per_second: self.timing.ticks_per_second,
            game_ticks: self.timing.game_ticks,
        });
        let sent = tokio::time::timeout(WRITE_TIMEOUT, socket.send(Message::text(welcome.to_json()))).await;
        if !matches!(sent, Ok(Ok(()))) {
            return false;
        }
        self.next_seat += 1;
        let id = self.next_seat;
        let (sink, stream) = socket.split();
        let (outbox, outgoing) = mpsc::channel(OUTBOX);
        tokio::spawn(write(sink, outgoing).in_current_span());
        let reader = tokio::spawn(read(stream, player.clone(), id, self.incoming.clone()).in_current_span());
        tracing::info!(player_id = %player, %peer, team = %self.rosters[team].0, "player joined");
        let seat = Seat {
            id,
            team,
            outbox,
            _reader: AbortOnDrop(reader),
        };
        if self.seats.insert(player, seat).is_some() {
            tracing::info!("an earlier connection of the player was replaced");
        }
        true
    }

    /// Takes `player`'s seat away, if `seat` is still theirs; their slot opens. Whether it did.
    fn leave(&mut self, player: &PlayerId, seat: u64) -> bool {
        if self.seats.get(player).is_some_and(|s| s.id == seat) {
            self.seats.remove(player);
            tracing::info!(player_id = %player, "player left");
            return true;
        }
        false
    }

    /// Sends `seat`'s connection the close frame `close`, if any and if the seat is still theirs.
    fn close(&self, player: &PlayerId, seat: u64, close: Option<CloseFrame>) {
        if let (Some(frame), true) = (close, self.is_current(player, seat)) {
            if let Some(seat) = self.seats.get(player) {
                let _ = seat.outbox.try_send(Message::Close(Some(frame)));
            }
        }
    }

    fn is_current(&self, player: &PlayerId, seat: u64) -> bool {
        self.seats.get(player).is_some_and(|s| s.id == seat)
    }

    fn send(&self, player: &PlayerId, message: &ServerMessage) {
        if let Some(seat) = self.seats.get(player) {
            let _ = seat.outbox.try_send(Message::text(message.to_json()));
        }
    }

    fn broadcast(&self, message: &ServerMessage) {
        let text = message.to_json();
        for seat in self.seats.values() {
            // A full outbox drops this message for that player alone; a closed one is a player
            // whose leave is on its way.
            let _ = seat.outbox.try_send(Message::text(text.clone()));
        }
    }
}

/// Writes a seat's outbox to its socket; closes the socket when the outbox is dropped.
async fn write(mut sink: futures::stream::SplitSink<Socket, Message>, mut outgoing: mpsc::Receiver<Message>) {
    while let Some(message) = outgoing.recv().await {
        if !matches!(
            tokio::time::timeout(WRITE_TIMEOUT, sink.send(message)).await,
            Ok(Ok(()))
        ) {
            return;
        }
    }
    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.close()).await;
}

/// Forwards a seat's messages to the session, then its leave.
async fn read(
    mut stream: futures::stream::SplitStream<Socket>,
    player: PlayerId,
    seat: u64,
    incoming: mpsc::Sender<Incoming>,
) {
    loop {
        let event = match stream.next().await {
            Some(Ok(Message::Text(text))) => Incoming::Text {
                player: player.clone(),
                seat,
                text: text.as_str().to_owned(),
            },
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Binary(_))) => Incoming::BadFrame {
                player: player.clone(),
                seat,
            },
            Some(Err(Error::Capacity(too_long))) => {
                // The rest of the frame is unread: the connection cannot go on, but the player is told
                // why, with the close code for a message too big.
                let close = Some(CloseFrame {
                    code: CloseCode::Size,
                    reason: format!("a message is at most {MAX_MESSAGE} bytes ({too_long})").into(),
                });
                let _ = incoming.send(Incoming::Left { player, seat, close }).await;
                return;
            }
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                let _ = incoming
                    .send(Incoming::Left {
                        player,
                        seat,
                        close: None,
                    })
                    .await;
                return;
            }
        };
        if incoming.send(event).await.is_err() {
            return;
        }
    }
}

/// The seed of a session's game: its id's FNV-1a hash, so that a session's game replays exactly.
pub fn seed_of(session: &SessionId) -> u64 {
    session.as_str().bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Hosts one session: lobby, game, reports.
async fn host_session(
    assignment: &SessionAssignment,
    current: &watch::Sender<Option<Arc<SessionAssignment>>>,
    joins: &mut mpsc::Receiver<Join>,
    reporter: Reporter,
    timing: Timing,
) {
    let (reports, queued) = mpsc::unbounded_channel();
    let delivery = tokio::spawn(deliver(reporter.clone(), queued).in_current_span());
    let _ = reports.send(Report::Ready);
    let heartbeat = AbortOnDrop(tokio::spawn(heartbeat(reporter, timing.heartbeat).in_current_span()));
    let rosters = assignment.rosters();
    tracing::info!(
        players = assignment.players.len(),
        teams = rosters.len(),
        "session assigned"
    );
    let (incoming_tx, mut incoming) = mpsc::channel(1024);
    let mut table = Table {
        assignment,
        rosters,
        timing,
        seats: BTreeMap::new(),
        next_seat: 0,
        incoming: incoming_tx,
    };

    gather(&mut table, joins, &mut incoming, Instant::now() + timing.lobby).await;
    let reason = if table.seats.is_empty() {
        tracing::warn!("nobody connected before the lobby closed");
        "no player connected".to_owned()
    } else {
        let outcome = play(&mut table, joins, &mut incoming, &reports).await;
        tracing::info!(
            winners = ?outcome.winners,
            scores = ?outcome.scores,
            team_scores = ?outcome.teams.iter().map(|t| (&t.name, t.score)).collect::<Vec<_>>(),
            "game over"
        );
        let _ = reports.send(Report::Result {
            result: GameResult {
                scores: outcome.scores.clone(),
            },
        });
        table.broadcast(&ServerMessage::Result(outcome));
        "game over".to_owned()
    };
    // Dropping the seats drops their outboxes: each writer sends what is queued (the result), then
    // closes its socket.
    table.seats.clear();
    let _ = reports.send(Report::End { reason });
    drop(reports);
    drop(heartbeat);
    // The game is over: nobody joins it any more, even while its last reports are on their way.
    current.send_replace(None);
    let mut delivery = delivery;
    loop {
        tokio::select! {
            // The reports are bounded by their backoff, so this wait is too.
            delivered = &mut delivery => {
                if let Err(error) = delivered {
                    tracing::error!(%error, "the report queue failed");
                }
                break;
            }
            Some(join) = joins.recv() => join.deny(&Denial::NoSession).await,
        }
    }
    tracing::info!("session over");
}

/// Sends queued reports in order, each with its retries.
async fn deliver(reporter: Reporter, mut queued: mpsc::UnboundedReceiver<Report>) {
    while let Some(report) = queued.recv().await {
        if let Err(error) = reporter.send(&report).await {
            tracing::error!(%error, "a report was lost");
        }
    }
}

/// Heartbeats until aborted. A missed one is not retried: the next one is as good.
async fn heartbeat(reporter: Reporter, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate, and `ready` says as much
    loop {
        ticks.tick().await;
        if let Err(error) = reporter.send_once(&Report::Heartbeat).await {
            tracing::warn!(%error, "heartbeat failed");
        }
    }
}

/// Checks that a join is for this session; denies it otherwise.
async fn for_this_session(join: Join, session: &SessionId) -> Option<Join> {
    if &join.session_id == session {
        return Some(join);
    }
    // Admitted for a session that ended while the token was being checked.
    join.deny(&Denial::NoSession).await;
    None
}

/// Waits until every player of the session is in, or the lobby closes at `deadline`. Only the
/// session's own players are seated: a slot opens for backfill once the game has started.
async fn gather(
    table: &mut Table<'_>,
    joins: &mut mpsc::Receiver<Join>,
    incoming: &mut mpsc::Receiver<Incoming>,
    deadline: Instant,
) {
    while !table.everyone_in() {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => return,
            join = joins.recv() => {
                let Some(join) = join else { return };
                let Some(join) = for_this_session(join, &table.assignment.session_id).await else { continue };
                match table.rosters.iter().position(|(_, members)| members.contains(&join.player)) {
                    Some(team) => {
                        table.seat(join, team).await;
                    }
                    None => {
                        let denial = Denial::NoSlot(join.player.clone());
                        join.deny(&denial).await;
                    }
                }
            }
            Some(event) = incoming.recv() => match event {
                Incoming::Left { player, seat, close } => {
                    table.close(&player, seat, close);
                    table.leave(&player, seat);
                }
                Incoming::Text { player, seat, .. } | Incoming::BadFrame { player, seat } => {
                    if table.is_current(&player, seat) {
                        let reason = "the game has not started: wait for tick 0".to_owned();
                        table.send(&player, &ServerMessage::Error { reason });
                    }
                }
            },
        }
    }
}

/// Plays the game with the players present, in fixed ticks, seating whoever joins on the way. A
/// player who leaves is reported (`playerLeft`), so that the service can backfill their slot.
async fn play(
    table: &mut Table<'_>,
    joins: &mut mpsc::Receiver<Join>,
    incoming: &mut mpsc::Receiver<Incoming>,
    reports: &mpsc::UnboundedSender<Report>,
) -> Outcome {
    let timing = table.timing;
    let mut game = Game::new(&table.rosters, timing.game_ticks, seed_of(&table.assignment.session_id));
    tracing::info!(players = table.seats.len(), "game started");
    table.broadcast(&ServerMessage::Tick(game.view()));
    let period = timing.tick_period();
    let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
    // A late tick is played late rather than twice in a burst: players need the time to aim.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut aims: BTreeMap<PlayerId, Point> = BTreeMap::new();
    while !game.is_over() {
        tokio::select! {
            _ = ticks.tick() => {
                let view = game.step(&aims);
                aims.clear();
                table.broadcast(&ServerMessage::Tick(view));
            }
            Some(join) = joins.recv() => {
                let Some(join) = for_this_session(join, &table.assignment.session_id).await else { continue };
                let team = match game.team_of(&join.player) {
                    // Back after leaving: their slot, unless a backfilled player took it meanwhile
                    // (a seated player's new connection replaces the old one, as ever).
                    Some(team)
                        if !table.seats.contains_key(&join.player)
                            && table.open_slots().get(team).copied().unwrap_or(0) == 0 =>
                    {
                        None
                    }
                    Some(team) => Some(team),
                    // Backfill: the team with the most open slots, if any has one.
                    None => table
                        .open_slots()
                        .iter()
                        .enumerate()
                        .filter(|&(_, &open)| open > 0)
                        .max_by_key(|&(i, &open)| (open, std::cmp::Reverse(i)))
                        .map(|(i, _)| i),
                };
                let Some(team) = team else {
                    let denial = Denial::NoSlot(join.player.clone());
                    join.deny(&denial).await;
                    continue;
                };
                let player = join.player.clone();
                let returning = game.team_of(&player).is_some() && !table.seats.contains_key(&player);
                if table.seat(join, team).await {
                    if returning {
                        let _ = reports.send(Report::PlayerReturned { player_id: player.clone() });
                    }
                    game.join(&player, team);
                    table.send(&player, &ServerMessage::Tick(game.view()));
                }
            }
            Some(event) = incoming.recv() => match event {
                Incoming::Left { player, seat, close } => {
                    table.close(&player, seat, close);
                    if table.leave(&player, seat) {
                        let _ = reports.send(Report::PlayerLeft { player_id: player });
                    }
                }
                Incoming::BadFrame { player, seat } if table.is_current(&player, seat) => {
                    let reason = "messages are JSON text, not binary".to_owned();
                    table.send(&player, &ServerMessage::Error { reason });
                }
                Incoming::Text { player, seat, text } if table.is_current(&player, seat) => {
                    if let Err(reason) = take_aim(&mut aims, &player, &text, game.view().tick) {
                        table.send(&player, &ServerMessage::Error { reason });
                    }
                }
                Incoming::Text { .. } | Incoming::BadFrame { .. } => {}
            },
        }
    }
    game.outcome()
}

/// Records `player`'s aim for tick `now` from `text`, or says why it is not one. An aim for an
/// earlier tick arrived too late and is ignored without a word: the player saw the next tick.
fn take_aim(aims: &mut BTreeMap<PlayerId, Point>, player: &PlayerId, text: &str, now: u32) -> Result<(), String> {
    match protocol::parse_client(text)? {
        ClientMessage::Hello { .. } => Err("you are in already: send aims".to_owned()),
        ClientMessage::Aim { tick, .. } if tick < now => Ok(()),
        ClientMessage::Aim { tick, .. } if tick > now => Err(format!("tick {tick} has not come yet (it is {now})")),
        ClientMessage::Aim { x, y, .. } => {
            let aim = game::check_aim(Point::new(x, y)).map_err(|e| e.to_string())?;
            aims.insert(player.clone(), aim);
            Ok(())
        }
    }
}

/// Aborts its task when dropped, so a task never outlives what it served.
#[derive(Debug)]
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aim_counts_for_its_own_tick_only() {
        let mut aims = BTreeMap::new();
        let p = PlayerId::from("p-1");
        assert_eq!(
            take_aim(&mut aims, &p, r#"{"type":"aim","tick":4,"x":0.5,"y":0.5}"#, 4),
            Ok(())
        );
        assert_eq!(aims[&p], Point::new(0.5, 0.5));
        assert_eq!(
            take_aim(&mut aims, &p, r#"{"type":"aim","tick":3,"x":0.1,"y":0.1}"#, 4),
            Ok(())
        );
        assert_eq!(aims[&p], Point::new(0.5, 0.5), "a late aim changes nothing");
        assert!(take_aim(&mut aims, &p, r#"{"type":"aim","tick":5,"x":0.1,"y":0.1}"#, 4).is_err());
        assert!(take_aim(&mut aims, &p, r#"{"type":"aim","tick":4,"x":2,"y":0.1}"#, 4).is_err());
        assert!(take_aim(&mut aims, &p, r#"{"type":"hello","token":"t"}"#, 4).is_err());
        assert!(take_aim(&mut aims, &p, "garbage", 4).is_err());
        assert_eq!(aims.len(), 1);
    }

    #[test]
    fn a_sessions_seed_is_stable() {
        assert_eq!(seed_of(&"s-1".into()), seed_of(&"s-1".into()));
        assert_ne!(seed_of(&"s-1".into()), seed_of(&"s-2".into()));
    }
}
