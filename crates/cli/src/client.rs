//! Client commands: what a game client does, from a terminal. `submit`, `status`, `cancel`,
//! `accept`, `decline` and `watch` talk to a running service (`queuematch dev`, or API Gateway) with a player's token,
//! minted from the dev secret unless `--token` is given.

use crate::dev_home;
use anyhow::{bail, Context};
use clap::Args;
use futures::StreamExt;
use queuematch_core::identity::jwt::{Audience, DevTokens, Role, PARTY_TOKEN_TTL};
use queuematch_core::Timestamp;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Who the client is and where the service is.
#[derive(Debug, Args)]
pub struct Connection {
    /// The service's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The player to act as; a dev token is minted for them from the dev secret.
    #[arg(long)]
    player: Option<String>,
    /// A token to use instead of minting one (e.g. a Cognito token on AWS).
    #[arg(long, env = "QUEUEMATCH_TOKEN")]
    token: Option<String>,
    /// Where the dev secret lives (default: $QUEUEMATCH_HOME or ~/.queuematch).
    #[arg(long, env = "QUEUEMATCH_HOME")]
    home: Option<PathBuf>,
    /// Print JSON, for scripts.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    connection: Connection,
    /// The queue (a rule set's name).
    #[arg(long)]
    queue: String,
    /// An attribute, `name=value`; the value is read as JSON when it parses (`skill=1500`,
    /// `roles=["tank"]`), else as a string (`mode=ranked`).
    #[arg(long = "attr", value_name = "NAME=VALUE")]
    attributes: Vec<String>,
    /// A latency, `region=ms`.
    #[arg(long = "latency", value_name = "REGION=MS")]
    latencies: Vec<String>,
    /// Another member of the party, `ID` or `ID=PARTY_TOKEN`: without a token, one is minted from
    /// the dev secret, as the member would with `queuematch token --player ID --party`.
    #[arg(long = "member", value_name = "ID[=PARTY_TOKEN]")]
    members: Vec<String>,
    /// Follow the ticket over push until it is finished, then print it.
    #[arg(long)]
    wait: bool,
    /// How long `--wait` waits, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

#[derive(Debug, Args)]
pub struct TicketArgs {
    #[command(flatten)]
    connection: Connection,
    /// The ticket's id.
    ticket: String,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    connection: Connection,
    /// Stop after this many events (default: watch until interrupted).
    #[arg(long)]
    count: Option<usize>,
}

impl Connection {
    fn player(&self) -> anyhow::Result<&str> {
        self.player
            .as_deref()
            .context("say who you are: --player ID (or --token)")
    }

    fn token(&self) -> anyhow::Result<String> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        self.mint(self.player()?, Audience::Api, Duration::from_secs(3600))
    }

    /// A party token of `member`, minted from the dev secret.
    fn party_token(&self, member: &str) -> anyhow::Result<String> {
        self.mint(member, Audience::Party, PARTY_TOKEN_TTL)
    }

    /// A dev token of `subject` for `audience`, signed with the dev secret, valid for `ttl` from now.
    fn mint(&self, subject: &str, audience: Audience, ttl: Duration) -> anyhow::Result<String> {
        DevSigner::load(self.home.clone())?.mint(subject, audience, Role::Player, ttl)
    }

    fn base(&self) -> &str {
        self.url.trim_end_matches('/')
    }
}

/// Mints dev tokens with the dev secret, read once.
#[derive(Debug, Clone)]
pub(crate) struct DevSigner(DevTokens);

impl DevSigner {
    /// The dev secret of `home` (default: $QUEUEMATCH_HOME or ~/.queuematch), created if missing.
    pub(crate) fn load(home: Option<PathBuf>) -> anyhow::Result<Self> {
        let home = dev_home::resolve(home)?;
        Ok(Self(DevTokens::new(&dev_home::load_or_create_secret(&home)?)))
    }

    /// A token of `subject` for `audience` with `role`, valid for `ttl` from now.
    pub(crate) fn mint(&self, subject: &str, audience: Audience, role: Role, ttl: Duration) -> anyhow::Result<String> {
        let now = Timestamp::from_millis(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64);
        Ok(self.0.mint(subject, audience, role, now, ttl)?)
    }
}

/// The push channel's URL (`GET /v1/events`) of the service at `base`, for `token`.
pub(crate) fn events_url(base: &str, token: &str) -> String {
    let ws = base.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1);
    format!("{ws}/v1/events?token={token}")
}

/// The push channel as `tokio-tungstenite` opens it.
pub(crate) type PushChannel =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the push channel of `token`'s player.
pub(crate) async fn subscribe(base: &str, token: &str) -> anyhow::Result<PushChannel> {
    let (socket, _) = tokio_tungstenite::connect_async(events_url(base, token))
        .await
        .context("cannot open the push channel (GET /v1/events)")?;
    Ok(socket)
}

/// The terminal event types of a ticket.
const FINISHED: [&str; 4] = [
    "MatchmakingSucceeded",
    "MatchmakingCancelled",
    "MatchmakingTimedOut",
    "MatchmakingFailed",
];

/// Reads pushed events until `deadline` or until one satisfies `done`; each event is shown to
/// `done` in order. Events that are not JSON are skipped.
pub(crate) async fn next_event_until(
    socket: &mut PushChannel,
    deadline: tokio::time::Instant,
    mut done: impl FnMut(&Value) -> bool,
) -> anyhow::Result<Value> {
    loop {
        let next = tokio::time::timeout_at(deadline, socket.next())
            .await
            .map_err(|_| anyhow::anyhow!("the awaited event was not pushed in time"))?;
        let Some(message) = next else {
            bail!("the push channel closed")
        };
        let message = message.context("the push channel failed")?;
        let Ok(event) = serde_json::from_str::<Value>(message.to_text().unwrap_or_default()) else {
            continue;
        };
        if done(&event) {
            return Ok(event);
        }
    }
}

/// Follows `ticket_id` over push until it is finished (COMPLETED or another terminal status),
/// showing each of its events to `on_event` as it comes. Returns the finishing event.
pub(crate) async fn follow_ticket(
    socket: &mut PushChannel,
    ticket_id: &str,
    deadline: tokio::time::Instant,
    mut on_event: impl FnMut(&Value),
) -> anyhow::Result<Value> {
    next_event_until(socket, deadline, |event| {
        if event["ticketId"].as_str() != Some(ticket_id) {
            return false;
        }
        on_event(event);
        event["type"].as_str().is_some_and(|t| FINISHED.contains(&t))
    })
    .await
    .with_context(|| format!("ticket {ticket_id} did not finish"))
}

/// `POST /v1/tickets` with `body`: the service's answer (`{"ticketId"}`) and the new ticket's id.
pub(crate) async fn create_ticket(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    body: &Value,
) -> anyhow::Result<(Value, String)> {
    let created = answer(
        client
            .post(format!("{base}/v1/tickets"))
            .bearer_auth(token)
            .json(body)
            .send()
            .await?,
    )
    .await?;
    let id = created["ticketId"]
        .as_str()
        .context("the service answered no ticketId")?
        .to_owned();
    Ok((created, id))
}

/// `GET /v1/tickets/{id}`.
pub(crate) async fn get_ticket(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    ticket_id: &str,
) -> anyhow::Result<Value> {
    answer(
        client
            .get(format!("{base}/v1/tickets/{ticket_id}"))
            .bearer_auth(token)
            .send()
            .await?,
    )
    .await
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Reads `name=value` with the value as JSON when it parses, else as a string.
fn parse_attribute(pair: &str) -> anyhow::Result<(String, Value)> {
    let (name, value) = pair
        .split_once('=')
        .with_context(|| format!("--attr {pair:?} is not NAME=VALUE"))?;
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((name.to_owned(), value))
}

fn parse_latency(pair: &str) -> anyhow::Result<(String, Value)> {
    let (region, ms) = pair
        .split_once('=')
        .with_context(|| format!("--latency {pair:?} is not REGION=MS"))?;
    let ms: u32 = ms
        .parse()
        .with_context(|| format!("--latency {pair:?}: {ms:?} is not whole milliseconds"))?;
    Ok((region.to_owned(), json!(ms)))
}

/// A refusal of the service: its status, and the problem's text.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub status: reqwest::StatusCode,
    message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {}

/// What the service answered: the JSON body, or the problem it reported (a [`Refusal`]).
pub(crate) async fn answer(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let detail = body["detail"].as_str().unwrap_or("no detail");
    let fields: Vec<String> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            format!(
                "\n  {}: {}",
                e["pointer"].as_str().unwrap_or(""),
                e["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    let message = format!(
        "{} {}: {detail}{}",
        status.as_u16(),
        body["title"].as_str().unwrap_or(""),
        fields.concat()
    );
    Err(Refusal { status, message }.into())
}

fn print_ticket(ticket: &Value, json: bool) {
    if json {
        println!("{ticket}");
        return;
    }
    // A cancel recorded for a ticket not admitted yet answers without a queue, with a detail.
    let mut line = [&ticket["ticketId"], &ticket["queue"], &ticket["status"]]
        .into_iter()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(reason) = ticket["reason"].as_str().or(ticket["detail"].as_str()) {
        line.push_str(&format!(" ({reason})"));
    }
    if let Some(answers) = ticket["acceptances"].as_object().filter(|a| !a.is_empty()) {
        let answers: Vec<String> = answers
            .iter()
            .map(|(player, answer)| format!("{player} {}", answer.as_str().unwrap_or("?")))
            .collect();
        line.push_str(&format!(" [{}]", answers.join(", ")));
    }
    if let Some(connection) = ticket.get("connection").filter(|c| c.is_object()) {
        line.push_str(&format!(
            " -> {}:{} token {}",
            connection["address"].as_str().unwrap_or("?"),
            connection["port"],
            connection["playerToken"].as_str().unwrap_or("?")
        ));
    }
    println!("{line}");
}

pub fn submit(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let connection = &args.connection;
    let token = connection.token()?;
    let player = connection.player.clone().unwrap_or_default();
    let attributes: Map<String, Value> = args
        .attributes
        .iter()
        .map(|a| parse_attribute(a))
        .collect::<Result<_, _>>()?;
    let latencies: Map<String, Value> = args
        .latencies
        .iter()
        .map(|l| parse_latency(l))
        .collect::<Result<_, _>>()?;
    let mut me = json!({"id": player});
    if !attributes.is_empty() {
        me["attributes"] = Value::Object(attributes);
    }
    if !latencies.is_empty() {
        me["latencies"] = Value::Object(latencies);
    }
    let mut players = vec![me];
    for member in &args.members {
        let (id, token) = match member.split_once('=') {
            Some((id, token)) => (id.to_owned(), token.to_owned()),
            None => (member.clone(), connection.party_token(member)?),
        };
        players.push(json!({"id": id, "partyToken": token}));
    }
    let body = json!({"queue": args.queue, "players": players});
    runtime()?.block_on(async {
        let client = reqwest::Client::new();
        // Subscribe before submitting, so no event of the new ticket can be missed.
        let mut events = if args.wait {
            Some(subscribe(connection.base(), &token).await?)
        } else {
            None
        };
        let (created, ticket_id) = create_ticket(&client, connection.base(), &token, &body).await?;
        let Some(socket) = events.as_mut() else {
            if connection.json {
                println!("{created}");
            } else {
                println!("{ticket_id}");
            }
            return Ok(ExitCode::SUCCESS);
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
        follow_ticket(socket, &ticket_id, deadline, |event| {
            if event["type"] == "PotentialMatchCreated" && event["acceptanceRequired"] == true {
                // The wait goes on until every player answers; tell this one how to.
                eprintln!(
                    "match found for {ticket_id}: accept it with `queuematch accept {ticket_id} --player {player}` (or decline)"
                );
            }
        })
        .await
        .with_context(|| format!("within {} s", args.timeout))?;
        let ticket = get_ticket(&client, connection.base(), &token, &ticket_id).await?;
        print_ticket(&ticket, connection.json);
        // A script can tell a placed ticket from one that ended otherwise.
        Ok(if ticket["status"] == "COMPLETED" {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

pub fn status(args: TicketArgs) -> anyhow::Result<ExitCode> {
    ticket_request(args, reqwest::Method::GET)
}

pub fn cancel(args: TicketArgs) -> anyhow::Result<ExitCode> {
    ticket_request(args, reqwest::Method::DELETE)
}

/// Accepts the match of a ticket that requires acceptance, for the caller.
pub fn accept(args: TicketArgs) -> anyhow::Result<ExitCode> {
    respond(args, "ACCEPT")
}

/// Rejects the match of a ticket that requires acceptance, for the caller.
pub fn decline(args: TicketArgs) -> anyhow::Result<ExitCode> {
    respond(args, "REJECT")
}

fn respond(args: TicketArgs, acceptance_type: &str) -> anyhow::Result<ExitCode> {
    let connection = &args.connection;
    let token = connection.token()?;
    runtime()?.block_on(async {
        let url = format!("{}/v1/tickets/{}/acceptance", connection.base(), args.ticket);
        let ticket = answer(
            reqwest::Client::new()
                .post(url)
                .bearer_auth(&token)
                .json(&json!({"acceptanceType": acceptance_type}))
                .send()
                .await?,
        )
        .await?;
        print_ticket(&ticket, connection.json);
        Ok(ExitCode::SUCCESS)
    })
}

fn ticket_request(args: TicketArgs, method: reqwest::Method) -> anyhow::Result<ExitCode> {
    let connection = &args.connection;
    let token = connection.token()?;
    runtime()?.block_on(async {
        let url = format!("{}/v1/tickets/{}", connection.base(), args.ticket);
        let ticket = answer(
            reqwest::Client::new()
                .request(method, url)
                .bearer_auth(&token)
                .send()
                .await?,
        )
        .await?;
        print_ticket(&ticket, connection.json);
        Ok(ExitCode::SUCCESS)
    })
}

pub fn watch(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let connection = &args.connection;
    let token = connection.token()?;
    runtime()?.block_on(async {
        let mut socket = subscribe(connection.base(), &token).await?;
        let mut seen = 0;
        while args.count.is_none_or(|n| seen < n) {
            let Some(message) = socket.next().await else { break };
            let message = message.context("the push channel failed")?;
            let Ok(text) = message.to_text() else { continue };
            if text.is_empty() {
                continue;
            }
            if connection.json {
                println!("{text}");
            } else if let Ok(event) = serde_json::from_str::<Value>(text) {
                let subject = event["ticketId"]
                    .as_str()
                    .or(event["sessionId"].as_str())
                    .or(event["matchId"].as_str())
                    .unwrap_or("?");
                // A session's status, or how an acceptance ended.
                let status = event["status"]
                    .as_str()
                    .or(event["acceptance"].as_str())
                    .unwrap_or_default();
                println!("{} {subject} {status}", event["type"].as_str().unwrap_or("?"));
            }
            seen += 1;
        }
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_read_as_json_when_they_parse() {
        assert_eq!(parse_attribute("skill=1500").unwrap(), ("skill".into(), json!(1500)));
        assert_eq!(
            parse_attribute("roles=[\"tank\"]").unwrap(),
            ("roles".into(), json!(["tank"]))
        );
        assert_eq!(
            parse_attribute("mode=ranked").unwrap(),
            ("mode".into(), json!("ranked"))
        );
        assert!(parse_attribute("skill").is_err());
    }

    #[test]
    fn latencies_are_whole_milliseconds() {
        assert_eq!(parse_latency("eu=40").unwrap(), ("eu".into(), json!(40)));
        assert!(parse_latency("eu=fast").is_err());
        assert!(parse_latency("eu").is_err());
    }
}
