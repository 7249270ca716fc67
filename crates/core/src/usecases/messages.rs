//! The messages of the `tickets` queue.
//!
//! - A ticket, as the edge queues it: `{"kind":"ticket","ticketId","playerId","receivedAt","request"}`,
//!   where `request` is the validated body of `POST /v1/tickets` and `playerId` the caller.
//! - A tick that keeps a pool moving when nothing arrives: `{"kind":"pool-tick","queue","partition","due"}`.
//!
//! A body that does not parse as one of these cannot be tied to a ticket: it is left to run out its
//! receives and go to the dead-letter queue, where operators see it.

use crate::ids::{PlayerId, TicketId};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// A ticket as the edge queues it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TicketMessage {
    pub ticket_id: TicketId,
    /// The caller: the JWT's subject, never a field of the body.
    pub player_id: PlayerId,
    /// When the edge accepted it (epoch ms): the ticket's age counts from here.
    pub received_at: Timestamp,
    /// The request body, not yet read against the queue's rule set.
    pub request: serde_json::Value,
}

/// A scheduled nudge to run a pool's round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolTick {
    pub queue: String,
    pub partition: String,
    /// When the tick was meant for: the next expansion step or timeout of the pool.
    pub due: Timestamp,
}

/// Any message of the `tickets` queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Message {
    Ticket(TicketMessage),
    PoolTick(PoolTick),
}

/// A body that is not a queue message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a queue message: {0}")]
pub struct UnreadableMessage(pub String);

impl Message {
    pub fn parse(body: &str) -> Result<Message, UnreadableMessage> {
        serde_json::from_str(body).map_err(|e| UnreadableMessage(e.to_string()))
    }

    pub fn to_body(&self) -> String {
        // A message of strings, numbers and JSON values always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_ticket_message_reads_in_the_shape_of_design() {
        let body =
            r#"{"kind":"ticket","ticketId":"t-1","playerId":"p-1","receivedAt":1700000000000,"request":{"queue":"q"}}"#;
        let Message::Ticket(m) = Message::parse(body).unwrap() else {
            panic!("not a ticket")
        };
        assert_eq!(m.ticket_id, TicketId::from("t-1"));
        assert_eq!(m.received_at, Timestamp(1_700_000_000_000));
        assert_eq!(m.request, json!({"queue": "q"}));
        assert_eq!(
            Message::parse(&Message::Ticket(m.clone()).to_body()),
            Ok(Message::Ticket(m))
        );
    }

    #[test]
    fn a_pool_tick_round_trips() {
        let tick = Message::PoolTick(PoolTick {
            queue: "q".into(),
            partition: "all".into(),
            due: Timestamp(5),
        });
        assert_eq!(
            tick.to_body(),
            r#"{"kind":"pool-tick","queue":"q","partition":"all","due":5}"#
        );
        assert_eq!(Message::parse(&tick.to_body()), Ok(tick));
    }

    #[test]
    fn anything_else_is_unreadable() {
        for body in [
            "",
            "{",
            "[]",
            r#"{"kind":"nope"}"#,
            r#"{"kind":"ticket","ticketId":"t"}"#,
            r#"{"kind":"pool-tick","queue":"q","partition":"p","due":1,"x":1}"#,
        ] {
            assert!(Message::parse(body).is_err(), "{body}");
        }
    }
}
