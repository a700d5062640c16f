//! Choosing backends at run time, and their self-descriptions.

use std::process::Command;

use torque::{BackendKind, REACTOR_ENV, Reactor, ReactorError};

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
    assert_eq!(BackendKind::Select.info().fd_limit, Some(libc::FD_SETSIZE));
}

#[cfg(target_os = "linux")]
#[test]
fn the_platform_default_on_linux_is_epoll() {
    assert_eq!(BackendKind::platform_default(), BackendKind::Epoll);
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
