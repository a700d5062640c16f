//! The iocp backend's selector: one completion port; connections' receives
//! and sends and listening sockets' accepts as overlapped operations on it;
//! every other socket's readiness as an AFD poll request answered on it; and
//! the waker's packets. See the module above for how it works.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io;
use std::os::windows::io::OwnedHandle;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use windows_sys::Win32::Foundation::{STATUS_CANCELLED, STATUS_SUCCESS};
use windows_sys::Win32::Networking::WinSock::{
    SIO_BASE_HANDLE, SOCKET, WSA_OPERATION_ABORTED, WSAECONNRESET,
};
use windows_sys::Win32::System::IO::OVERLAPPED_ENTRY;

use super::INFO;
use super::afd::{
    Afd, POLL_ABORT, POLL_ACCEPT, POLL_CONNECT_FAIL, POLL_DISCONNECT, POLL_LOCAL_CLOSE, POLL_RECEIVE,
    POLL_SEND, PollInfo,
};
use super::ops::{self, ConnectEx, Operation, OperationPool, Work};
use super::port::{self, CompletionPort};
use super::stream::{Listener, SEND_MAX, Stream};
use crate::backend::{
    BackendInfo, Change, Completions, Event, Events, ForeignWait, Interest, Opened, OpenedSelector,
    ReceivedBytes, Refused, Selector, Token, WaitSet,
};
use crate::error::ReactorError;
use crate::sys::fd::{OwnedFd, RawFd};
use crate::sys::{timeout_millis, waker::Waker};

/// Packets the waker posts (no operation).
const KEY_WAKE: usize = 1;
/// Packets of poll requests.
const KEY_POLL: usize = 2;
/// Packets of sockets' own operations (receives, sends, accepts).
const KEY_SOCKET: usize = 3;

/// Packets one wait takes at most.
const ENTRIES: usize = 256;

pub(super) fn open() -> Result<Opened, ReactorError> {
    let port = CompletionPort::new().map_err(ReactorError::Os)?;
    let afd =
        Afd::open().map_err(|e| ReactorError::BackendRefused { name: INFO.name, cause: e.to_string() })?;
    port.associate(afd.handle(), KEY_POLL).map_err(ReactorError::Os)?;
    let waker = Arc::new(Waker::new_port(port.shared(), KEY_WAKE));
    let selector = IocpSelector {
        port,
        afd,
        sockets: HashMap::new(),
        to_poll: Vec::new(),
        unread: Vec::new(),
        writable: Vec::new(),
        listening: Vec::new(),
        connecting: Vec::new(),
        connect_ex: None,
        // SAFETY: OVERLAPPED_ENTRY is plain data; all zeroes is a valid value.
        entries: vec![unsafe { std::mem::zeroed() }; ENTRIES],
        in_flight: 0,
        waker: Arc::clone(&waker),
        pending: Events::with_capacity(0),
        pool: OperationPool::default(),
        stash: Arc::new(Mutex::new(Vec::new())),
        interleaved: AtomicBool::new(false),
    };
    Ok(Opened { selector: OpenedSelector::Completion(Box::new(selector)), waker })
}

/// What the selector knows of one socket: its registration, its poll
/// request, and, if it is served by completions, their state.
struct SocketState {
    /// The base provider's socket, which a poll request names (the socket
    /// itself unless a layered provider wraps it).
    base: SOCKET,
    token: Token,
    /// What the reactor wants (empty: not registered).
    interest: Interest,
    /// The poll request in flight and the events it asks for.
    polling: Option<(*mut Operation, u32)>,
    /// In `to_poll` already.
    queued: bool,
    /// A connection's receives and sends.
    stream: Option<Stream>,
    /// A listening socket's accepts.
    listener: Option<Listener>,
    /// A connect by completion (`ConnectEx`).
    connect: Option<Connect>,
    /// Joined to the port (for good, as far as the kernel goes).
    associated: bool,
}

/// A socket's `ConnectEx`: in flight, then its result until taken.
struct Connect {
    operation: Option<*mut Operation>,
    result: Option<Result<(), i32>>,
}

impl SocketState {
    fn new(socket: SOCKET) -> io::Result<SocketState> {
        Ok(SocketState {
            base: base_socket(socket)?,
            token: Token::IGNORED,
            interest: Interest::NONE,
            polling: None,
            queued: false,
            stream: None,
            listener: None,
            connect: None,
            associated: false,
        })
    }

    /// What a poll request covers: what completions do not.
    fn poll_interest(&self) -> Interest {
        let await_room = self.stream.as_ref().is_some_and(|s| s.await_room);
        let completions = self.stream.is_some() || self.listener.is_some();
        Interest {
            read: self.interest.read && !completions,
            write: self.interest.write && self.connect.is_none() && (self.stream.is_none() || await_room),
        }
    }

    /// Whether the selector can forget it.
    fn unused(&self) -> bool {
        self.interest.is_empty()
            && self.stream.is_none()
            && self.listener.is_none()
            && self.connect.is_none()
            && !self.associated
    }
}

pub(super) struct IocpSelector {
    port: CompletionPort,
    afd: Afd,
    sockets: HashMap<SOCKET, SocketState>,
    /// Sockets whose poll request starts before the next wait: new ones,
    /// changed ones, and those whose last request just answered (so what
    /// still holds is reported again: level-triggered).
    to_poll: Vec<SOCKET>,
    /// Connections whose received bytes may wait to be announced.
    unread: Vec<SOCKET>,
    /// Connections whose send result (or room) may wait to be announced.
    writable: Vec<SOCKET>,
    /// Listening sockets served by accepts.
    listening: Vec<SOCKET>,
    /// Sockets connecting by completion.
    connecting: Vec<SOCKET>,
    /// `ConnectEx`, once looked up.
    connect_ex: Option<ConnectEx>,
    entries: Vec<OVERLAPPED_ENTRY>,
    /// Operations started whose packets have not been taken.
    in_flight: usize,
    waker: Arc<Waker>,
    /// Reports found outside a wait (a poll that could not start), for the next.
    pending: Events,
    /// Finished operations' boxes, for the next ones.
    pool: OperationPool,
    /// Packets `interleave`'s helper thread took from the port, for this
    /// thread's next wait to handle.
    stash: Arc<Mutex<Vec<Packet>>>,
    /// A helper thread waits on the port (`interleave`).
    interleaved: AtomicBool,
}

/// A packet taken on another thread. Its pointers are only carried there;
/// they are followed on the reactor's thread.
#[derive(Clone, Copy)]
struct Packet(OVERLAPPED_ENTRY);

// SAFETY: see the type: plain values in transit, dereferenced by the selector only.
unsafe impl Send for Packet {}

// SAFETY: the raw pointers are operations this selector alone owns (the
// kernel writes them only until their packets arrive, on whatever thread
// waits); handles are process-wide.
unsafe impl Send for IocpSelector {}

/// The poll events that stand for `interest`. Failures always: a writer
/// must hear that its connection broke.
fn poll_events(interest: Interest) -> u32 {
    let mut events = POLL_ABORT | POLL_CONNECT_FAIL | POLL_LOCAL_CLOSE;
    if interest.read {
        events |= POLL_RECEIVE | POLL_ACCEPT | POLL_DISCONNECT;
    }
    if interest.write {
        events |= POLL_SEND;
    }
    events
}

/// `socket`'s base provider socket.
fn base_socket(socket: SOCKET) -> io::Result<SOCKET> {
    let mut base: SOCKET = 0;
    ops::ioctl::<(), _>(socket, SIO_BASE_HANDLE, None, &mut base)?;
    Ok(base)
}

/// Adds `socket` to `list` unless `flag` says it is there.
fn list(list: &mut Vec<SOCKET>, flag: &mut bool, socket: SOCKET) {
    if !*flag {
        *flag = true;
        list.push(socket);
    }
}

impl IocpSelector {
    /// Joins `socket` to the port, so its operations' packets come here.
    /// The kernel keeps a socket on one port for good: joining again fails,
    /// which is fine when this selector joined it (`associated`), and means
    /// another port has it otherwise (a socket shared with another reactor).
    fn join_port(&mut self, socket: SOCKET) -> io::Result<()> {
        self.state(socket)?;
        let state = self.sockets.get_mut(&socket).expect("made above");
        match self.port.associate(socket as _, KEY_SOCKET) {
            Ok(()) => {
                state.associated = true;
                Ok(())
            }
            Err(_) if state.associated => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn state(&mut self, socket: SOCKET) -> io::Result<&mut SocketState> {
        if let Entry::Vacant(slot) = self.sockets.entry(socket) {
            slot.insert(SocketState::new(socket)?);
        }
        Ok(self.sockets.get_mut(&socket).expect("inserted above"))
    }

    /// Queues a poll request for `socket` if it needs one, replacing one in
    /// flight that asks for less than needed.
    fn refresh_poll(&mut self, socket: SOCKET) {
        let Some(state) = self.sockets.get_mut(&socket) else { return };
        let wanted = state.poll_interest();
        if wanted.is_empty() {
            return; // one in flight answers and is dropped
        }
        let events = poll_events(wanted);
        if state.polling.is_some_and(|(_, asked)| asked & events != events) {
            Self::cancel_poll(&self.afd, state);
        }
        list(&mut self.to_poll, &mut state.queued, socket);
    }

    /// Cancels `state`'s poll request; its packet frees it later.
    fn cancel_poll(afd: &Afd, state: &mut SocketState) {
        if let Some((operation, _)) = state.polling.take() {
            // SAFETY: the operation is in flight, so its block is in place.
            unsafe { afd.cancel(Operation::status_block(operation)) };
        }
    }

    fn change(&mut self, change: &Change) -> io::Result<()> {
        let socket = change.fd as SOCKET;
        if change.new.is_empty() && !self.sockets.contains_key(&socket) {
            return Ok(());
        }
        self.state(socket)?;
        let state = self.sockets.get_mut(&socket).expect("made above");
        state.token = change.token;
        state.interest = change.new;
        if state.unused() {
            let mut state = self.sockets.remove(&socket).expect("present");
            Self::cancel_poll(&self.afd, &mut state);
            return Ok(());
        }
        if let Some(stream) = &mut state.stream {
            if change.new.read {
                if stream.has_unread() {
                    list(&mut self.unread, &mut stream.listed_unread, socket);
                }
                self.start_receive(socket);
            }
        } else if state.listener.is_some() && change.new.read {
            list_listener(&mut self.listening, socket);
            self.start_accepts(socket);
        }
        self.refresh_poll(socket);
        Ok(())
    }

    /// Starts a receive on connection `socket` if it wants one.
    fn start_receive(&mut self, socket: SOCKET) {
        let Some(state) = self.sockets.get_mut(&socket) else { return };
        let reading = state.interest.read;
        let Some(stream) = state.stream.as_mut() else { return };
        if !reading || !stream.may_receive() {
            return;
        }
        let operation = self.pool.take(socket, Work::Receive(stream.receive_buffer()));
        match ops::start_receive(operation) {
            Ok(pointer) => {
                stream.receive = Some(pointer);
                self.in_flight += 1;
            }
            Err((error, operation)) => {
                self.pool.give_back(operation);
                stream.receive_failed(error);
                list(&mut self.unread, &mut stream.listed_unread, socket);
            }
        }
    }

    /// Starts accepts on listening `socket` while it wants connections.
    fn start_accepts(&mut self, socket: SOCKET) {
        let Some(state) = self.sockets.get_mut(&socket) else { return };
        let accepting = state.interest.read;
        let Some(listener) = state.listener.as_mut() else { return };
        while accepting && listener.may_accept() {
            let pool = &mut self.pool;
            let started = ops::accept_work(listener.family).and_then(|work| {
                ops::start_accept(pool.take(socket, work)).map_err(|(error, operation)| {
                    pool.give_back(operation);
                    error
                })
            });
            match started {
                Ok(pointer) => {
                    listener.accepts.push(pointer);
                    self.in_flight += 1;
                }
                Err(error) => {
                    listener.queue.push_back(Err(error.raw_os_error().unwrap_or(0)));
                    break;
                }
            }
        }
    }

    /// Starts the poll requests queued, reporting sockets that cannot be
    /// polled (closed behind the reactor's back) as invalid.
    fn start_polls(&mut self, events: &mut Events) {
        for socket in std::mem::take(&mut self.to_poll) {
            let Some(state) = self.sockets.get_mut(&socket) else { continue };
            state.queued = false;
            let wanted = state.poll_interest();
            if state.polling.is_some() || wanted.is_empty() {
                continue;
            }
            let asked = poll_events(wanted);
            let pointer = Box::into_raw(self.pool.take(socket, Work::Poll(PollInfo::new(state.base, asked))));
            // SAFETY: the operation is boxed and stays in place until its
            // packet is taken (`finish`), which frees it.
            let started = unsafe {
                let Work::Poll(info) = &mut (*pointer).work else { unreachable!("a poll") };
                self.afd.poll(Operation::status_block(pointer), info, pointer.cast())
            };
            match started {
                Ok(()) => {
                    state.polling = Some((pointer, asked));
                    self.in_flight += 1;
                }
                Err(_) => {
                    // SAFETY: the request did not start; the box is ours again.
                    self.pool.give_back(unsafe { Box::from_raw(pointer) });
                    events.push(Event {
                        token: state.token,
                        readable: false,
                        writable: false,
                        invalid: true,
                    });
                }
            }
        }
    }

    /// Handles one packet.
    fn finish(&mut self, entry: &OVERLAPPED_ENTRY, events: &mut Events) {
        if entry.lpCompletionKey == KEY_WAKE || entry.lpOverlapped.is_null() {
            self.waker.reset();
            return;
        }
        let pointer = entry.lpOverlapped as *mut Operation;
        self.in_flight -= 1;
        // SAFETY: every packet with an OVERLAPPED is an operation this
        // selector boxed and started; its packet arriving ends the kernel's
        // use of it, so the box is ours again.
        let mut operation = unsafe { Box::from_raw(pointer) };
        self.complete(&mut operation, pointer, events);
        self.pool.give_back(operation);
    }

    /// What one finished operation means for its socket (nothing if the
    /// socket no longer holds it: cancelled, or its socket closed).
    fn complete(&mut self, operation: &mut Operation, pointer: *mut Operation, events: &mut Events) {
        let socket = operation.socket;
        let status = operation.status();
        let Some(state) = self.sockets.get_mut(&socket) else { return };
        match &mut operation.work {
            Work::Poll(info) => {
                if state.polling.map(|(current, _)| current) != Some(pointer) {
                    return; // cancelled: replaced or removed
                }
                state.polling = None;
                if status != STATUS_CANCELLED {
                    let reported = if status == STATUS_SUCCESS { info.reported() } else { POLL_ABORT };
                    if reported & POLL_LOCAL_CLOSE != 0 {
                        // Closed without being removed first: nothing more comes.
                        events.push(Event {
                            token: state.token,
                            readable: false,
                            writable: false,
                            invalid: true,
                        });
                        return;
                    }
                    let wanted = state.poll_interest();
                    let failed = reported & (POLL_ABORT | POLL_CONNECT_FAIL) != 0;
                    let readable = wanted.read
                        && (failed || reported & (POLL_RECEIVE | POLL_ACCEPT | POLL_DISCONNECT) != 0);
                    let writable = wanted.write && (failed || reported & POLL_SEND != 0);
                    match state.stream.as_mut() {
                        // Room for a direct write: announced like a send's end.
                        Some(stream) if writable => {
                            stream.await_room = false;
                            stream.wants_writable = true;
                            list(&mut self.writable, &mut stream.listed_writable, socket);
                        }
                        Some(_) => {}
                        None if readable || writable => {
                            events.push(Event { token: state.token, readable, writable, invalid: false });
                        }
                        None => {}
                    }
                }
                self.refresh_poll(socket);
            }
            Work::Receive(_) => {
                let Some(stream) = state.stream.as_mut().filter(|s| s.receive == Some(pointer)) else {
                    return;
                };
                stream.receive = None;
                let result = operation.result();
                let Work::Receive(buffer) = std::mem::replace(&mut operation.work, Work::Connect) else {
                    return;
                };
                match result {
                    Err(e) if e.raw_os_error() == Some(WSA_OPERATION_ABORTED) => {}
                    result => {
                        stream.received(result, buffer);
                        list(&mut self.unread, &mut stream.listed_unread, socket);
                    }
                }
                self.start_receive(socket);
            }
            Work::Send(_) => {
                let Some(stream) = state.stream.as_mut().filter(|s| s.send == Some(pointer)) else { return };
                stream.send = None;
                let result = operation.result().map_err(|e| e.raw_os_error().unwrap_or(0));
                let Work::Send(buffer) = std::mem::replace(&mut operation.work, Work::Connect) else {
                    return;
                };
                stream.sent = Some((result, buffer));
                if stream.send_pending() {
                    list(&mut self.writable, &mut stream.listed_writable, socket);
                }
            }
            Work::Connect => {
                let Some(connect) = state.connect.as_mut().filter(|c| c.operation == Some(pointer)) else {
                    return;
                };
                connect.operation = None;
                let result = operation.result().and_then(|_| ops::finish_connect(socket));
                connect.result = Some(result.map_err(|e| e.raw_os_error().unwrap_or(0)));
                if !self.connecting.contains(&socket) {
                    self.connecting.push(socket);
                }
            }
            Work::Accept { .. } => {
                let Some(listener) = state.listener.as_mut() else { return };
                let Some(index) = listener.accepts.iter().position(|&p| p == pointer) else { return };
                listener.accepts.swap_remove(index);
                let result = operation.result();
                let Work::Accept { socket: accepted, .. } =
                    std::mem::replace(&mut operation.work, Work::Connect)
                else {
                    return;
                };
                match result.and_then(|_| ops::finish_accept(socket, &accepted)) {
                    Ok(()) => listener.queue.push_back(Ok(accepted)),
                    // A connection gone before it was accepted; or cancelled.
                    Err(e) if matches!(e.raw_os_error(), Some(WSAECONNRESET | WSA_OPERATION_ABORTED)) => {}
                    Err(e) => listener.queue.push_back(Err(e.raw_os_error().unwrap_or(0))),
                }
                self.start_accepts(socket);
            }
        }
    }

    /// Announces what completions left for the transports and ports: bytes
    /// received (level-triggered, while reading is wanted), sends finished
    /// or room found, connections accepted.
    fn announce(&mut self, events: &mut Events) {
        let sockets = &mut self.sockets;
        self.unread.retain(|socket| {
            let Some(state) = sockets.get_mut(socket) else { return false };
            let Some(stream) = state.stream.as_mut() else { return false };
            if !stream.has_unread() || !state.interest.read {
                stream.listed_unread = false;
                return false;
            }
            events.push(Event { token: state.token, readable: true, writable: false, invalid: false });
            true
        });
        self.writable.retain(|socket| {
            let Some(state) = sockets.get_mut(socket) else { return false };
            let Some(stream) = state.stream.as_mut() else { return false };
            if !stream.send_pending() {
                stream.listed_writable = false;
                return false;
            }
            if stream.can_send(state.interest.write) {
                events.push(Event { token: state.token, readable: false, writable: true, invalid: false });
            }
            true
        });
        self.connecting.retain(|socket| {
            let Some(state) = sockets.get(socket) else { return false };
            if state.connect.as_ref().is_none_or(|c| c.result.is_none()) {
                return false;
            }
            if state.interest.write {
                events.push(Event { token: state.token, readable: false, writable: true, invalid: false });
            }
            true
        });
        self.listening.retain(|socket| {
            let Some(state) = sockets.get(socket) else { return false };
            let Some(listener) = state.listener.as_ref() else { return false };
            if state.interest.read && !listener.queue.is_empty() {
                events.push(Event { token: state.token, readable: true, writable: false, invalid: false });
            }
            true
        });
    }

    /// Whether `announce` has something to say (then the wait does not block).
    fn announcement_waits(&self) -> bool {
        let sockets = &self.sockets;
        self.unread.iter().any(|s| {
            sockets
                .get(s)
                .is_some_and(|st| st.interest.read && st.stream.as_ref().is_some_and(Stream::has_unread))
        }) || self.writable.iter().any(|s| {
            sockets.get(s).is_some_and(|st| st.stream.as_ref().is_some_and(|x| x.can_send(st.interest.write)))
        }) || self.connecting.iter().any(|s| {
            sockets.get(s).is_some_and(|st| {
                st.interest.write && st.connect.as_ref().is_some_and(|c| c.result.is_some())
            })
        }) || self.listening.iter().any(|s| {
            sockets.get(s).is_some_and(|st| {
                st.interest.read && st.listener.as_ref().is_some_and(|l| !l.queue.is_empty())
            })
        })
    }
}

fn list_listener(listening: &mut Vec<SOCKET>, socket: SOCKET) {
    if !listening.contains(&socket) {
        listening.push(socket);
    }
}

impl IocpSelector {
    /// Handles the packets `interleave`'s helper thread took.
    fn finish_stashed(&mut self, events: &mut Events) {
        if !self.interleaved.load(Ordering::Relaxed) {
            return;
        }
        let stashed = std::mem::take(&mut *self.stash.lock().unwrap_or_else(|e| e.into_inner()));
        for packet in &stashed {
            self.finish(&packet.0, events);
        }
    }
}

impl Drop for IocpSelector {
    fn drop(&mut self) {
        for (&socket, state) in &mut self.sockets {
            Self::cancel_poll(&self.afd, state);
            if state.stream.is_some() || state.listener.is_some() || state.connect.is_some() {
                ops::cancel_all(socket);
            }
        }
        self.sockets.clear();
        // The kernel owns each operation until its packet arrives: collect
        // them (cancelled, they come at once), and leak any that never do.
        let mut events = Events::with_capacity(0);
        let mut rounds = 0;
        while self.in_flight > 0 && rounds < 50 {
            rounds += 1;
            // An `interleave` helper may have taken some of the packets.
            self.finish_stashed(&mut events);
            if self.in_flight == 0 {
                break;
            }
            let mut entries = std::mem::take(&mut self.entries);
            let Ok(taken) = self.port.wait(&mut entries, 100) else { break };
            for entry in &entries[..taken] {
                self.finish(entry, &mut events);
            }
            self.entries = entries;
        }
    }
}

impl Selector for IocpSelector {
    fn info(&self) -> &'static BackendInfo {
        &INFO
    }

    fn apply(&mut self, changes: &[Change], refused: &mut Vec<Refused>) {
        for change in changes {
            if let Err(e) = self.change(change)
                && change.token != Token::IGNORED
            {
                refused.push((change.token, e));
            }
        }
        self.flush();
    }

    /// Starts the queued poll requests, so a wait on another thread
    /// (`interleave`) covers them; and if something is already there to
    /// report, wakes that wait at once.
    fn flush(&mut self) {
        let mut events = std::mem::take(&mut self.pending);
        self.start_polls(&mut events);
        let report_waits = events.len() > 0 || self.announcement_waits();
        self.pending = events;
        if report_waits && self.interleaved.load(Ordering::Relaxed) {
            self.port.post(KEY_WAKE);
        }
    }

    fn foreign_wait(&self) -> Option<ForeignWait> {
        self.interleaved.store(true, Ordering::Relaxed);
        // What waits already (found before this wait was asked for) must not
        // wait for the helper's timeout.
        if self.pending.len() > 0 || self.announcement_waits() {
            self.port.post(KEY_WAKE);
        }
        Some(ForeignWait::Reap(Box::new(PortWait {
            port: self.port.shared(),
            stash: Arc::clone(&self.stash),
            entries: Vec::new(),
        })))
    }

    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        for index in 0..self.pending.len() {
            if let Some(event) = self.pending.get(index) {
                events.push(event);
            }
        }
        self.pending.clear();
        self.start_polls(events);
        self.finish_stashed(events);
        let millis = if events.len() > 0 || self.announcement_waits() { 0 } else { timeout_millis(timeout) };
        let mut entries = std::mem::take(&mut self.entries);
        let taken = self.port.wait(&mut entries, millis);
        if let Ok(taken) = taken {
            for entry in &entries[..taken] {
                self.finish(entry, events);
            }
        }
        self.entries = entries;
        self.announce(events);
        taken.map(|_| ())
    }
}

impl Completions for IocpSelector {
    fn as_selector(&mut self) -> &mut dyn Selector {
        self
    }

    fn as_selector_ref(&self) -> &dyn Selector {
        self
    }

    fn stream_completions(&mut self, fd: RawFd) -> bool {
        let socket = fd as SOCKET;
        if self.join_port(socket).is_err() {
            return false;
        }
        if let Some(state) = self.sockets.get_mut(&socket) {
            state.stream = Some(Stream::new());
        }
        true
    }

    fn take_received(&mut self, fd: RawFd, out: &mut [u8]) -> Option<io::Result<usize>> {
        let socket = fd as SOCKET;
        let stream = self.sockets.get_mut(&socket)?.stream.as_mut()?;
        let taken = stream.take(out);
        self.start_receive(socket);
        Some(taken)
    }

    fn lend_received(&mut self, _fd: RawFd) -> Option<ReceivedBytes> {
        None // each receive has its own buffer: copied out by `take_received`
    }

    fn give_back_received(&mut self, _bytes: ReceivedBytes) {}

    fn peek_received(&mut self, fd: RawFd) -> Option<io::Result<usize>> {
        Some(self.sockets.get(&(fd as SOCKET))?.stream.as_ref()?.peek())
    }

    fn send_lent(&mut self, fd: RawFd, buffer: Vec<u8>, offset: usize) -> Result<(), (io::Error, Vec<u8>)> {
        let socket = fd as SOCKET;
        let Some(stream) = self.sockets.get_mut(&socket).and_then(|s| s.stream.as_mut()) else {
            return Err((io::ErrorKind::Unsupported.into(), buffer));
        };
        if stream.send.is_some() || stream.sent.is_some() || offset >= buffer.len() {
            return Err((io::ErrorKind::WouldBlock.into(), buffer));
        }
        let len = (buffer.len() - offset).min(SEND_MAX);
        match ops::start_send(self.pool.take(socket, Work::Send(buffer)), offset, len) {
            Ok(pointer) => {
                stream.send = Some(pointer);
                stream.send_len = len;
                // This send's end announces the writer, not a poll for room.
                stream.await_room = false;
                self.in_flight += 1;
                Ok(())
            }
            Err((error, mut operation)) => {
                let Work::Send(buffer) = std::mem::replace(&mut operation.work, Work::Connect) else {
                    unreachable!("a send")
                };
                self.pool.give_back(operation);
                Err((error, buffer))
            }
        }
    }

    fn await_room(&mut self, fd: RawFd) {
        let socket = fd as SOCKET;
        let Some(stream) = self.sockets.get_mut(&socket).and_then(|s| s.stream.as_mut()) else { return };
        if !stream.await_room {
            stream.await_room = true;
            self.refresh_poll(socket);
        }
    }

    fn notify_writable(&mut self, fd: RawFd) {
        let socket = fd as SOCKET;
        let Some(stream) = self.sockets.get_mut(&socket).and_then(|s| s.stream.as_mut()) else { return };
        stream.wants_writable = true;
        list(&mut self.writable, &mut stream.listed_writable, socket);
    }

    fn send_done(&mut self, fd: RawFd) -> Option<(io::Result<usize>, Vec<u8>)> {
        // The transport is writing now: it asks again if it still wants to —
        // unless a send started since this event was announced: the ask is
        // for that send's end, so it stays.
        let stream = self.sockets.get_mut(&(fd as SOCKET))?.stream.as_mut()?;
        if stream.send.is_none() {
            stream.wants_writable = false;
        }
        self.take_send_result(fd)
    }

    fn take_send_result(&mut self, fd: RawFd) -> Option<(io::Result<usize>, Vec<u8>)> {
        let stream = self.sockets.get_mut(&(fd as SOCKET))?.stream.as_mut()?;
        let (result, buffer) = stream.sent.take()?;
        Some((result.map_err(io::Error::from_raw_os_error), buffer))
    }

    fn accept_completions(&mut self, fd: RawFd) -> bool {
        let socket = fd as SOCKET;
        self.forget_completions(fd);
        let Ok(family) = ops::family(socket) else { return false };
        if self.join_port(socket).is_err() {
            return false; // another reactor's port has it (a shared listening socket)
        }
        if let Some(state) = self.sockets.get_mut(&socket) {
            state.listener = Some(Listener::new(family));
        }
        list_listener(&mut self.listening, socket);
        true
    }

    fn take_accepted(&mut self, fd: RawFd) -> Option<io::Result<OwnedFd>> {
        let socket = fd as SOCKET;
        let listener = self.sockets.get_mut(&socket)?.listener.as_mut()?;
        let taken = listener.queue.pop_front();
        self.start_accepts(socket);
        Some(match taken {
            Some(Ok(connection)) => Ok(connection),
            Some(Err(code)) => Err(io::Error::from_raw_os_error(code)),
            None => Err(io::ErrorKind::WouldBlock.into()),
        })
    }

    fn start_connect(&mut self, fd: RawFd, address: &socket2::SockAddr) -> Option<io::Result<()>> {
        let socket = fd as SOCKET;
        if !address.is_ipv4() && !address.is_ipv6() {
            return None;
        }
        let connect_ex = match self.connect_ex {
            Some(function) => function,
            None => match ConnectEx::find(socket) {
                Ok(function) => *self.connect_ex.insert(function),
                Err(_) => return None, // connect(2) and readiness, then
            },
        };
        if let Err(e) = self.join_port(socket) {
            return Some(Err(e));
        }
        let operation = self.pool.take(socket, Work::Connect);
        match ops::start_connect(connect_ex, operation, address.as_ptr().cast(), address.len()) {
            Ok(pointer) => {
                self.in_flight += 1;
                let state = self.sockets.get_mut(&socket).expect("joined above");
                state.connect = Some(Connect { operation: Some(pointer), result: None });
                self.refresh_poll(socket);
                Some(Ok(()))
            }
            Err((error, operation)) => {
                self.pool.give_back(operation);
                Some(Err(error))
            }
        }
    }

    fn take_connect_result(&mut self, fd: RawFd) -> Option<io::Result<()>> {
        let state = self.sockets.get_mut(&(fd as SOCKET))?;
        let result = state.connect.as_ref()?.result?;
        state.connect = None;
        Some(result.map_err(io::Error::from_raw_os_error))
    }

    fn forget_completions(&mut self, fd: RawFd) {
        let socket = fd as SOCKET;
        let Some(state) = self.sockets.get_mut(&socket) else { return };
        let stream = state.stream.take();
        let listener = state.listener.take();
        let connect = state.connect.take();
        // Its owner closes it next: a later socket with the same number is
        // joined anew.
        state.associated = false;
        if stream.as_ref().is_some_and(|s| s.receive.is_some() || s.send.is_some())
            || listener.as_ref().is_some_and(|l| !l.accepts.is_empty())
            || connect.as_ref().is_some_and(|c| c.operation.is_some())
        {
            // Their packets still come, find no owner, and free what they
            // hold (a send's buffer, an accept's socket).
            ops::cancel_all(socket);
        }
        if state.unused() {
            let mut state = self.sockets.remove(&socket).expect("present");
            Self::cancel_poll(&self.afd, &mut state);
        } else {
            self.refresh_poll(socket);
        }
    }
}

/// `interleave`'s wait: blocks on the port on a helper thread and keeps what
/// it took for the reactor's thread, whose zero wait then handles it.
struct PortWait {
    port: Arc<OwnedHandle>,
    stash: Arc<Mutex<Vec<Packet>>>,
    entries: Vec<OVERLAPPED_ENTRY>,
}

// SAFETY: the entries buffer is only written by the wait on this thread and
// copied out as `Packet`s; the port handle is process-wide.
unsafe impl Send for PortWait {}

impl WaitSet for PortWait {
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        if self.entries.is_empty() {
            // SAFETY: OVERLAPPED_ENTRY is plain data; all zeroes is a valid value.
            self.entries = vec![unsafe { std::mem::zeroed() }; ENTRIES];
        }
        let taken = port::take_packets(&self.port, &mut self.entries, timeout_millis(timeout))?;
        let mut stash = self.stash.lock().unwrap_or_else(|e| e.into_inner());
        stash.extend(self.entries[..taken].iter().map(|entry| Packet(*entry)));
        Ok(())
    }
}
