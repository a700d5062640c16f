//! `torque procmon`: restarting a crashing command with back-off, logging its
//! output by name, and stopping children (TERM, then KILL) on SIGTERM.

mod support;

use std::time::{Duration, Instant};

use rustix::process::Signal;
use support::{PATIENCE, Server};

/// Waits (bounded) until the log satisfies `done`.
fn wait_for_log(server: &Server, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let log = server.log();
        if done(&log) {
            return log;
        }
        assert!(Instant::now() < deadline, "log never matched:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pids_started(log: &str, name: &str) -> Vec<u32> {
    log.lines()
        .filter(|l| l.contains("\"message\":\"started\"") && l.contains(&format!("\"process\":\"{name}\"")))
        .filter_map(|l| {
            let rest = &l[l.find("\"pid\":")? + 6..];
            rest[..rest.find(|c: char| !c.is_ascii_digit())?].parse().ok()
        })
        .collect()
}

fn is_alive(pid: u32) -> bool {
    // A zombie counts as gone: it has exited.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn a_crashing_command_is_restarted_with_back_off(backend: &str) {
    let mut server = Server::start(
        backend,
        &[
            "procmon",
            "--min-restart-delay",
            "50ms",
            "--threshold",
            "10s",
            "--process",
            "crasher=echo hello from crasher; exit 3",
        ],
        0,
    );
    let log = wait_for_log(&server, |log| log.matches("hello from crasher").count() >= 4);
    assert!(log.contains("\"process\":\"crasher\""), "output is logged under the name");
    assert!(log.contains("\"stream\":\"stdout\""));
    assert!(log.contains("exited with status 3"));
    // The delay doubles while it keeps dying quickly.
    let delays: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("restarting after a delay"))
        .filter_map(|l| support::json_field(l, "delay"))
        .map(|d| if d.contains("ms") { "ms" } else { "s" })
        .collect();
    assert!(delays.len() >= 3, "{log}");
    assert!(
        log.contains("\"delay\":\"50ms\"")
            && log.contains("\"delay\":\"100ms\"")
            && log.contains("\"delay\":\"200ms\""),
        "{log}"
    );
    server.signal(Signal::TERM);
    assert_eq!(server.wait().code(), Some(0));
}

fn sigterm_stops_the_children_then_torque(backend: &str) {
    let mut server = Server::start(
        backend,
        &[
            "procmon",
            "--kill-time",
            "300ms",
            "--process",
            "sleeper=exec sleep 60",
            "--process",
            "stubborn=trap '' TERM; echo ready; while :; do sleep 0.05; done",
        ],
        0,
    );
    let log = wait_for_log(&server, |log| log.contains("\"ready\"") || log.contains("ready\""));
    let sleeper = pids_started(&log, "sleeper");
    let stubborn = pids_started(&log, "stubborn");
    assert_eq!((sleeper.len(), stubborn.len()), (1, 1), "{log}");
    server.signal(Signal::TERM);
    assert_eq!(server.wait().code(), Some(0));
    let log = server.log();
    assert!(log.contains("killed by signal 15 (SIGTERM)"), "the sleeper took SIGTERM: {log}");
    assert!(log.contains("SIGKILL"), "the stubborn one needed SIGKILL: {log}");
    assert!(log.contains("killed by signal 9 (SIGKILL)"), "{log}");
    assert!(!is_alive(sleeper[0]) && !is_alive(stubborn[0]), "no child outlives torque");
}

fn a_child_whose_grandchild_keeps_its_output_open_is_still_restarted(backend: &str) {
    // The child exits at once; a background grandchild holds stdout for a while.
    // Restarts follow the child's exit, not the end of its pipes.
    let mut server = Server::start(
        backend,
        &[
            "procmon",
            "--min-restart-delay",
            "50ms",
            "--threshold",
            "10s",
            "--process",
            "forker=sleep 2 & echo tick; exit 0",
        ],
        0,
    );
    wait_for_log(&server, |log| {
        log.matches("\"tick\"").count() >= 3 || log.matches("message\":\"tick").count() >= 3
    });
    server.signal(Signal::TERM);
    assert_eq!(server.wait().code(), Some(0));
}

fn a_missing_command_is_a_one_line_error(backend: &str) {
    let out =
        std::process::Command::new(support::binary()).args(["-r", backend, "procmon"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("procmon needs a command"), "{err}");
    let out = std::process::Command::new(support::binary())
        .args(["-r", backend, "procmon", "--process", "no-equals-sign"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected NAME=COMMAND"));
}

app_main! {
    per_backend {
        [Processes] {
            a_crashing_command_is_restarted_with_back_off,
            sigterm_stops_the_children_then_torque,
            a_missing_command_is_a_one_line_error,
            a_child_whose_grandchild_keeps_its_output_open_is_still_restarted,
        }
    }
}
