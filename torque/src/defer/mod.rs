//! Deferreds and `Failure` (Twisted's `twisted.internet.defer`), usable with
//! callbacks or `async`/`await`.

mod deferred;
mod failure;
mod gather;
mod reactor_ext;
mod task;

pub use deferred::{CallbackPanicked, CallbackResult, Deferred, DeferredError, Resolver, maybe_deferred};
pub use failure::{CancelledError, Failure, Message, TimeoutError};
pub use gather::{FirstError, all_settled, first_success, gather_results};
pub use task::{Cooperator, LoopResult, LoopingCall, LoopingCallError, coiterate};
