//! Names for the platform families the `sys/` and `backend/` layers choose
//! between, so their `cfg`s read as what they mean.

fn main() {
    cfg_aliases::cfg_aliases! {
        linux_like: { any(target_os = "linux", target_os = "android") },
        apple: { any(target_os = "macos", target_os = "ios", target_os = "tvos", target_os = "watchos", target_os = "visionos") },
        // Where the kqueue backend is built: macOS and FreeBSD, the systems CI
        // compile-checks (NetBSD and DragonFly spell kevent's fields with other
        // types; OpenBSD has no EVFILT_USER: they use poll), on 64-bit targets
        // (a token travels in kevent's pointer-sized udata).
        kqueue: { all(target_pointer_width = "64", any(apple, target_os = "freebsd")) },
        has_pipe2: { any(linux_like, target_os = "freebsd", target_os = "netbsd", target_os = "openbsd", target_os = "dragonfly") },
    }
}
