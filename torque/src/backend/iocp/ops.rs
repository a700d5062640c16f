//! The overlapped operations the iocp backend starts — AFD polls, `WSARecv`,
//! `WSASend`, `AcceptEx` — as boxed [`Operation`]s, and reading their
//! results once their packets arrive. Every raw Winsock call of the backend
//! is here, so the selector above deals in boxes and results only.

use std::io;
use std::os::windows::io::{AsRawSocket, FromRawSocket, OwnedSocket};

use windows_sys::Win32::Foundation::{HANDLE, NTSTATUS};
use windows_sys::Win32::Networking::WinSock::{
    AF_INET, AF_INET6, AcceptEx, FIONBIO, INVALID_SOCKET, LPFN_CONNECTEX, SIO_GET_EXTENSION_FUNCTION_POINTER,
    SO_UPDATE_ACCEPT_CONTEXT, SO_UPDATE_CONNECT_CONTEXT, SOCK_STREAM, SOCKADDR, SOCKADDR_IN, SOCKADDR_IN6,
    SOCKADDR_STORAGE, SOCKET, SOCKET_ERROR, SOL_SOCKET, WSA_FLAG_NO_HANDLE_INHERIT, WSA_FLAG_OVERLAPPED,
    WSA_IO_PENDING, WSABUF, WSAEINVAL, WSAGetLastError, WSAGetOverlappedResult, WSAID_CONNECTEX, WSAIoctl,
    WSARecv, WSASend, WSASocketW, bind, getsockname, ioctlsocket, setsockopt,
};
use windows_sys::Win32::System::IO::{CancelIoEx, OVERLAPPED};

use super::afd::PollInfo;

/// One address as `AcceptEx` writes it: the largest socket address plus the
/// 16 bytes it requires.
const ACCEPT_ADDRESS: usize = size_of::<SOCKADDR_STORAGE>() + 16;

/// One operation in flight. The packet's `OVERLAPPED` pointer is the
/// operation's (its first field), so the packet leads back to it; it is
/// boxed, and the kernel uses it from its start until its packet is taken.
#[repr(C)]
pub(super) struct Operation {
    overlapped: OVERLAPPED,
    /// The socket it serves (its state's key).
    pub(super) socket: SOCKET,
    pub(super) work: Work,
}

/// What an operation does, with the memory the kernel uses meanwhile.
// The operation is boxed whole and lives while in flight only: an accept's
// addresses inline cost a poll a few hundred bytes, not an allocation.
#[allow(clippy::large_enum_variant)]
pub(super) enum Work {
    /// A readiness poll (`afd`).
    Poll(PollInfo),
    /// A receive into the vector's spare capacity.
    Receive(Vec<u8>),
    /// A send of part of the vector (the transport's write buffer, lent).
    Send(Vec<u8>),
    /// An accept into `socket`, with room for both addresses.
    Accept { socket: OwnedSocket, addresses: [u8; 2 * ACCEPT_ADDRESS] },
    /// A connect (`ConnectEx`: the address is read as it starts).
    Connect,
}

/// Boxes of finished operations, reused so that starting one (a receive, a
/// send, a poll: one per event) allocates nothing once warmed up.
// Boxes, not values: a box's address is what the kernel holds while the
// operation is in flight, and reusing it whole is the point.
#[allow(clippy::vec_box)]
#[derive(Default)]
pub(super) struct OperationPool(Vec<Box<Operation>>);

/// Boxes the pool keeps at most (a few hundred bytes each).
const POOLED: usize = 256;

impl OperationPool {
    /// An operation for `socket` doing `work`, owned by the caller until started.
    pub(super) fn take(&mut self, socket: SOCKET, work: Work) -> Box<Operation> {
        match self.0.pop() {
            Some(mut operation) => {
                // SAFETY: OVERLAPPED is plain data; zeroed is its documented start state.
                operation.overlapped = unsafe { std::mem::zeroed() };
                operation.socket = socket;
                operation.work = work;
                operation
            }
            // SAFETY: as above.
            None => Box::new(Operation { overlapped: unsafe { std::mem::zeroed() }, socket, work }),
        }
    }

    /// Takes back a finished operation (or one that never started), dropping
    /// what it still holds (a buffer, an accepted socket).
    pub(super) fn give_back(&mut self, mut operation: Box<Operation>) {
        operation.work = Work::Connect;
        if self.0.len() < POOLED {
            self.0.push(operation);
        }
    }
}

impl Operation {
    /// The status block of a poll request (the first two fields of an
    /// `OVERLAPPED` are an `IO_STATUS_BLOCK`).
    pub(super) fn status_block(this: *mut Operation) -> *mut windows_sys::Win32::System::IO::IO_STATUS_BLOCK {
        // SAFETY: a field address of a live box, no read or write.
        unsafe { (&raw mut (*this).overlapped).cast() }
    }

    /// The final status of an operation whose packet arrived.
    pub(super) fn status(&self) -> NTSTATUS {
        self.overlapped.Internal as NTSTATUS
    }

    /// The result of this finished socket operation (bytes moved), with
    /// Winsock's error numbers. For a receive, the bytes become the vector's.
    pub(super) fn result(&mut self) -> io::Result<usize> {
        let mut moved = 0u32;
        let mut flags = 0u32;
        // SAFETY: the operation finished (its packet arrived), so the call
        // only reads its OVERLAPPED; no waiting.
        let ok = unsafe { WSAGetOverlappedResult(self.socket, &self.overlapped, &mut moved, 0, &mut flags) };
        if ok == 0 {
            return Err(last_error());
        }
        if let Work::Receive(buffer) = &mut self.work {
            // SAFETY: the kernel wrote `moved` bytes into the spare capacity
            // the receive was given (never more than its length).
            unsafe { buffer.set_len(moved as usize) };
        }
        Ok(moved as usize)
    }
}

fn last_error() -> io::Error {
    // SAFETY: reads the calling thread's last Winsock error.
    io::Error::from_raw_os_error(unsafe { WSAGetLastError() })
}

/// Whether an overlapped call's failure only means it is in flight.
fn started(result: i32) -> io::Result<()> {
    if result == SOCKET_ERROR {
        // SAFETY: as in `last_error`.
        let code = unsafe { WSAGetLastError() };
        if code != WSA_IO_PENDING {
            return Err(io::Error::from_raw_os_error(code));
        }
    }
    Ok(())
}

/// Starts `operation` (a `Receive`): the kernel owns it until its packet.
/// On failure it is handed back.
pub(super) fn start_receive(
    operation: Box<Operation>,
) -> Result<*mut Operation, (io::Error, Box<Operation>)> {
    let pointer = Box::into_raw(operation);
    // SAFETY: `pointer` is a live box; the buffer's spare capacity and the
    // OVERLAPPED stay in place until the packet arrives, when the selector
    // rebuilds the box. `flags` and the count are read during the call only.
    let result = unsafe {
        let Work::Receive(buffer) = &mut (*pointer).work else { unreachable!("a receive") };
        let spare = buffer.spare_capacity_mut();
        let slice = WSABUF { len: spare.len().min(u32::MAX as usize) as u32, buf: spare.as_mut_ptr().cast() };
        let mut flags = 0u32;
        WSARecv(
            (*pointer).socket,
            &slice,
            1,
            std::ptr::null_mut(),
            &mut flags,
            &raw mut (*pointer).overlapped,
            None,
        )
    };
    // SAFETY: on failure the call did not start, so the box is ours again.
    started(result).map(|()| pointer).map_err(|e| (e, unsafe { Box::from_raw(pointer) }))
}

/// Starts `operation` (a `Send`) for its vector's `offset..offset + len`.
pub(super) fn start_send(
    operation: Box<Operation>,
    offset: usize,
    len: usize,
) -> Result<*mut Operation, (io::Error, Box<Operation>)> {
    let pointer = Box::into_raw(operation);
    // SAFETY: as in `start_receive`; the vector's bytes do not move while
    // the operation owns it.
    let result = unsafe {
        let Work::Send(buffer) = &(*pointer).work else { unreachable!("a send") };
        let bytes = &buffer[offset..offset + len];
        let slice = WSABUF { len: len as u32, buf: bytes.as_ptr().cast_mut() };
        WSASend((*pointer).socket, &slice, 1, std::ptr::null_mut(), 0, &raw mut (*pointer).overlapped, None)
    };
    // SAFETY: as in `start_receive`.
    started(result).map(|()| pointer).map_err(|e| (e, unsafe { Box::from_raw(pointer) }))
}

/// The work of accepting a connection (on a listening socket of address
/// family `family`) into a new overlapped socket.
pub(super) fn accept_work(family: u16) -> io::Result<Work> {
    // SAFETY: plain arguments; no protocol info. The socket is overlapped
    // (for the completions it will be served by) and not inherited.
    let socket = unsafe {
        WSASocketW(
            i32::from(family),
            SOCK_STREAM,
            0,
            std::ptr::null(),
            0,
            WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT,
        )
    };
    if socket == INVALID_SOCKET {
        return Err(last_error());
    }
    // SAFETY: a new socket nobody else owns.
    let socket = unsafe { OwnedSocket::from_raw_socket(socket as _) };
    Ok(Work::Accept { socket, addresses: [0; 2 * ACCEPT_ADDRESS] })
}

/// Starts `operation` (an `Accept`).
pub(super) fn start_accept(operation: Box<Operation>) -> Result<*mut Operation, (io::Error, Box<Operation>)> {
    let pointer = Box::into_raw(operation);
    // SAFETY: as in `start_receive`: the address buffer and OVERLAPPED stay
    // in place until the packet; no data is received with the connection.
    let ok = unsafe {
        let Work::Accept { socket, addresses } = &mut (*pointer).work else { unreachable!("an accept") };
        let mut received = 0u32;
        AcceptEx(
            (*pointer).socket,
            socket.as_raw_socket() as SOCKET,
            addresses.as_mut_ptr().cast(),
            0,
            ACCEPT_ADDRESS as u32,
            ACCEPT_ADDRESS as u32,
            &mut received,
            &raw mut (*pointer).overlapped,
        )
    };
    let result = if ok == 0 { SOCKET_ERROR } else { 0 };
    // SAFETY: as in `start_receive`.
    started(result).map(|()| pointer).map_err(|e| (e, unsafe { Box::from_raw(pointer) }))
}

/// Makes a connection `AcceptEx` accepted on `listener` a full socket (its
/// addresses known, shutdown allowed) and non-blocking, as `accept4` would.
pub(super) fn finish_accept(listener: SOCKET, socket: &OwnedSocket) -> io::Result<()> {
    let raw = socket.as_raw_socket() as SOCKET;
    // SAFETY: `listener` is read as the option's value during the call; both
    // sockets are open.
    if unsafe {
        setsockopt(
            raw,
            SOL_SOCKET,
            SO_UPDATE_ACCEPT_CONTEXT,
            (&raw const listener).cast(),
            size_of::<SOCKET>() as i32,
        )
    } == SOCKET_ERROR
    {
        return Err(last_error());
    }
    let mut on = 1u32;
    // SAFETY: `on` is valid for the call.
    if unsafe { ioctlsocket(raw, FIONBIO, &mut on) } == SOCKET_ERROR {
        return Err(last_error());
    }
    Ok(())
}

/// `socket`'s address family.
pub(super) fn family(socket: SOCKET) -> io::Result<u16> {
    // SAFETY: plain data; zeroed is a valid empty address.
    let mut address: SOCKADDR_STORAGE = unsafe { std::mem::zeroed() };
    let mut len = size_of::<SOCKADDR_STORAGE>() as i32;
    // SAFETY: `address` has room for `len` bytes.
    if unsafe { getsockname(socket, (&raw mut address).cast::<SOCKADDR>(), &mut len) } == SOCKET_ERROR {
        return Err(last_error());
    }
    Ok(address.ss_family)
}

/// Cancels every operation in flight on `socket`; their packets still come.
pub(super) fn cancel_all(socket: SOCKET) {
    // SAFETY: a null OVERLAPPED cancels all of the handle's operations; an
    // error only means there were none (or the socket is closed).
    unsafe { CancelIoEx(socket as HANDLE, std::ptr::null()) };
}

/// Winsock's `ConnectEx`, which has no import of its own: its address is
/// asked of a socket's provider once.
#[derive(Clone, Copy)]
pub(super) struct ConnectEx(
    unsafe extern "system" fn(
        SOCKET,
        *const SOCKADDR,
        i32,
        *const std::ffi::c_void,
        u32,
        *mut u32,
        *mut OVERLAPPED,
    ) -> i32,
);

impl ConnectEx {
    /// Looks `ConnectEx` up through `socket` (any TCP socket).
    pub(super) fn find(socket: SOCKET) -> io::Result<ConnectEx> {
        let mut function: LPFN_CONNECTEX = None;
        ioctl(socket, SIO_GET_EXTENSION_FUNCTION_POINTER, Some(&WSAID_CONNECTEX), &mut function)?;
        function.map(ConnectEx).ok_or_else(|| io::Error::other("Winsock has no ConnectEx"))
    }
}

/// `WSAIoctl` on `socket`, not overlapped: `input` in (if any), `output` out.
pub(super) fn ioctl<I, O>(socket: SOCKET, code: u32, input: Option<&I>, output: &mut O) -> io::Result<()> {
    let (input_pointer, input_len) = match input {
        Some(input) => ((input as *const I).cast(), size_of::<I>() as u32),
        None => (std::ptr::null(), 0),
    };
    let mut returned = 0u32;
    // SAFETY: the input is read and the output written during the call,
    // each within its own size; no overlapped call.
    let result = unsafe {
        WSAIoctl(
            socket,
            code,
            input_pointer,
            input_len,
            (output as *mut O).cast(),
            size_of::<O>() as u32,
            &mut returned,
            std::ptr::null_mut(),
            None,
        )
    };
    if result == SOCKET_ERROR {
        return Err(last_error());
    }
    Ok(())
}

/// Binds `socket` to the wildcard address of `family` unless it is bound
/// (`ConnectEx` connects bound sockets only).
fn bind_if_unbound(socket: SOCKET, family: u16) -> io::Result<()> {
    // SAFETY: plain data; zeroed is a valid empty address.
    let mut address: SOCKADDR_STORAGE = unsafe { std::mem::zeroed() };
    let mut len = size_of::<SOCKADDR_STORAGE>() as i32;
    // SAFETY: `address` has room for `len` bytes.
    if unsafe { getsockname(socket, (&raw mut address).cast::<SOCKADDR>(), &mut len) } != SOCKET_ERROR {
        return Ok(()); // bound already (the connector's bindAddress)
    }
    // SAFETY: as in `last_error`.
    if unsafe { WSAGetLastError() } != WSAEINVAL {
        return Err(last_error());
    }
    // SAFETY: plain data; zeroed is the wildcard address and port 0.
    let mut wildcard: SOCKADDR_STORAGE = unsafe { std::mem::zeroed() };
    wildcard.ss_family = family;
    let len = if family == AF_INET6 { size_of::<SOCKADDR_IN6>() } else { size_of::<SOCKADDR_IN>() };
    // SAFETY: `wildcard` holds `len` valid bytes of an address of `family`.
    if unsafe { bind(socket, (&raw const wildcard).cast::<SOCKADDR>(), len as i32) } == SOCKET_ERROR {
        return Err(last_error());
    }
    Ok(())
}

/// Starts connecting `operation`'s socket (a `Connect`) to `address`
/// (`len` bytes), binding it first if it is not; IPv4 and IPv6 only.
pub(super) fn start_connect(
    connect: ConnectEx,
    operation: Box<Operation>,
    address: *const SOCKADDR,
    len: i32,
) -> Result<*mut Operation, (io::Error, Box<Operation>)> {
    // SAFETY: the caller's address is valid for `len` bytes.
    let family = unsafe { (*address).sa_family };
    if family != AF_INET && family != AF_INET6 {
        return Err((io::ErrorKind::Unsupported.into(), operation));
    }
    if let Err(e) = bind_if_unbound(operation.socket, family) {
        return Err((e, operation));
    }
    let pointer = Box::into_raw(operation);
    // SAFETY: as in `start_receive`; the address is read during the call.
    let ok = unsafe {
        (connect.0)(
            (*pointer).socket,
            address,
            len,
            std::ptr::null(),
            0,
            std::ptr::null_mut(),
            &raw mut (*pointer).overlapped,
        )
    };
    let result = if ok == 0 { SOCKET_ERROR } else { 0 };
    // SAFETY: as in `start_receive`.
    started(result).map(|()| pointer).map_err(|e| (e, unsafe { Box::from_raw(pointer) }))
}

/// Makes a socket `ConnectEx` connected a full socket (its peer known,
/// shutdown allowed).
pub(super) fn finish_connect(socket: SOCKET) -> io::Result<()> {
    // SAFETY: the option takes no value.
    if unsafe { setsockopt(socket, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, std::ptr::null(), 0) }
        == SOCKET_ERROR
    {
        return Err(last_error());
    }
    Ok(())
}
