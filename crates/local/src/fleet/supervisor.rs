//! One task per game-server process: it owns the child and its pipes, writes what the fleet sends,
//! reads the server's events, watches its deadline and its exit, and tells the book (`pool`) what it
//! saw. It holds the fleet weakly: once the fleet is dropped, its command channel closes and the
//! supervisor kills its process.

use super::pool::{Inner, Seen, Watch};
use super::{ProcessFleetConfig, ServerLogs, SESSION_ENV};
use crate::lock;
use queuematch_core::ids::SessionId;
use serde::Deserialize;
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::sync::Weak;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command as Process};
use tokio::sync::mpsc;

/// How long a server whose stdout closed is given to exit, so that its death is reported as an
/// exit (with its status) rather than as a broken channel.
const EXIT_GRACE: Duration = Duration::from_millis(200);

/// What the fleet tells a supervisor.
#[derive(Debug)]
pub(super) enum Command {
    /// Write this assignment line (it carries the session's secret) on the server's stdin.
    Assign(String),
    /// The server's deadline changed: read it again.
    Wake,
    /// Kill the process.
    Stop,
}

/// What a game server tells its fleet on stdout (its `control::ServerEvent`, of which the fleet
/// needs only these). The fleet contract suite runs on the real binary, which keeps the two in step.
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
    Idle {},
    #[serde(other)]
    Other,
}

/// A process just started, before its supervisor takes it.
#[derive(Debug)]
pub(super) struct Started {
    pub(super) pid: Option<u32>,
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    commands: mpsc::UnboundedReceiver<Command>,
}

/// Starts one `queuematch-gameserver` on a free loopback port, taking sessions from its stdin.
pub(super) fn start(
    config: &ProcessFleetConfig,
    commands: mpsc::UnboundedReceiver<Command>,
) -> Result<Started, String> {
    let mut command = Process::new(&config.binary);
    command
        .arg("--service-url")
        .arg(&config.service_url)
        .arg("--listen")
        .arg(format!("{}:0", Ipv4Addr::LOCALHOST))
        .args(&config.server_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(match config.logs {
            ServerLogs::Inherit => Stdio::inherit(),
            ServerLogs::Discard => Stdio::null(),
        })
        .kill_on_drop(true);
    for name in SESSION_ENV {
        command.env_remove(name);
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start the game server {}: {e}", config.binary.display()))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        // Both were asked for as pipes just above.
        return Err("the game server has no pipes".into());
    };
    Ok(Started {
        pid: child.id(),
        child,
        stdin,
        stdout,
        commands,
    })
}

/// Watches server `id` from its start to its end.
pub(super) async fn supervise(id: u64, started: Started, fleet: Weak<Inner>) {
    let Started {
        mut child,
        mut stdin,
        stdout,
        mut commands,
        ..
    } = started;
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let deadline = {
            let Some(inner) = fleet.upgrade() else { break };
            let state = lock(&inner.state);
            match state.deadline(id) {
                Some(deadline) => deadline,
                None => break,
            }
        };
        let seen = tokio::select! {
            command = commands.recv() => match command {
                None | Some(Command::Stop) => break,
                Some(Command::Wake) => continue,
                Some(Command::Assign(line)) => match write_line(&mut stdin, &line).await {
                    Ok(()) => continue,
                    Err(e) => Seen::Fault(format!("cannot hand the session over its control channel: {e}")),
                },
            },
            status = child.wait() => Seen::Fault(match status {
                Ok(status) => format!("the game server exited ({status})"),
                Err(e) => format!("the game server cannot be waited on: {e}"),
            }),
            line = lines.next_line() => match line {
                Ok(Some(line)) => match serde_json::from_str::<ServerEvent>(&line) {
                    Ok(ServerEvent::Listening { port }) => Seen::Listening(port),
                    Ok(ServerEvent::Assigned { session_id }) => Seen::Assigned(session_id),
                    Ok(ServerEvent::Refused { reason }) => Seen::Refused(reason),
                    Ok(ServerEvent::Idle {}) => Seen::Idle,
                    // Later kinds of event, and lines that are not events, change nothing.
                    Ok(ServerEvent::Other) | Err(_) => continue,
                },
                Ok(None) | Err(_) => Seen::Fault(closed(&mut child).await),
            },
            () = sleep_until(deadline) => Seen::Deadline,
        };
        let Some(inner) = fleet.upgrade() else { break };
        let watch = {
            let mut state = lock(&inner.state);
            inner.seen(&mut state, id, seen)
        };
        if watch == Watch::Stop {
            break;
        }
    }
    // Fails only if the process is gone already, which is what we want.
    let _ = child.kill().await;
}

async fn write_line(stdin: &mut ChildStdin, line: &str) -> std::io::Result<()> {
    stdin.write_all(line.as_bytes()).await?;
    stdin.flush().await
}

/// Why a server's stdout closed: usually because it died.
async fn closed(child: &mut Child) -> String {
    match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
        Ok(Ok(status)) => format!("the game server exited ({status})"),
        _ => "the game server closed its control channel".to_owned(),
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
