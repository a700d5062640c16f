//! Pinning a benchmark process to one CPU, shared by the echo and TLS benches
//! (included by `#[path]`).

/// Pins this process to `cpu` (Linux; elsewhere the process stays unpinned,
/// and the figures are noisier).
pub fn pin_to_cpu(cpu: usize) {
    #[cfg(target_os = "linux")]
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET and sched_setaffinity get valid
    // pointers to it. Failure (one CPU only) just leaves the process unpinned.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
}
