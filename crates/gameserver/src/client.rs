//! A player's side of the protocol (see [`protocol`](crate::protocol)): connect with a player token,
//! receive ticks, send aims, get the result. `queuematch bots` plays with it, and so do the tests.

use crate::game::{Outcome, Point, TickView};
use crate::protocol::{ClientMessage, ServerMessage, Welcome};
use futures::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Why a player could not play.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the game server at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: tungstenite::Error,
    },
    #[error("the game server denied the player: {0}")]
    Denied(String),
    #[error("the game server closed the connection before the game was over")]
    Closed,
    #[error("the game server said nothing for {} s", .0.as_secs())]
    Silent(Duration),
    #[error("the game server sent something that is not in the protocol: {0}")]
    Protocol(String),
    #[error("the connection to the game server failed: {0}")]
    Socket(#[from] tungstenite::Error),
}

/// What the server says during a game.
#[derive(Debug, Clone, PartialEq)]
pub enum GameEvent {
    Tick(TickView),
    /// A message of ours it refused; the game goes on.
    Refused(String),
    /// The game is over; the server closes the connection after this.
    Over(Outcome),
}

/// A player connected to a game server and let in.
#[derive(Debug)]
pub struct GameClient {
    connection: Connection,
    welcome: Welcome,
}

/// The socket, and how long it may stay silent.
#[derive(Debug)]
struct Connection {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    silence: Duration,
}

/// How long the server may say nothing before a client gives up: well over a tick, and over a lobby
/// that waits for the other players.
pub const DEFAULT_SILENCE: Duration = Duration::from_secs(60);

impl GameClient {
    /// Connects to `ws://address:port/` and presents `token`; answers once the server let the player
    /// in (or denied them).
    pub async fn connect(address: &str, port: u16, token: &str) -> Result<Self, ClientError> {
        Self::connect_with(address, port, token, DEFAULT_SILENCE).await
    }

    /// As [`connect`](Self::connect), giving up on a server silent for `silence`.
    pub async fn connect_with(address: &str, port: u16, token: &str, silence: Duration) -> Result<Self, ClientError> {
        let url = format!("ws://{address}:{port}/");
        let (socket, _) = tokio::time::timeout(silence, tokio_tungstenite::connect_async_with_config(&url, None, true))
            .await
            .map_err(|_| ClientError::Silent(silence))?
            .map_err(|source| ClientError::Connect { url, source })?;
        let mut client = Connection { socket, silence };
        client
            .send(&ClientMessage::Hello {
                token: token.to_owned(),
            })
            .await?;
        let welcome = match client.receive().await? {
            ServerMessage::Welcome(welcome) => welcome,
            ServerMessage::Denied { reason } => return Err(ClientError::Denied(reason)),
            other => return Err(ClientError::Protocol(format!("{other:?} before welcome"))),
        };
        Ok(Self {
            connection: client,
            welcome,
        })
    }

    /// Who the server says the player is.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// Sends raw text, as a misbehaving client would: for tests of the server.
    pub async fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.connection.socket.send(Message::text(text.to_owned())).await?;
        Ok(())
    }

    /// The next thing the server says.
    pub async fn next(&mut self) -> Result<GameEvent, ClientError> {
        match self.connection.receive().await? {
            ServerMessage::Tick(view) => Ok(GameEvent::Tick(view)),
            ServerMessage::Error { reason } => Ok(GameEvent::Refused(reason)),
            ServerMessage::Result(outcome) => Ok(GameEvent::Over(outcome)),
            other => Err(ClientError::Protocol(format!("{other:?} during the game"))),
        }
    }

    /// Aims at `at` for tick `tick`.
    pub async fn aim(&mut self, tick: u32, at: Point) -> Result<(), ClientError> {
        self.connection.send(&ClientMessage::aim(tick, at)).await
    }

    /// Plays to the end: at every tick still to play, aims where `strategy` says (or not, on
    /// `None`). Returns the outcome.
    pub async fn play(mut self, mut strategy: impl FnMut(&TickView) -> Option<Point>) -> Result<Outcome, ClientError> {
        // An aim can fail to go out while the server is already sending the result and closing: the
        // result may still be there to read, so a failed send is only the error when nothing follows.
        let mut unsent = None;
        loop {
            let event = match self.next().await {
                Ok(event) => event,
                Err(error) => return Err(unsent.unwrap_or(error)),
            };
            match event {
                GameEvent::Tick(view) if view.ticks_left > 0 && unsent.is_none() => {
                    if let Some(at) = strategy(&view) {
                        if let Err(error) = self.aim(view.tick, at).await {
                            unsent = Some(error);
                        }
                    }
                }
                GameEvent::Tick(_) | GameEvent::Refused(_) => {}
                GameEvent::Over(outcome) => return Ok(outcome),
            }
        }
    }

    /// Hangs up.
    pub async fn close(mut self) {
        let _ = self.connection.socket.close(None).await;
    }
}

impl Connection {
    async fn send(&mut self, message: &ClientMessage) -> Result<(), ClientError> {
        let text = serde_json::to_string(message).unwrap_or_default();
        self.socket.send(Message::text(text)).await?;
        Ok(())
    }

    async fn receive(&mut self) -> Result<ServerMessage, ClientError> {
        loop {
            let next = tokio::time::timeout(self.silence, self.socket.next())
                .await
                .map_err(|_| ClientError::Silent(self.silence))?;
            match next {
                None | Some(Ok(Message::Close(_))) => return Err(ClientError::Closed),
                Some(Err(error)) => return Err(error.into()),
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(text.as_str())
                        .map_err(|e| ClientError::Protocol(format!("{e}: {text}")))
                }
                Some(Ok(_)) => continue,
            }
        }
    }
}
