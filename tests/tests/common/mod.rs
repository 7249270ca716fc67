//! What several of these tests share.

use queuematch_core::identity::SessionSecret;
use queuematch_core::ids::SessionId;
use queuematch_core::matcher::Match;
use queuematch_core::ports::fleet::{Placement, PlacementId};
use queuematch_core::ports::{Fleet, PortError};

/// No server is ever asked for here.
#[derive(Debug)]
pub struct NoFleet;

#[async_trait::async_trait]
impl Fleet for NoFleet {
    async fn place(&self, _: &SessionId, _: &Match, _: &SessionSecret) -> Result<Placement, PortError> {
        Err(PortError::PlacementUnavailable("no fleet in this test".into()))
    }
    async fn poll(&self, _: &PlacementId) -> Result<Placement, PortError> {
        Err(PortError::PlacementUnavailable("no fleet in this test".into()))
    }
    async fn release(&self, _: &PlacementId) -> Result<(), PortError> {
        Ok(())
    }
}
