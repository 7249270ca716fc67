//! Identifiers. Each is a distinct type so a ticket id can never be passed where a player id is due.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }
    };
}

id_type!(
    /// A matchmaking ticket: one request, solo or for a whole party.
    TicketId
);
id_type!(
    /// A player: the subject of the caller's JWT. Players never name themselves.
    PlayerId
);
id_type!(
    /// A match formed by the matcher, before and while it is placed.
    MatchId
);
id_type!(
    /// A game session on a dedicated server.
    SessionId
);
