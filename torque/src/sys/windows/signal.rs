//! Stop requests from the console, Windows' stand-in for SIGINT and SIGTERM.
//!
//! Windows has no signals: Ctrl-C, Ctrl-Break and closing the console (or
//! logging off, or shutting down) call a console control handler on a thread
//! the system starts. Ours records the request in each listening reactor's
//! bitmask — Ctrl-C as `SIGINT`, the others as `SIGTERM`, the numbers the
//! reactor reports through `Reactor::stop_signal` — and wakes it. Unlike a
//! Unix handler it may lock and allocate.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use windows_sys::Win32::Foundation::{FALSE, TRUE};
use windows_sys::Win32::System::Console::{CTRL_C_EVENT, SetConsoleCtrlHandler};
use windows_sys::core::BOOL;

use super::waker::Waker;

/// Ctrl-C, as Unix numbers it.
const SIGINT: u32 = 2;
/// Every other console event (Ctrl-Break, close, log-off, shut-down).
const SIGTERM: u32 = 15;

struct Listener {
    /// Bit `n` set means stop request `n` arrived since the reactor last looked.
    pending: AtomicU64,
    waker: Arc<Waker>,
}

/// The reactors listening; the handler is installed while this is not empty.
static LISTENERS: Mutex<Vec<Arc<Listener>>> = Mutex::new(Vec::new());

unsafe extern "system" fn on_console_event(event: u32) -> BOOL {
    let signal = if event == CTRL_C_EVENT { SIGINT } else { SIGTERM };
    let listeners = LISTENERS.lock().unwrap_or_else(|e| e.into_inner());
    for listener in listeners.iter() {
        listener.pending.fetch_or(1 << signal, Ordering::SeqCst);
        listener.waker.wake();
    }
    // Handled only if a reactor heard it; otherwise the next handler (by
    // default: end the process) runs.
    if listeners.is_empty() { FALSE } else { TRUE }
}

/// A reactor's registration for stop requests; dropping it unregisters.
pub(crate) struct SignalGuard {
    listener: Arc<Listener>,
}

impl std::fmt::Debug for SignalGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalGuard").finish_non_exhaustive()
    }
}

impl SignalGuard {
    /// Starts waking `waker` on console control events, installing the
    /// process's handler if this is the first listener.
    pub(crate) fn install(waker: Arc<Waker>) -> io::Result<SignalGuard> {
        let mut listeners = LISTENERS.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: `on_console_event` has the PHANDLER_ROUTINE signature and
        // lives for the whole program.
        if listeners.is_empty() && unsafe { SetConsoleCtrlHandler(Some(on_console_event), TRUE) } == 0 {
            return Err(io::Error::last_os_error());
        }
        let listener = Arc::new(Listener { pending: AtomicU64::new(0), waker });
        listeners.push(Arc::clone(&listener));
        Ok(SignalGuard { listener })
    }

    /// The stop requests received since the last call, clearing them.
    pub(crate) fn take_pending(&self) -> u64 {
        self.listener.pending.swap(0, Ordering::AcqRel)
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        let mut listeners = LISTENERS.lock().unwrap_or_else(|e| e.into_inner());
        listeners.retain(|l| !Arc::ptr_eq(l, &self.listener));
        if listeners.is_empty() {
            // SAFETY: removes the handler this module installed.
            unsafe { SetConsoleCtrlHandler(Some(on_console_event), FALSE) };
        }
    }
}
