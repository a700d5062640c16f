//! The CoreFoundation objects that drive a Torque reactor: the backend layer of
//! this crate, and its only `unsafe` code.
//!
//! - a `CFFileDescriptor` on the reactor's watch fd (the kqueue fd), whose
//!   read callback runs one non-blocking pass; CF callbacks are one-shot, so
//!   each pass re-enables it;
//! - a repeating `CFRunLoopTimer` whose next fire date is moved to the
//!   reactor's next deadline (it runs a pass when due);
//! - an observer of `kCFRunLoopBeforeWaiting`, which moves that fire date
//!   from the reactor's own timeout just before the run loop sleeps (and so
//!   also hands queued registration changes to the kqueue first).
//!
//! All three carry a pointer to one [`Shared`] as their `info`, retained and
//! released through the context callbacks, so it lives as long as any of them.

use std::cell::RefCell;
use std::ffi::c_void;
use std::os::fd::RawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::Duration;

use core_foundation::base::TCFType;
use core_foundation::filedescriptor::{
    CFFileDescriptor, CFFileDescriptorContext, CFFileDescriptorEnableCallBacks, CFFileDescriptorRef,
    kCFFileDescriptorReadCallBack,
};
use core_foundation::runloop::{
    CFRunLoop, CFRunLoopActivity, CFRunLoopObserver, CFRunLoopObserverContext, CFRunLoopObserverCreate,
    CFRunLoopObserverRef, CFRunLoopTimer, CFRunLoopTimerContext, CFRunLoopTimerRef,
    CFRunLoopTimerSetNextFireDate, kCFRunLoopBeforeWaiting, kCFRunLoopCommonModes,
};
use core_foundation_sys::base::{CFOptionFlags, kCFAllocatorDefault};
use core_foundation_sys::date::CFAbsoluteTimeGetCurrent;
use torque::{Embedded, ReactorError};

/// A fire date far enough away to mean "no timer" (about 30 years).
const NEVER: f64 = 1.0e9;

/// What the CF objects share.
pub(crate) struct Shared {
    state: RefCell<State>,
}

struct State {
    /// The run; out of the cell while a pass runs, and gone once it ended.
    run: Option<Embedded>,
    finished: bool,
    /// The `CfRun` was dropped while a pass ran: end after it.
    detach_after_pass: bool,
    /// The fd was ready while a pass ran (a nested run loop inside a Torque
    /// callback): its callback is re-enabled once that pass has finished, not
    /// before, or the still-readable fd would call back in a loop.
    fd_waiting: bool,
    /// Why a pass failed.
    error: Option<ReactorError>,
    on_finished: Option<Box<dyn FnOnce()>>,
    objects: Option<Objects>,
}

/// The CF objects, invalidated (which removes them from the run loop) when the
/// run ends.
struct Objects {
    fd: CFFileDescriptor,
    timer: CFRunLoopTimer,
    observer: CFRunLoopObserver,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("finished", &self.is_finished()).finish()
    }
}

extern "C" fn retain(info: *const c_void) -> *const c_void {
    // SAFETY: `info` came from `Rc::as_ptr` on a live `Rc<Shared>` (see
    // `attach`), and every CF object holding it keeps one count.
    unsafe { Rc::increment_strong_count(info.cast::<Shared>()) };
    info
}

extern "C" fn release(info: *const c_void) {
    // SAFETY: matches one `retain` above.
    unsafe { Rc::decrement_strong_count(info.cast::<Shared>()) };
}

/// The `Shared` behind a callback's `info`, held for the callback's length (a
/// callback may end the run, and CF then releases its own counts).
fn shared_of(info: *mut c_void) -> Rc<Shared> {
    // SAFETY: CF passes the `info` we gave it, which it retained: it points to
    // a live `Shared`. Taking a count of our own keeps it alive until we drop
    // the returned `Rc`.
    unsafe {
        Rc::increment_strong_count(info.cast_const().cast::<Shared>());
        Rc::from_raw(info.cast_const().cast::<Shared>())
    }
}

/// Creates the CF objects for `run`, watching `fd`, and adds them to
/// `run_loop` in its common modes. The caller has checked that `run_loop` is
/// this thread's.
pub(crate) fn attach(run: Embedded, fd: RawFd, run_loop: &CFRunLoop) -> Rc<Shared> {
    let shared = Rc::new(Shared {
        state: RefCell::new(State {
            run: Some(run),
            finished: false,
            detach_after_pass: false,
            fd_waiting: false,
            error: None,
            on_finished: None,
            objects: None,
        }),
    });
    let info = Rc::as_ptr(&shared).cast_mut().cast::<c_void>();
    let fd_context = CFFileDescriptorContext {
        version: 0,
        info,
        retain: Some(retain),
        release: Some(release),
        copyDescription: None,
    };
    let watched = CFFileDescriptor::new(fd, false, fd_ready, Some(&fd_context))
        .expect("CoreFoundation wraps a valid fd");
    watched.enable_callbacks(kCFFileDescriptorReadCallBack);
    let fd_source = watched.to_run_loop_source(0).expect("a run loop source for the fd");
    let mut timer_context = CFRunLoopTimerContext {
        version: 0,
        info,
        retain: Some(retain),
        release: Some(release),
        copyDescription: None,
    };
    // Repeating, so that moving its fire date works after it has fired (a
    // one-shot timer invalidates itself).
    // SAFETY: CFAbsoluteTimeGetCurrent has no arguments.
    let now = unsafe { CFAbsoluteTimeGetCurrent() };
    let timer = CFRunLoopTimer::new(now + NEVER, NEVER, 0, 0, timer_fired, &mut timer_context);
    let mut observer_context = CFRunLoopObserverContext {
        version: 0,
        info,
        retain: Some(retain),
        release: Some(release),
        copyDescription: None,
    };
    // SAFETY: the context is valid for the call (CF copies it and retains
    // `info`); the result is a new object we own (create rule).
    let observer = unsafe {
        let raw = CFRunLoopObserverCreate(
            kCFAllocatorDefault,
            kCFRunLoopBeforeWaiting,
            1,
            0,
            before_waiting,
            &mut observer_context,
        );
        CFRunLoopObserver::wrap_under_create_rule(raw)
    };
    // SAFETY: kCFRunLoopCommonModes is an immutable CFString constant.
    let common = unsafe { kCFRunLoopCommonModes };
    run_loop.add_source(&fd_source, common);
    run_loop.add_timer(&timer, common);
    run_loop.add_observer(&observer, common);
    shared.state.borrow_mut().objects = Some(Objects { fd: watched, timer, observer });
    arm_timer(&shared);
    shared
}

impl Shared {
    pub(crate) fn is_finished(&self) -> bool {
        let state = self.state.borrow();
        state.finished || state.run.as_ref().is_some_and(Embedded::is_finished)
    }

    pub(crate) fn on_finished(&self, f: Box<dyn FnOnce()>) {
        if self.state.borrow().finished {
            f();
        } else {
            self.state.borrow_mut().on_finished = Some(f);
        }
    }

    pub(crate) fn take_error(&self) -> Option<ReactorError> {
        self.state.borrow_mut().error.take()
    }

    /// The `CfRun` is dropped: end now, or after the pass that is running.
    pub(crate) fn detach(&self) {
        let running_pass = {
            let mut state = self.state.borrow_mut();
            if state.finished {
                return;
            }
            state.detach_after_pass = state.run.is_none();
            state.detach_after_pass
        };
        if !running_pass {
            finish(self);
        }
    }
}

/// Ends the run: drops it (a run not finished crashes), takes the CF objects
/// out of the run loop and tells `on_finished`.
fn finish(shared: &Shared) {
    let (run, objects, on_finished) = {
        let mut state = shared.state.borrow_mut();
        if state.finished {
            return;
        }
        state.finished = true;
        (state.run.take(), state.objects.take(), state.on_finished.take())
    };
    drop(run);
    if let Some(objects) = objects {
        objects.fd.invalidate();
        // SAFETY: both are valid objects we own; invalidating removes them from
        // every run loop and mode.
        unsafe {
            core_foundation::runloop::CFRunLoopTimerInvalidate(objects.timer.as_concrete_TypeRef());
            core_foundation::runloop::CFRunLoopObserverInvalidate(objects.observer.as_concrete_TypeRef());
        }
    }
    if let Some(f) = on_finished {
        f();
    }
}

/// One non-blocking pass, unless a pass is already running further up the
/// stack (a nested run loop inside a Torque callback): then nothing, and
/// `false`.
fn dispatch(shared: &Shared) -> bool {
    let run = shared.state.borrow_mut().run.take();
    let Some(run) = run else { return false };
    let result = catch_unwind(AssertUnwindSafe(|| run.dispatch()));
    let failed = match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some(ReactorError::Os(std::io::Error::other("a reactor pass panicked"))),
    };
    if let Some(e) = failed {
        tracing::error!(error = %e, "a reactor pass failed; the reactor stops");
        run.reactor().crash();
        shared.state.borrow_mut().error = Some(e);
    }
    let (ended, detach, fd_waiting) = {
        let mut state = shared.state.borrow_mut();
        let ended = run.is_finished();
        state.run = Some(run);
        (ended, std::mem::take(&mut state.detach_after_pass), std::mem::take(&mut state.fd_waiting))
    };
    if ended || detach {
        finish(shared);
    } else if fd_waiting {
        if let Some(objects) = &shared.state.borrow().objects {
            objects.fd.enable_callbacks(kCFFileDescriptorReadCallBack);
        }
    }
    true
}

/// Moves the timer's next fire date to the reactor's next deadline. The run
/// is out of its cell meanwhile: asking for the timeout hands queued changes
/// to the kqueue, which may tell a handler it was refused (user code).
fn arm_timer(shared: &Shared) {
    let run = shared.state.borrow_mut().run.take();
    let Some(run) = run else { return };
    let timeout = run.timeout();
    // Crashed from a callback of the run loop's own (outside a pass): end.
    let ended = run.is_finished();
    let detach = {
        let mut state = shared.state.borrow_mut();
        state.run = Some(run);
        std::mem::take(&mut state.detach_after_pass)
    };
    if detach || ended {
        finish(shared);
        return;
    }
    let delay = timeout.map_or(NEVER, |t| t.min(Duration::from_secs(NEVER as u64)).as_secs_f64());
    let state = shared.state.borrow();
    if let Some(objects) = &state.objects {
        // SAFETY: a valid timer we own; CFAbsoluteTimeGetCurrent has no arguments.
        unsafe {
            CFRunLoopTimerSetNextFireDate(
                objects.timer.as_concrete_TypeRef(),
                CFAbsoluteTimeGetCurrent() + delay,
            );
        }
    }
}

/// Runs a callback's body; a panic (from `on_finished`, say) is logged, never
/// unwound into CoreFoundation.
fn guarded(what: &str, body: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(body)).is_err() {
        tracing::error!("the run loop's {what} callback panicked");
    }
}

extern "C" fn fd_ready(fd: CFFileDescriptorRef, _types: CFOptionFlags, info: *mut c_void) {
    guarded("fd", || {
        let shared = shared_of(info);
        if !dispatch(&shared) {
            // A pass is running further up the stack: it re-enables us.
            shared.state.borrow_mut().fd_waiting = true;
        } else if !shared.is_finished() {
            // SAFETY: `fd` is the live CFFileDescriptor this callback belongs
            // to (CF keeps it alive for the call); callbacks are one-shot.
            unsafe { CFFileDescriptorEnableCallBacks(fd, kCFFileDescriptorReadCallBack) };
        }
    });
}

extern "C" fn timer_fired(_timer: CFRunLoopTimerRef, info: *mut c_void) {
    guarded("timer", || {
        let shared = shared_of(info);
        dispatch(&shared);
        arm_timer(&shared);
    });
}

extern "C" fn before_waiting(
    _observer: CFRunLoopObserverRef,
    _activity: CFRunLoopActivity,
    info: *mut c_void,
) {
    guarded("observer", || arm_timer(&shared_of(info)));
}
