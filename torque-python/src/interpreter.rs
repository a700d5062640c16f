//! Releasing Python's interpreter lock while the reactor sleeps.

use std::cell::Cell;
use std::ptr;

use pyo3::ffi;
use torque::WaitHook;

/// Detaches the reactor's thread from the interpreter for each wait that may
/// block, so Python threads (`callFromThread`, the thread pool) run meanwhile,
/// and attaches it again before anything is dispatched.
pub(crate) struct ReleaseInterpreter {
    saved: Cell<*mut ffi::PyThreadState>,
}

impl ReleaseInterpreter {
    pub(crate) fn new() -> Self {
        ReleaseInterpreter { saved: Cell::new(ptr::null_mut()) }
    }
}

impl WaitHook for ReleaseInterpreter {
    fn before_wait(&self) {
        // SAFETY: the reactor only waits inside `Core::iterate`, a Python method,
        // so this thread holds the interpreter lock here; the wait in between
        // runs no Python code and touches no Python object.
        let state = unsafe { ffi::PyEval_SaveThread() };
        self.saved.set(state);
    }

    fn after_wait(&self) {
        let state = self.saved.replace(ptr::null_mut());
        // SAFETY: `state` is the thread state `before_wait` saved on this same
        // thread, and the lock has not been taken back since.
        unsafe { ffi::PyEval_RestoreThread(state) };
    }
}
