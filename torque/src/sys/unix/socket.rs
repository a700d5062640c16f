//! Socket options and calls whose spelling differs between systems.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use socket2::{SockAddr, Socket};

use super::cvt;

/// Flags for every stream `send`: no SIGPIPE when the peer has gone (Linux and
/// the BSDs; Apple systems have no such flag and get `SO_NOSIGPIPE` per socket
/// instead, in [`prepare_stream`]).
#[cfg(not(apple))]
pub(crate) const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(apple)]
pub(crate) const SEND_FLAGS: libc::c_int = 0;

/// Whether a short send must be followed by another until the socket would
/// block, for the backend to announce room later: not on Unix, whose
/// readiness is level-triggered.
pub(crate) const SEND_UNTIL_WOULD_BLOCK: bool = false;

/// The largest listen backlog the system allows (what Go and nginx-class
/// servers ask for): Linux's `net.core.somaxconn`, else `SOMAXCONN`. The
/// kernel caps any larger value to it anyway.
pub(crate) fn max_backlog() -> i32 {
    static MAX: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        #[cfg(target_os = "linux")]
        if let Some(max) = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok())
            .filter(|&max| max > 0)
        {
            return max;
        }
        libc::SOMAXCONN
    })
}

/// Readies a new stream socket (accepted, connected or adopted) for the
/// transport: on Apple systems, writes to a closed peer return EPIPE instead of
/// raising SIGPIPE.
pub(crate) fn prepare_stream(socket: &Socket) -> io::Result<()> {
    #[cfg(apple)]
    socket.set_nosigpipe(true)?;
    let _ = socket;
    Ok(())
}

/// Holds partial TCP segments back while set (Linux `TCP_CORK`). Elsewhere
/// nothing happens: the BSDs' `TCP_NOPUSH` does not send what it held when
/// cleared, so a response could wait for the next write.
pub(crate) fn set_tcp_cork(socket: &Socket, enabled: bool) -> io::Result<()> {
    #[cfg(linux_like)]
    return socket.set_tcp_cork(enabled);
    #[cfg(not(linux_like))]
    {
        let _ = (socket, enabled);
        Ok(())
    }
}

/// Lets several sockets bind one address and port (multicast listeners).
pub(crate) fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_port(true)
}

/// Whether a stream socket is listening (`SO_ACCEPTCONN`).
pub(crate) fn is_listening(socket: &Socket) -> io::Result<bool> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes for the call.
    cvt(unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(value != 0)
}

/// The address of an abstract UNIX socket named `name` (no file; Linux only).
pub(crate) fn abstract_unix_addr(name: &str) -> io::Result<SockAddr> {
    #[cfg(linux_like)]
    {
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(name.as_bytes());
        let path = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&bytes);
        SockAddr::unix(path)
    }
    #[cfg(not(linux_like))]
    {
        let _ = name;
        Err(io::Error::new(io::ErrorKind::Unsupported, "abstract UNIX socket names (@name) need Linux"))
    }
}

/// `sendfile(2)`: up to `count` bytes of `file` from `offset` to the socket `out`,
/// without copying them through user space. Returns the bytes sent; 0 means the
/// file ended at `offset`. [`io::ErrorKind::Unsupported`] where Torque does not
/// use the system's `sendfile` (the caller copies instead).
pub(crate) fn sendfile(out: RawFd, file: &std::fs::File, offset: u64, count: usize) -> io::Result<usize> {
    #[cfg(linux_like)]
    {
        let mut off =
            libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))?;
        // Linux sends at most 0x7ffff000 bytes per call anyway.
        let count = count.min(0x7fff_f000);
        // SAFETY: both fds are borrowed from live owners for the call; `off` is a valid,
        // writable off_t the kernel advances (the file's own position is untouched).
        let n = unsafe { libc::sendfile(out, file.as_raw_fd(), &mut off, count) };
        cvt(n).map(|n| n as usize)
    }
    #[cfg(not(linux_like))]
    {
        let _ = (out, file, offset, count);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}
