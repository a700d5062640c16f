//! Names for the platform families the `sys/` and `backend/` layers choose
//! between, so their `cfg`s read as what they mean.

fn main() {
    cfg_aliases::cfg_aliases! {
        linux_like: { any(target_os = "linux", target_os = "android") },
        apple: { any(target_os = "macos", target_os = "ios", target_os = "tvos", target_os = "watchos", target_os = "visionos") },
        // Systems with kqueue's EVFILT_USER, which the kqueue backend needs.
        kqueue: { any(apple, target_os = "freebsd", target_os = "netbsd", target_os = "dragonfly") },
        has_pipe2: { any(linux_like, target_os = "freebsd", target_os = "netbsd", target_os = "openbsd", target_os = "dragonfly") },
    }
}
