//! Readiness through the completion port: the Ancillary Function Driver's
//! poll request (`IOCTL_AFD_POLL` on a handle to `\Device\Afd`), the call
//! `WSAPoll` and `select` are built on, issued asynchronously so its answer
//! arrives as a packet like any completed operation. This is how the iocp
//! backend serves what it does not complete itself (connecting sockets, UDP,
//! the fd-set API) without a second wait; libuv, wepoll and mio do the same.
//! Not a documented interface, but stable since Windows Vista and
//! implemented by Wine.

use std::ffi::c_void;
use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};

use windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES;
use windows_sys::Wdk::Storage::FileSystem::{FILE_OPEN, NtCancelIoFileEx, NtCreateFile};
use windows_sys::Wdk::System::IO::NtDeviceIoControlFile;
use windows_sys::Win32::Foundation::{
    HANDLE, NTSTATUS, RtlNtStatusToDosError, STATUS_NOT_FOUND, STATUS_PENDING, STATUS_SUCCESS, UNICODE_STRING,
};
use windows_sys::Win32::Networking::WinSock::SOCKET;
use windows_sys::Win32::Storage::FileSystem::{FILE_SHARE_READ, FILE_SHARE_WRITE, SYNCHRONIZE};
use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;

const IOCTL_AFD_POLL: u32 = 0x0001_2024;

/// Data arrived (or a datagram).
pub(super) const POLL_RECEIVE: u32 = 0x001;
/// Room to send.
pub(super) const POLL_SEND: u32 = 0x004;
/// The peer shut its side down (end of file).
pub(super) const POLL_DISCONNECT: u32 = 0x008;
/// The connection was reset or failed.
pub(super) const POLL_ABORT: u32 = 0x010;
/// The socket was closed while polled.
pub(super) const POLL_LOCAL_CLOSE: u32 = 0x020;
/// A connection waits to be accepted.
pub(super) const POLL_ACCEPT: u32 = 0x080;
/// A connect failed.
pub(super) const POLL_CONNECT_FAIL: u32 = 0x100;

/// One socket's entry in a poll request.
#[repr(C)]
struct PollHandle {
    socket: HANDLE,
    events: u32,
    status: NTSTATUS,
}

/// A poll request for one socket, read and written by the driver: it must
/// stay in place until the request's packet is taken from the port.
#[repr(C)]
pub(super) struct PollInfo {
    timeout: i64,
    count: u32,
    exclusive: u32,
    handle: PollHandle,
}

impl PollInfo {
    /// A request for `events` on `socket` (its base provider handle), with
    /// no timeout.
    pub(super) fn new(socket: SOCKET, events: u32) -> PollInfo {
        PollInfo {
            timeout: i64::MAX,
            count: 1,
            exclusive: 0,
            handle: PollHandle { socket: socket as HANDLE, events, status: 0 },
        }
    }

    /// The events the finished request reports.
    pub(super) fn reported(&self) -> u32 {
        if self.count == 0 { 0 } else { self.handle.events }
    }
}

/// A handle to the driver that poll requests go through.
pub(super) struct Afd(OwnedHandle);

// The name only has to open the driver; what follows `\Device\Afd\` is ignored.
const NAME: &[u16] = &[
    b'\\' as u16,
    b'D' as u16,
    b'e' as u16,
    b'v' as u16,
    b'i' as u16,
    b'c' as u16,
    b'e' as u16,
    b'\\' as u16,
    b'A' as u16,
    b'f' as u16,
    b'd' as u16,
    b'\\' as u16,
    b'T' as u16,
    b'o' as u16,
    b'r' as u16,
    b'q' as u16,
    b'u' as u16,
    b'e' as u16,
];

fn nt_error(status: NTSTATUS) -> io::Error {
    // SAFETY: a pure mapping from one status code to a Win32 error code.
    io::Error::from_raw_os_error(unsafe { RtlNtStatusToDosError(status) } as i32)
}

impl Afd {
    /// Opens the driver.
    pub(super) fn open() -> io::Result<Afd> {
        let name = UNICODE_STRING {
            Length: (NAME.len() * 2) as u16,
            MaximumLength: (NAME.len() * 2) as u16,
            Buffer: NAME.as_ptr() as *mut u16,
        };
        let attributes = OBJECT_ATTRIBUTES {
            Length: size_of::<OBJECT_ATTRIBUTES>() as u32,
            RootDirectory: std::ptr::null_mut(),
            ObjectName: &name,
            Attributes: 0,
            SecurityDescriptor: std::ptr::null(),
            SecurityQualityOfService: std::ptr::null(),
        };
        let mut handle: HANDLE = std::ptr::null_mut();
        // SAFETY: zeroed status block, written by the call.
        let mut status_block: IO_STATUS_BLOCK = unsafe { std::mem::zeroed() };
        // SAFETY: every pointer is valid for the call's duration; `name`'s
        // buffer is static. No extended attributes.
        let status = unsafe {
            NtCreateFile(
                &mut handle,
                SYNCHRONIZE,
                &attributes,
                &mut status_block,
                std::ptr::null(),
                0,
                FILE_SHARE_READ | FILE_SHARE_WRITE,
                FILE_OPEN,
                0,
                std::ptr::null(),
                0,
            )
        };
        if status != STATUS_SUCCESS {
            let error = nt_error(status);
            return Err(io::Error::new(
                error.kind(),
                format!("cannot open \\Device\\Afd for socket polls: {error}"),
            ));
        }
        // SAFETY: the call succeeded, so `handle` is open and ours.
        Ok(Afd(unsafe { OwnedHandle::from_raw_handle(handle) }))
    }

    /// The driver handle, to associate with the port.
    pub(super) fn handle(&self) -> HANDLE {
        self.0.as_raw_handle()
    }

    /// Starts poll request `info`, whose packet will carry `context`.
    ///
    /// # Safety
    ///
    /// `status_block` and `info` must stay valid and in place until the
    /// packet carrying `context` is taken from the port (also after a
    /// cancel); the request is in flight unless this returns an error.
    pub(super) unsafe fn poll(
        &self,
        status_block: *mut IO_STATUS_BLOCK,
        info: *mut PollInfo,
        context: *const c_void,
    ) -> io::Result<()> {
        // SAFETY: the caller keeps both buffers in place for the request;
        // input and output are the same buffer, as the driver expects.
        let status = unsafe {
            (*status_block).Anonymous.Status = STATUS_PENDING;
            NtDeviceIoControlFile(
                self.0.as_raw_handle(),
                std::ptr::null_mut(),
                None,
                context,
                status_block,
                IOCTL_AFD_POLL,
                info as *const c_void,
                size_of::<PollInfo>() as u32,
                info as *mut c_void,
                size_of::<PollInfo>() as u32,
            )
        };
        match status {
            // Finished at once: its packet is queued all the same.
            STATUS_SUCCESS | STATUS_PENDING => Ok(()),
            _ => Err(nt_error(status)),
        }
    }

    /// Cancels the request that uses `status_block`; its packet still comes.
    ///
    /// # Safety
    ///
    /// `status_block` must be a request's, still in place.
    pub(super) unsafe fn cancel(&self, status_block: *mut IO_STATUS_BLOCK) {
        // SAFETY: the caller's block; the cancel's own block lives on the stack
        // for this synchronous call.
        unsafe {
            if (*status_block).Anonymous.Status != STATUS_PENDING {
                return;
            }
            let mut cancel_block: IO_STATUS_BLOCK = std::mem::zeroed();
            let status = NtCancelIoFileEx(self.0.as_raw_handle(), status_block, &mut cancel_block);
            debug_assert!(status == STATUS_SUCCESS || status == STATUS_NOT_FOUND || status >= 0);
        }
    }
}
