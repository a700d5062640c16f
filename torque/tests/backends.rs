//! Choosing backends at run time, and their self-descriptions.

use std::process::Command;

use torque::{BackendKind, Capability, REACTOR_ENV, Reactor, ReactorError, Status, Support};

#[test]
fn an_unknown_backend_name_lists_the_available_ones() {
    let err = "kqueue-ish".parse::<BackendKind>().unwrap_err();
    assert!(matches!(err, ReactorError::UnknownBackend { .. }));
    let text = err.to_string();
    assert!(text.contains("kqueue-ish"), "{text}");
    for kind in BackendKind::all() {
        assert!(text.contains(kind.name()), "{text}");
    }
}

#[test]
fn every_backend_describes_itself_and_round_trips_its_name() {
    for &kind in BackendKind::all() {
        let info = kind.info();
        assert_eq!(info.kind, kind);
        assert_eq!(info.name.parse::<BackendKind>().unwrap(), kind);
        assert_eq!(info.name.to_uppercase().parse::<BackendKind>().unwrap(), kind);
        assert!(!info.platforms.is_empty() && !info.summary.is_empty());
        let reactor = Reactor::builder().backend(kind).build().unwrap();
        assert_eq!(reactor.backend().kind, kind);
    }
    #[cfg(unix)]
    assert_eq!(BackendKind::Select.info().fd_limit, Some(libc::FD_SETSIZE));
}

#[cfg(target_os = "linux")]
#[test]
fn the_platform_default_on_linux_is_epoll() {
    assert_eq!(BackendKind::platform_default(), BackendKind::Epoll);
}

#[cfg(windows)]
#[test]
fn the_platform_default_on_windows_is_iocp_and_wfmo_is_there_too() {
    assert_eq!(BackendKind::platform_default(), BackendKind::Iocp);
    assert_eq!(BackendKind::all(), [BackendKind::Iocp, BackendKind::Wfmo]);
    assert_eq!(BackendKind::Wfmo.info().most_registrations, Some(62));
    assert_eq!(BackendKind::Iocp.info().most_registrations, None);
}

/// Every backend Torque has is described on every platform; the ones not
/// compiled in say so when asked for, naming those that are.
#[test]
fn known_backends_elsewhere_are_described_and_refused_clearly() {
    let known = BackendKind::known();
    assert!(known.iter().all(|k| k.info().kind == *k));
    assert!(BackendKind::all().iter().all(|k| known.contains(k) && k.is_available()));
    assert!(known.contains(&BackendKind::Kqueue) && known.contains(&BackendKind::Epoll));
    for &kind in known.iter().filter(|k| !k.is_available()) {
        let err = kind.name().parse::<BackendKind>().unwrap_err();
        assert!(matches!(err, ReactorError::BackendUnavailable { name } if name == kind.name()), "{err}");
        let text = err.to_string();
        assert!(text.contains("not available on this platform"), "{text}");
        for here in BackendKind::all() {
            assert!(text.contains(here.name()), "{text}");
        }
        let built = Reactor::builder().backend(kind).build();
        assert!(matches!(built, Err(ReactorError::BackendUnavailable { .. })), "{built:?}");
    }
    // kqueue runs nowhere in CI, and says so.
    assert_eq!(BackendKind::Kqueue.info().status, Status::CompileChecked);
}

/// The capability table agrees with the features: select and poll keep their
/// interest set in user memory, so they have no watch fd, and the error says
/// what to use instead.
#[test]
fn capabilities_match_what_each_backend_does() {
    for &kind in BackendKind::known() {
        let info = kind.info();
        for capability in Capability::ALL {
            assert_eq!(info.supports(capability), info.features.get(capability) == Support::Yes);
        }
    }
    for kind in [BackendKind::Poll, BackendKind::Select].into_iter().filter(|k| k.is_available()) {
        assert!(!kind.info().supports(Capability::WatchFd));
        let reactor = Reactor::builder().backend(kind).handle_signals(false).build().unwrap();
        let err = reactor.watch_fd().unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(kind.name()) && text.contains("watch-fd") && text.contains("interleave"),
            "{text}"
        );
    }
}

/// Runs this test binary again with `TORQUE_REACTOR` set and only the reporting test
/// selected, so the environment of this process is never modified.
fn backend_chosen_with_env(value: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_reports_its_backend", "--nocapture", "--include-ignored"])
        .env(REACTOR_ENV, value)
        .output()
        .unwrap()
}

#[test]
#[ignore = "run by the environment tests in a child process"]
fn child_reports_its_backend() {
    match Reactor::new() {
        Ok(r) => println!("CHOSEN={}", r.backend().name),
        Err(e) => println!("ERROR={e}"),
    }
}

#[test]
fn the_environment_variable_chooses_the_backend() {
    for &kind in BackendKind::all() {
        let out = backend_chosen_with_env(kind.name());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(&format!("CHOSEN={}", kind.name())), "{stdout}");
    }
    let out = backend_chosen_with_env("nonsense");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ERROR=unknown reactor backend \"nonsense\"; available: "), "{stdout}");
}

#[test]
fn code_choice_wins_over_the_environment() {
    // The builder's explicit backend never consults the environment.
    let builder = Reactor::builder().backend(BackendKind::Select);
    assert_eq!(builder.chosen_backend().unwrap(), BackendKind::Select);
}

#[test]
fn a_required_capability_picks_a_backend_that_has_it_or_is_refused() {
    let built = Reactor::builder().require(Capability::WatchFd).handle_signals(false).build();
    match BackendKind::all().iter().find(|k| k.info().supports(Capability::WatchFd)) {
        Some(expected) => {
            let reactor = built.unwrap();
            assert!(reactor.backend().supports(Capability::WatchFd));
            assert_eq!(reactor.backend().kind, *expected, "the best one that has it");
        }
        // Windows: no backend has one fd that stands for its wait.
        None => assert!(
            matches!(built, Err(ReactorError::Unsupported { capability: Capability::WatchFd, .. })),
            "{built:?}"
        ),
    }
    for &kind in BackendKind::all().iter().filter(|k| !k.info().supports(Capability::WatchFd)) {
        let err = Reactor::builder().backend(kind).require(Capability::WatchFd).build().unwrap_err();
        assert!(
            matches!(err, ReactorError::Unsupported { backend, capability: Capability::WatchFd } if backend == kind.name()),
            "{err}"
        );
    }
}

/// io_uring may be missing or forbidden where Torque runs (old kernels,
/// containers, `kernel.io_uring_disabled`): asking for it then fails at once,
/// with one line that names the cause, and the default backend still opens.
/// Forced here by a seccomp filter on `io_uring_setup` in a child process.
#[cfg(target_os = "linux")]
#[test]
fn io_uring_refused_by_the_kernel_fails_at_start_naming_the_cause() {
    for (errno, cause) in [("EPERM", "seccomp"), ("ENOSYS", "ENOSYS")] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_opens_io_uring_under_seccomp", "--nocapture", "--include-ignored"])
            .env(SECCOMP_ERRNO_ENV, errno)
            .env_remove(REACTOR_ENV)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line =
            stdout.lines().find_map(|l| l.strip_prefix("IO_URING=")).unwrap_or_else(|| panic!("{stdout}"));
        assert!(line.starts_with("the io_uring backend cannot start here: "), "{line}");
        assert!(line.contains(cause), "{errno}: {line}");
        assert!(stdout.contains("DEFAULT=epoll"), "{stdout}");
    }
}

#[cfg(target_os = "linux")]
const SECCOMP_ERRNO_ENV: &str = "TORQUE_TEST_SECCOMP_ERRNO";

#[cfg(target_os = "linux")]
#[test]
#[ignore = "run by the io_uring refusal test in a child process"]
fn child_opens_io_uring_under_seccomp() {
    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};
    let errno = match std::env::var(SECCOMP_ERRNO_ENV).as_deref() {
        Ok("EPERM") => libc::EPERM,
        Ok("ENOSYS") => libc::ENOSYS,
        _ => return,
    };
    let filter: BpfProgram = SeccompFilter::new(
        [(libc::SYS_io_uring_setup, vec![])].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        std::env::consts::ARCH.try_into().unwrap(),
    )
    .unwrap()
    .try_into()
    .unwrap();
    seccompiler::apply_filter(&filter).unwrap();
    match Reactor::builder().backend(BackendKind::IoUring).handle_signals(false).build() {
        Ok(_) => println!("IO_URING=opened"),
        Err(e) => println!("IO_URING={e}"),
    }
    match Reactor::builder().handle_signals(false).build() {
        Ok(r) => println!("DEFAULT={}", r.backend().name),
        Err(e) => println!("DEFAULT-ERROR={e}"),
    }
}
