//! The iocp backend's selector: one completion port, every socket's
//! readiness as an AFD poll request whose answer is a packet on that port,
//! and the waker's packets. See the module above for how it works.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use windows_sys::Win32::Foundation::{NTSTATUS, STATUS_CANCELLED, STATUS_SUCCESS};
use windows_sys::Win32::Networking::WinSock::{SIO_BASE_HANDLE, SOCKET, SOCKET_ERROR, WSAIoctl};
use windows_sys::Win32::System::IO::{IO_STATUS_BLOCK, OVERLAPPED, OVERLAPPED_ENTRY};

use super::INFO;
use super::afd::{
    Afd, POLL_ABORT, POLL_ACCEPT, POLL_CONNECT_FAIL, POLL_DISCONNECT, POLL_LOCAL_CLOSE, POLL_RECEIVE,
    POLL_SEND, PollInfo,
};
use super::port::CompletionPort;
use crate::backend::{
    BackendInfo, Change, Event, Events, Interest, Opened, OpenedSelector, Refused, Selector, Token,
};
use crate::error::ReactorError;
use crate::sys::{timeout_millis, waker::Waker};

/// Packets the waker posts (no operation).
const KEY_WAKE: usize = 1;
/// Packets of poll requests.
const KEY_POLL: usize = 2;

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
        // SAFETY: OVERLAPPED_ENTRY is plain data; all zeroes is a valid value.
        entries: vec![unsafe { std::mem::zeroed() }; ENTRIES],
        in_flight: 0,
        waker: Arc::clone(&waker),
    };
    Ok(Opened { selector: OpenedSelector::Readiness(Box::new(selector)), waker })
}

/// One operation in flight. The packet's `OVERLAPPED` pointer is the
/// operation's (its first field), so the packet leads back to it; it is
/// boxed and owned by the kernel from its start until its packet is taken.
#[repr(C)]
struct Operation {
    overlapped: OVERLAPPED,
    /// The socket it serves (its registration's key).
    socket: SOCKET,
    work: Work,
}

/// What an operation does, with the memory the kernel uses meanwhile.
enum Work {
    Poll(PollInfo),
}

impl Operation {
    fn new(socket: SOCKET, work: Work) -> *mut Operation {
        // SAFETY: OVERLAPPED is plain data; zeroed is its documented start state.
        let overlapped = unsafe { std::mem::zeroed() };
        Box::into_raw(Box::new(Operation { overlapped, socket, work }))
    }

    /// The final status of an operation whose packet arrived.
    fn status(&self) -> NTSTATUS {
        self.overlapped.Internal as NTSTATUS
    }
}

/// One socket watched for readiness.
struct Registered {
    /// The base provider's socket, which the poll request names (the
    /// socket itself unless a layered provider wraps it).
    base: SOCKET,
    token: Token,
    interest: Interest,
    /// The poll request in flight and the events it asks for.
    polling: Option<(*mut Operation, u32)>,
    /// In `to_poll` already.
    queued: bool,
}

pub(super) struct IocpSelector {
    port: CompletionPort,
    afd: Afd,
    sockets: HashMap<SOCKET, Registered>,
    /// Sockets whose poll request starts before the next wait: new ones,
    /// changed ones, and those whose last request just answered (so what
    /// still holds is reported again: level-triggered).
    to_poll: Vec<SOCKET>,
    entries: Vec<OVERLAPPED_ENTRY>,
    /// Operations started whose packets have not been taken.
    in_flight: usize,
    waker: Arc<Waker>,
}

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
    let mut returned = 0u32;
    // SAFETY: `base` and `returned` are valid for writes of their sizes; no
    // overlapped call.
    let result = unsafe {
        WSAIoctl(
            socket,
            SIO_BASE_HANDLE,
            std::ptr::null(),
            0,
            (&mut base as *mut SOCKET).cast(),
            size_of::<SOCKET>() as u32,
            &mut returned,
            std::ptr::null_mut(),
            None,
        )
    };
    if result == SOCKET_ERROR {
        return Err(io::Error::last_os_error());
    }
    Ok(base)
}

impl IocpSelector {
    fn queue_poll(&mut self, socket: SOCKET) {
        if let Some(registered) = self.sockets.get_mut(&socket)
            && !registered.queued
        {
            registered.queued = true;
            self.to_poll.push(socket);
        }
    }

    /// Cancels `registered`'s poll request; its packet frees it later.
    fn cancel_poll(afd: &Afd, registered: &mut Registered) {
        if let Some((operation, _)) = registered.polling.take() {
            // SAFETY: the operation is in flight, so its block is in place.
            unsafe { afd.cancel(&raw mut (*operation).overlapped as *mut IO_STATUS_BLOCK) };
        }
    }

    fn change(&mut self, change: &Change) -> io::Result<()> {
        let socket = change.fd as SOCKET;
        if change.new.is_empty() {
            if let Some(mut registered) = self.sockets.remove(&socket) {
                Self::cancel_poll(&self.afd, &mut registered);
            }
            return Ok(());
        }
        match self.sockets.get_mut(&socket) {
            Some(registered) => {
                registered.token = change.token;
                registered.interest = change.new;
                let wanted = poll_events(change.new);
                // A request asking for more than now wanted may stay (what
                // is no longer wanted is dropped as it answers); one asking
                // for less is replaced.
                if registered.polling.is_some_and(|(_, asked)| asked & wanted != wanted) {
                    Self::cancel_poll(&self.afd, registered);
                }
            }
            None => {
                let base = base_socket(socket)?;
                self.sockets.insert(
                    socket,
                    Registered {
                        base,
                        token: change.token,
                        interest: change.new,
                        polling: None,
                        queued: false,
                    },
                );
            }
        }
        self.queue_poll(socket);
        Ok(())
    }

    /// Starts the poll requests queued, reporting sockets that cannot be
    /// polled (closed behind the reactor's back) as invalid.
    fn start_polls(&mut self, events: &mut Events) {
        for socket in std::mem::take(&mut self.to_poll) {
            let Some(registered) = self.sockets.get_mut(&socket) else { continue };
            registered.queued = false;
            if registered.polling.is_some() {
                continue;
            }
            let wanted = poll_events(registered.interest);
            let operation = Operation::new(socket, Work::Poll(PollInfo::new(registered.base, wanted)));
            // SAFETY: the operation is boxed and stays in place until its
            // packet is taken (`finish`), which frees it.
            let started = unsafe {
                let Work::Poll(info) = &mut (*operation).work;
                self.afd.poll(
                    &raw mut (*operation).overlapped as *mut IO_STATUS_BLOCK,
                    info,
                    operation.cast(),
                )
            };
            match started {
                Ok(()) => {
                    registered.polling = Some((operation, wanted));
                    self.in_flight += 1;
                }
                Err(_) => {
                    // SAFETY: the request did not start; the box is ours again.
                    drop(unsafe { Box::from_raw(operation) });
                    events.push(Event {
                        token: registered.token,
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
        let operation = unsafe { Box::from_raw(pointer) };
        let Some(registered) = self.sockets.get_mut(&operation.socket) else { return };
        match &operation.work {
            Work::Poll(info) => {
                if registered.polling.map(|(current, _)| current) != Some(pointer) {
                    return; // cancelled: replaced or removed
                }
                registered.polling = None;
                let status = operation.status();
                if status == STATUS_CANCELLED {
                    // Cancelled by someone else (the socket's owner): ask again.
                } else {
                    let reported = if status == STATUS_SUCCESS { info.reported() } else { POLL_ABORT };
                    if reported & POLL_LOCAL_CLOSE != 0 {
                        // Closed without being removed first: nothing more comes.
                        events.push(Event {
                            token: registered.token,
                            readable: false,
                            writable: false,
                            invalid: true,
                        });
                        return;
                    }
                    let failed = reported & (POLL_ABORT | POLL_CONNECT_FAIL) != 0;
                    let readable = registered.interest.read
                        && (failed || reported & (POLL_RECEIVE | POLL_ACCEPT | POLL_DISCONNECT) != 0);
                    let writable = registered.interest.write && (failed || reported & POLL_SEND != 0);
                    if readable || writable {
                        events.push(Event { token: registered.token, readable, writable, invalid: false });
                    }
                }
                let socket = operation.socket;
                self.queue_poll(socket);
            }
        }
    }
}

impl Drop for IocpSelector {
    fn drop(&mut self) {
        for registered in self.sockets.values_mut() {
            Self::cancel_poll(&self.afd, registered);
        }
        self.sockets.clear();
        // The kernel owns each operation until its packet arrives: collect
        // them (cancelled, they come at once), and leak any that never do.
        let mut events = Events::with_capacity(0);
        let mut rounds = 0;
        while self.in_flight > 0 && rounds < 50 {
            rounds += 1;
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
            if let Err(e) = self.change(change) {
                refused.push((change.token, e));
            }
        }
    }

    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        self.start_polls(events);
        let millis = if events.len() > 0 { 0 } else { timeout_millis(timeout) };
        let mut entries = std::mem::take(&mut self.entries);
        let taken = self.port.wait(&mut entries, millis);
        if let Ok(taken) = taken {
            for entry in &entries[..taken] {
                self.finish(entry, events);
            }
        }
        self.entries = entries;
        taken.map(|_| ())
    }
}
