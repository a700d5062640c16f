//! UNIX-socket extras: peer credentials and passing file descriptors (SCM_RIGHTS).

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::cvt;

/// The most descriptors accepted in one message.
pub(crate) const MAX_FDS_PER_MESSAGE: usize = 16;

pub use crate::sys::credentials::PeerCredentials;

/// A UNIX socket address as an [`Address`](crate::net::Address): a path,
/// an abstract name (Linux), or unnamed.
pub(crate) fn address_of(addr: &socket2::SockAddr) -> crate::net::Address {
    if let Some(path) = addr.as_pathname() {
        return crate::net::Address::Unix(path.to_path_buf());
    }
    if let Some(name) = addr.as_abstract_namespace() {
        return crate::net::Address::UnixAbstract(name.to_vec());
    }
    crate::net::Address::UnixUnnamed
}

/// Whether `meta` (from `symlink_metadata`) is a socket file.
pub(crate) fn is_socket_file(meta: &std::fs::Metadata) -> bool {
    std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type())
}

/// Gives the socket file at `path` the permission bits `mode`.
pub(crate) fn set_socket_mode(path: &std::path::Path, mode: u32) -> io::Result<()> {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
}

/// Reads the peer's credentials: Linux `SO_PEERCRED` (with the pid);
/// elsewhere `getpeereid`, plus `LOCAL_PEERPID` for the pid on Apple systems.
pub(crate) fn peer_credentials(fd: RawFd) -> io::Result<PeerCredentials> {
    #[cfg(linux_like)]
    {
        // SAFETY: a zeroed ucred is valid; getsockopt writes at most `len` bytes.
        let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: `cred` and `len` are valid for writes for the call.
        cvt(unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&mut cred as *mut libc::ucred).cast(),
                &mut len,
            )
        })?;
        Ok(PeerCredentials { pid: Some(cred.pid), uid: cred.uid, gid: cred.gid })
    }
    #[cfg(not(linux_like))]
    {
        let (mut uid, mut gid) = (0, 0);
        // SAFETY: both out-pointers are valid for the call.
        cvt(unsafe { libc::getpeereid(fd, &mut uid, &mut gid) })?;
        Ok(PeerCredentials { pid: peer_pid(fd), uid, gid })
    }
}

/// The peer's pid where the system tells it (`LOCAL_PEERPID`).
#[cfg(apple)]
fn peer_pid(fd: RawFd) -> Option<i32> {
    let mut pid: libc::pid_t = 0;
    let mut len = std::mem::size_of::<libc::pid_t>() as libc::socklen_t;
    // SAFETY: `pid` and `len` are valid for writes for the call.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_LOCAL,
            libc::LOCAL_PEERPID,
            (&mut pid as *mut libc::pid_t).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(pid)
}

/// The BSDs' `getpeereid` has no pid.
#[cfg(not(any(linux_like, apple)))]
fn peer_pid(_fd: RawFd) -> Option<i32> {
    None
}

use super::socket::SEND_FLAGS;

/// Descriptors arrive close-on-exec atomically where the system can do it.
#[cfg(not(apple))]
const RECV_FLAGS: libc::c_int = libc::MSG_CMSG_CLOEXEC;
#[cfg(apple)]
const RECV_FLAGS: libc::c_int = 0;

/// Control-message space for `MAX_FDS_PER_MESSAGE` descriptors, suitably aligned.
#[repr(C, align(8))]
struct CmsgBuffer([u8; 256]);

fn cmsg_space(fds: usize) -> usize {
    // SAFETY: CMSG_SPACE is a pure size computation.
    unsafe { libc::CMSG_SPACE((fds * std::mem::size_of::<RawFd>()) as u32) as usize }
}

/// `sendmsg` of `data` with `fds` attached (SCM_RIGHTS). Returns bytes sent; the
/// descriptors travel with the first byte.
pub(crate) fn send_with_fds(socket: RawFd, data: &[u8], fds: &[RawFd]) -> io::Result<usize> {
    assert!(
        !fds.is_empty() && fds.len() <= MAX_FDS_PER_MESSAGE,
        "1 to {MAX_FDS_PER_MESSAGE} fds per message"
    );
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    let mut control = CmsgBuffer([0; 256]);
    let space = cmsg_space(fds.len());
    // SAFETY: a zeroed msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points at `space` bytes (<= 256) of aligned storage, so
    // CMSG_FIRSTHDR is non-null and the header and data fit.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast::<RawFd>(), fds.len());
    }
    loop {
        // SAFETY: `msg` and everything it points to are valid for the call.
        match cvt(unsafe { libc::sendmsg(socket, &msg, SEND_FLAGS) }) {
            Ok(n) => return Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `recvmsg` into `buf`; descriptors that arrive are appended to `fds` (already
/// close-on-exec on Linux). Returns bytes read (0 at end of file).
pub(crate) fn recv_with_fds(socket: RawFd, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut control = CmsgBuffer([0; 256]);
    // SAFETY: a zeroed msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = cmsg_space(MAX_FDS_PER_MESSAGE) as _;
    let n = loop {
        // SAFETY: `msg` and everything it points to are valid for the call.
        match cvt(unsafe { libc::recvmsg(socket, &mut msg, RECV_FLAGS) }) {
            Ok(n) => break n as usize,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    // SAFETY: the kernel filled msg_control with well-formed headers up to
    // msg_controllen; CMSG_FIRSTHDR/NXTHDR walk only within it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let bytes = (*cmsg).cmsg_len as usize - (data as usize - cmsg as usize);
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.add(i));
                    // Elsewhere MSG_CMSG_CLOEXEC set it atomically.
                    #[cfg(apple)]
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        tracing::warn!(
            max = MAX_FDS_PER_MESSAGE,
            "the peer sent more file descriptors than fit; the rest were closed"
        );
    }
    Ok(n)
}
