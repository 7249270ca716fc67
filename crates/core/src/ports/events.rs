//! The `Events` port: where domain events go (EventBridge on AWS, an in-process bus locally).

use crate::event::DomainEvent;
use crate::ports::error::PortError;

/// Publishes domain events to whoever pushes them to players.
///
/// Guarantees: at least once, and **no ordering** across calls (EventBridge promises none); each
/// event names its ticket or session, so a consumer orders by what it reads from the store, not by
/// arrival. Publishing with nobody listening succeeds: events are notifications, the store holds the
/// truth. An error means the event may or may not have gone out; retrying may duplicate it.
#[async_trait::async_trait]
pub trait Events: Send + Sync {
    async fn publish(&self, event: DomainEvent) -> Result<(), PortError>;
}

#[async_trait::async_trait]
impl<E: Events + ?Sized> Events for std::sync::Arc<E> {
    async fn publish(&self, event: DomainEvent) -> Result<(), PortError> {
        (**self).publish(event).await
    }
}
