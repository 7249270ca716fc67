//! The server: a lobby that is always open, and one session hosted at a time.
//!
//! Three kinds of task share the work:
//! - the **acceptor** takes every connection and gives it a greeter;
//! - a **greeter** reads a connection's token and checks it against the session in force (a `watch`
//!   of the current assignment): a refusal is answered there and then, an admitted player is handed
//!   to the session over a channel;
//! - the **session** (`host`) owns the admitted players' connections: it waits for everyone (or the
//!   lobby timer), plays, and reports. Reports go through a queue of their own, in order, so a slow
//!   service never stalls the players.
//!
//! [`run`] takes its listener, its control input and output as arguments, so a test binds
//! `127.0.0.1:0` and drives a server in-process as well as through the binary.

use crate::config::Timing;
use crate::control::{self, ServerEvent};
use crate::game::{self, Outcome};
use crate::lobby::{self, Denial, Line};
use crate::report::{self, Backoff, GameResult, Report, Reporter};
use queuematch_core::ids::{PlayerId, SessionId};
use queuematch_core::ports::fleet::SessionAssignment;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
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
    tracing::info!(port, "listening");
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
                join.conn.deny(&Denial::NoSession).await;
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
    conn: Conn,
}

/// A player's connection, its reader buffered: bytes read past the token belong to the game.
#[derive(Debug)]
struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    peer: SocketAddr,
}

impl Conn {
    fn new(stream: TcpStream, peer: SocketAddr) -> Self {
        let (reader, writer) = stream.into_split();
        Self {
            reader: BufReader::new(reader),
            writer,
            peer,
        }
    }

    async fn send(&mut self, line: &str) -> io::Result<()> {
        self.writer.write_all(format!("{line}\n").as_bytes()).await?;
        self.writer.flush().await
    }

    /// Says why, and hangs up.
    async fn deny(mut self, denial: &Denial) {
        tracing::info!(peer = %self.peer, reason = %denial, "connection denied");
        // The client may be gone already; there is nobody to tell then.
        let _ = self.send(&format!("DENIED {denial}")).await;
        let _ = self.writer.shutdown().await;
    }

    async fn close(mut self) {
        let _ = self.writer.shutdown().await;
    }
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
                tokio::spawn(greet(Conn::new(stream, peer), current.clone(), joins.clone()));
            }
            Err(error) => {
                // Out of file descriptors, say: wait for some to free up rather than spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads a connection's token and admits it to the session in force, or refuses it.
async fn greet(mut conn: Conn, current: watch::Receiver<Option<Arc<SessionAssignment>>>, joins: mpsc::Sender<Join>) {
    let line = match tokio::time::timeout(lobby::HELLO_TIMEOUT, lobby::read_line(&mut conn.reader)).await {
        Err(_) => Err(Denial::Timeout),
        Ok(Err(error)) => {
            tracing::info!(peer = %conn.peer, %error, "connection lost before its token");
            return;
        }
        Ok(Ok(line)) => lobby::hello(line),
    };
    let assignment = current.borrow().clone();
    let admitted = line.and_then(|token| {
        let assignment = assignment.ok_or(Denial::NoSession)?;
        let player = lobby::admit(&assignment, &token, report::now())?;
        Ok((assignment.session_id.clone(), player))
    });
    match admitted {
        Err(denial) => conn.deny(&denial).await,
        Ok((session_id, player)) => {
            // Fails only when the server is shutting down; the connection closes with it.
            let _ = joins
                .send(Join {
                    session_id,
                    player,
                    conn,
                })
                .await;
        }
    }
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
    tracing::info!(players = assignment.players.len(), "session assigned");

    let players = gather(assignment, joins, Instant::now() + timing.lobby).await;
    let reason = if players.is_empty() {
        tracing::warn!("nobody connected before the lobby closed");
        "no player connected".to_owned()
    } else {
        let outcome = play(assignment, players, joins, timing.moves).await;
        tracing::info!(
            target_guess = ?outcome.target,
            winners = ?outcome.winners,
            scores = ?outcome.scores,
            "game over"
        );
        let _ = reports.send(Report::Result {
            result: GameResult { scores: outcome.scores },
        });
        "game over".to_owned()
    };
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
            Some(join) = joins.recv() => join.conn.deny(&Denial::NoSession).await,
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

/// Waits until every player of the session is in, or the lobby closes at `deadline`.
async fn gather(
    assignment: &SessionAssignment,
    joins: &mut mpsc::Receiver<Join>,
    deadline: Instant,
) -> BTreeMap<PlayerId, Conn> {
    let mut players: BTreeMap<PlayerId, Conn> = BTreeMap::new();
    while players.len() < assignment.players.len() {
        let join = tokio::select! {
            join = joins.recv() => join,
            () = tokio::time::sleep_until(deadline) => break,
        };
        let Some(Join {
            session_id,
            player,
            mut conn,
        }) = join
        else {
            break;
        };
        if session_id != assignment.session_id {
            // Admitted for a session that ended while the token was being checked.
            conn.deny(&Denial::NoSession).await;
            continue;
        }
        if conn.send(&format!("OK {player}")).await.is_err() {
            continue;
        }
        tracing::info!(player_id = %player, peer = %conn.peer, "player joined");
        // A player who reconnects replaces their earlier connection, which may be dead.
        if let Some(earlier) = players.insert(player, conn) {
            earlier.close().await;
        }
    }
    players
}

/// Plays the game with the players present, and tells each the outcome.
async fn play(
    assignment: &SessionAssignment,
    players: BTreeMap<PlayerId, Conn>,
    joins: &mut mpsc::Receiver<Join>,
    moves: Duration,
) -> Outcome {
    let deadline = Instant::now() + moves;
    let mut turns = JoinSet::new();
    for (player, mut conn) in players {
        if conn.send(&format!("PLAY {}", game::RULES)).await.is_ok() {
            turns.spawn(take_turn(player, conn, deadline).in_current_span());
        }
    }
    let mut guesses = BTreeMap::new();
    let mut present = Vec::new();
    loop {
        tokio::select! {
            turn = turns.join_next() => match turn {
                None => break,
                Some(Ok((player, guess, conn))) => {
                    if let Some(guess) = guess {
                        guesses.insert(player.clone(), guess);
                    }
                    present.push((player, conn));
                }
                Some(Err(error)) => tracing::error!(%error, "a player's turn failed"),
            },
            Some(join) = joins.recv() => join.conn.deny(&Denial::GameStarted).await,
        }
    }
    let outcome = game::play(&assignment.players, &guesses);
    let told = format!("RESULT {}", serde_json::to_string(&outcome).unwrap_or_default());
    for (_, mut conn) in present {
        let _ = conn.send(&told).await;
        conn.close().await;
    }
    outcome
}

/// Reads one player's guess until `deadline`; bad moves are answered and may be corrected.
async fn take_turn(player: PlayerId, mut conn: Conn, deadline: Instant) -> (PlayerId, Option<f64>, Conn) {
    loop {
        let guess = match tokio::time::timeout_at(deadline, lobby::read_line(&mut conn.reader)).await {
            Err(_) => {
                tracing::info!(player_id = %player, "no move in time");
                return (player, None, conn);
            }
            Ok(Err(_)) | Ok(Ok(Line::Closed)) => {
                tracing::info!(player_id = %player, "player left");
                return (player, None, conn);
            }
            Ok(Ok(Line::Text(text))) => game::parse_guess(&text),
            Ok(Ok(Line::TooLong)) => Err(format!("a move is one short line (at most {} bytes)", lobby::MAX_LINE)),
            Ok(Ok(Line::NotUtf8)) => Err("a move is a number in UTF-8 text".to_owned()),
        };
        match guess {
            Ok(guess) => {
                tracing::info!(player_id = %player, guess, "move");
                return (player, Some(guess), conn);
            }
            Err(reason) => {
                if conn.send(&format!("ERR {reason}")).await.is_err() {
                    return (player, None, conn);
                }
            }
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
