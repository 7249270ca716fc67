//! Ratings: how good each player is at each queue, learnt from game results (DESIGN.md "Ratings").
//!
//! - A game of two teams of one is rated with **Glicko-2**; any other shape (teams, free-for-all)
//!   with **Weng-Lin**. The shape of a queue is its rule set's, so a queue keeps to one system; a
//!   stored rating of the other system (the rule set changed shape) starts again from the default.
//! - The matcher compares one number, the **conservative estimate**, on a 1500-centred scale:
//!   Glicko-2 is on it already; Weng-Lin's μ and σ are scaled ×60 (so its default μ of 25 is 1500).
//!   The estimate is the scaled mean less two scaled deviations, so an unknown player is placed low
//!   and rises as the games make the rating sure. One rule set therefore works with both systems.
//!
//! Everything here is pure maths on `skillratings`; the use cases store and read the results.

use crate::ids::PlayerId;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use skillratings::glicko2::{glicko2, Glicko2Config, Glicko2Rating};
use skillratings::weng_lin::{weng_lin_multi_team, weng_lin_two_teams, WengLinConfig, WengLinRating};
use skillratings::{MultiTeamOutcome, Outcomes};

/// The centre of the common scale: Glicko-2's default rating.
pub const SCALE_CENTRE: f64 = 1500.0;
/// Weng-Lin's μ and σ times this are on the common scale.
pub const WENG_LIN_SCALE: f64 = 60.0;
/// How many deviations the conservative estimate stands below the mean.
pub const CONSERVATIVE_DEVIATIONS: f64 = 2.0;

/// Which system rates a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RatingSystem {
    Glicko2,
    WengLin,
}

impl RatingSystem {
    /// Glicko-2 for exactly two teams of one player; Weng-Lin for anything else.
    pub fn for_team_sizes(sizes: &[usize]) -> Self {
        if sizes == [1, 1] {
            RatingSystem::Glicko2
        } else {
            RatingSystem::WengLin
        }
    }

    /// An unknown player's rating.
    pub fn initial(self) -> Rating {
        match self {
            RatingSystem::Glicko2 => Rating::from(Glicko2Rating::new()),
            RatingSystem::WengLin => Rating::from(WengLinRating::new()),
        }
    }
}

/// A player's rating in one queue, in its system's own units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "system", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Rating {
    Glicko2 {
        rating: f64,
        deviation: f64,
        volatility: f64,
    },
    WengLin {
        mu: f64,
        sigma: f64,
    },
}

impl From<Glicko2Rating> for Rating {
    fn from(r: Glicko2Rating) -> Self {
        Rating::Glicko2 {
            rating: r.rating,
            deviation: r.deviation,
            volatility: r.volatility,
        }
    }
}

impl From<WengLinRating> for Rating {
    fn from(r: WengLinRating) -> Self {
        Rating::WengLin {
            mu: r.rating,
            sigma: r.uncertainty,
        }
    }
}

impl Rating {
    pub fn system(&self) -> RatingSystem {
        match self {
            Rating::Glicko2 { .. } => RatingSystem::Glicko2,
            Rating::WengLin { .. } => RatingSystem::WengLin,
        }
    }

    /// The mean on the common scale.
    pub fn scaled_mean(&self) -> f64 {
        match *self {
            Rating::Glicko2 { rating, .. } => rating,
            Rating::WengLin { mu, .. } => mu * WENG_LIN_SCALE,
        }
    }

    /// The deviation on the common scale.
    pub fn scaled_deviation(&self) -> f64 {
        match *self {
            Rating::Glicko2 { deviation, .. } => deviation,
            Rating::WengLin { sigma, .. } => sigma * WENG_LIN_SCALE,
        }
    }

    /// What the matcher reads for a ticket without skill: the scaled mean less
    /// [`CONSERVATIVE_DEVIATIONS`] scaled deviations.
    pub fn conservative_estimate(&self) -> f64 {
        self.scaled_mean() - CONSERVATIVE_DEVIATIONS * self.scaled_deviation()
    }

    /// `self` if it is of `system`, else that system's default.
    fn in_system(self, system: RatingSystem) -> Rating {
        if self.system() == system {
            self
        } else {
            system.initial()
        }
    }

    fn glicko2(self) -> Glicko2Rating {
        match self {
            Rating::Glicko2 {
                rating,
                deviation,
                volatility,
            } => Glicko2Rating {
                rating,
                deviation,
                volatility,
            },
            Rating::WengLin { .. } => Glicko2Rating::new(),
        }
    }

    fn weng_lin(self) -> WengLinRating {
        match self {
            Rating::WengLin { mu, sigma } => WengLinRating {
                rating: mu,
                uncertainty: sigma,
            },
            Rating::Glicko2 { .. } => WengLinRating::new(),
        }
    }
}

/// A player's stored rating in one queue: `PLAYER#<id>` / `RATING#<queue>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlayerRating {
    pub player_id: PlayerId,
    pub queue: String,
    pub rating: Rating,
    /// Games rated so far.
    pub games: u32,
    pub updated_at: Timestamp,
}

/// One team of a finished game: its players' ratings before the game, and its score (the higher,
/// the better; a team's score is the sum of its players').
#[derive(Debug, Clone, PartialEq)]
pub struct TeamStanding {
    pub ratings: Vec<Rating>,
    pub score: f64,
}

/// Why a game cannot be rated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RatingError {
    #[error("a rated game has at least two teams, not {0}")]
    TooFewTeams(usize),
    #[error("team {0} has no players")]
    EmptyTeam(usize),
    #[error("team {team} scored {score}, which is not a finite number")]
    NotFinite { team: usize, score: f64 },
}

/// Each team's ratings after the game, in the order given. Teams of equal score draw. Pure and
/// deterministic: the same standings always give the same ratings.
pub fn rate(teams: &[TeamStanding]) -> Result<Vec<Vec<Rating>>, RatingError> {
    if teams.len() < 2 {
        return Err(RatingError::TooFewTeams(teams.len()));
    }
    for (i, team) in teams.iter().enumerate() {
        if team.ratings.is_empty() {
            return Err(RatingError::EmptyTeam(i));
        }
        if !team.score.is_finite() {
            return Err(RatingError::NotFinite {
                team: i,
                score: team.score,
            });
        }
    }
    let sizes: Vec<usize> = teams.iter().map(|t| t.ratings.len()).collect();
    let system = RatingSystem::for_team_sizes(&sizes);
    let outcome = |a: f64, b: f64| match a.total_cmp(&b) {
        std::cmp::Ordering::Greater => Outcomes::WIN,
        std::cmp::Ordering::Less => Outcomes::LOSS,
        std::cmp::Ordering::Equal => Outcomes::DRAW,
    };
    let rated = match (system, teams) {
        (RatingSystem::Glicko2, [one, two]) => {
            let (a, b) = glicko2(
                &one.ratings[0].in_system(system).glicko2(),
                &two.ratings[0].in_system(system).glicko2(),
                &outcome(one.score, two.score),
                &Glicko2Config::new(),
            );
            vec![vec![Rating::from(a)], vec![Rating::from(b)]]
        }
        (_, [one, two]) => {
            let team = |t: &TeamStanding| -> Vec<WengLinRating> {
                t.ratings
                    .iter()
                    .map(|r| r.in_system(RatingSystem::WengLin).weng_lin())
                    .collect()
            };
            let (a, b) = weng_lin_two_teams(
                &team(one),
                &team(two),
                &outcome(one.score, two.score),
                &WengLinConfig::new(),
            );
            vec![
                a.into_iter().map(Rating::from).collect(),
                b.into_iter().map(Rating::from).collect(),
            ]
        }
        _ => {
            let players: Vec<Vec<WengLinRating>> = teams
                .iter()
                .map(|t| {
                    t.ratings
                        .iter()
                        .map(|r| r.in_system(RatingSystem::WengLin).weng_lin())
                        .collect()
                })
                .collect();
            // Rank 1 is the best score; equal scores share a rank.
            let ranks: Vec<usize> = teams
                .iter()
                .map(|t| 1 + teams.iter().filter(|other| other.score > t.score).count())
                .collect();
            let input: Vec<(&[WengLinRating], MultiTeamOutcome)> = players
                .iter()
                .zip(&ranks)
                .map(|(p, &rank)| (p.as_slice(), MultiTeamOutcome::new(rank)))
                .collect();
            weng_lin_multi_team(&input, &WengLinConfig::new())
                .into_iter()
                .map(|team| team.into_iter().map(Rating::from).collect())
                .collect()
        }
    };
    Ok(rated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(rating: Rating, score: f64) -> TeamStanding {
        TeamStanding {
            ratings: vec![rating],
            score,
        }
    }

    #[test]
    fn a_win_raises_the_winner_and_lowers_the_loser_in_1v1() {
        // GIVEN two unknown players WHEN the first wins THEN Glicko-2 moves them apart.
        let new = RatingSystem::Glicko2.initial();
        let rated = rate(&[one(new, 3.0), one(new, 1.0)]).unwrap();
        let (winner, loser) = (rated[0][0], rated[1][0]);
        assert_eq!(winner.system(), RatingSystem::Glicko2);
        assert!(winner.scaled_mean() > SCALE_CENTRE, "{winner:?}");
        assert!(loser.scaled_mean() < SCALE_CENTRE, "{loser:?}");
        assert!(winner.scaled_deviation() < 350.0, "a game makes the rating surer");
    }

    #[test]
    fn a_draw_between_equals_changes_no_mean() {
        let new = RatingSystem::Glicko2.initial();
        let rated = rate(&[one(new, 2.0), one(new, 2.0)]).unwrap();
        assert!((rated[0][0].scaled_mean() - SCALE_CENTRE).abs() < 1e-9);
        assert!((rated[1][0].scaled_mean() - SCALE_CENTRE).abs() < 1e-9);
        // A draw against a stronger player is a gain.
        let strong = Rating::Glicko2 {
            rating: 1800.0,
            deviation: 80.0,
            volatility: 0.06,
        };
        let rated = rate(&[one(new, 1.0), one(strong, 1.0)]).unwrap();
        assert!(rated[0][0].scaled_mean() > SCALE_CENTRE);
        assert!(rated[1][0].scaled_mean() < 1800.0);
    }

    #[test]
    fn teams_are_rated_with_weng_lin_and_every_member_moves_with_the_team() {
        let new = RatingSystem::WengLin.initial();
        let team = |score| TeamStanding {
            ratings: vec![new; 5],
            score,
        };
        let rated = rate(&[team(10.0), team(4.0)]).unwrap();
        assert!(rated[0]
            .iter()
            .all(|r| r.system() == RatingSystem::WengLin && r.scaled_mean() > SCALE_CENTRE));
        assert!(rated[1].iter().all(|r| r.scaled_mean() < SCALE_CENTRE));
    }

    #[test]
    fn free_for_all_orders_ratings_by_score() {
        let new = RatingSystem::WengLin.initial();
        let scores = [2.0, 9.0, 5.0, 0.0];
        let teams: Vec<TeamStanding> = scores.iter().map(|&s| one(new, s)).collect();
        let rated = rate(&teams).unwrap();
        let means: Vec<f64> = rated.iter().map(|t| t[0].scaled_mean()).collect();
        // Order by score: 9 > 5 > 2 > 0, so player 1 > player 2 > player 0 > player 3.
        assert!(
            means[1] > means[2] && means[2] > means[0] && means[0] > means[3],
            "{means:?}"
        );
    }

    #[test]
    fn unknown_players_start_at_the_default_and_a_foreign_rating_starts_again() {
        assert_eq!(
            RatingSystem::Glicko2.initial(),
            Rating::Glicko2 {
                rating: 1500.0,
                deviation: 350.0,
                volatility: 0.06
            }
        );
        assert_eq!(RatingSystem::WengLin.initial().scaled_mean(), SCALE_CENTRE);
        // A Weng-Lin rating in a 1v1 is read as an unknown Glicko-2 player.
        let foreign = Rating::WengLin { mu: 40.0, sigma: 1.0 };
        let fresh = RatingSystem::Glicko2.initial();
        assert_eq!(
            rate(&[one(foreign, 1.0), one(fresh, 0.0)]).unwrap(),
            rate(&[one(fresh, 1.0), one(fresh, 0.0)]).unwrap()
        );
    }

    #[test]
    fn the_conservative_estimate_is_two_deviations_below_the_scaled_mean() {
        let glicko = Rating::Glicko2 {
            rating: 1600.0,
            deviation: 50.0,
            volatility: 0.06,
        };
        assert_eq!(glicko.conservative_estimate(), 1500.0);
        let weng_lin = Rating::WengLin { mu: 30.0, sigma: 2.0 };
        assert_eq!(weng_lin.conservative_estimate(), 30.0 * 60.0 - 2.0 * 2.0 * 60.0);
        assert_eq!(RatingSystem::Glicko2.initial().conservative_estimate(), 800.0);
        assert!((RatingSystem::WengLin.initial().conservative_estimate() - 500.0).abs() < 1e-9);
    }

    #[test]
    fn games_that_cannot_be_rated_say_why() {
        let new = RatingSystem::Glicko2.initial();
        assert_eq!(rate(&[one(new, 1.0)]), Err(RatingError::TooFewTeams(1)));
        let empty = TeamStanding {
            ratings: vec![],
            score: 0.0,
        };
        assert_eq!(rate(&[one(new, 1.0), empty]), Err(RatingError::EmptyTeam(1)));
        assert!(matches!(
            rate(&[one(new, f64::NAN), one(new, 0.0)]),
            Err(RatingError::NotFinite { team: 0, .. })
        ));
    }

    #[test]
    fn ratings_serialize_with_their_system() {
        let json = serde_json::to_value(Rating::WengLin { mu: 25.0, sigma: 8.0 }).unwrap();
        assert_eq!(json, serde_json::json!({"system": "wengLin", "mu": 25.0, "sigma": 8.0}));
        let back: Rating = serde_json::from_value(json).unwrap();
        assert_eq!(back, Rating::WengLin { mu: 25.0, sigma: 8.0 });
    }

    fn glicko() -> impl Strategy<Value = Rating> {
        (800.0..2200.0f64, 30.0..350.0f64, 0.03..0.09f64).prop_map(|(rating, deviation, volatility)| Rating::Glicko2 {
            rating,
            deviation,
            volatility,
        })
    }

    fn weng_lin() -> impl Strategy<Value = Rating> {
        (5.0..45.0f64, 0.5..8.4f64).prop_map(|(mu, sigma)| Rating::WengLin { mu, sigma })
    }

    proptest! {
        #[test]
        fn a_1v1_is_deterministic_finite_and_moves_the_pair_opposite_ways(
            a in glicko(), b in glicko(), sa in 0.0..10.0f64, sb in 0.0..10.0f64,
        ) {
            let game = [one(a, sa), one(b, sb)];
            let rated = rate(&game).unwrap();
            prop_assert_eq!(&rated, &rate(&game).unwrap());
            let (da, db) = (rated[0][0].scaled_mean() - a.scaled_mean(), rated[1][0].scaled_mean() - b.scaled_mean());
            prop_assert!(rated.iter().flatten().all(|r| r.scaled_mean().is_finite() && r.scaled_deviation().is_finite()));
            // Zero-sum in direction: one gains exactly when the other loses.
            prop_assert!(da * db <= 1e-9, "da {} db {}", da, db);
            if sa > sb { prop_assert!(da >= 0.0); }
            if sa < sb { prop_assert!(da <= 0.0); }
        }

        #[test]
        fn team_and_ffa_games_are_finite_and_the_best_never_loses_rating(
            players in prop::collection::vec((weng_lin(), 0.0..10.0f64), 3..9),
        ) {
            let teams: Vec<TeamStanding> = players.iter().map(|&(r, s)| one(r, s)).collect();
            let rated = rate(&teams).unwrap();
            prop_assert_eq!(rated.len(), teams.len());
            prop_assert!(rated.iter().flatten().all(|r| r.scaled_mean().is_finite() && r.conservative_estimate().is_finite()));
            let best = teams.iter().map(|t| t.score).fold(f64::MIN, f64::max);
            let unique_best = teams.iter().filter(|t| t.score == best).count() == 1;
            for (team, after) in teams.iter().zip(&rated) {
                if unique_best && team.score == best {
                    prop_assert!(after[0].scaled_mean() >= team.ratings[0].scaled_mean());
                }
            }
        }
    }
}
