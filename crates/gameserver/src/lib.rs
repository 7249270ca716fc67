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
//! - **From its item in the service's table** (`--register-table`, a build with the `ecs` feature):
//!   on ECS it registers itself as a warm server, heartbeats, and hosts the sessions claimed there
//!   (see `ecs`).
//!
//! Players play *tracker* (see [`game`]), a realtime aiming game in fixed ticks (20 a second by
//! default, `--ticks-per-second`; `--game-ticks` long), over a WebSocket on the listening port. The
//! protocol is JSON text messages (see [`protocol`]): a `hello` with the player token minted at
//! placement, checked offline against the session secret ([`lobby`]); then a `tick` from the server
//! every tick and an `aim` from each player; then the `result`. The game starts once every player is
//! in, or when the lobby timer runs out. A player who disconnects leaves an open slot and the game
//! goes on; a player with a valid token who connects during the game takes their team's slot
//! (backfill players get their tokens the same way). [`client`] is the player's side, as the bots
//! of `queuematch bots` use it.
//!
//! Meanwhile the server reports `ready`, `heartbeat`, `result` and `end` to the service, signed with
//! the session secret (see [`report`]), and logs JSON lines on stderr: stdout is the control channel.

pub mod client;
pub mod config;
pub mod control;
#[cfg(feature = "ecs")]
pub mod ecs;
pub mod game;
pub mod lobby;
pub mod protocol;
pub mod report;
pub mod server;
