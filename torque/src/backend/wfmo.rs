//! Windows `WaitForMultipleObjects`, as Twisted's win32eventreactor: each
//! socket's network events go to an event object (`WSAEventSelect`), and one
//! `MsgWaitForMultipleObjectsEx` waits on those, the waker's event and the
//! thread's window messages, so a Win32 GUI runs on the reactor's thread.
//!
//! Level-triggered like the other backends, although Winsock records each
//! network event once until the call that re-enables it (a `recv` that
//! leaves data, a `send` that would block): the sockets that reported in the
//! last wait are asked again, all in one zero-timeout `WSAPoll`, before the
//! next, so what still holds (unread data, room to send, an end of the
//! connection, which `FD_CLOSE` tells once) is reported again. A writer is
//! asked only after the socket said it could take a write, never polled
//! otherwise.
//!
//! One wait takes at most 64 handles (`MAXIMUM_WAIT_OBJECTS`; 63 with the
//! message queue); the waker holds one, so a reactor holds 62 sockets
//! (`BackendInfo::most_registrations`) and the 63rd is refused with an
//! error that says so. Sockets only: other handles go through
//! `Reactor::add_event`, whose helper threads have no such limit.

use super::{BackendInfo, BackendKind, ChildExit, Entry, IoModel, SignalDelivery, Status, Wake};

/// Sockets one wait can watch: 64 handles, less the message queue and the waker.
const MOST_SOCKETS: usize = 62;

const INFO: BackendInfo = BackendInfo {
    kind: BackendKind::Wfmo,
    name: "wfmo",
    summary: "Windows WaitForMultipleObjects: sockets through WSAEventSelect, window messages in the same wait; 62 sockets at most",
    status: Status::Experimental,
    platforms: "Windows",
    io_model: IoModel::Readiness,
    fd_limit: None,
    most_registrations: Some(MOST_SOCKETS),
    wait_cost: "O(ready handles), 62 sockets at most",
    reports_closed_fds: false,
    child_exit: ChildExit::ProcessHandle,
    wake: Wake::Event,
    signals: SignalDelivery::ConsoleHandler,
    features: super::WINDOWS_FEATURES,
};

#[cfg(windows)]
pub(super) const ENTRY: Entry = Entry { info: &INFO, open: Some(imp::open) };
#[cfg(not(windows))]
pub(super) const ENTRY: Entry = Entry { info: &INFO, open: None };

#[cfg(windows)]
mod imp {
    use std::io;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use windows_sys::Win32::Foundation::{HANDLE, WAIT_FAILED, WAIT_OBJECT_0, WAIT_TIMEOUT};
    use windows_sys::Win32::Networking::WinSock::{
        FD_ACCEPT, FD_CLOSE, FD_CONNECT, FD_CONNECT_BIT, FD_OOB, FD_READ, FD_WRITE, POLLERR, POLLHUP,
        POLLNVAL, POLLRDNORM, POLLWRNORM, SOCKET, WSACloseEvent, WSACreateEvent, WSAEVENT,
        WSAEnumNetworkEvents, WSAEventSelect, WSANETWORKEVENTS, WSAPOLLFD, WSAPoll,
    };
    use windows_sys::Win32::System::Threading::{SetEvent, WaitForMultipleObjects};
    use windows_sys::Win32::UI::WindowsAndMessaging::{
        MWMO_INPUTAVAILABLE, MsgWaitForMultipleObjectsEx, QS_ALLINPUT,
    };

    use super::{INFO, MOST_SOCKETS};
    use crate::backend::{
        BackendInfo, Change, Event, Events, ForeignWait, Interest, Opened, OpenedSelector, Refused, Selector,
        Token, WaitSet,
    };
    use crate::error::ReactorError;
    use crate::sys::fd::RawFd;
    use crate::sys::{timeout_millis, waker::Waker};

    pub(super) fn open() -> Result<Opened, ReactorError> {
        let (waker, event) = Waker::new_event().map_err(ReactorError::Os)?;
        let waker = Arc::new(waker);
        let selector = WfmoSelector {
            handles: Handles(vec![event]),
            sockets: Vec::new(),
            waker: Arc::clone(&waker),
            polled: Vec::new(),
            polled_index: Vec::new(),
            interleaved: AtomicBool::new(false),
        };
        Ok(Opened { selector: OpenedSelector::Readiness(Box::new(selector)), waker })
    }

    /// The handles one wait takes: the waker's event first, then each
    /// socket's event in `sockets` order.
    struct Handles(Vec<HANDLE>);

    // SAFETY: a HANDLE is a process-wide value, not tied to the thread that
    // made it; the selector owns the events and closes them once.
    unsafe impl Send for Handles {}

    /// One registered socket.
    struct Registered {
        socket: SOCKET,
        token: Token,
        interest: Interest,
        /// Its event object (`handles[index + 1]`).
        event: HANDLE,
        /// It reported an event in the last wait: ask again before the next.
        again: bool,
    }

    // SAFETY: as for `Handles`.
    unsafe impl Send for Registered {}

    struct WfmoSelector {
        handles: Handles,
        sockets: Vec<Registered>,
        waker: Arc<Waker>,
        /// The `WSAPoll` array for the sockets asked again (kept, so a pass
        /// allocates nothing), with each one's index in `sockets`.
        polled: Vec<WSAPOLLFD>,
        polled_index: Vec<usize>,
        /// A helper thread waits on a copy of the handles (`interleave`):
        /// the program's own loop takes the window messages meanwhile, so
        /// the reactor's zero waits leave them alone.
        interleaved: AtomicBool,
    }

    /// The network events that stand for `interest`. `FD_CLOSE` always: a
    /// writer must hear that its peer went away.
    fn mask(interest: Interest) -> i32 {
        let mut mask = FD_CLOSE;
        if interest.read {
            mask |= FD_READ | FD_ACCEPT | FD_OOB;
        }
        if interest.write {
            mask |= FD_WRITE | FD_CONNECT;
        }
        mask as i32
    }

    /// Routes `socket`'s events for `interest` to `event`, recording what
    /// holds already (readable data, room to send, a pending connection).
    fn select(socket: SOCKET, event: HANDLE, interest: Interest) -> io::Result<()> {
        // SAFETY: `event` is an open event object the selector owns.
        if unsafe { WSAEventSelect(socket, event as WSAEVENT, mask(interest)) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    impl WfmoSelector {
        fn position(&self, fd: RawFd) -> Option<usize> {
            self.sockets.iter().position(|r| r.socket == fd as SOCKET)
        }

        fn add(&mut self, change: &Change) -> io::Result<()> {
            if self.sockets.len() >= MOST_SOCKETS {
                return Err(io::Error::other(format!(
                    "the wfmo backend waits on at most {MOST_SOCKETS} sockets (WaitForMultipleObjects \
                     takes 64 handles): spread the connections over more reactors"
                )));
            }
            // SAFETY: WSACreateEvent takes no arguments; a null result is an error.
            let event = unsafe { WSACreateEvent() } as HANDLE;
            if event.is_null() {
                return Err(io::Error::last_os_error());
            }
            let socket = change.fd as SOCKET;
            if let Err(e) = select(socket, event, change.new) {
                // SAFETY: the event was created above and is not shared.
                unsafe { WSACloseEvent(event as WSAEVENT) };
                return Err(e);
            }
            self.handles.0.push(event);
            self.sockets.push(Registered {
                socket,
                token: change.token,
                interest: change.new,
                event,
                // Asked in the next wait too: Winsock may not record again
                // what it told before (Wine does not), such as room to send.
                again: true,
            });
            Ok(())
        }

        fn remove(&mut self, index: usize) {
            let registered = self.sockets.swap_remove(index);
            self.handles.0.swap_remove(index + 1);
            // SAFETY: stops routing the socket's events (an error means it is
            // closed already), then closes the event the selector owns.
            unsafe {
                WSAEventSelect(registered.socket, 0, 0);
                WSACloseEvent(registered.event as WSAEVENT);
            }
        }

        /// Reads and clears socket `index`'s recorded network events, adding
        /// what they mean to `events`.
        fn collect(&mut self, index: usize, events: &mut Events) {
            let registered = &mut self.sockets[index];
            let mut happened = WSANETWORKEVENTS { lNetworkEvents: 0, iErrorCode: [0; 10] };
            // SAFETY: `happened` is valid for writes; the call also resets the event.
            if unsafe { WSAEnumNetworkEvents(registered.socket, registered.event as WSAEVENT, &mut happened) }
                != 0
            {
                // Closed behind the reactor's back: nothing more will come.
                events.push(Event {
                    token: registered.token,
                    readable: false,
                    writable: false,
                    invalid: true,
                });
                return;
            }
            let bits = happened.lNetworkEvents as u32;
            // An end or a failed connection reads as readable and writable:
            // the transport's read or SO_ERROR says which.
            let ended = bits & FD_CLOSE != 0
                || (bits & FD_CONNECT != 0 && happened.iErrorCode[FD_CONNECT_BIT as usize] != 0);
            let readable = ended || bits & (FD_READ | FD_ACCEPT | FD_OOB) != 0;
            let writable = ended || bits & (FD_WRITE | FD_CONNECT) != 0;
            let token = registered.token;
            let interest = registered.interest;
            push_merged(events, registered, readable && interest.read, writable && interest.write, token);
        }
    }

    impl WfmoSelector {
        /// Level-triggering: one zero-timeout `WSAPoll` over the sockets that
        /// reported last time, adding what still holds to `events`.
        fn ask_again(&mut self, events: &mut Events) -> io::Result<()> {
            self.polled.clear();
            self.polled_index.clear();
            for (index, registered) in self.sockets.iter_mut().enumerate() {
                if !std::mem::take(&mut registered.again) {
                    continue;
                }
                let mut wanted = 0;
                if registered.interest.read {
                    wanted |= POLLRDNORM;
                }
                if registered.interest.write {
                    wanted |= POLLWRNORM;
                }
                self.polled.push(WSAPOLLFD { fd: registered.socket, events: wanted, revents: 0 });
                self.polled_index.push(index);
            }
            if self.polled.is_empty() {
                return Ok(());
            }
            // SAFETY: `polled` holds `len` initialised entries WSAPoll fills in.
            let ready = unsafe { WSAPoll(self.polled.as_mut_ptr(), self.polled.len() as u32, 0) };
            if ready < 0 {
                return Err(io::Error::last_os_error());
            }
            for (entry, &index) in self.polled.iter().zip(&self.polled_index) {
                let registered = &mut self.sockets[index];
                if entry.revents & POLLNVAL != 0 {
                    events.push(Event {
                        token: registered.token,
                        readable: false,
                        writable: false,
                        invalid: true,
                    });
                    continue;
                }
                let ended = entry.revents & (POLLHUP | POLLERR) != 0;
                let readable = registered.interest.read && (ended || entry.revents & POLLRDNORM != 0);
                let writable = registered.interest.write && (ended || entry.revents & POLLWRNORM != 0);
                let token = registered.token;
                push_merged(events, registered, readable, writable, token);
            }
            Ok(())
        }
    }

    /// Adds a report for `registered` (or merges it into the one this wait
    /// already has for it), and marks it to be asked again next time.
    fn push_merged(
        events: &mut Events,
        registered: &mut Registered,
        readable: bool,
        writable: bool,
        token: Token,
    ) {
        if !readable && !writable {
            return;
        }
        registered.again = true;
        for i in 0..events.len() {
            if let Some(event) = events.get_mut(i)
                && event.token == token
            {
                event.readable |= readable;
                event.writable |= writable;
                return;
            }
        }
        events.push(Event { token, readable, writable, invalid: false });
    }

    /// `interleave`'s wait: blocks on a copy of the handles on a helper
    /// thread without touching them (the events are manual-reset); the
    /// reactor's thread then collects with a zero wait.
    struct HandlesWait(Handles);

    impl WaitSet for HandlesWait {
        fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
            events.clear();
            let handles = &self.0.0;
            // SAFETY: the handles were open when copied; one closed since (its
            // socket removed, which also wakes this wait) fails the wait,
            // which only ends it early: the reactor's thread sorts it out.
            unsafe {
                WaitForMultipleObjects(handles.len() as u32, handles.as_ptr(), 0, timeout_millis(timeout))
            };
            Ok(())
        }
    }

    impl Drop for WfmoSelector {
        fn drop(&mut self) {
            while !self.sockets.is_empty() {
                self.remove(self.sockets.len() - 1);
            }
        }
    }

    impl Selector for WfmoSelector {
        fn info(&self) -> &'static BackendInfo {
            &INFO
        }

        fn apply(&mut self, changes: &[Change], refused: &mut Vec<Refused>) {
            for change in changes {
                let found = self.position(change.fd);
                let result = match found {
                    None if change.new.is_empty() => Ok(()),
                    None => self.add(change),
                    Some(index) if change.new.is_empty() => {
                        self.remove(index);
                        Ok(())
                    }
                    Some(index) => {
                        // A direction now wanted may hold already, its event
                        // reported (and dropped) while unwanted: the next wait
                        // asks the socket in its one WSAPoll.
                        let registered = &mut self.sockets[index];
                        registered.token = change.token;
                        registered.interest = change.new;
                        registered.again = true;
                        select(registered.socket, registered.event, change.new)
                    }
                };
                if let Err(e) = result {
                    refused.push((change.token, e));
                }
            }
        }

        fn foreign_wait(&self) -> Option<ForeignWait> {
            self.interleaved.store(true, Ordering::Relaxed);
            if self.sockets.iter().any(|r| r.again) {
                // Sockets that reported last time are asked again by the next
                // zero wait: the helper must not sleep on them.
                // SAFETY: the waker's event is open while the selector lives.
                unsafe { SetEvent(self.handles.0[0]) };
            }
            Some(ForeignWait::ReapSnapshot(Box::new(HandlesWait(Handles(self.handles.0.clone())))))
        }

        fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
            events.clear();
            self.ask_again(events)?;
            let millis = if events.len() > 0 { 0 } else { timeout_millis(timeout) };
            // Interleaved, the reactor's thread only collects (zero waits); a
            // wait that may block means the program runs the reactor itself.
            let messages = timeout != Some(Duration::ZERO) || !self.interleaved.load(Ordering::Relaxed);
            if timeout != Some(Duration::ZERO) {
                self.interleaved.store(false, Ordering::Relaxed);
            }
            let count = self.handles.0.len() as u32;
            // SAFETY: `handles` holds `count` open handles (at most 63).
            let woke = unsafe {
                if messages {
                    MsgWaitForMultipleObjectsEx(
                        count,
                        self.handles.0.as_ptr(),
                        millis,
                        QS_ALLINPUT,
                        MWMO_INPUTAVAILABLE,
                    )
                } else {
                    WaitForMultipleObjects(count, self.handles.0.as_ptr(), 0, millis)
                }
            };
            match woke {
                WAIT_FAILED => return Err(io::Error::last_os_error()),
                WAIT_TIMEOUT => {}
                n if messages && n == WAIT_OBJECT_0 + count => {
                    events.push(Event {
                        token: Token::WINDOW_MESSAGES,
                        readable: true,
                        writable: false,
                        invalid: false,
                    });
                }
                n => {
                    // The lowest signalled handle; look for the others after it
                    // without waiting, so no socket starves the ones behind it.
                    let mut next = (n - WAIT_OBJECT_0) as usize;
                    while next < self.handles.0.len() {
                        if next == 0 {
                            self.waker.reset();
                        } else {
                            self.collect(next - 1, events);
                        }
                        next += 1;
                        if next >= self.handles.0.len() {
                            break;
                        }
                        let rest = &self.handles.0[next..];
                        // SAFETY: `rest` holds open handles; a zero wait only polls them.
                        let found = unsafe { WaitForMultipleObjects(rest.len() as u32, rest.as_ptr(), 0, 0) };
                        if found == WAIT_TIMEOUT || found == WAIT_FAILED {
                            break;
                        }
                        next += (found - WAIT_OBJECT_0) as usize;
                    }
                }
            }
            Ok(())
        }
    }
}
