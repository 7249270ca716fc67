//! The game: *tracker*, a realtime aiming game played in fixed ticks.
//!
//! A target moves across the unit square `[0, 1]²` at a steady speed, bouncing off the walls and
//! turning at random every few ticks. Each tick the server tells every player where the target is
//! and how it moves; each player answers with an aim, a point of the square. On the next tick the
//! target moves on, and every aim received since the last tick scores by how close it lands to the
//! target's *new* position: [`MAX_POINTS`] on the spot, nothing from [`HIT_RADIUS`] away. A player
//! must therefore lead the target (its position plus its velocity is the best guess, until it
//! turns or bounces), and aim precisely. A steady, precise player beats a careless one, and both
//! beat random clicking, which lands within reach about one tick in eight.
//!
//! A team's score is the sum of its players' (the service sums them the same way when it rates the
//! game); the highest team wins, and equal scores share the win. Free-for-all is teams of one. A
//! player who leaves keeps what they scored; a player who joins late (backfill) scores from then on.
//!
//! Everything here is a pure function of the seed, the rosters and the aims, so the rules are
//! tested apart from the sockets and a game replays exactly.

use queuematch_core::ids::PlayerId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How far the target moves per tick.
pub const SPEED: f64 = 0.04;
/// The target turns by a random angle every this many ticks.
pub const TURN_EVERY: u32 = 8;
/// An aim this far from the target or further scores nothing.
pub const HIT_RADIUS: f64 = 0.2;
/// What a perfect aim scores in one tick.
pub const MAX_POINTS: f64 = 10.0;

/// A point of the unit square, or a velocity in it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

impl Point {
    pub fn new(x: f64, y: f64) -> Self {
        Self { x, y }
    }

    pub fn distance(self, other: Point) -> f64 {
        (self.x - other.x).hypot(self.y - other.y)
    }
}

/// Why an aim is not one; told to the player.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BadAim {
    #[error("an aim's x and y are finite numbers, not {0}, {1}")]
    NotFinite(f64, f64),
    #[error("an aim is a point of the unit square: ({0}, {1}) is outside [0, 1]²")]
    OutOfBounds(f64, f64),
}

/// Checks an aim: a finite point of the unit square.
pub fn check_aim(aim: Point) -> Result<Point, BadAim> {
    if !(aim.x.is_finite() && aim.y.is_finite()) {
        return Err(BadAim::NotFinite(aim.x, aim.y));
    }
    if !((0.0..=1.0).contains(&aim.x) && (0.0..=1.0).contains(&aim.y)) {
        return Err(BadAim::OutOfBounds(aim.x, aim.y));
    }
    Ok(aim)
}

/// What an aim at `aim` scores against a target at `target`.
pub fn points(aim: Point, target: Point) -> f64 {
    MAX_POINTS * (1.0 - aim.distance(target) / HIT_RADIUS).max(0.0)
}

/// What every player is told each tick.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TickView {
    /// 0 before the first move; the game is over at its last tick.
    pub tick: u32,
    /// Ticks still to play after this one.
    pub ticks_left: u32,
    pub target: Point,
    pub velocity: Point,
}

/// A team, as the game keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamScore {
    pub name: String,
    /// Everyone who played for the team, leavers and late joiners included.
    pub players: Vec<PlayerId>,
    /// The sum of its players' scores.
    pub score: f64,
}

/// How a game came out, as players are told and (its `scores`) the service is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The winning teams' names: several on a tie.
    pub winners: Vec<String>,
    pub teams: Vec<TeamScore>,
    /// Every player who took part, with their score.
    pub scores: BTreeMap<PlayerId, f64>,
}

/// One game in progress.
#[derive(Debug, Clone)]
pub struct Game {
    rng: ChaCha8Rng,
    length: u32,
    view: TickView,
    teams: Vec<TeamScore>,
    scores: BTreeMap<PlayerId, f64>,
}

impl Game {
    /// A game of `length` ticks between `teams` (name and players), its target's path drawn from
    /// `seed`.
    pub fn new(teams: &[(String, Vec<PlayerId>)], length: u32, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let target = Point::new(rng.gen_range(0.2..0.8), rng.gen_range(0.2..0.8));
        let angle: f64 = rng.gen_range(0.0..std::f64::consts::TAU);
        let velocity = Point::new(SPEED * angle.cos(), SPEED * angle.sin());
        let teams: Vec<TeamScore> = teams
            .iter()
            .map(|(name, players)| TeamScore {
                name: name.clone(),
                players: players.clone(),
                score: 0.0,
            })
            .collect();
        let scores = teams
            .iter()
            .flat_map(|t| &t.players)
            .map(|p| (p.clone(), 0.0))
            .collect();
        Self {
            rng,
            length,
            view: TickView {
                tick: 0,
                ticks_left: length,
                target,
                velocity,
            },
            teams,
            scores,
        }
    }

    /// Where the game is: what players are told.
    pub fn view(&self) -> TickView {
        self.view
    }

    pub fn is_over(&self) -> bool {
        self.view.ticks_left == 0
    }

    /// The team `player` plays for, by index.
    pub fn team_of(&self, player: &PlayerId) -> Option<usize> {
        self.teams.iter().position(|t| t.players.contains(player))
    }

    pub fn teams(&self) -> &[TeamScore] {
        &self.teams
    }

    /// Puts a late `player` on team `team` (they score from the next tick). Changes nothing for a
    /// player already in the game or a team that does not exist.
    pub fn join(&mut self, player: &PlayerId, team: usize) {
        if self.team_of(player).is_some() {
            return;
        }
        if let Some(roster) = self.teams.get_mut(team) {
            roster.players.push(player.clone());
            self.scores.insert(player.clone(), 0.0);
        }
    }

    /// Plays one tick: the target moves on, and each aim of a player of the game scores against its
    /// new position (others are ignored). Does nothing once the game is over.
    pub fn step(&mut self, aims: &BTreeMap<PlayerId, Point>) -> TickView {
        if self.is_over() {
            return self.view;
        }
        self.move_target();
        let target = self.view.target;
        for (player, &aim) in aims {
            let Some(team) = self.team_of(player) else { continue };
            let Ok(aim) = check_aim(aim) else { continue };
            let scored = points(aim, target);
            self.teams[team].score += scored;
            *self.scores.entry(player.clone()).or_default() += scored;
        }
        self.view.tick += 1;
        self.view.ticks_left -= 1;
        self.view
    }

    fn move_target(&mut self) {
        let next_tick = self.view.tick + 1;
        let mut velocity = self.view.velocity;
        if next_tick.is_multiple_of(TURN_EVERY) {
            let turn: f64 = self.rng.gen_range(-1.2..1.2);
            let (sin, cos) = turn.sin_cos();
            velocity = Point::new(velocity.x * cos - velocity.y * sin, velocity.x * sin + velocity.y * cos);
        }
        let mut target = Point::new(self.view.target.x + velocity.x, self.view.target.y + velocity.y);
        // A bounce reflects the overshoot back into the square.
        if !(0.0..=1.0).contains(&target.x) {
            target.x = if target.x < 0.0 { -target.x } else { 2.0 - target.x };
            velocity.x = -velocity.x;
        }
        if !(0.0..=1.0).contains(&target.y) {
            target.y = if target.y < 0.0 { -target.y } else { 2.0 - target.y };
            velocity.y = -velocity.y;
        }
        self.view.target = target;
        self.view.velocity = velocity;
    }

    /// How the game stands (final once it is over).
    pub fn outcome(&self) -> Outcome {
        let best = self.teams.iter().map(|t| t.score).fold(f64::NEG_INFINITY, f64::max);
        let winners = self
            .teams
            .iter()
            .filter(|t| t.score == best)
            .map(|t| t.name.clone())
            .collect();
        Outcome {
            winners,
            teams: self.teams.clone(),
            scores: self.scores.clone(),
        }
    }

    pub fn length(&self) -> u32 {
        self.length
    }
}

/// How a bot aims: at where the target will be, give or take gaussian noise of `noise` per axis.
/// The bots of `queuematch bots` and the tests play this; `noise` is what skill changes.
pub fn aim_at(view: &TickView, noise: f64, rng: &mut impl Rng) -> Point {
    let lead = Point::new(view.target.x + view.velocity.x, view.target.y + view.velocity.y);
    // Box-Muller: two independent standard normals from two uniforms.
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen_range(0.0..std::f64::consts::TAU);
    let radius = (-2.0 * u1.ln()).sqrt() * noise;
    Point::new(
        (lead.x + radius * u2.cos()).clamp(0.0, 1.0),
        (lead.y + radius * u2.sin()).clamp(0.0, 1.0),
    )
}

/// Random play: anywhere in the square.
pub fn random_aim(rng: &mut impl Rng) -> Point {
    Point::new(rng.gen_range(0.0..=1.0), rng.gen_range(0.0..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duel() -> Vec<(String, Vec<PlayerId>)> {
        vec![
            ("red".to_owned(), vec!["p-1".into()]),
            ("blue".to_owned(), vec!["p-2".into()]),
        ]
    }

    #[test]
    fn an_aim_scores_by_closeness_to_the_target() {
        let target = Point::new(0.5, 0.5);
        assert_eq!(points(target, target), MAX_POINTS);
        assert!((points(Point::new(0.6, 0.5), target) - MAX_POINTS / 2.0).abs() < 1e-9);
        assert!(points(Point::new(0.5, 0.5 + HIT_RADIUS), target) < 1e-9);
        assert_eq!(points(Point::new(1.0, 1.0), target), 0.0);
    }

    #[test]
    fn only_points_of_the_unit_square_are_aims() {
        assert!(check_aim(Point::new(0.0, 1.0)).is_ok());
        assert_eq!(check_aim(Point::new(1.5, 0.0)), Err(BadAim::OutOfBounds(1.5, 0.0)));
        assert!(matches!(
            check_aim(Point::new(f64::NAN, 0.0)),
            Err(BadAim::NotFinite(..))
        ));
        assert!(check_aim(Point::new(0.0, f64::INFINITY)).is_err());
    }

    #[test]
    fn the_target_stays_in_the_square_at_a_steady_speed_and_the_game_lasts_its_length() {
        let mut game = Game::new(&duel(), 500, 7);
        let mut previous = game.view().target;
        let mut ticks = 0;
        while !game.is_over() {
            let view = game.step(&BTreeMap::new());
            ticks += 1;
            assert!((0.0..=1.0).contains(&view.target.x) && (0.0..=1.0).contains(&view.target.y));
            assert!(view.target.distance(previous) <= SPEED + 1e-9, "tick {}", view.tick);
            assert!(((view.velocity.x.hypot(view.velocity.y)) - SPEED).abs() < 1e-9);
            previous = view.target;
        }
        assert_eq!(ticks, 500);
        assert_eq!(game.view().ticks_left, 0);
        let after = game.step(&BTreeMap::from([("p-1".into(), previous)]));
        assert_eq!(after.tick, 500, "an ended game does not move");
        assert_eq!(game.outcome().scores[&PlayerId::from("p-1")], 0.0);
    }

    #[test]
    fn aims_score_against_where_the_target_moves_and_the_best_team_wins() {
        // GIVEN a duel
        let mut game = Game::new(&duel(), 3, 1);
        // WHEN p-1 leads the target exactly and p-2 aims where it was
        for _ in 0..3 {
            let view = game.view();
            let lead = Point::new(view.target.x + view.velocity.x, view.target.y + view.velocity.y);
            let aims = BTreeMap::from([("p-1".into(), lead), ("p-2".into(), view.target), ("p-9".into(), lead)]);
            game.step(&aims);
        }
        // THEN p-1 wins; p-2 scored something, a stranger nothing
        let outcome = game.outcome();
        assert_eq!(outcome.winners, vec!["red".to_owned()]);
        let p1 = outcome.scores[&PlayerId::from("p-1")];
        let p2 = outcome.scores[&PlayerId::from("p-2")];
        assert!(p1 > p2 && p2 > 0.0, "{outcome:?}");
        assert!(!outcome.scores.contains_key(&PlayerId::from("p-9")));
        assert_eq!(outcome.teams[0].score, p1);
    }

    #[test]
    fn a_team_scores_the_sum_of_its_players_and_a_late_joiner_scores_from_then_on() {
        let teams = vec![
            ("red".to_owned(), vec!["a".into(), "b".into()]),
            ("blue".to_owned(), vec!["c".into()]),
        ];
        let mut game = Game::new(&teams, 4, 3);
        let everyone = |game: &Game, who: &[&str]| -> BTreeMap<PlayerId, Point> {
            let view = game.view();
            let lead = Point::new(view.target.x + view.velocity.x, view.target.y + view.velocity.y);
            who.iter().map(|&p| (PlayerId::from(p), lead)).collect()
        };
        game.step(&everyone(&game, &["a", "b", "c", "d"]));
        game.join(&"d".into(), 1);
        game.join(&"a".into(), 1); // already red: stays red
        game.step(&everyone(&game, &["a", "b", "c", "d"]));
        let outcome = game.outcome();
        let score = |p: &str| outcome.scores[&PlayerId::from(p)];
        assert_eq!(score("a"), 2.0 * MAX_POINTS);
        assert_eq!(score("d"), MAX_POINTS, "d scores only the tick after joining");
        assert_eq!(outcome.teams[0].score, score("a") + score("b"));
        assert_eq!(outcome.teams[1].score, score("c") + score("d"));
        assert_eq!(outcome.teams[1].players, vec![PlayerId::from("c"), PlayerId::from("d")]);
        assert_eq!(outcome.winners, vec!["red".to_owned()], "40 against 30");
    }

    #[test]
    fn equal_scores_share_the_win() {
        let mut game = Game::new(&duel(), 2, 5);
        for _ in 0..2 {
            let target = game.view().target;
            let velocity = game.view().velocity;
            let lead = Point::new(target.x + velocity.x, target.y + velocity.y);
            game.step(&BTreeMap::from([("p-1".into(), lead), ("p-2".into(), lead)]));
        }
        assert_eq!(game.outcome().winners, vec!["red".to_owned(), "blue".to_owned()]);
    }

    #[test]
    fn a_game_replays_exactly_from_its_seed() {
        let play = |seed| {
            let mut game = Game::new(&duel(), 50, seed);
            (0..50).map(|_| game.step(&BTreeMap::new()).target).collect::<Vec<_>>()
        };
        assert_eq!(play(11), play(11));
        assert_ne!(play(11), play(12));
    }

    /// Plays a duel of `length` ticks: p-1 a bot of `noise`, p-2 another bot or random.
    fn duel_of(noise: f64, other: Option<f64>, length: u32, seed: u64) -> Outcome {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
        let mut game = Game::new(&duel(), length, seed);
        while !game.is_over() {
            let view = game.view();
            let second = match other {
                Some(noise) => aim_at(&view, noise, &mut rng),
                None => random_aim(&mut rng),
            };
            game.step(&BTreeMap::from([
                ("p-1".into(), aim_at(&view, noise, &mut rng)),
                ("p-2".into(), second),
            ]));
        }
        game.outcome()
    }

    #[test]
    fn every_bot_beats_random_play_in_most_games() {
        // The bots' noise runs from 0.02 (the best) to 0.17 (the worst); the bar is 60%.
        let games = 500;
        for noise in [0.02, 0.095, 0.17] {
            let wins = (0..games)
                .filter(|&seed| duel_of(noise, None, 40, seed).winners == ["red"])
                .count();
            eprintln!("a bot of noise {noise} beat random play in {wins} of {games} 40-tick duels");
            assert!(wins * 100 >= games as usize * 90, "noise {noise}: {wins} of {games}");
        }
    }

    #[test]
    fn the_more_precise_of_two_bots_usually_wins() {
        let games = 200;
        let wins = (0..games)
            .filter(|&seed| duel_of(0.06, Some(0.12), 40, seed).winners == ["red"])
            .count();
        assert!(
            wins * 100 >= games as usize * 80,
            "the better bot won {wins} of {games}"
        );
    }
}
