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

/// The pids a command printed as `job=PID`.
fn jobs_printed(log: &str) -> Vec<i32> {
    log.match_indices("job=")
        .filter_map(|(at, _)| {
            let digits: String = log[at + 4..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

fn wait_until_gone(pid: i32, what: &str) {
    let deadline = Instant::now() + PATIENCE;
    while is_alive(pid as u32) {
        assert!(Instant::now() < deadline, "{what} (pid {pid}) is still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `--process NAME=COMMAND` runs through `sh -c`: what the shell starts (a
/// background job here, `cd dir && ./server` or a pipe elsewhere) is in the
/// command's process group, and stops with it.
fn what_a_command_starts_stops_with_it(backend: &str) {
    let mut server = Server::start(
        backend,
        &["procmon", "--kill-time", "300ms", "--process", "jobs=sleep 300 & echo job=$!; wait"],
        0,
    );
    let log = wait_for_log(&server, |log| !jobs_printed(log).is_empty());
    let job = jobs_printed(&log)[0];
    assert!(is_alive(job as u32));
    server.signal(Signal::TERM);
    assert_eq!(server.wait().code(), Some(0));
    wait_until_gone(job, "the background job");
}

/// A command that exits leaving a job behind: the job is stopped before the
/// restart, so two copies never run side by side.
fn a_restart_never_runs_beside_what_the_last_run_left(backend: &str) {
    let mut server = Server::start(
        backend,
        &[
            "procmon",
            "--min-restart-delay",
            "50ms",
            "--kill-time",
            "300ms",
            "--process",
            "leaver=sleep 300 & echo job=$!",
        ],
        0,
    );
    let log = wait_for_log(&server, |log| jobs_printed(log).len() >= 3);
    let jobs = jobs_printed(&log);
    for &job in &jobs[..2] {
        wait_until_gone(job, "a job left by an earlier run");
    }
    server.signal(Signal::TERM);
    assert_eq!(server.wait().code(), Some(0));
    for job in jobs_printed(&server.log()) {
        wait_until_gone(job, "a job left running at stop");
    }
}

/// Carriage returns, NUL and escape sequences in a child's output are
/// escaped in the log like other control characters.
fn control_characters_in_output_are_escaped(backend: &str) {
    let mut server =
        Server::start(backend, &["procmon", "--process", r"esc=printf 'a\rb\0c\033[31m\tz\n'; sleep 300"], 0);
    let log = wait_for_log(&server, |log| log.contains("\"process\":\"esc\"") && log.contains("tz"));
    // The log is JSON: the escape's backslash is itself escaped there.
    assert!(log.contains(r"a\\rb\\0c\\u{1b}[31m\tz"), "{log}");
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
            what_a_command_starts_stops_with_it,
            a_restart_never_runs_beside_what_the_last_run_left,
            control_characters_in_output_are_escaped,
        }
    }
}
