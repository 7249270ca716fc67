//! The `Clock` port: the only source of domain time.

use crate::time::Timestamp;
use std::sync::Arc;

/// Tells the time.
///
/// Guarantees: nothing beyond "roughly now". The system clock can step backwards, so callers
/// compare times with [`Timestamp::since`], which saturates. Tests drive a virtual clock, so code that
/// reads the time only from here runs the same on virtual and real time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}
