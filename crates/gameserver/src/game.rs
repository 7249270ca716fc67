//! The game: *guess two thirds of the average*, the smallest game whose winner depends on what
//! everyone else does (the realtime game comes with issue 8).
//!
//! Every player sends a number from 0 to 100. The target is two thirds of the average guess; the
//! closer a guess, the higher its score (`100 - distance`); the closest wins. A player who sent no
//! valid guess scores 0 and does not count towards the average. The rules are a pure function, so
//! they are tested apart from the sockets.

use queuematch_core::ids::PlayerId;
use serde::Serialize;
use std::collections::BTreeMap;

/// What players are told when the game starts, after `PLAY `.
pub const RULES: &str = "send a number from 0 to 100; the closest to two thirds of the average wins";

/// The range of a guess.
pub const MAX_GUESS: f64 = 100.0;

/// Reads a move: a number from 0 to 100, or why it is not one (told to the player after `ERR `).
pub fn parse_guess(line: &str) -> Result<f64, String> {
    let guess: f64 = line
        .trim()
        .parse()
        .map_err(|_| format!("{:?} is not a number", truncate(line.trim(), 32)))?;
    if !(0.0..=MAX_GUESS).contains(&guess) {
        return Err(format!("{guess} is not from 0 to {MAX_GUESS}"));
    }
    Ok(guess)
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// How a game came out, as players are told and the service is sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// Two thirds of the average guess; `None` when nobody guessed.
    pub target: Option<f64>,
    /// The closest players (several on a tie); none when nobody guessed.
    pub winners: Vec<PlayerId>,
    /// Every player of the session, guessing or not.
    pub scores: BTreeMap<PlayerId, f64>,
}

/// Plays the game over `players`' guesses (`None`: no valid guess).
pub fn play(players: &[PlayerId], guesses: &BTreeMap<PlayerId, f64>) -> Outcome {
    let valid: Vec<(&PlayerId, f64)> = players.iter().filter_map(|p| guesses.get(p).map(|&g| (p, g))).collect();
    let mut scores: BTreeMap<PlayerId, f64> = players.iter().map(|p| (p.clone(), 0.0)).collect();
    if valid.is_empty() {
        return Outcome {
            target: None,
            winners: Vec::new(),
            scores,
        };
    }
    let average = valid.iter().map(|&(_, g)| g).sum::<f64>() / valid.len() as f64;
    let target = average * 2.0 / 3.0;
    for &(player, guess) in &valid {
        scores.insert(player.clone(), MAX_GUESS - (guess - target).abs());
    }
    let best = valid
        .iter()
        .map(|&(_, g)| (g - target).abs())
        .fold(f64::INFINITY, f64::min);
    let winners = valid
        .iter()
        .filter(|&&(_, g)| (g - target).abs() == best)
        .map(|&(p, _)| p.clone())
        .collect();
    Outcome {
        target: Some(target),
        winners,
        scores,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<PlayerId> {
        names.iter().map(|&n| PlayerId::from(n)).collect()
    }

    #[test]
    fn the_guess_closest_to_two_thirds_of_the_average_wins() {
        // GIVEN guesses 60 and 30: the average is 45, the target 30.
        let players = ids(&["p-1", "p-2"]);
        let guesses = BTreeMap::from([("p-1".into(), 60.0), ("p-2".into(), 30.0)]);
        // WHEN the game is played
        let outcome = play(&players, &guesses);
        // THEN p-2 hit the target exactly
        assert_eq!(outcome.target, Some(30.0));
        assert_eq!(outcome.winners, ids(&["p-2"]));
        assert_eq!(outcome.scores[&PlayerId::from("p-2")], 100.0);
        assert_eq!(outcome.scores[&PlayerId::from("p-1")], 70.0);
    }

    #[test]
    fn a_player_without_a_guess_scores_zero_and_does_not_move_the_target() {
        let players = ids(&["p-1", "p-2", "p-3"]);
        let guesses = BTreeMap::from([("p-1".into(), 0.0), ("p-3".into(), 0.0)]);
        let outcome = play(&players, &guesses);
        assert_eq!(outcome.target, Some(0.0));
        assert_eq!(outcome.winners, ids(&["p-1", "p-3"]), "a tie has several winners");
        assert_eq!(outcome.scores[&PlayerId::from("p-2")], 0.0);
        assert_eq!(outcome.scores.len(), 3, "every player has a score");
    }

    #[test]
    fn nobody_guessing_has_no_winner() {
        let outcome = play(&ids(&["p-1"]), &BTreeMap::new());
        assert_eq!(outcome.target, None);
        assert!(outcome.winners.is_empty());
        assert_eq!(outcome.scores[&PlayerId::from("p-1")], 0.0);
    }

    #[test]
    fn only_numbers_from_0_to_100_are_moves() {
        assert_eq!(parse_guess(" 42.5 "), Ok(42.5));
        assert_eq!(parse_guess("0"), Ok(0.0));
        assert_eq!(parse_guess("100"), Ok(100.0));
        for bad in ["", "abc", "-1", "100.01", "NaN", "inf", "1e9"] {
            assert!(parse_guess(bad).is_err(), "{bad}");
        }
    }
}
