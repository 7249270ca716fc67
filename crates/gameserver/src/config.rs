//! The game server's configuration: flags, then environment, loaded once at start.

use clap::Parser;
use queuematch_core::identity::SessionSecret;
use queuematch_core::ids::{MatchId, PlayerId, SessionId};
use queuematch_core::ports::fleet::SessionAssignment;
use std::net::SocketAddr;
use std::time::Duration;

/// The environment variable that carries the secret of a session given on the command line. It is
/// not a flag on purpose: a flag's value shows in `ps` to every user of the machine.
pub const SECRET_ENV: &str = "QUEUEMATCH_SESSION_SECRET";

/// A minimal dedicated game server for queuematch sessions.
#[derive(Debug, Clone, Parser)]
#[command(name = "queuematch-gameserver", version)]
pub struct Args {
    /// Where players connect. Port 0 takes a free port, printed on stdout once listening.
    #[arg(long, env = "QUEUEMATCH_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// The service's base URL; reports go to `<URL>/v1/sessions/<id>/events`.
    #[arg(long, env = "QUEUEMATCH_SERVICE_URL")]
    pub service_url: String,

    /// Host this one session and exit, instead of taking sessions from stdin. Its secret comes from
    /// the environment variable `QUEUEMATCH_SESSION_SECRET`.
    #[arg(long, env = "QUEUEMATCH_SESSION_ID", requires = "players")]
    pub session: Option<SessionId>,

    /// The match of `--session`.
    #[arg(long = "match", env = "QUEUEMATCH_MATCH_ID", requires = "session")]
    pub match_id: Option<MatchId>,

    /// A player of `--session` (repeat, or separate with commas).
    #[arg(
        long = "player",
        env = "QUEUEMATCH_PLAYERS",
        value_delimiter = ',',
        requires = "session"
    )]
    pub players: Vec<PlayerId>,

    /// How long the lobby waits for every player before the game starts with those present.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub lobby_timeout: Duration,

    /// The game's fixed tick rate.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub ticks_per_second: u32,

    /// How many ticks a game lasts (at 20 ticks a second, 200 is ten seconds).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub game_ticks: u32,

    /// How often an active session heartbeats to the service (and, with `--register-table`, how
    /// often the server refreshes its item in the table).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// ECS: register this server in the service's DynamoDB table (the AWS SDK's configuration comes
    /// from the environment), heartbeat its item and host the sessions claimed there, instead of
    /// taking sessions from stdin. Needs a build with the `ecs` feature.
    #[arg(
        long,
        env = "QUEUEMATCH_REGISTER_TABLE",
        requires = "fleet",
        conflicts_with = "session"
    )]
    pub register_table: Option<String>,

    /// The fleet whose items (`FLEET#<fleet>`) the server registers under.
    #[arg(long, env = "QUEUEMATCH_FLEET", requires = "register_table")]
    pub fleet: Option<String>,

    /// The server's id in the fleet; a fresh one when left out.
    #[arg(long, env = "QUEUEMATCH_SERVER_ID", requires = "register_table")]
    pub server_id: Option<String>,

    /// The address players connect to, as registered; the listening address when left out.
    #[arg(long, env = "QUEUEMATCH_ADVERTISE_ADDRESS", requires = "register_table")]
    pub advertise_address: Option<String>,

    /// How long the registered item outlives the server's last heartbeat: past it, the fleet no
    /// longer sees the server.
    #[arg(long, default_value = "15s", value_parser = parse_duration, requires = "register_table")]
    pub registration_ttl: Duration,
}

/// Where a self-registering server puts itself (`--register-table`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub table: String,
    pub fleet: String,
    pub server_id: String,
    /// `None`: the listening address.
    pub advertise_address: Option<String>,
    /// More than the heartbeat interval.
    pub ttl: Duration,
}

/// Where the server's session comes from.
#[derive(Debug, Clone)]
pub enum SessionSource {
    /// One assignment per line on stdin, until stdin ends.
    Control,
    /// This session only, then exit.
    Fixed(SessionAssignment),
}

/// How long each phase of a session may take, and how fast the game runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub lobby: Duration,
    pub heartbeat: Duration,
    /// At least 1.
    pub ticks_per_second: u32,
    /// At least 1.
    pub game_ticks: u32,
}

impl Timing {
    /// The time between two ticks.
    pub fn tick_period(&self) -> Duration {
        Duration::from_secs(1) / self.ticks_per_second.max(1)
    }
}

/// The whole configuration, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub service_url: String,
    pub source: SessionSource,
    pub timing: Timing,
    /// ECS: the server registers itself (then `source` is `Control`, fed from its item).
    pub registration: Option<Registration>,
}

/// A configuration that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--session needs its secret in the environment variable {SECRET_ENV}")]
    MissingSecret,
    #[error("--session needs its match id (--match)")]
    MissingMatch,
    #[error("--service-url {0:?}: {1}")]
    BadServiceUrl(String, &'static str),
    #[error("--session {0:?}: {rule}", rule = SessionId::RULE)]
    BadSession(String),
    #[error("--heartbeat-interval must be more than zero")]
    ZeroHeartbeat,
    #[error("--registration-ttl ({ttl:?}) must be longer than --heartbeat-interval ({heartbeat:?})")]
    ShortRegistration { ttl: Duration, heartbeat: Duration },
    #[error("--register-table needs a server built with the `ecs` feature (cargo build --features ecs)")]
    NoEcs,
}

impl Config {
    /// Checks `args`, reading the secret of a fixed session from `secret` (the environment's value).
    pub fn from_args(args: Args, secret: Option<String>) -> Result<Self, ConfigError> {
        let service_url = args.service_url.trim_end_matches('/').to_owned();
        let why = match reqwest::Url::parse(&service_url) {
            Err(_) => Some("not a URL; write it as http://HOST[:PORT]"),
            // (An http(s) URL without a host does not parse.)
            Ok(url) if !matches!(url.scheme(), "http" | "https") => Some("not an http:// or https:// URL"),
            Ok(_) => None,
        };
        if let Some(why) = why {
            return Err(ConfigError::BadServiceUrl(args.service_url, why));
        }
        // The id goes into the path of the session's reports.
        if let Some(session) = args.session.as_ref().filter(|s| !SessionId::is_valid(s.as_str())) {
            return Err(ConfigError::BadSession(session.to_string()));
        }
        if args.heartbeat_interval.is_zero() {
            return Err(ConfigError::ZeroHeartbeat);
        }
        let source = match args.session {
            None => SessionSource::Control,
            Some(session_id) => SessionSource::Fixed(SessionAssignment {
                session_id,
                match_id: args.match_id.ok_or(ConfigError::MissingMatch)?,
                secret: SessionSecret::from_stored(secret.filter(|s| !s.is_empty()).ok_or(ConfigError::MissingSecret)?),
                players: args.players,
                // A session given by hand names no teams: each player plays alone.
                teams: Vec::new(),
            }),
        };
        let registration = match (args.register_table, args.fleet) {
            (Some(table), Some(fleet)) => {
                if !cfg!(feature = "ecs") {
                    return Err(ConfigError::NoEcs);
                }
                if args.registration_ttl <= args.heartbeat_interval {
                    return Err(ConfigError::ShortRegistration {
                        ttl: args.registration_ttl,
                        heartbeat: args.heartbeat_interval,
                    });
                }
                Some(Registration {
                    table,
                    fleet,
                    server_id: args.server_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                    advertise_address: args.advertise_address,
                    ttl: args.registration_ttl,
                })
            }
            _ => None,
        };
        Ok(Self {
            listen: args.listen,
            service_url,
            source,
            registration,
            timing: Timing {
                lobby: args.lobby_timeout,
                heartbeat: args.heartbeat_interval,
                ticks_per_second: args.ticks_per_second,
                game_ticks: args.game_ticks,
            },
        })
    }

    /// Parses the command line and reads the environment. Called once, in `main`.
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_args(Args::parse(), std::env::var(SECRET_ENV).ok())
    }
}

/// `250ms`, `5s`, `2m`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 250ms, 5s or 2m)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?} has an unknown unit {unit:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["queuematch-gameserver", "--service-url", "http://127.0.0.1:9/"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).unwrap()
    }

    #[test]
    fn registration_needs_a_fleet_the_ecs_feature_and_a_ttl_past_the_heartbeat() {
        let argv = [
            "queuematch-gameserver",
            "--service-url",
            "http://x",
            "--register-table",
            "t",
        ];
        assert!(Args::try_parse_from(argv).is_err(), "--register-table without --fleet");
        let registered = Config::from_args(args(&["--register-table", "t", "--fleet", "f"]), None);
        let short = Config::from_args(
            args(&["--register-table", "t", "--fleet", "f", "--registration-ttl", "5s"]),
            None,
        );
        if cfg!(feature = "ecs") {
            let registration = registered.unwrap().registration.unwrap();
            assert_eq!((registration.table.as_str(), registration.fleet.as_str()), ("t", "f"));
            assert_eq!(registration.ttl, Duration::from_secs(15));
            assert!(!registration.server_id.is_empty());
            assert!(matches!(short, Err(ConfigError::ShortRegistration { .. })), "{short:?}");
        } else {
            assert!(matches!(registered, Err(ConfigError::NoEcs)), "{registered:?}");
        }
    }

    #[test]
    fn durations_take_a_unit_or_mean_seconds() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        for bad in ["", "s", "5h", "-1s", "fast"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn without_a_session_the_server_takes_sessions_from_its_control_channel() {
        let config = Config::from_args(args(&[]), None).unwrap();
        assert!(matches!(config.source, SessionSource::Control));
        assert_eq!(
            config.service_url, "http://127.0.0.1:9",
            "the trailing slash is dropped"
        );
        assert_eq!(config.listen.port(), 0);
        assert_eq!(
            config.timing.tick_period(),
            Duration::from_millis(50),
            "20 ticks a second"
        );
        assert_eq!(config.timing.game_ticks, 200);
    }

    #[test]
    fn the_tick_rate_and_the_game_length_are_whole_and_positive() {
        let fast = Config::from_args(args(&["--ticks-per-second", "200", "--game-ticks", "30"]), None).unwrap();
        assert_eq!(fast.timing.tick_period(), Duration::from_millis(5));
        assert_eq!(fast.timing.game_ticks, 30);
        for bad in [
            &["--ticks-per-second", "0"][..],
            &["--ticks-per-second", "2.5"],
            &["--game-ticks", "0"],
        ] {
            let mut argv = vec!["queuematch-gameserver", "--service-url", "http://x"];
            argv.extend_from_slice(bad);
            assert!(Args::try_parse_from(argv).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_fixed_session_takes_its_secret_from_the_environment_only() {
        let fixed = args(&["--session", "s-1", "--match", "m-1", "--player", "p-1,p-2"]);
        assert!(matches!(
            Config::from_args(fixed.clone(), None),
            Err(ConfigError::MissingSecret)
        ));
        let config = Config::from_args(fixed, Some("c2VjcmV0".into())).unwrap();
        let SessionSource::Fixed(assignment) = config.source else {
            panic!("expected a fixed session");
        };
        assert_eq!(assignment.players, vec![PlayerId::from("p-1"), PlayerId::from("p-2")]);
        assert_eq!(assignment.secret.expose(), "c2VjcmV0");
        assert!(Args::try_parse_from(["queuematch-gameserver", "--service-url", "x", "--secret", "s"]).is_err());
    }

    #[test]
    fn a_service_url_must_be_http_with_a_host() {
        let why = |url: &str| match Config::from_args(
            Args::try_parse_from(["queuematch-gameserver", "--service-url", url]).unwrap(),
            None,
        ) {
            Err(ConfigError::BadServiceUrl(_, why)) => why,
            other => panic!("{url}: {other:?}"),
        };
        assert_eq!(why("ftp://x"), "not an http:// or https:// URL");
        for bad in ["http://", "127.0.0.1:8080", "nonsense"] {
            assert_eq!(why(bad), "not a URL; write it as http://HOST[:PORT]", "{bad}");
        }
    }

    #[test]
    fn a_fixed_session_id_is_one_the_api_takes() {
        let escaping = args(&["--session", "s/../x", "--match", "m-1", "--player", "p-1"]);
        let refused = Config::from_args(escaping, Some("c2VjcmV0".into()));
        assert!(
            matches!(refused, Err(ConfigError::BadSession(ref s)) if s == "s/../x"),
            "{refused:?}"
        );
    }
}
