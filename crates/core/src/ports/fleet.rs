//! The `Fleet` port: game servers for matches (GameLift, ECS, or local processes).

use crate::ids::SessionId;
use crate::matcher::Match;
use crate::ports::error::PortError;
use serde::{Deserialize, Serialize};

/// Where players connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub address: String,
    pub port: u16,
}

/// Identifies one placement, to poll and release it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PlacementId(pub String);

/// Where a placement is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum Placement {
    /// A server is being found or started: poll again later.
    Pending { placement: PlacementId },
    /// The server is up.
    Ready { placement: PlacementId, endpoint: Endpoint },
}

/// Finds servers for matches.
///
/// Guarantees:
/// - `place` is **idempotent on the session id**: placing the same session again (Express starts at
///   least once) returns the same placement and claims no second server.
/// - A server is claimed by at most one session at a time; placing a session whose server another
///   session holds is [`PortError::Conflict`].
/// - `release` frees a placement's server **exactly once**: releasing again, or releasing a placement
///   that never became ready, succeeds and does nothing more.
/// - No server available is [`PortError::PlacementUnavailable`]; a placement that failed or timed
///   out is reported by `poll` the same way.
#[async_trait::async_trait]
pub trait Fleet: Send + Sync {
    /// Asks for a server for `matched`, in its region when it has one.
    async fn place(&self, session: &SessionId, matched: &Match) -> Result<Placement, PortError>;

    /// Where `placement` is now.
    async fn poll(&self, placement: &PlacementId) -> Result<Placement, PortError>;

    /// Gives the placement's server back.
    async fn release(&self, placement: &PlacementId) -> Result<(), PortError>;
}

#[async_trait::async_trait]
impl<F: Fleet + ?Sized> Fleet for std::sync::Arc<F> {
    async fn place(&self, session: &SessionId, matched: &Match) -> Result<Placement, PortError> {
        (**self).place(session, matched).await
    }
    async fn poll(&self, placement: &PlacementId) -> Result<Placement, PortError> {
        (**self).poll(placement).await
    }
    async fn release(&self, placement: &PlacementId) -> Result<(), PortError> {
        (**self).release(placement).await
    }
}
