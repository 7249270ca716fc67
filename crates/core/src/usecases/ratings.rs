//! Reading players' ratings: for `GET /v1/players/{id}/ratings`, and for the matcher when a ticket
//! carries no skill.

use crate::ids::PlayerId;
use crate::ports::store::items::{self, RATING_PREFIX};
use crate::ports::store::{Index, Query, MAX_PAGE_ITEMS};
use crate::ports::{PortError, Store};
use crate::ratings::PlayerRating;

/// Every rating of `player`, one per queue, in queue order. Strongly consistent (a table query).
pub async fn ratings_of(store: &impl Store, player: &PlayerId) -> Result<Vec<PlayerRating>, PortError> {
    let mut ratings = Vec::new();
    let mut after = None;
    loop {
        let query = Query::new(Index::Table, format!("PLAYER#{player}"), MAX_PAGE_ITEMS)
            .with_prefix(RATING_PREFIX)
            .after(after);
        let page = store.query(query).await?;
        for stored in &page.items {
            ratings.push(items::read::<PlayerRating>(stored)?.value);
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(ratings),
        }
    }
}

/// `player`'s rating in `queue`, if they have played it.
pub async fn rating_in(store: &impl Store, player: &PlayerId, queue: &str) -> Result<Option<PlayerRating>, PortError> {
    match store.get(&items::rating_key(player, queue)).await? {
        Some(stored) => Ok(Some(items::read::<PlayerRating>(&stored)?.value)),
        None => Ok(None),
    }
}
