//! The GLib source that drives a Torque reactor: the backend layer of this
//! crate, and its only `unsafe` code.
//!
//! GLib's main loop asks every source, before each poll, how long it may sleep
//! (`prepare`), polls the fds the sources added, then asks which are ready
//! (`check`) and dispatches them. This source adds one fd, the reactor's watch
//! fd (epoll's or kqueue's) (readable whenever a registered fd is ready or another thread woke the
//! reactor), and answers `prepare` with the reactor's own timeout, so a timer
//! scheduled or moved earlier by any callback is seen at the next poll: there
//! is no GLib timeout to re-arm. `dispatch` runs one non-blocking reactor pass.

use std::cell::RefCell;
use std::ffi::c_int;
use std::mem::ManuallyDrop;
use std::os::fd::RawFd;
use std::ptr;
use std::time::Duration;

use std::panic::{AssertUnwindSafe, catch_unwind};

use glib::ffi;
use glib::translate::{FromGlibPtrFull, ToGlibPtr};
use torque::{Embedded, ReactorError};

/// What the source owns besides GLib's header.
pub(crate) struct State {
    /// The run; out of the cell while a pass runs, and gone once it ended.
    pub(crate) run: Option<Embedded>,
    /// The run has ended (and `run` was dropped).
    pub(crate) finished: bool,
    /// Why a pass failed (the reactor then crashed), for `torque_glib::run`.
    pub(crate) error: Option<ReactorError>,
    /// Called once, on the GLib thread, when the run has finished.
    pub(crate) on_finished: Option<Box<dyn FnOnce()>>,
}

/// A `GSource` with our state after GLib's header, as `g_source_new` lays out.
#[repr(C)]
struct ReactorSource {
    header: ffi::GSource,
    /// The tag `g_source_add_unix_fd` returned for the reactor's fd.
    fd_tag: ffi::gpointer,
    /// Dropped in `finalize`; `RefCell` because GLib hands out `*mut GSource`
    /// from several callbacks, and a user callback run inside `dispatch` may
    /// reach the state again (to detach).
    state: ManuallyDrop<RefCell<State>>,
}

static FUNCS: ffi::GSourceFuncs = ffi::GSourceFuncs {
    prepare: Some(prepare),
    check: Some(check),
    dispatch: Some(dispatch),
    finalize: Some(finalize),
    closure_callback: None,
    closure_marshal: None,
};

/// Creates the source for `run`, watching `fd`, and attaches it to `context`.
pub(crate) fn attach(run: Embedded, fd: RawFd, context: &glib::MainContext) -> glib::Source {
    let size = std::mem::size_of::<ReactorSource>() as u32;
    // SAFETY: `g_source_new` allocates `size` zeroed bytes whose prefix is a
    // valid `GSource`; it never writes through the funcs pointer (the `*mut` is
    // an old API wart), so sharing one static table is sound. We initialise our
    // fields with `ptr::write` before GLib can call any of the functions (it
    // calls none until the source is attached).
    unsafe {
        let raw = ffi::g_source_new(ptr::addr_of!(FUNCS).cast_mut(), size);
        let this = raw.cast::<ReactorSource>();
        ptr::addr_of_mut!((*this).state).write(ManuallyDrop::new(RefCell::new(State {
            run: Some(run),
            finished: false,
            error: None,
            on_finished: None,
        })));
        let tag = ffi::g_source_add_unix_fd(raw, fd, ffi::G_IO_IN);
        ptr::addr_of_mut!((*this).fd_tag).write(tag);
        ffi::g_source_set_name(raw, c"torque reactor".as_ptr());
        ffi::g_source_attach(raw, context.to_glib_none().0);
        glib::Source::from_glib_full(raw)
    }
}

/// Makes this thread the owner of `context` (recursively), as GLib requires
/// of the thread that dispatches it; `false` if another thread owns it.
pub(crate) fn acquire(context: &glib::MainContext) -> bool {
    // SAFETY: a valid context pointer; acquiring has no other precondition.
    unsafe { ffi::g_main_context_acquire(context.to_glib_none().0) != ffi::GFALSE }
}

/// Undoes one [`acquire`] that returned `true`.
pub(crate) fn release(context: &glib::MainContext) {
    // SAFETY: a valid context pointer, acquired by this thread (the caller's
    // contract: one release per successful acquire).
    unsafe { ffi::g_main_context_release(context.to_glib_none().0) }
}

/// Runs `f` with the state of `source` (one of ours).
pub(crate) fn with_state<T>(source: &glib::Source, f: impl FnOnce(&mut State) -> T) -> T {
    let raw: *mut ffi::GSource = source.to_glib_none().0;
    // SAFETY: every `glib::Source` this crate hands around was made by `attach`,
    // so `raw` points to a live `ReactorSource` (the `glib::Source` holds a
    // reference, so `finalize` has not run).
    let state = unsafe { state_of(raw) };
    f(&mut state.borrow_mut())
}

/// # Safety
/// `source` must be a live `ReactorSource` made by [`attach`].
unsafe fn state_of<'a>(source: *mut ffi::GSource) -> &'a RefCell<State> {
    // SAFETY: per the contract, the cast matches the allocation's layout.
    unsafe { &(*source.cast::<ReactorSource>()).state }
}

/// The reactor's timeout in whole milliseconds, rounded up so a timer due in
/// 0.3 ms does not make GLib spin with a zero timeout until it is due.
fn timeout_millis(timeout: Option<Duration>) -> c_int {
    match timeout {
        None => -1,
        Some(t) => {
            let micros = t.as_micros();
            micros.div_ceil(1000).min(c_int::MAX as u128) as c_int
        }
    }
}

/// The run's timeout, or `Err` once it has finished (dispatch then ends it).
fn poll_state(state: &RefCell<State>) -> Result<Option<Duration>, ()> {
    match state.try_borrow() {
        Ok(state) => match state.run.as_ref() {
            Some(run) if !run.is_finished() => Ok(run.timeout()),
            Some(_) => Err(()),
            // Out of the cell: our own pass is running (GLib does not recurse
            // into a busy source), or the run is over.
            None if state.finished => Err(()),
            None => Ok(None),
        },
        Err(_) => Ok(None),
    }
}

unsafe extern "C" fn prepare(source: *mut ffi::GSource, timeout: *mut c_int) -> ffi::gboolean {
    // SAFETY: GLib calls this only on our sources, with a valid out pointer.
    let (state, timeout) = unsafe { (state_of(source), &mut *timeout) };
    match poll_state(state) {
        Ok(t) => {
            *timeout = timeout_millis(t);
            (t == Some(Duration::ZERO)).into()
        }
        Err(()) => {
            *timeout = 0;
            ffi::GTRUE
        }
    }
}

unsafe extern "C" fn check(source: *mut ffi::GSource) -> ffi::gboolean {
    // SAFETY: GLib calls this only on our sources; `fd_tag` came from
    // `g_source_add_unix_fd` on this source.
    let (state, revents) = unsafe {
        let this = source.cast::<ReactorSource>();
        (state_of(source), ffi::g_source_query_unix_fd(source, (*this).fd_tag))
    };
    if revents != 0 {
        return ffi::GTRUE;
    }
    match poll_state(state) {
        Ok(t) => (t == Some(Duration::ZERO)).into(),
        Err(()) => ffi::GTRUE,
    }
}

unsafe extern "C" fn dispatch(
    source: *mut ffi::GSource,
    _callback: ffi::GSourceFunc,
    _data: ffi::gpointer,
) -> ffi::gboolean {
    // SAFETY: GLib calls this only on our sources, holding a reference while it
    // runs, so the state outlives this call even if a callback destroys the
    // source; `attach` acquired the context, so this is the owning thread.
    let state = unsafe { state_of(source) };
    // Unwinding out of an `extern "C"` function aborts: user code that can
    // run here (end-of-pass work, `on_finished`) must not unwind through it.
    let keep = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: as above; `source` is live for this call.
        dispatch_pass(state, || unsafe { ffi::g_source_is_destroyed(source) != ffi::GFALSE })
    }));
    match keep {
        Ok(true) => ffi::GTRUE,
        Ok(false) => ffi::GFALSE,
        Err(payload) => {
            tracing::error!(panic = ?payload.downcast_ref::<&str>(), "a callback panicked in the GLib source");
            ffi::GTRUE
        }
    }
}

/// One pass; whether the source should stay.
fn dispatch_pass(state: &RefCell<State>, destroyed: impl Fn() -> bool) -> bool {
    // The run is taken out while it runs: user code inside the pass may drop
    // the `GlibRun` (which destroys the source) or reach the state again.
    let Some(run) = state.try_borrow_mut().ok().and_then(|mut s| s.run.take()) else {
        return !state.try_borrow().is_ok_and(|s| s.finished);
    };
    let passed = if run.is_finished() { Ok(()) } else { run.dispatch() };
    if let Err(e) = passed {
        tracing::error!(error = %e, "the reactor's pass failed under GLib; the reactor stops");
        run.reactor().crash();
        state.borrow_mut().error = Some(e);
    }
    if !run.is_finished() && !destroyed() {
        state.borrow_mut().run = Some(run);
        return true;
    }
    // Finished, or the `GlibRun` was dropped during the pass: end the run
    // (end-of-pass work, in_run cleared; an unfinished one as `crash()`)
    // before anyone hears of it, then tell the owner (which quits its loop).
    drop(run);
    let on_finished = {
        let mut state = state.borrow_mut();
        state.finished = true;
        state.on_finished.take()
    };
    if let Some(f) = on_finished {
        f();
    }
    false
}

unsafe extern "C" fn finalize(source: *mut ffi::GSource) {
    // SAFETY: GLib calls finalize once, after the last reference is gone, so
    // nothing else can reach the state; it was initialised in `attach`.
    let state = unsafe { &mut (*source.cast::<ReactorSource>()).state };
    // Dropping an unfinished run runs end-of-pass work: no unwinding into GLib.
    // SAFETY: see above; nothing uses the state after this.
    let dropped = catch_unwind(AssertUnwindSafe(|| unsafe { ManuallyDrop::drop(state) }));
    if dropped.is_err() {
        tracing::error!("a callback panicked while the GLib source was finalized");
    }
}
