//! Process-wide signal handling for running reactors.
//!
//! A signal handler may only do async-signal-safe work, so ours records the signal in a
//! per-reactor atomic bitmask and wakes that reactor's waker. The reactor reads
//! and clears its bitmask at the top of each pass. Slots are a fixed static array, so
//! the handler never takes a lock or allocates. The previous disposition is saved when
//! the first reactor installs the handler and restored when the last one leaves, so a
//! program's own handlers come back after `run()` returns.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::waker::{NO_TARGET, SignalTarget, Waker, raw_wake};

/// The signals a reactor turns into a graceful stop.
pub(crate) const STOP_SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

const SLOTS: usize = 64;
/// A slot's `target` when no reactor holds it.
const FREE: SignalTarget = NO_TARGET;

struct Slot {
    /// The waker's signal target (fd and how to write to it), in one atomic so
    /// the handler can never pair one reactor's fd with another's write length.
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
            raw_wake(target);
        }
    }
    HANDLERS_RUNNING.fetch_sub(1, Ordering::SeqCst);
    // SAFETY: see above.
    unsafe { *errno_location() = saved_errno };
}

#[cfg(linux_like)]
unsafe fn errno_location() -> *mut libc::c_int {
    // SAFETY: always returns a valid pointer to this thread's errno.
    unsafe { libc::__errno_location() }
}

#[cfg(any(apple, target_os = "freebsd", target_os = "dragonfly"))]
unsafe fn errno_location() -> *mut libc::c_int {
    // SAFETY: always returns a valid pointer to this thread's errno.
    unsafe { libc::__error() }
}

#[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
unsafe fn errno_location() -> *mut libc::c_int {
    // SAFETY: always returns a valid pointer to this thread's errno.
    unsafe { libc::__errno() }
}

/// Points a free slot of `table` at `waker` (the caller holds the install lock).
fn claim_slot(table: &[Slot; SLOTS], waker: &Waker, full: &str) -> io::Result<usize> {
    let slot = table
        .iter()
        .position(|s| s.target.load(Ordering::SeqCst) == FREE)
        .ok_or_else(|| io::Error::other(full.to_owned()))?;
    table[slot].pending.store(0, Ordering::SeqCst);
    table[slot].target.store(waker.signal_target(), Ordering::SeqCst);
    Ok(slot)
}

/// Frees `slot` of `table` and waits until no handler can still be waking its
/// target (the caller holds the install lock).
fn release_slot(table: &[Slot; SLOTS], slot: usize) {
    table[slot].target.store(FREE, Ordering::SeqCst);
    // A handler that loaded our target before the store above is counted here
    // (SeqCst orders its increment before its load); wait for it to finish
    // writing before the waker, and so the fd, may be released.
    while HANDLERS_RUNNING.load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
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
        let slot = claim_slot(&SLOT_TABLE, &waker, "too many reactors handle signals at once (64)")?;
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
                    release_slot(&SLOT_TABLE, slot);
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
        release_slot(&SLOT_TABLE, self.slot);
        installed.users -= 1;
        if installed.users == 0 {
            let previous = std::mem::take(&mut installed.previous);
            restore(&previous);
        }
    }
}

// ----- SIGCHLD, for children without a pidfd -----

/// Reactors waiting for SIGCHLD (their own table: SIGCHLD never stops a reactor).
static CHILD_SLOT_TABLE: [Slot; SLOTS] = [FREE_SLOT; SLOTS];

/// The disposition SIGCHLD had before ours, called after ours (so a program's
/// or another library's own child handling keeps working), with its flags.
static PREVIOUS_CHILD_HANDLER: AtomicUsize = AtomicUsize::new(0);
static PREVIOUS_CHILD_FLAGS: AtomicUsize = AtomicUsize::new(0);

struct ChildInstalled {
    users: usize,
    previous: Option<libc::sigaction>,
}

static CHILD_INSTALLED: Mutex<ChildInstalled> = Mutex::new(ChildInstalled { users: 0, previous: None });

extern "C" fn on_sigchld(sig: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: as in `on_signal`: errno is saved and restored.
    let saved_errno = unsafe { *errno_location() };
    HANDLERS_RUNNING.fetch_add(1, Ordering::SeqCst);
    for slot in &CHILD_SLOT_TABLE {
        let target = slot.target.load(Ordering::SeqCst);
        if target != FREE {
            slot.pending.fetch_or(1, Ordering::SeqCst);
            raw_wake(target);
        }
    }
    let previous = PREVIOUS_CHILD_HANDLER.load(Ordering::SeqCst);
    if previous != libc::SIG_DFL && previous != libc::SIG_IGN && previous != 0 {
        let flags = PREVIOUS_CHILD_FLAGS.load(Ordering::SeqCst) as libc::c_int;
        // SAFETY: `previous` is the handler address sigaction reported, called
        // with the signature its SA_SIGINFO flag says it has.
        unsafe {
            if flags & libc::SA_SIGINFO != 0 {
                let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    std::mem::transmute(previous);
                handler(sig, info, context);
            } else {
                let handler: extern "C" fn(libc::c_int) = std::mem::transmute(previous);
                handler(sig);
            }
        }
    }
    HANDLERS_RUNNING.fetch_sub(1, Ordering::SeqCst);
    // SAFETY: see above.
    unsafe { *errno_location() = saved_errno };
}

/// A reactor's registration for SIGCHLD; dropping it unregisters (and the last
/// one restores the previous disposition).
pub(crate) struct ChildSignalGuard {
    slot: usize,
    _waker: Arc<Waker>,
}

impl std::fmt::Debug for ChildSignalGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSignalGuard").field("slot", &self.slot).finish()
    }
}

impl ChildSignalGuard {
    /// Claims a slot that wakes `waker` on SIGCHLD, installing the process
    /// handler (chained to the previous one) if this is the first.
    pub(crate) fn install(waker: Arc<Waker>) -> io::Result<ChildSignalGuard> {
        let mut installed = CHILD_INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
        let slot = claim_slot(&CHILD_SLOT_TABLE, &waker, "too many reactors wait for SIGCHLD at once (64)")?;
        if installed.users == 0 {
            // SAFETY: zeroed sigactions are valid "no flags, empty mask" values.
            let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
            action.sa_sigaction = on_sigchld as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART | libc::SA_SIGINFO | libc::SA_NOCLDSTOP;
            // SAFETY: sa_mask is a valid sigset_t to initialise.
            unsafe { libc::sigemptyset(&mut action.sa_mask) };
            // SAFETY: as above.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: reading the current disposition into a valid sigaction.
            if let Err(e) = super::cvt(unsafe { libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut old) })
            {
                release_slot(&CHILD_SLOT_TABLE, slot);
                return Err(e);
            }
            PREVIOUS_CHILD_HANDLER.store(old.sa_sigaction, Ordering::SeqCst);
            PREVIOUS_CHILD_FLAGS.store(old.sa_flags as usize, Ordering::SeqCst);
            let installed_now =
                // SAFETY: both pointers are to valid sigaction values.
                super::cvt(unsafe { libc::sigaction(libc::SIGCHLD, &action, std::ptr::null_mut()) });
            if let Err(e) = installed_now {
                release_slot(&CHILD_SLOT_TABLE, slot);
                return Err(e);
            }
            installed.previous = Some(old);
        }
        installed.users += 1;
        Ok(ChildSignalGuard { slot, _waker: waker })
    }

    /// Whether SIGCHLD arrived since the last call, clearing it.
    pub(crate) fn take_pending(&self) -> bool {
        CHILD_SLOT_TABLE[self.slot].pending.swap(0, Ordering::AcqRel) != 0
    }
}

impl Drop for ChildSignalGuard {
    fn drop(&mut self) {
        let mut installed = CHILD_INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
        release_slot(&CHILD_SLOT_TABLE, self.slot);
        installed.users -= 1;
        if installed.users == 0 {
            if let Some(old) = installed.previous.take() {
                // SAFETY: `old` was filled by a successful sigaction call.
                unsafe { libc::sigaction(libc::SIGCHLD, &old, std::ptr::null_mut()) };
            }
        }
    }
}
