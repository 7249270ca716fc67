//! `queuematch token`: mints dev tokens signed with the dev secret.

use crate::dev_home;
use clap::Args;
use queuematch_core::identity::jwt::{Audience, DevTokens, Role, PARTY_TOKEN_TTL};
use queuematch_core::ids::PlayerId;
use queuematch_core::Timestamp;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("who").required(true).args(["player", "operator"]))]
pub struct TokenArgs {
    /// The player the token names (its subject): 1 to 128 letters, digits, `-`, `_`, `.`, `@` or `:`.
    #[arg(long, value_parser = player_id)]
    player: Option<String>,
    /// Mint a party token (audience `party`, 5 minutes) for a party member to hand to the leader.
    #[arg(long, requires = "player", conflicts_with = "operator")]
    party: bool,
    /// Mint an operator token for the /v1/ops routes.
    #[arg(long)]
    operator: bool,
    /// How long an API token lives, in seconds: 1 to a year. (A party token lives 5 minutes.)
    #[arg(long, default_value_t = 24 * 3600, value_parser = clap::value_parser!(u64).range(1..=MAX_TTL_SECONDS), conflicts_with = "party")]
    ttl: u64,
    /// Where the dev secret lives (default: $QUEUEMATCH_HOME or ~/.queuematch).
    #[arg(long, env = "QUEUEMATCH_HOME")]
    home: Option<PathBuf>,
}

/// The longest an API token minted here lives: a year.
const MAX_TTL_SECONDS: u64 = 366 * 24 * 3600;

/// A player id the API takes, or why not: a token for any other would be refused at every route.
fn player_id(id: &str) -> Result<String, String> {
    if PlayerId::is_valid(id) {
        Ok(id.to_owned())
    } else {
        Err(PlayerId::RULE.to_owned())
    }
}

pub fn run(args: TokenArgs) -> anyhow::Result<ExitCode> {
    let home = dev_home::resolve(args.home)?;
    let tokens = DevTokens::new(&dev_home::load_or_create_secret(&home)?);
    let now = Timestamp::from_millis(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64);
    let token = match (args.player, args.operator) {
        (Some(player), _) if args.party => tokens.mint(&player, Audience::Party, Role::Player, now, PARTY_TOKEN_TTL)?,
        (Some(player), _) => tokens.mint(&player, Audience::Api, Role::Player, now, Duration::from_secs(args.ttl))?,
        (None, true) => tokens.mint(
            "operator",
            Audience::Api,
            Role::Operator,
            now,
            Duration::from_secs(args.ttl),
        )?,
        (None, false) => anyhow::bail!("say who the token is for: --player ID or --operator"),
    };
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}
