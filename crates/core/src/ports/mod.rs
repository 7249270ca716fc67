//! Ports: the traits through which the domain reaches the outside world.
//!
//! Each port speaks domain types and [`PortError`], never an SDK's types, so the same use cases run on
//! the embedded adapters of `queuematch-local` and on the AWS adapters. Every port has one contract
//! suite (crate `queuematch-contract`) that every adapter must pass.
//!
//! The async ports use `async-trait` rather than native `async fn` in traits: native ones are not
//! dyn-compatible, and the binaries are wired with `Arc<dyn Store>` and friends, while the use cases
//! stay generic. One boxed future per call is nothing next to a network round trip.

pub mod clock;
pub mod error;
pub mod events;
pub mod fleet;
pub mod queue;
pub mod store;
pub mod workflows;

pub use clock::Clock;
pub use error::{ErrorType, PortError};
pub use events::Events;
pub use fleet::Fleet;
pub use queue::TicketQueue;
pub use store::Store;
pub use workflows::Workflows;
