//! The local `Events`: an in-process bus that the WebSocket push subscribes to, player by player.

use queuematch_core::ports::{Events, PortError};
use queuematch_core::{DomainEvent, PlayerId};
use tokio::sync::broadcast;

/// How many events a slow subscriber may fall behind before it misses some.
pub const DEFAULT_CAPACITY: usize = 1_024;

/// Publishes every event to every subscriber, in publish order.
///
/// A broadcast channel rather than a queue per subscriber: publishing never waits on a slow
/// WebSocket, and a subscriber that falls too far behind is told how many events it missed (so the
/// push can tell its client to re-read its tickets) instead of holding memory without bound.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<DomainEvent>,
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        Self {
            sender: broadcast::Sender::new(capacity.max(1)),
        }
    }

    /// Every event published from now on.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            receiver: self.sender.subscribe(),
            player: None,
        }
    }

    /// The events published from now on that concern `player`: what a player's push channel carries.
    pub fn subscribe_player(&self, player: PlayerId) -> Subscription {
        Subscription {
            receiver: self.sender.subscribe(),
            player: Some(player),
        }
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

#[async_trait::async_trait]
impl Events for EventBus {
    async fn publish(&self, event: DomainEvent) -> Result<(), PortError> {
        // An error only says nobody is subscribed: events are notifications, so that is fine.
        let _ = self.sender.send(event);
        Ok(())
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Event(DomainEvent),
    /// The subscriber fell behind and this many events were dropped for it.
    Missed(u64),
}

/// One subscriber's view of the bus.
#[derive(Debug)]
pub struct Subscription {
    receiver: broadcast::Receiver<DomainEvent>,
    /// Only this player's events, when set.
    player: Option<PlayerId>,
}

impl Subscription {
    /// The next delivery, or `None` once the bus is gone.
    pub async fn next(&mut self) -> Option<Delivery> {
        loop {
            match self.receiver.recv().await {
                Ok(event) if self.wants(&event) => return Some(Delivery::Event(event)),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => return Some(Delivery::Missed(missed)),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    fn wants(&self, event: &DomainEvent) -> bool {
        self.player.as_ref().is_none_or(|p| event.player_ids().contains(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn searching(ticket: &str, players: &[&str]) -> DomainEvent {
        DomainEvent::MatchmakingSearching {
            ticket_id: ticket.into(),
            player_ids: players.iter().map(|p| PlayerId::from(*p)).collect(),
        }
    }

    #[tokio::test]
    async fn a_player_receives_only_their_events_in_publish_order() {
        let bus = EventBus::default();
        let mut alice = bus.subscribe_player("alice".into());
        bus.publish(searching("t-1", &["alice"])).await.unwrap();
        bus.publish(searching("t-2", &["bob"])).await.unwrap();
        bus.publish(searching("t-3", &["bob", "alice"])).await.unwrap();
        assert_eq!(alice.next().await, Some(Delivery::Event(searching("t-1", &["alice"]))));
        assert_eq!(
            alice.next().await,
            Some(Delivery::Event(searching("t-3", &["bob", "alice"])))
        );
    }

    #[tokio::test]
    async fn publishing_with_nobody_listening_succeeds() {
        let bus = EventBus::default();
        assert!(bus.publish(searching("t-1", &["alice"])).await.is_ok());
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_how_much_it_missed() {
        let bus = EventBus::new(2);
        let mut slow = bus.subscribe();
        for i in 0..5 {
            bus.publish(searching(&format!("t-{i}"), &["p"])).await.unwrap();
        }
        assert_eq!(slow.next().await, Some(Delivery::Missed(3)));
        assert_eq!(slow.next().await, Some(Delivery::Event(searching("t-3", &["p"]))));
    }

    #[tokio::test]
    async fn a_subscription_ends_with_the_bus() {
        let bus = EventBus::default();
        let mut sub = bus.subscribe();
        drop(bus);
        assert_eq!(sub.next().await, None);
    }
}
