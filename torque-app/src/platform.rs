//! The command's few calls whose best form depends on the OS, each with the
//! portable way (or the Windows way) beside it.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::path::Path;

/// Raises the soft limit on open files to the hard limit, as Go does at start:
/// a server's connections are fds, and many systems start programs with a
/// soft limit of 1024. Returns the soft limit now in force (`None`:
/// unlimited, or unknown).
#[cfg(unix)]
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current?;
    // The hard limit; macOS refuses more than OPEN_MAX, so 10240 next.
    for wanted in [limit.maximum, Some(10_240)] {
        if wanted.is_some_and(|w| w <= current) {
            break;
        }
        if setrlimit(Resource::Nofile, Rlimit { current: wanted, maximum: limit.maximum }).is_ok() {
            return wanted;
        }
    }
    Some(current)
}

/// Windows has no such limit to raise: `None` (unlimited).
#[cfg(windows)]
pub fn raise_open_file_limit() -> Option<u64> {
    None
}

/// Opens `relative` under the directory `dir` read-only and non-blocking, with
/// the kernel refusing (EXDEV) any path that resolves outside `dir` — a symlink
/// out of it — unless `follow_symlinks_out`: Linux's `openat2(RESOLVE_BENEATH)`.
/// `Ok(None)` where the system has no such call (other systems, kernels before
/// 5.6): the caller checks the canonical path by hand.
pub fn open_beneath(dir: &File, relative: &Path, follow_symlinks_out: bool) -> io::Result<Option<File>> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
        let resolve = if follow_symlinks_out {
            ResolveFlags::NO_MAGICLINKS
        } else {
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS
        };
        match rustix::fs::openat2(dir, relative, flags, Mode::empty(), resolve) {
            Ok(fd) => Ok(Some(File::from(fd))),
            Err(rustix::io::Errno::NOSYS) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (dir, relative, follow_symlinks_out);
        Ok(None)
    }
}

/// Opens `path` read-only for serving: non-blocking on Unix, so a FIFO cannot
/// hang the server; directories open too (Windows needs
/// `FILE_FLAG_BACKUP_SEMANTICS` for that).
pub fn open_for_serving(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, rustix::fs::OFlags::NONBLOCK.bits() as i32);
    #[cfg(windows)]
    std::os::windows::fs::OpenOptionsExt::custom_flags(
        &mut options,
        windows_sys::Win32::Storage::FileSystem::FILE_FLAG_BACKUP_SEMANTICS,
    );
    options.open(path)
}

/// A decoded request path segment as a file name, or `None` when it cannot
/// name one file: on Windows, not UTF-8 (names are UTF-16 there), or holding a
/// separator or drive/stream colon (`..\`, `C:`, `name::$DATA`), which would
/// reach past the segment.
pub fn path_segment(segment: &[u8]) -> Option<&OsStr> {
    #[cfg(unix)]
    {
        Some(std::os::unix::ffi::OsStrExt::from_bytes(segment))
    }
    #[cfg(windows)]
    {
        let text = std::str::from_utf8(segment).ok()?;
        (!text.contains(['\\', ':'])).then(|| OsStr::new(text))
    }
}

/// What identifies a file's content for its entity tag besides its size: its
/// inode and the nanoseconds of its modification time on Unix; on Windows
/// the modification time's 100 ns ticks (no inode number in std there).
pub fn file_identity(meta: &std::fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (meta.ino(), meta.mtime_nsec().max(0) as u64)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::MetadataExt;
        (0, meta.last_write_time() % 10_000_000 * 100)
    }
}

/// Up to `buf.len()` bytes of `file` from `offset`.
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        std::os::windows::fs::FileExt::seek_read(file, buf, offset)
    }
}

/// The entries of the open directory `dir` (at `path`), as names and
/// whether each is a directory, `.` and `..` left out.
pub fn list_dir(dir: &File, path: &Path) -> io::Result<Vec<(String, bool)>> {
    let mut names = Vec::new();
    #[cfg(unix)]
    {
        let _ = path;
        for entry in rustix::fs::Dir::read_from(dir)? {
            let entry = entry?;
            let raw = entry.file_name().to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            let is_dir = match entry.file_type() {
                rustix::fs::FileType::Directory => true,
                rustix::fs::FileType::Unknown => {
                    rustix::fs::statat(dir, entry.file_name(), rustix::fs::AtFlags::empty()).is_ok_and(|st| {
                        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
                    })
                }
                _ => false,
            };
            names.push((String::from_utf8_lossy(raw).into_owned(), is_dir));
        }
    }
    #[cfg(windows)]
    {
        let _ = dir;
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            names.push((entry.file_name().to_string_lossy().into_owned(), is_dir));
        }
    }
    Ok(names)
}

/// Whether process `pid` exists (a stale pid file names none).
#[cfg(unix)]
pub fn process_alive(pid: i32) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid) else { return false };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        // It exists but belongs to someone else.
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

/// Whether process `pid` exists and has not exited.
#[cfg(windows)]
pub fn process_alive(pid: i32) -> bool {
    use windows_sys::Win32::Foundation::{CloseHandle, STILL_ACTIVE};
    use windows_sys::Win32::System::Threading::{
        GetExitCodeProcess, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
    };
    let Ok(pid) = u32::try_from(pid) else { return false };
    // SAFETY: OpenProcess takes plain values and returns null on failure.
    let process = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if process.is_null() {
        // Denied means it exists but belongs to someone else.
        return std::io::Error::last_os_error().kind() == io::ErrorKind::PermissionDenied;
    }
    let mut code = 0u32;
    // SAFETY: `process` is the open handle from above, closed once here.
    let alive = unsafe { GetExitCodeProcess(process, &mut code) } != 0 && code == STILL_ACTIVE as u32;
    // SAFETY: as above.
    unsafe { CloseHandle(process) };
    alive
}
