//! queuematch-core: the domain of the matchmaker.
//!
//! Everything here is pure: no I/O, no async runtime, no AWS SDK. Adapters (local, AWS) and
//! handlers build on these types, so the same rules hold on one machine and in the cloud.

pub mod attribute;
pub mod event;
pub mod identity;
pub mod ids;
pub mod json;
pub mod latencies;
pub mod matcher;
pub mod ports;
pub mod ratings;
pub mod ruleset;
pub mod simulate;
pub mod status;
pub mod ticket;
pub mod ticket_request;
pub mod time;
pub mod usecases;

pub use attribute::{AttributeType, AttributeValue};
pub use event::DomainEvent;
pub use ids::{MatchId, PlayerId, SessionId, TicketId};
pub use latencies::Latencies;
pub use ruleset::RuleSet;
pub use status::{SessionStatus, TicketStatus, TransitionError};
pub use ticket::{AcceptanceType, Party, Player, Ticket};
pub use time::Timestamp;
