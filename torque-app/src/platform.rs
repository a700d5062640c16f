//! The command's few calls whose best form depends on the OS, each with the
//! portable way beside it.

use std::fs::File;
use std::io;
use std::path::Path;

/// Raises the soft limit on open files to the hard limit, as Go does at start:
/// a server's connections are fds, and many systems start programs with a
/// soft limit of 1024. Returns the soft limit now in force (`None`:
/// unlimited, or unknown).
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
