//! What `POST /v1/tickets` checks locally before it queues a ticket, beyond the schema.
//!
//! On AWS the edge can only validate the body against the schema; what needs the caller's identity
//! or the store is checked at admission, behind the queue, and arrives as a FAILED ticket with its
//! reason. The dev server has the dev secret and the store at hand, so it refuses these at once with
//! a precise problem, and a developer sees the mistake where it was made. Admission still checks
//! them all again: these checks are a courtesy, not the guarantee (two tickets for one player sent
//! at the same instant both pass here, and the second still FAILS at admission).
//!
//! In the order a client would fix them:
//! 1. **400** attribute values of the wrong type for the queue's rule set (`/players/i/attributes/a`);
//! 2. **403** a caller who is not one of the players (`/players`), or a member without a valid
//!    party token of their own (`/players/i/partyToken`);
//! 3. **409** a player who already holds an active ticket or session (`/players/i/id`).

use super::DevState;
use queuematch_core::identity::jwt::Claims;
use queuematch_core::ports::store::items;
use queuematch_core::ports::{Clock, Store};
use queuematch_core::ticket_request::{FieldError, TicketRequest};
use queuematch_core::usecases::PartyTokens;
use queuematch_handlers::problem::Problem;

/// The problem to answer instead of 202, if any.
pub async fn refuse(state: &DevState, caller: &Claims, request: &TicketRequest) -> Option<Problem> {
    let service = &state.service;
    let rule_set = service.queues.get(&request.queue)?;
    if let Err(errors) = request.players_for(rule_set) {
        return Some(Problem::bad_request(
            format!("the players do not fit the attributes of queue `{}`", request.queue),
            errors,
        ));
    }
    if let Some(region) = &service.settings.single_region {
        let unserved = request.unserved_latencies(region);
        if !unserved.is_empty() {
            return Some(Problem::bad_request(
                format!("the players' latencies leave out region `{region}`, the only one served"),
                unserved,
            ));
        }
    }
    let caller_id = caller.player_id();
    if !request.players.iter().any(|p| p.id == caller_id) {
        let mut problem = Problem::forbidden(format!(
            "the caller {caller_id} is not one of the ticket's players: nobody can queue someone else"
        ));
        problem.errors = vec![field("/players", format!("{caller_id} is missing"))];
        return Some(problem);
    }
    let now = service.clock.now();
    for (i, member) in request.players.iter().enumerate().filter(|(_, p)| p.id != caller_id) {
        let pointer = format!("/players/{i}/partyToken");
        let why = match &member.party_token {
            None => format!("{} must present a party token to be queued by {caller_id}", member.id),
            Some(token) => match PartyTokens::verify(&service.party_tokens, token, &member.id, now) {
                Ok(()) => continue,
                Err(why) => format!("the party token of {} is refused: {why}", member.id),
            },
        };
        let mut problem = Problem::forbidden(format!(
            "{why}; `queuematch token --player {} --party` mints one",
            member.id
        ));
        problem.errors = vec![field(pointer, why)];
        return Some(problem);
    }
    for (i, player) in request.players.iter().enumerate() {
        match service.store.get(&items::player_guard_key(&player.id)).await {
            Ok(None) => {}
            Ok(Some(_)) => {
                let why = format!("player {} already has an active ticket or session", player.id);
                let mut problem = Problem::conflict(format!("{why}; cancel it or wait for it to end"));
                problem.errors = vec![field(format!("/players/{i}/id"), why)];
                return Some(problem);
            }
            Err(e) => return Some(Problem::unavailable(&e)),
        }
    }
    None
}

fn field(pointer: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        pointer: pointer.into(),
        message: message.into(),
    }
}
