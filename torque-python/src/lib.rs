//! The native core of `torque_twisted`, Torque's reactor for Python's Twisted.
//!
//! Python's `torque_twisted.TorqueReactor` is a plain Python class (Twisted's
//! test builders swap a reactor's `__dict__` and `__class__`, which a native
//! class cannot take); it holds a `Core` (`core.rs`) and hands it the work
//! that must not be Python: the wait, with the interpreter lock released while
//! it sleeps (`interpreter.rs`); the fd set, whose events reach Python through
//! one call per event (`fdset.rs`); and the reads and writes of Twisted's own
//! TCP connections (`stream.rs`, `send.rs`), and `callLater`'s queue
//! (`timers.rs`). ARCHITECTURE.md has the map.

mod core;
mod fdset;
mod interpreter;
mod send;
mod stream;
mod timers;

use pyo3::prelude::*;

/// The `torque_twisted._core` extension module.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<core::Core>()?;
    m.add_class::<core::ThreadWaker>()?;
    m.add("READ", fdset::READ)?;
    m.add("WRITE", fdset::WRITE)?;
    Ok(())
}
