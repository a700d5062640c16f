//! `Failure`: the error a Deferred carries (Twisted's `twisted.python.failure.Failure`).

use std::error::Error;
use std::fmt;
use std::rc::Rc;

/// An error travelling down a Deferred's chain. Any `std::error::Error` converts
/// into one (so `?` works in callbacks), and it can be inspected by type, as
/// Twisted's `failure.check(...)` does. Cloning shares the error.
#[derive(Clone)]
pub struct Failure {
    error: Rc<dyn Error + 'static>,
}

/// The failure of a cancelled Deferred (Twisted's `CancelledError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the deferred was cancelled")]
pub struct CancelledError;

/// The failure of a Deferred whose timeout passed (Twisted's `TimeoutError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the deferred timed out")]
pub struct TimeoutError;

/// A plain message as an error, for `Failure::msg`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Message(pub String);

impl Failure {
    /// Wraps `error`.
    pub fn new(error: impl Error + 'static) -> Failure {
        Failure { error: Rc::new(error) }
    }

    /// A failure carrying just a message.
    pub fn msg(message: impl Into<String>) -> Failure {
        Failure::new(Message(message.into()))
    }

    /// The failure of a cancelled Deferred.
    pub fn cancelled() -> Failure {
        Failure::new(CancelledError)
    }

    /// Whether the error is an `E`.
    pub fn is<E: Error + 'static>(&self) -> bool {
        self.error.is::<E>()
    }

    /// The error as an `E`, if it is one.
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.error.downcast_ref::<E>()
    }

    /// The error.
    pub fn error(&self) -> &(dyn Error + 'static) {
        &*self.error
    }
}

impl<E: Error + 'static> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure::new(error)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)?;
        let mut source = self.error.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Failure").field(&self.error).finish()
    }
}
