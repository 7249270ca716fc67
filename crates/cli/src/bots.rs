//! `queuematch bots`: simulated players who queue, get matched, play on the game servers they are
//! given, and queue again, against a running service.
//!
//! Each bot has a hidden true skill, drawn from `--seed`, that sets how precisely it aims in the
//! game (see `queuematch_gameserver::game::aim_at`): the best aim with 0.02 of noise, the worst with
//! 0.17. Its ticket leaves out the queue's skill attribute when the rule set gives it a default, so
//! the matcher reads the bot's rating instead; a `composition` rule's attribute gets a role, the
//! bots taking the rule's roles in turn, so that teams can be composed. A bot follows its ticket over
//! push (as `queuematch submit --wait` does), connects to its server with the player token the
//! ticket shows, plays to the end, waits for its session to end, and queues again, until it has
//! played `--games` games. At the end the bots' ratings are read back
//! (`GET /v1/players/{id}/ratings`, with an operator token) and ranked against their hidden skills.

use crate::client::{self, DevSigner, PushChannel, Refusal};
use crate::rulesets;
use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use queuematch_core::identity::jwt::{Audience, Role};
use queuematch_core::ruleset::RuleKind;
use queuematch_core::RuleSet;
use queuematch_gameserver::client::GameClient;
use queuematch_gameserver::game;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Args)]
pub struct BotsArgs {
    /// The service's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The queue (a rule set's name).
    #[arg(long)]
    queue: String,
    /// How many bots play at once.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    players: u32,
    /// How many games each bot plays.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    games: u32,
    /// Draws the bots' hidden skills and their aim: the same seed, the same bots.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The bots' player ids are `PREFIX-1`, `PREFIX-2`, …
    #[arg(long, default_value = "bot")]
    prefix: String,
    /// The rule sets the service serves, to read the queue's attributes from.
    #[arg(long, default_value = "examples/rulesets")]
    rulesets: PathBuf,
    /// Where the dev secret lives, to mint the bots' tokens (default: $QUEUEMATCH_HOME or ~/.queuematch).
    #[arg(long, env = "QUEUEMATCH_HOME")]
    home: Option<PathBuf>,
    /// An operator token to read the ratings with, instead of minting one.
    #[arg(long, env = "QUEUEMATCH_OPERATOR_TOKEN")]
    operator_token: Option<String>,
    /// How long one game may take a bot, from its ticket to its session's end, in seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// Print JSON, for scripts.
    #[arg(long)]
    json: bool,
}

/// The bots' aim: gaussian noise from [`BEST_AIM`] (skill 1) to [`BEST_AIM`] + [`AIM_RANGE`] (skill 0).
pub const BEST_AIM: f64 = 0.02;
pub const AIM_RANGE: f64 = 0.15;

/// One bot.
#[derive(Debug, Clone)]
struct Bot {
    id: String,
    /// Hidden from the service: only the bot's aim shows it.
    skill: f64,
    attributes: Map<String, Value>,
}

impl Bot {
    fn noise(&self) -> f64 {
        BEST_AIM + AIM_RANGE * (1.0 - self.skill)
    }
}

/// What the queue's rule set asks of a bot's ticket.
#[derive(Debug, Clone, PartialEq)]
struct TicketShape {
    /// The role attribute and the roles to hand out in turn (one team's worth).
    roles: Option<(String, Vec<String>)>,
    /// The skill attribute when the rule set has no default for it: the bot must send one.
    skill_without_default: Option<String>,
}

impl TicketShape {
    fn of(rule_set: &RuleSet) -> anyhow::Result<Self> {
        let skill = rule_set.skill_attribute().map(str::to_owned);
        let roles = rule_set.rules.iter().find_map(|rule| match &rule.kind {
            RuleKind::Composition { attribute, per_team } => {
                let roles: Vec<String> = per_team
                    .iter()
                    .flat_map(|(role, count)| std::iter::repeat_n(role.clone(), *count as usize))
                    .collect();
                Some((attribute.clone(), roles))
            }
            _ => None,
        });
        let mut skill_without_default = None;
        for attribute in &rule_set.player_attributes {
            if attribute.default.is_some() || roles.as_ref().is_some_and(|(a, _)| a == &attribute.name) {
                continue;
            }
            if Some(&attribute.name) == skill.as_ref() {
                skill_without_default = skill.clone();
                continue;
            }
            bail!(
                "queue {}: attribute `{}` has no default, and bots do not know what to send for it",
                rule_set.name,
                attribute.name
            );
        }
        Ok(Self {
            roles,
            skill_without_default,
        })
    }

    /// The attributes of bot number `index`.
    fn attributes(&self, index: usize) -> Map<String, Value> {
        let mut attributes = Map::new();
        if let Some((attribute, roles)) = &self.roles {
            if !roles.is_empty() {
                attributes.insert(attribute.clone(), json!([roles[index % roles.len()]]));
            }
        }
        if let Some(skill) = &self.skill_without_default {
            // The queue cannot read ratings without a default; every bot claims the same.
            attributes.insert(skill.clone(), json!(1500));
        }
        attributes
    }
}

/// How one game of one bot went.
#[derive(Debug, Clone)]
struct Played {
    session_id: String,
    /// The game server, `address:port`.
    server: String,
    /// From the ticket's creation to its match, and to the bot's welcome on its game server.
    to_match: Duration,
    to_server: Duration,
    won: bool,
}

/// One bot's record.
#[derive(Debug, Default)]
struct Record {
    played: Vec<Played>,
    failures: Vec<String>,
}

/// A figure's median and 95th percentile, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p95: u64,
}

/// The nearest-rank percentiles of `samples`, `None` when there are none.
fn percentiles(samples: &[Duration]) -> Option<Percentiles> {
    if samples.is_empty() {
        return None;
    }
    let mut ms: Vec<u64> = samples.iter().map(|d| d.as_millis() as u64).collect();
    ms.sort_unstable();
    let at = |p: f64| -> Option<u64> {
        let rank = ((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len());
        ms.get(rank - 1).copied()
    };
    Some(Percentiles {
        p50: at(0.50)?,
        p95: at(0.95)?,
    })
}

/// Ranks from 1, ties sharing their average rank.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && values[order[end + 1]] == values[order[start]] {
            end += 1;
        }
        let average = (start + end) as f64 / 2.0 + 1.0;
        for &i in &order[start..=end] {
            ranks[i] = average;
        }
        start = end + 1;
    }
    ranks
}

/// Spearman's rank correlation of paired samples: the Pearson correlation of their ranks. `None`
/// for fewer than two pairs or when either side is constant.
pub fn spearman(xs: &[f64], ys: &[f64]) -> Option<f64> {
    if xs.len() != ys.len() || xs.len() < 2 {
        return None;
    }
    let (rx, ry) = (ranks(xs), ranks(ys));
    let n = rx.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut cov, mut vx, mut vy) = (0.0, 0.0, 0.0);
    for (x, y) in rx.iter().zip(&ry) {
        cov += (x - mx) * (y - my);
        vx += (x - mx).powi(2);
        vy += (y - my).powi(2);
    }
    if vx == 0.0 || vy == 0.0 {
        return None;
    }
    Some(cov / (vx * vy).sqrt())
}

/// What the bots report at the end (`--json`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    queue: String,
    players: u32,
    games_per_player: u32,
    /// Distinct sessions the bots played in.
    sessions: usize,
    /// Games played to their result, counted per bot.
    games_played: usize,
    /// Games a bot did not get to play to the end (with the reasons in `failures`).
    failed: usize,
    time_to_match_ms: Option<Percentiles>,
    time_to_server_ms: Option<Percentiles>,
    /// Spearman's rank correlation between the bots' ratings (scaled mean) and hidden skills.
    spearman: Option<f64>,
    rated: usize,
    wall_time_ms: u64,
    failures: BTreeMap<String, usize>,
    /// Each session played, with its game server (`address:port`).
    servers: BTreeMap<String, String>,
    bots: Vec<BotSummary>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BotSummary {
    player_id: String,
    skill: f64,
    games: usize,
    wins: usize,
    failed: usize,
    /// The rating's mean on the 1500-centred scale, once rated.
    rating: Option<f64>,
    conservative_estimate: Option<f64>,
}

pub fn run(args: BotsArgs) -> anyhow::Result<ExitCode> {
    let rule_sets = rulesets::load_dir(&args.rulesets)?;
    let rule_set = rule_sets
        .iter()
        .find(|r| r.name == args.queue)
        .with_context(|| format!("no queue {} in {}", args.queue, args.rulesets.display()))?;
    // Fewer bots than any match of the queue holds would each wait out --timeout, for nothing.
    let fewest = rule_set.fewest_players().max(1);
    if args.players < fewest {
        bail!(
            "queue {} forms no match of fewer than {fewest} players: --players {} bots would only time out",
            args.queue,
            args.players
        );
    }
    let shape = TicketShape::of(rule_set)?;
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let bots: Vec<Bot> = (0..args.players as usize)
        .map(|i| Bot {
            id: format!("{}-{}", args.prefix, i + 1),
            skill: rng.gen_range(0.0..1.0),
            attributes: shape.attributes(i),
        })
        .collect();
    let signer = DevSigner::load(args.home.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let summary = runtime.block_on(play_all(&args, bots, signer))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", table(&summary));
    }
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A game a bot did not queue for: it was the last bot with games to play.
const NOBODY_LEFT: &str = "not queued: every other bot had finished";

/// Shared by the bots: the live counts behind the progress bar.
#[derive(Debug, Default)]
struct Live {
    played: u64,
    failed: u64,
    playing: u64,
    /// Bots with games still to play, this one included.
    unfinished: u64,
}

async fn play_all(args: &BotsArgs, bots: Vec<Bot>, signer: anyhow::Result<DevSigner>) -> anyhow::Result<Summary> {
    let base = args.url.trim_end_matches('/').to_owned();
    let operator = match &args.operator_token {
        Some(token) => token.clone(),
        None => signer.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?.mint(
            "operator",
            Audience::Api,
            Role::Operator,
            Duration::from_secs(24 * 3600),
        )?,
    };
    let signer = signer?;
    let started = Instant::now();
    let total = u64::from(args.players) * u64::from(args.games);
    // Hidden when stderr is not a terminal, and with --json.
    let progress = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} bot-games  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let live = Arc::new(Mutex::new(Live {
        unfinished: bots.len() as u64,
        ..Live::default()
    }));
    let http = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, bot) in bots.iter().cloned().enumerate() {
        let token = signer.mint(&bot.id, Audience::Api, Role::Player, Duration::from_secs(24 * 3600))?;
        let context = BotContext {
            base: base.clone(),
            queue: args.queue.clone(),
            http: http.clone(),
            token,
            timeout: Duration::from_secs(args.timeout),
            progress: progress.clone(),
            live: live.clone(),
        };
        let games = args.games;
        let seed = args.seed ^ ((index as u64 + 1) << 20);
        tasks.spawn(async move { (index, context.play(&bot, games, seed).await) });
    }
    let mut records: Vec<Record> = (0..bots.len()).map(|_| Record::default()).collect();
    while let Some(done) = tasks.join_next().await {
        let (index, record) = done.context("a bot's task failed")?;
        records[index] = record;
    }
    progress.finish_and_clear();
    let wall_time_ms = started.elapsed().as_millis() as u64;

    let mut summaries = Vec::new();
    for (bot, record) in bots.iter().zip(&records) {
        let (rating, conservative) = rating_of(&http, &base, &operator, &bot.id, &args.queue).await?;
        summaries.push(BotSummary {
            player_id: bot.id.clone(),
            skill: bot.skill,
            games: record.played.len(),
            wins: record.played.iter().filter(|p| p.won).count(),
            failed: record.failures.len(),
            rating,
            conservative_estimate: conservative,
        });
    }
    let rated: Vec<(f64, f64)> = summaries
        .iter()
        .filter_map(|b| b.rating.map(|r| (r, b.skill)))
        .collect();
    let (ratings, skills): (Vec<f64>, Vec<f64>) = rated.iter().copied().unzip();
    let played: Vec<&Played> = records.iter().flat_map(|r| &r.played).collect();
    let mut failures = BTreeMap::new();
    for failure in records.iter().flat_map(|r| &r.failures) {
        *failures.entry(failure.clone()).or_insert(0) += 1;
    }
    Ok(Summary {
        queue: args.queue.clone(),
        players: args.players,
        games_per_player: args.games,
        sessions: played.iter().map(|p| &p.session_id).collect::<BTreeSet<_>>().len(),
        games_played: played.len(),
        failed: records.iter().map(|r| r.failures.len()).sum(),
        time_to_match_ms: percentiles(&played.iter().map(|p| p.to_match).collect::<Vec<_>>()),
        time_to_server_ms: percentiles(&played.iter().map(|p| p.to_server).collect::<Vec<_>>()),
        spearman: spearman(&ratings, &skills),
        rated: rated.len(),
        wall_time_ms,
        failures,
        servers: played
            .iter()
            .map(|p| (p.session_id.clone(), p.server.clone()))
            .collect(),
        bots: summaries,
    })
}

/// A bot's rating in `queue`: its scaled mean and conservative estimate; `None`s before any rated game.
async fn rating_of(
    http: &reqwest::Client,
    base: &str,
    operator: &str,
    player: &str,
    queue: &str,
) -> anyhow::Result<(Option<f64>, Option<f64>)> {
    let response = http
        .get(format!("{base}/v1/players/{player}/ratings"))
        .bearer_auth(operator)
        .send()
        .await
        .with_context(|| format!("cannot read the ratings of {player}"))?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok((None, None));
    }
    let view = client::answer(response)
        .await
        .with_context(|| format!("the ratings of {player}"))?;
    let Some(rating) = view["ratings"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["queue"] == queue)
    else {
        return Ok((None, None));
    };
    Ok((scaled_mean(rating), rating["conservativeEstimate"].as_f64()))
}

/// The rating's mean on the 1500-centred scale the service uses (Weng-Lin ×60).
fn scaled_mean(rating: &Value) -> Option<f64> {
    match rating["system"].as_str()? {
        "glicko2" => rating["rating"].as_f64(),
        "wengLin" => rating["mu"]
            .as_f64()
            .map(|mu| mu * queuematch_core::ratings::WENG_LIN_SCALE),
        _ => None,
    }
}

/// What a bot needs to play.
#[derive(Debug, Clone)]
struct BotContext {
    base: String,
    queue: String,
    http: reqwest::Client,
    token: String,
    timeout: Duration,
    progress: ProgressBar,
    live: Arc<Mutex<Live>>,
}

impl BotContext {
    fn tally(&self, change: impl FnOnce(&mut Live)) {
        let Ok(mut live) = self.live.lock() else { return };
        change(&mut live);
        self.progress.set_message(format!(
            "played {}  playing {}  failed {}",
            live.played, live.playing, live.failed
        ));
    }

    /// Plays `games` games, one after the other. A bot whose ticket timed out when every other bot
    /// has finished stops there: nobody is left to match it, and each further ticket would only
    /// wait out the queue's timeout (a run's last bots, too far apart in skill, held it for as
    /// many timeouts as they had games left).
    async fn play(&self, bot: &Bot, games: u32, seed: u64) -> Record {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut record = Record::default();
        let mut push: Option<PushChannel> = None;
        for game in 0..games {
            let deadline = Instant::now() + self.timeout;
            let failed = match self.play_one(bot, &mut push, &mut rng, deadline).await {
                Ok(played) => {
                    self.tally(|live| live.played += 1);
                    record.played.push(played);
                    false
                }
                Err(error) => {
                    // The push channel may be what failed: open a new one for the next game.
                    push = None;
                    self.tally(|live| live.failed += 1);
                    record.failures.push(format!("{error:#}"));
                    true
                }
            };
            self.progress.inc(1);
            if failed && self.alone() {
                let left = games - game - 1;
                record
                    .failures
                    .extend(std::iter::repeat_n(NOBODY_LEFT.to_owned(), left as usize));
                self.tally(|live| live.failed += u64::from(left));
                self.progress.inc(u64::from(left));
                break;
            }
        }
        self.tally(|live| live.unfinished -= 1);
        record
    }

    /// Whether every other bot has played all its games.
    fn alone(&self) -> bool {
        self.live.lock().map(|live| live.unfinished <= 1).unwrap_or(false)
    }

    async fn play_one(
        &self,
        bot: &Bot,
        push: &mut Option<PushChannel>,
        rng: &mut ChaCha8Rng,
        deadline: Instant,
    ) -> anyhow::Result<Played> {
        let socket = match push {
            Some(socket) => socket,
            None => push.insert(client::subscribe(&self.base, &self.token).await?),
        };
        let mut me = json!({"id": bot.id});
        if !bot.attributes.is_empty() {
            me["attributes"] = Value::Object(bot.attributes.clone());
        }
        let body = json!({"queue": self.queue, "players": [me]});
        let submitted = Instant::now();
        let ticket_id = self.submit(&body, deadline).await?;
        let mut matched = None;
        let followed = client::follow_ticket(socket, &ticket_id, deadline, |event| {
            if event["type"] == "PotentialMatchCreated" {
                matched.get_or_insert_with(Instant::now);
            }
        })
        .await;
        let finished = match followed {
            Ok(finished) => finished,
            Err(error) => {
                // Given up: the ticket goes too, or it would match a later bot into a game nobody
                // joins. A ticket being placed cannot be cancelled (409); its game just starts short.
                let _ = self
                    .http
                    .delete(format!("{}/v1/tickets/{ticket_id}", self.base))
                    .bearer_auth(&self.token)
                    .send()
                    .await;
                return Err(error);
            }
        };
        if finished["type"] != "MatchmakingSucceeded" {
            bail!(
                "ticket {}: {}",
                finished["type"].as_str().unwrap_or("?"),
                finished["reason"].as_str().unwrap_or("no reason")
            );
        }
        let ticket = client::get_ticket(&self.http, &self.base, &self.token, &ticket_id).await?;
        let connection = &ticket["connection"];
        let (Some(address), Some(port), Some(player_token)) = (
            connection["address"].as_str(),
            connection["port"].as_u64().and_then(|p| u16::try_from(p).ok()),
            connection["playerToken"].as_str(),
        ) else {
            bail!("ticket {ticket_id} is COMPLETED without connection info: {ticket}");
        };
        let game = GameClient::connect(address, port, player_token).await?;
        let to_server = submitted.elapsed();
        let to_match = matched.map_or(to_server, |at| at.duration_since(submitted));
        let welcome = game.welcome().clone();
        self.tally(|live| live.playing += 1);
        let noise = bot.noise();
        let outcome = game.play(|view| Some(game::aim_at(view, noise, rng))).await;
        self.tally(|live| live.playing -= 1);
        let outcome = outcome?;
        let session_id = welcome.session_id.to_string();
        // The next ticket is refused while this session is active: wait for its end to be pushed.
        // A session whose end was not seen in time is not the bot's failure; its next ticket
        // retries while the service still holds the player.
        let end = Instant::now() + Duration::from_secs(30);
        let _ = client::next_event_until(socket, end.min(deadline), |event| {
            event["type"] == "SessionStatusChanged"
                && event["sessionId"] == session_id.as_str()
                && matches!(event["status"].as_str(), Some("ENDED" | "ABANDONED" | "FAILED"))
        })
        .await;
        Ok(Played {
            session_id,
            server: format!("{address}:{port}"),
            to_match,
            to_server,
            won: outcome.winners.contains(&welcome.team),
        })
    }

    /// Creates the bot's ticket, retrying while the service still holds the player in their last
    /// session (409), with backoff and full jitter.
    async fn submit(&self, body: &Value, deadline: Instant) -> anyhow::Result<String> {
        let mut ceiling = Duration::from_millis(100);
        loop {
            match client::create_ticket(&self.http, &self.base, &self.token, body).await {
                Ok((_, id)) => return Ok(id),
                Err(error) => {
                    let conflict = error
                        .downcast_ref::<Refusal>()
                        .is_some_and(|r| r.status == reqwest::StatusCode::CONFLICT);
                    if !conflict || Instant::now() + ceiling > deadline {
                        return Err(error.context("cannot create the ticket"));
                    }
                }
            }
            let delay = ceiling.mul_f64(rand::thread_rng().gen_range(0.0..=1.0));
            tokio::time::sleep(delay).await;
            ceiling = (ceiling * 2).min(Duration::from_secs(2));
        }
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.2} s", ms as f64 / 1000.0)
}

/// The final table.
fn table(summary: &Summary) -> String {
    let figure = |p: Option<Percentiles>| match p {
        Some(p) => format!("p50 {}   p95 {}", seconds(p.p50), seconds(p.p95)),
        None => "-".to_owned(),
    };
    let mut rows = vec![
        ("queue", summary.queue.clone()),
        ("players", summary.players.to_string()),
        (
            "games played",
            format!(
                "{} ({} sessions; {} per player, as asked)",
                summary.games_played, summary.sessions, summary.games_per_player
            ),
        ),
        ("failed", summary.failed.to_string()),
        ("time to match", figure(summary.time_to_match_ms)),
        ("time to server", figure(summary.time_to_server_ms)),
        (
            "rank correlation",
            match summary.spearman {
                Some(rho) => format!("{rho:.3} (Spearman, rating vs hidden skill, {} rated)", summary.rated),
                None => format!("- ({} rated)", summary.rated),
            },
        ),
        ("wall time", seconds(summary.wall_time_ms)),
    ];
    for (reason, count) in &summary.failures {
        rows.push(("failure", format!("{count} x {reason}")));
    }
    let mut out = String::new();
    for (name, value) in rows {
        out.push_str(&format!("{name:<17} {value}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bot whose every game fails at once (nothing listens at the service's address), among
    /// `bots` bots: what it records of `games` games.
    async fn failing_bot(bots: u64, games: u32) -> Record {
        let context = BotContext {
            base: "http://127.0.0.1:9".into(),
            queue: "ranked-1v1".into(),
            http: reqwest::Client::new(),
            token: "unused".into(),
            timeout: Duration::from_secs(5),
            progress: ProgressBar::hidden(),
            live: Arc::new(Mutex::new(Live {
                unfinished: bots,
                ..Live::default()
            })),
        };
        let bot = Bot {
            id: "b-1".into(),
            skill: 0.5,
            attributes: Map::new(),
        };
        let record = context.play(&bot, games, 1).await;
        assert_eq!(context.progress.position(), u64::from(games), "every game is counted");
        record
    }

    #[tokio::test]
    async fn the_last_bot_stops_after_a_failed_game_instead_of_queuing_alone() {
        // GIVEN other bots still playing, a bot tries every game
        let among_others = failing_bot(2, 4).await;
        assert_eq!(among_others.failures.len(), 4);
        assert!(
            among_others.failures.iter().all(|f| f != NOBODY_LEFT),
            "{:?}",
            among_others.failures
        );
        // GIVEN it is the last, it stops at its first failure and owes the rest
        let alone = failing_bot(1, 4).await;
        assert_eq!(alone.failures.len(), 4);
        assert_ne!(alone.failures[0], NOBODY_LEFT);
        assert_eq!(alone.failures[1..], [NOBODY_LEFT; 3]);
    }

    #[test]
    fn spearman_is_one_for_the_same_order_and_minus_one_for_the_reverse() {
        let xs = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(spearman(&xs, &[10.0, 20.0, 30.0, 400.0]), Some(1.0));
        assert_eq!(spearman(&xs, &[4.0, 3.0, 2.0, 1.0]), Some(-1.0));
        assert_eq!(spearman(&xs, &[1.0, 1.0, 1.0, 1.0]), None, "a constant side");
        assert_eq!(spearman(&[1.0], &[1.0]), None);
        // One swapped pair of four: 1 - 6·2/(4·15) = 0.8.
        let rho = spearman(&xs, &[1.0, 3.0, 2.0, 4.0]).unwrap();
        assert!((rho - 0.8).abs() < 1e-12, "{rho}");
    }

    #[test]
    fn ties_share_their_average_rank() {
        assert_eq!(ranks(&[5.0, 1.0, 5.0, 3.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let ms = |v: &[u64]| v.iter().map(|&m| Duration::from_millis(m)).collect::<Vec<_>>();
        let p = percentiles(&ms(&(1..=100).collect::<Vec<_>>())).unwrap();
        assert_eq!((p.p50, p.p95), (50, 95));
        let one = percentiles(&ms(&[7])).unwrap();
        assert_eq!((one.p50, one.p95), (7, 7));
        assert_eq!(percentiles(&[]), None);
    }

    fn rule_set(name: &str) -> RuleSet {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../examples/rulesets/{name}.json"));
        RuleSet::from_json_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn tickets_leave_out_a_defaulted_skill_and_hand_out_the_roles_a_team_needs() {
        let duel = TicketShape::of(&rule_set("ranked-1v1")).unwrap();
        assert!(duel.attributes(0).is_empty(), "the rating stands in for skill");
        let squad = TicketShape::of(&rule_set("ranked-5v5")).unwrap();
        let roles: Vec<Value> = (0..10).map(|i| squad.attributes(i)["roles"].clone()).collect();
        for role in ["tank", "healer"] {
            assert_eq!(roles.iter().filter(|r| **r == json!([role])).count(), 2, "{roles:?}");
        }
        assert_eq!(roles.iter().filter(|r| **r == json!(["dps"])).count(), 6);
        assert!(!squad.attributes(0).contains_key("skill"));
    }

    #[test]
    fn the_table_shows_every_figure() {
        let summary = Summary {
            queue: "ranked-5v5".into(),
            players: 20,
            games_per_player: 1,
            sessions: 2,
            games_played: 20,
            failed: 0,
            time_to_match_ms: Some(Percentiles { p50: 1200, p95: 1900 }),
            time_to_server_ms: Some(Percentiles { p50: 3400, p95: 4100 }),
            spearman: Some(0.5),
            rated: 20,
            wall_time_ms: 15_000,
            failures: BTreeMap::from([("ticket MatchmakingTimedOut: waited".to_owned(), 1)]),
            servers: BTreeMap::new(),
            bots: Vec::new(),
        };
        let table = table(&summary);
        for expected in [
            "games played      20 (2 sessions",
            "time to match     p50 1.20 s   p95 1.90 s",
            "time to server    p50 3.40 s   p95 4.10 s",
            "0.500 (Spearman",
            "1 x ticket MatchmakingTimedOut",
        ] {
            assert!(table.contains(expected), "{expected:?} in\n{table}");
        }
    }
}
