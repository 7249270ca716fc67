//! queuematch-gameserver: a minimal dedicated game server, the one the local fleet starts.
//!
//! One process hosts one session at a time. It gets its session in one of two ways:
//!
//! - **From its fleet, over the control channel** (the default, and how the local fleet drives it): it
//!   starts idle, prints `{"event":"listening","port":N}` on stdout and reads one
//!   [`SessionAssignment`](queuematch_core::ports::fleet::SessionAssignment) per line on stdin. After a
//!   game it prints `{"event":"idle"}` and waits for the next one, so the same process can serve a
//!   warm pool. The end of stdin means its fleet let it go: it exits. Stdin keeps the session secret
//!   out of `ps` and out of `/proc/<pid>/environ`.
//! - **From its command line** (`--session`, `--player`, the secret in `QUEUEMATCH_SESSION_SECRET`),
//!   for a server started by hand or by a task definition: it hosts that one session and exits.
//!
//! Players speak a line protocol over TCP on 127.0.0.1 (see [`lobby`] and [`game`]):
//!
//! ```text
//! client: <player token>
//! server: OK <playerId>                  or  DENIED <reason>, then it closes
//! server: PLAY <rules>                   once everyone is in, or the lobby timer ran out
//! client: <a number from 0 to 100>
//! server: ERR <reason>                   for a bad move; the player may try again
//! server: RESULT {"target":…,"winners":[…],"scores":{…}}, then it closes
//! ```
//!
//! Meanwhile the server reports `ready`, `heartbeat`, `result` and `end` to the service, signed with
//! the session secret (see [`report`]), and logs JSON lines on stderr: stdout is the control channel.

pub mod config;
pub mod control;
pub mod game;
pub mod lobby;
pub mod report;
pub mod server;
