//! Process-wide signal handling for running reactors.
//!
//! A signal handler may only do async-signal-safe work, so ours records the signal in a
//! per-reactor atomic bitmask and writes to that reactor's waker fd. The reactor reads
//! and clears its bitmask at the top of each pass. Slots are a fixed static array, so
//! the handler never takes a lock or allocates. The previous disposition is saved when
//! the first reactor installs the handler and restored when the last one leaves, so a
//! program's own handlers come back after `run()` returns.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::waker::Waker;

/// The signals a reactor turns into a graceful stop.
pub(crate) const STOP_SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

const SLOTS: usize = 64;
/// A slot's `target` when no reactor holds it.
const FREE: u64 = u64::MAX;
/// Bit of `target` marking an eventfd (8-byte writes) rather than a pipe.
const EVENTFD_BIT: u64 = 1 << 32;

struct Slot {
    /// The waker's write fd (low 32 bits) and `EVENTFD_BIT`, in one atomic so the
    /// handler can never pair one reactor's fd with another's write length.
    target: AtomicU64,
    /// Bit `n` set means signal `n` arrived since the reactor last looked.
    pending: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE_SLOT: Slot = Slot { target: AtomicU64::new(FREE), pending: AtomicU64::new(0) };
static SLOT_TABLE: [Slot; SLOTS] = [FREE_SLOT; SLOTS];

/// Handlers currently running. A guard being dropped waits for this to reach zero
/// after freeing its slot, so no handler still holds its fd when the waker (and
/// with it the fd) may be closed.
static HANDLERS_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Saved dispositions while at least one reactor listens, with the listener count.
struct Installed {
    users: usize,
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

static INSTALLED: Mutex<Installed> = Mutex::new(Installed { users: 0, previous: Vec::new() });

extern "C" fn on_signal(sig: libc::c_int) {
    // SAFETY: errno is thread-local; saving and restoring it keeps the interrupted
    // code's errno intact, as a signal handler must.
    let saved_errno = unsafe { *errno_location() };
    HANDLERS_RUNNING.fetch_add(1, Ordering::SeqCst);
    for slot in &SLOT_TABLE {
        let target = slot.target.load(Ordering::SeqCst);
        if target != FREE && (0..64).contains(&sig) {
            slot.pending.fetch_or(1 << sig, Ordering::SeqCst);
            let fd = (target & 0xffff_ffff) as u32 as i32;
            super::waker::raw_wake(fd, target & EVENTFD_BIT != 0);
        }
    }
    HANDLERS_RUNNING.fetch_sub(1, Ordering::SeqCst);
    // SAFETY: see above.
    unsafe { *errno_location() = saved_errno };
}

#[cfg(any(target_os = "linux", target_os = "android"))]
unsafe fn errno_location() -> *mut libc::c_int {
    // SAFETY: always returns a valid pointer to this thread's errno.
    unsafe { libc::__errno_location() }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
unsafe fn errno_location() -> *mut libc::c_int {
    // SAFETY: always returns a valid pointer to this thread's errno.
    unsafe { libc::__error() }
}

/// A reactor's registration for stop signals; dropping it unregisters.
pub(crate) struct SignalGuard {
    slot: usize,
    /// Keeps the waker's fd open for as long as a handler may write to it.
    _waker: Arc<Waker>,
}

impl std::fmt::Debug for SignalGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalGuard").field("slot", &self.slot).finish()
    }
}

impl SignalGuard {
    /// Claims a slot that wakes `waker` on SIGINT/SIGTERM, installing the process
    /// handler if this is the first listener.
    pub(crate) fn install(waker: Arc<Waker>) -> io::Result<SignalGuard> {
        let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
        let slot = SLOT_TABLE
            .iter()
            .position(|s| s.target.load(Ordering::SeqCst) == FREE)
            .ok_or_else(|| io::Error::other("too many reactors handle signals at once (64)"))?;
        let fd = u64::from(waker.write_fd() as u32);
        let target = fd | if waker.is_eventfd() { EVENTFD_BIT } else { 0 };
        SLOT_TABLE[slot].pending.store(0, Ordering::SeqCst);
        SLOT_TABLE[slot].target.store(target, Ordering::SeqCst);
        if installed.users == 0 {
            let mut previous = Vec::new();
            for sig in STOP_SIGNALS {
                // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value.
                let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
                action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                // SAFETY: sa_mask is a valid sigset_t to initialise.
                unsafe { libc::sigemptyset(&mut action.sa_mask) };
                // SAFETY: as above; `old` receives the previous disposition.
                let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
                // SAFETY: both pointers are to valid sigaction values.
                if let Err(e) = super::cvt(unsafe { libc::sigaction(sig, &action, &mut old) }) {
                    restore(&previous);
                    SLOT_TABLE[slot].target.store(FREE, Ordering::SeqCst);
                    return Err(e);
                }
                previous.push((sig, old));
            }
            installed.previous = previous;
        }
        installed.users += 1;
        Ok(SignalGuard { slot, _waker: waker })
    }

    /// The stop signals received since the last call, clearing them.
    pub(crate) fn take_pending(&self) -> u64 {
        SLOT_TABLE[self.slot].pending.swap(0, Ordering::AcqRel)
    }
}

fn restore(previous: &[(libc::c_int, libc::sigaction)]) {
    for (sig, old) in previous {
        // SAFETY: `old` was filled by a successful sigaction call.
        unsafe { libc::sigaction(*sig, old, std::ptr::null_mut()) };
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
        SLOT_TABLE[self.slot].target.store(FREE, Ordering::SeqCst);
        // A handler that loaded our target before the store above is counted here
        // (SeqCst orders its increment before its load); wait for it to finish
        // writing before the waker, and so the fd, may be released.
        while HANDLERS_RUNNING.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
        installed.users -= 1;
        if installed.users == 0 {
            let previous = std::mem::take(&mut installed.previous);
            restore(&previous);
        }
    }
}
