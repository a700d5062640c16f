//! Process-wide signal handling for running reactors.
//!
//! A signal handler may only do async-signal-safe work, so ours records the signal in a
//! per-reactor atomic bitmask and writes to that reactor's waker fd. The reactor reads
//! and clears its bitmask at the top of each pass. Slots are a fixed static array, so
//! the handler never takes a lock or allocates. The previous disposition is saved when
//! the first reactor installs the handler and restored when the last one leaves, so a
//! program's own handlers come back after `run()` returns.

use std::io;
use std::os::fd::RawFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

/// The signals a reactor turns into a graceful stop.
pub(crate) const STOP_SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

const SLOTS: usize = 64;

struct Slot {
    /// Waker write fd of the reactor holding this slot, or -1 when free.
    fd: AtomicI32,
    eventfd: AtomicBool,
    /// Bit `n` set means signal `n` arrived since the reactor last looked.
    pending: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE_SLOT: Slot =
    Slot { fd: AtomicI32::new(-1), eventfd: AtomicBool::new(false), pending: AtomicU64::new(0) };
static SLOT_TABLE: [Slot; SLOTS] = [FREE_SLOT; SLOTS];

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
    for slot in &SLOT_TABLE {
        let fd = slot.fd.load(Ordering::Acquire);
        if fd >= 0 && (0..64).contains(&sig) {
            slot.pending.fetch_or(1 << sig, Ordering::AcqRel);
            super::waker::raw_wake(fd, slot.eventfd.load(Ordering::Relaxed));
        }
    }
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
#[derive(Debug)]
pub(crate) struct SignalGuard {
    slot: usize,
}

impl SignalGuard {
    /// Claims a slot that wakes `wake_fd` on SIGINT/SIGTERM, installing the process
    /// handler if this is the first listener.
    pub(crate) fn install(wake_fd: RawFd, eventfd: bool) -> io::Result<SignalGuard> {
        let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
        let slot = SLOT_TABLE
            .iter()
            .position(|s| s.fd.load(Ordering::Acquire) < 0)
            .ok_or_else(|| io::Error::other("too many reactors handle signals at once (64)"))?;
        SLOT_TABLE[slot].pending.store(0, Ordering::Release);
        SLOT_TABLE[slot].eventfd.store(eventfd, Ordering::Release);
        SLOT_TABLE[slot].fd.store(wake_fd, Ordering::Release);
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
                    SLOT_TABLE[slot].fd.store(-1, Ordering::Release);
                    return Err(e);
                }
                previous.push((sig, old));
            }
            installed.previous = previous;
        }
        installed.users += 1;
        Ok(SignalGuard { slot })
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
        SLOT_TABLE[self.slot].fd.store(-1, Ordering::Release);
        installed.users -= 1;
        if installed.users == 0 {
            let previous = std::mem::take(&mut installed.previous);
            restore(&previous);
        }
    }
}
