//! Code run around each wait that may block.

/// What a reactor calls around each wait that may block, on its own thread: the
/// place to release a lock the sleeping thread must not hold, such as
/// Python's interpreter lock (`torque-python` does). Waits that cannot block
/// (a zero timeout) skip it, so a busy loop pays nothing.
///
/// The hook must not call into the reactor: the backend is borrowed while it
/// runs.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
/// use torque::{Reactor, WaitHook};
///
/// struct CountSleeps(Rc<Cell<u32>>);
/// impl WaitHook for CountSleeps {
///     fn before_wait(&self) {
///         self.0.set(self.0.get() + 1);
///     }
///     fn after_wait(&self) {}
/// }
///
/// let sleeps = Rc::new(Cell::new(0));
/// let reactor = Reactor::builder().handle_signals(false).wait_hook(CountSleeps(sleeps.clone())).build()?;
/// reactor.iterate(Duration::from_millis(1))?;
/// reactor.iterate(Duration::ZERO)?;
/// assert_eq!(sleeps.get(), 1);
/// # Ok::<(), torque::ReactorError>(())
/// ```
pub trait WaitHook {
    /// Called just before a wait that may block.
    fn before_wait(&self);
    /// Called as soon as that wait returns, before anything is dispatched.
    fn after_wait(&self);
}
