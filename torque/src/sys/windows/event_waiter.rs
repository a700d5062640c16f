//! Helper threads that wait on Win32 handles for a reactor (Twisted's
//! `addEvent`, threaded): each thread waits on up to 63 handles plus its own
//! control event with `WaitForMultipleObjects`, so any number of handles can
//! be watched, whatever the backend. A signalled handle is reported once (the
//! `report` callback, which hands it to the reactor's thread) and then left
//! out of the wait until the reactor re-arms it after running its callback:
//! a handle that stays signalled (a manual-reset event, an exited process or
//! thread) is reported again after each run, never in a busy loop.

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};
use std::sync::{Arc, Mutex, MutexGuard};

use windows_sys::Win32::Foundation::{HANDLE, WAIT_FAILED, WAIT_OBJECT_0};
use windows_sys::Win32::System::Threading::{CreateEventW, INFINITE, SetEvent, WaitForMultipleObjects};

/// Handles one helper thread waits on, besides its control event.
const PER_THREAD: usize = 63;

/// What a group's thread is told.
struct GroupState {
    /// (id, handle, armed): an unarmed handle was reported and waits for
    /// its re-arm.
    entries: Vec<(u64, RawHandle, bool)>,
    stop: bool,
}

// SAFETY: a HANDLE is a process-wide value usable from any thread; the
// caller of `EventWaiter::add` keeps it open until it removes it.
unsafe impl Send for GroupState {}

struct Group {
    state: Mutex<GroupState>,
    /// An auto-reset event: set after each change, so the thread waits anew.
    control: OwnedHandle,
}

/// The helper threads of one reactor.
pub(crate) struct EventWaiter {
    groups: Vec<Arc<Group>>,
    report: Arc<dyn Fn(u64) + Send + Sync>,
}

impl std::fmt::Debug for EventWaiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventWaiter").field("threads", &self.groups.len()).finish()
    }
}

fn lock(state: &Mutex<GroupState>) -> MutexGuard<'_, GroupState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Group {
    fn changed(&self) {
        // SAFETY: the control event is open for as long as the group lives.
        unsafe { SetEvent(self.control.as_raw_handle()) };
    }
}

impl EventWaiter {
    /// No threads yet; `report(id)` runs on a helper thread when handle `id`
    /// is signalled.
    pub(crate) fn new(report: Arc<dyn Fn(u64) + Send + Sync>) -> EventWaiter {
        EventWaiter { groups: Vec::new(), report }
    }

    /// Starts waiting on `handle` as `id`. The caller keeps the handle open
    /// until [`remove`](EventWaiter::remove).
    pub(crate) fn add(&mut self, id: u64, handle: RawHandle) -> io::Result<()> {
        for group in &self.groups {
            let mut state = lock(&group.state);
            if state.entries.len() < PER_THREAD {
                state.entries.push((id, handle, true));
                drop(state);
                group.changed();
                return Ok(());
            }
        }
        let group = Arc::new(Group {
            state: Mutex::new(GroupState { entries: vec![(id, handle, true)], stop: false }),
            control: new_auto_reset_event()?,
        });
        let (waiting, report) = (Arc::clone(&group), Arc::clone(&self.report));
        // Detached: see `Drop`.
        std::thread::Builder::new()
            .name("torque-events".into())
            .spawn(move || wait_loop(&waiting, &*report))?;
        self.groups.push(group);
        Ok(())
    }

    /// Stops waiting on `id` (a report already on its way is the caller's to ignore).
    pub(crate) fn remove(&mut self, id: u64) {
        for group in &self.groups {
            let mut state = lock(&group.state);
            let before = state.entries.len();
            state.entries.retain(|&(entry, _, _)| entry != id);
            if state.entries.len() != before {
                drop(state);
                group.changed();
                return;
            }
        }
    }

    /// Waits on `id` again after its report was handled.
    pub(crate) fn rearm(&self, id: u64) {
        for group in &self.groups {
            let mut state = lock(&group.state);
            if let Some(entry) = state.entries.iter_mut().find(|(entry, _, _)| *entry == id) {
                entry.2 = true;
                drop(state);
                group.changed();
                return;
            }
        }
    }
}

/// Tells each thread to stop, without joining it: a reactor may be dropped
/// in a thread-local destructor, which Windows runs under the loader lock
/// that a thread's exit needs too, so a join there would never return. The
/// threads own what they use (their group, the report callback) and leave
/// at their next look at the state, which the control event makes at once.
impl Drop for EventWaiter {
    fn drop(&mut self) {
        for group in &self.groups {
            lock(&group.state).stop = true;
            group.changed();
        }
    }
}

fn new_auto_reset_event() -> io::Result<OwnedHandle> {
    // SAFETY: no security attributes, auto-reset, unsignalled, no name.
    let event = unsafe { CreateEventW(std::ptr::null(), 0, 0, std::ptr::null()) };
    if event.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: CreateEventW succeeded: an open handle nobody else owns.
    Ok(unsafe { OwnedHandle::from_raw_handle(event) })
}

/// One helper thread: wait on the armed handles and the control event;
/// report a signalled handle and disarm it.
fn wait_loop(group: &Group, report: &(dyn Fn(u64) + Send + Sync)) {
    let mut handles: Vec<HANDLE> = Vec::with_capacity(PER_THREAD + 1);
    let mut ids: Vec<u64> = Vec::with_capacity(PER_THREAD);
    loop {
        handles.clear();
        ids.clear();
        handles.push(group.control.as_raw_handle());
        {
            let state = lock(&group.state);
            if state.stop {
                return;
            }
            for &(id, handle, armed) in &state.entries {
                if armed {
                    handles.push(handle);
                    ids.push(id);
                }
            }
        }
        // SAFETY: `handles` holds at most 64 handles: the control event and
        // ones the callers keep open while registered.
        let woke = unsafe { WaitForMultipleObjects(handles.len() as u32, handles.as_ptr(), 0, INFINITE) };
        if woke == WAIT_FAILED {
            // A handle was closed while registered: wait for the change
            // that removes it instead of spinning.
            tracing::warn!(error = %io::Error::last_os_error(), "waiting on Win32 handles failed");
            // SAFETY: as above, the control event alone.
            unsafe { WaitForMultipleObjects(1, handles.as_ptr(), 0, INFINITE) };
            continue;
        }
        let index = woke.wrapping_sub(WAIT_OBJECT_0) as usize;
        if index == 0 || index >= handles.len() {
            continue; // the control event (or an abandoned mutex's code): look again
        }
        let id = ids[index - 1];
        let still_there = {
            let mut state = lock(&group.state);
            match state.entries.iter_mut().find(|(entry, _, _)| *entry == id) {
                Some(entry) => {
                    entry.2 = false;
                    true
                }
                None => false,
            }
        };
        if still_there {
            report(id);
        }
    }
}
