//! Child processes on every backend: pipes both ways, large output, stdin
//! backpressure, signals, early-closed pipes, extra and passed fds, PTYs, start
//! errors, reaping (pidfd and polling) with no zombie or fd leak.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use torque::BackendKind;
use torque::net::{Producer, ProducerError};
use torque::process::{
    ChildFd, ProcessError, ProcessExit, ProcessOptions, ProcessProtocol, ProcessTransport, Reaping,
    SpawnError, WindowSize,
};

use crate::spawn::{Seen, recorder};
use crate::support::{Pipe, iterate_until, reactor};

fn sh(script: &str) -> Vec<&str> {
    vec!["-c", script]
}

fn echo_through_cat(kind: BackendKind) {
    echo_through_cat_with(kind, Reaping::Auto);
}

fn echo_through_cat_reaped_on_sigchld(kind: BackendKind) {
    echo_through_cat_with(kind, Reaping::Sigchld);
}

fn echo_through_cat_with(kind: BackendKind, reaping: Reaping) {
    let r = reactor(kind);
    let (protocol, seen) = recorder();
    let options = ProcessOptions { reaping, ..ProcessOptions::default() };
    let p = r.spawn_process(protocol, "cat", &[], options).unwrap();
    assert!(seen.made.get());
    assert!(p.pid() > 0);
    p.write(b"hello, ");
    p.write_vectored(&[b"child", b"\n"]);
    p.close_stdin();
    iterate_until(&r, || seen.ended.borrow().is_some());
    assert_eq!(&*seen.out.borrow(), b"hello, child\n");
    assert_eq!(*seen.exited.borrow(), Some(ProcessExit::Done));
    assert_eq!(*seen.ended.borrow(), Some(ProcessExit::Done));
    let mut closed = seen.closed.borrow().clone();
    closed.sort();
    assert_eq!(closed, [0, 1, 2]);
    assert_eq!(seen.events.borrow().last().map(String::as_str), Some("ended"));
    assert_eq!(p.exit_status(), Some(ProcessExit::Done));
    assert!(matches!(p.signal_named("TERM"), Err(torque::process::ProcessError::Exited)));
}

fn a_hundred_mib_of_output_arrives_whole(kind: BackendKind) {
    let r = reactor(kind);
    let (mut protocol, seen) = recorder();
    protocol.keep = false;
    let p = r.spawn_process(protocol, "head", &["-c", "104857600", "/dev/zero"], ProcessOptions::default());
    let _p = p.unwrap();
    iterate_until(&r, || seen.ended.borrow().is_some());
    assert_eq!(seen.bytes.get(), 100 << 20);
    assert_eq!(*seen.ended.borrow(), Some(ProcessExit::Done));
}

/// Streams `total` bytes into stdin, pausing when told.
struct Feeder {
    process: ProcessTransport,
    sent: usize,
    total: usize,
    paused: bool,
    pauses: Rc<Cell<u32>>,
}

impl Feeder {
    fn pump(&mut self) {
        let chunk = [b'z'; 64 * 1024];
        while !self.paused && self.sent < self.total {
            self.sent += chunk.len();
            self.process.write(&chunk);
            // The pause notice cannot reach a producer that is running: poll.
            if self.process.child_transport(0).is_none_or(|t| t.writes_paused()) {
                self.pauses.set(self.pauses.get() + 1);
                break;
            }
        }
        if self.sent >= self.total {
            self.process.unregister_producer();
            self.process.close_stdin();
        }
    }
}

impl Producer for Feeder {
    fn pause_producing(&mut self) {
        self.paused = true;
        self.pauses.set(self.pauses.get() + 1);
    }
    fn resume_producing(&mut self) {
        self.paused = false;
        self.pump();
    }
}

fn stdin_applies_backpressure(kind: BackendKind) {
    let r = reactor(kind);
    let (protocol, seen) = recorder();
    // wc counts what it reads.
    let p = r.spawn_process(protocol, "wc", &["-c"], ProcessOptions::default()).unwrap();
    let pauses = Rc::new(Cell::new(0));
    let total = 32 << 20;
    let feeder = Rc::new(RefCell::new(Feeder {
        process: p.clone(),
        sent: 0,
        total,
        paused: false,
        pauses: pauses.clone(),
    }));
    p.register_producer(feeder.clone(), true).unwrap();
    // Twisted refuses a second producer rather than replacing the first.
    let second = Rc::new(RefCell::new(Feeder {
        process: p.clone(),
        sent: 0,
        total: 1,
        paused: false,
        pauses: Rc::new(Cell::new(0)),
    }));
    assert_eq!(p.register_producer(second, true), Err(ProducerError::AlreadyRegistered));
    feeder.borrow_mut().pump();
    iterate_until(&r, || seen.ended.borrow().is_some());
    assert!(pauses.get() > 0, "the producer was paused on the pipe's buffer");
    assert_eq!(seen.text(1).trim(), total.to_string(), "wc read every byte");
    assert_eq!(*seen.ended.borrow(), Some(ProcessExit::Done));
}

fn wc_counts_everything(kind: BackendKind) {
    let r = reactor(kind);
    let (protocol, seen) = recorder();
    let p = r.spawn_process(protocol, "wc", &["-c"], ProcessOptions::default()).unwrap();
    for _ in 0..100 {
        p.write(&[b'q'; 10_000]);
    }
    p.close_stdin();
    iterate_until(&r, || seen.ended.borrow().is_some());
    assert_eq!(seen.text(1).trim(), "1000000");
}

fn a_child_killed_by_a_signal_says_which(kind: BackendKind) {
    let r = reactor(kind);
    let (protocol, seen) = recorder();
    let p = r.spawn_process(protocol, "sleep", &["30"], ProcessOptions::default()).unwrap();
    p.signal_named("TERM").unwrap();
    iterate_until(&r, || seen.ended.borrow().is_some());
    assert_eq!(
        *seen.exited.borrow(),
        Some(ProcessExit::Signaled { signal: libc::SIGTERM, core_dumped: false })
    );
    assert!(seen.exited.borrow().unwrap().to_string().contains("SIGTERM"));
    assert!(p.signal(libc::SIGKILL).is_err(), "no signal once reaped");
    assert!(matches!(p.signal_named("NOPE"), Err(torque::process::ProcessError::UnknownSignal(_))));
}

fn a_non_zero_exit_is_reported(kind: BackendKind) {
    let r = reactor(kind);
    let (protocol, seen) = recorder();
    let _p = r.spawn_process(protocol, "sh", &sh("exit 3"), ProcessOptions::default()).unwrap();
    iterate_until(&r, || seen.ended.borrow().is_some());
    assert_eq!(*seen.ended.borrow(), Some(ProcessExit::Exited(3)));
    assert!(!seen.ended.borrow().unwrap().success());
}

fn a_child_closing_stdout_early_keeps_running(kind: BackendKind) {
    let r = reactor(kind);
    let (protocol, seen) = recorder();
    let _p = r
        .spawn_process(
            protocol,
            "sh",
            &sh("exec 1>&-; read line; echo \"got $line\" >&2"),
            ProcessOptions::default(),
        )
        .unwrap();
    iterate_until(&r, || seen.closed.borrow().contains(&1));
    assert!(seen.exited.borrow().is_none(), "stdout closed, the child still runs");
    _p.write(b"more\n");
    iterate_until(&r, || seen.ended.borrow().is_some());
    assert_eq!(seen.text(2), "got more\n");
    assert_eq!(*seen.ended.borrow(), Some(ProcessExit::Done));
}

fn extra_child_fds_work_both_ways(kind: BackendKind) {
    let r = reactor(kind);
    let (protocol, seen) = recorder();
    let options = ProcessOptions::default().child_fd(3, ChildFd::Read).child_fd(4, ChildFd::Write);
    let p = r
        .spawn_process(protocol, "sh", &sh("read x <&4; echo \"from 4: $x\" >&3; echo out"), options)
        .unwrap();
    p.write_to_child(4, b"four\n").unwrap();
    // Twisted raises KeyError for fds the child cannot read from us.
    for fd in [3, 7] {
        assert!(
            matches!(p.write_to_child(fd, b"lost"), Err(ProcessError::NoSuchChildFd(n)) if n == fd),
            "fd {fd}"
        );
    }
    p.close_child_fd(4);
    assert!(matches!(p.write_to_child(4, b"late"), Err(ProcessError::NoSuchChildFd(4))), "closed fd 4");
    iterate_until(&r, || seen.ended.borrow().is_some());
    assert_eq!(seen.text(3), "from 4: four\n");
    assert_eq!(seen.text(1), "out\n");
    assert!(seen.closed.borrow().contains(&3) && seen.closed.borrow().contains(&4));
}

fn a_parent_fd_is_passed_through_and_others_are_closed(kind: BackendKind) {
    let r = reactor(kind);
    let pipe = Pipe::new();
    let (protocol, seen) = recorder();
    let options = ProcessOptions::default().child_fd(5, ChildFd::inherit(&pipe.w).unwrap());
    // fd 5 is the pipe; fd 6 (nothing mapped) must be closed in the child.
    let script = "echo passed >&5; if (: >&6) 2>/dev/null; then echo leak; else echo closed; fi";
    let _p = r.spawn_process(protocol, "sh", &sh(script), options).unwrap();
    iterate_until(&r, || seen.ended.borrow().is_some());
    let got = crate::support::drain(pipe.rfd());
    assert_eq!(got, b"passed\n");
    assert_eq!(seen.text(1), "closed\n");
}

fn a_pty_child_sees_a_terminal(kind: BackendKind) {
    let r = reactor(kind);
    let (protocol, seen) = recorder();
    let options = ProcessOptions::default().pty(WindowSize { rows: 30, cols: 100 });
    let p =
        r.spawn_process(protocol, "sh", &sh("tty; stty size; test -t 0 && echo terminal"), options).unwrap();
    iterate_until(&r, || seen.ended.borrow().is_some());
    let text = seen.text(1);
    assert!(text.starts_with("/dev/pts/"), "{text:?}");
    assert!(text.contains("30 100"), "{text:?}");
    assert!(text.contains("terminal"), "{text:?}");
    assert!(p.set_window_size(WindowSize::default()).is_err(), "gone after the end");
}

fn a_pty_takes_input_and_resizes(kind: BackendKind) {
    let r = reactor(kind);
    let (protocol, seen) = recorder();
    let p = r
        .spawn_process(
            protocol,
            "sh",
            &sh("read x; stty size; echo \"got $x\""),
            ProcessOptions::default().pty(WindowSize::default()),
        )
        .unwrap();
    p.set_window_size(WindowSize { rows: 40, cols: 120 }).unwrap();
    p.write(b"typed\n");
    iterate_until(&r, || seen.ended.borrow().is_some());
    let text = seen.text(1);
    assert!(text.contains("40 120"), "{text:?}");
    assert!(text.contains("got typed"), "{text:?}");
    let plain = r.spawn_process(recorder().0, "true", &[], ProcessOptions::default()).unwrap();
    assert!(matches!(
        plain.set_window_size(WindowSize::default()),
        Err(torque::process::ProcessError::NoPty)
    ));
}

fn environment_and_directory_are_set(kind: BackendKind) {
    let r = reactor(kind);
    let dir = tempfile::tempdir().unwrap();
    let (protocol, seen) = recorder();
    let options = ProcessOptions::default().env("TORQUE_TEST_VAR", "forty-two").cwd(dir.path());
    let _p = r.spawn_process(protocol, "sh", &sh("echo $TORQUE_TEST_VAR; pwd"), options).unwrap();
    iterate_until(&r, || seen.ended.borrow().is_some());
    let expected = format!("forty-two\n{}\n", dir.path().canonicalize().unwrap().display());
    assert_eq!(seen.text(1), expected);
    let (protocol, seen) = recorder();
    let options = ProcessOptions::default().clear_env().env("ONLY", "this");
    let _p = r.spawn_process(protocol, "/usr/bin/env", &[], options).unwrap();
    iterate_until(&r, || seen.ended.borrow().is_some());
    assert_eq!(seen.text(1), "ONLY=this\n");
}

fn start_errors_name_the_program_and_cause(kind: BackendKind) {
    let r = reactor(kind);
    let err =
        r.spawn_process(recorder().0, "torque-no-such-program", &[], ProcessOptions::default()).unwrap_err();
    assert!(matches!(err, SpawnError::Exec { .. }));
    let text = err.to_string();
    assert!(text.contains("torque-no-such-program") && text.contains("No such file"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let err =
        r.spawn_process(recorder().0, script.to_str().unwrap(), &[], ProcessOptions::default()).unwrap_err();
    assert!(err.to_string().contains("Permission denied"), "{err}");
    let missing = dir.path().join("missing");
    let err =
        r.spawn_process(recorder().0, "true", &[], ProcessOptions::default().cwd(&missing)).unwrap_err();
    assert!(matches!(err, SpawnError::BadDirectory { .. }), "{err}");
    let err = r
        .spawn_process(recorder().0, "true", &[], ProcessOptions::default().child_fd(-1, ChildFd::Read))
        .unwrap_err();
    assert!(matches!(err, SpawnError::BadOptions { .. }) && err.to_string().contains("-1"), "{err}");
}

fn a_child_that_exits_before_run_is_still_reported(kind: BackendKind) {
    let r = reactor(kind);
    let (protocol, seen) = recorder();
    let _p = r.spawn_process(protocol, "true", &[], ProcessOptions::default()).unwrap();
    std::thread::sleep(Duration::from_millis(50)); // it is long gone
    iterate_until(&r, || seen.ended.borrow().is_some());
    assert_eq!(*seen.ended.borrow(), Some(ProcessExit::Done));
}

/// Runs nested passes inside its first `child_data_received`.
struct NestedProtocol {
    reactor: torque::Reactor,
    seen: Rc<Seen>,
    nested: bool,
}

impl ProcessProtocol for NestedProtocol {
    fn child_data_received(&mut self, _p: &ProcessTransport, fd: i32, data: &[u8]) {
        self.seen.by_fd.borrow_mut().push((fd, data.to_vec()));
        if !std::mem::replace(&mut self.nested, true) {
            for _ in 0..20 {
                self.reactor.iterate(Duration::from_millis(5)).unwrap();
            }
        }
    }
    fn child_connection_lost(&mut self, _p: &ProcessTransport, fd: i32) {
        self.seen.closed.borrow_mut().push(fd);
    }
    fn process_ended(&mut self, exit: ProcessExit) {
        *self.seen.ended.borrow_mut() = Some(exit);
    }
}

fn output_arriving_during_a_nested_pass_is_kept_in_order(kind: BackendKind) {
    let r = reactor(kind);
    let seen = Rc::new(Seen::default());
    let protocol = NestedProtocol { reactor: r.clone(), seen: seen.clone(), nested: false };
    let script = "echo first; sleep 0.05; for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done";
    let _p = r.spawn_process(protocol, "sh", &sh(script), ProcessOptions::default()).unwrap();
    iterate_until(&r, || seen.ended.borrow().is_some());
    assert_eq!(seen.text(1), "first\nout1\nout2\nout3\nout4\nout5\n");
    assert_eq!(seen.text(2), "err1\nerr2\nerr3\nerr4\nerr5\n");
    let mut closed = seen.closed.borrow().clone();
    closed.sort();
    assert_eq!(closed, [0, 1, 2]);
}

fn half_closing_stdin_closes_the_pipe(kind: BackendKind) {
    let r = reactor(kind);
    let (protocol, seen) = recorder();
    let p = r.spawn_process(protocol, "cat", &[], ProcessOptions::default()).unwrap();
    p.write(b"bye\n");
    // A pipe has no half-close: this closes it, and cat sees end of file.
    p.child_transport(0).unwrap().lose_write_connection();
    iterate_until(&r, || seen.ended.borrow().is_some());
    assert_eq!(seen.text(1), "bye\n");
}

fn a_pty_child_can_be_paused(kind: BackendKind) {
    let r = reactor(kind);
    let (protocol, seen) = recorder();
    let p = r
        .spawn_process(
            protocol,
            "sh",
            &sh("echo from-the-pty"),
            ProcessOptions::default().pty(WindowSize::default()),
        )
        .unwrap();
    p.pause_producing();
    for _ in 0..10 {
        r.iterate(Duration::from_millis(10)).unwrap();
    }
    assert!(seen.text(1).is_empty(), "nothing is read while paused");
    p.resume_producing();
    iterate_until(&r, || seen.ended.borrow().is_some());
    assert!(seen.text(1).contains("from-the-pty"));
}

fn the_program_is_found_in_the_childs_path(kind: BackendKind) {
    let r = reactor(kind);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("torque-hello");
    std::fs::write(&script, "#!/bin/sh\necho \"found in the child's PATH\"\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (protocol, seen) = recorder();
    let path = format!("{}:/usr/bin:/bin", dir.path().display());
    let _p =
        r.spawn_process(protocol, "torque-hello", &[], ProcessOptions::default().env("PATH", path)).unwrap();
    iterate_until(&r, || seen.ended.borrow().is_some());
    assert_eq!(
        seen.text(1),
        "found in the child's PATH\n",
        "stderr {:?} exit {:?}",
        seen.text(2),
        seen.ended.borrow()
    );
}

fn a_child_outliving_a_stop_is_reported_on_the_next_run(kind: BackendKind) {
    let r = reactor(kind);
    let (protocol, seen) = recorder();
    let _p = r.spawn_process(protocol, "sleep", &["0.3"], ProcessOptions::default()).unwrap();
    r.call_later(Duration::from_millis(10), |r| {
        let _ = r.stop();
    });
    r.run().unwrap();
    assert!(seen.exited.borrow().is_none(), "still running when the reactor stopped");
    iterate_until(&r, || seen.exited.borrow().is_some());
    assert_eq!(*seen.exited.borrow(), Some(ProcessExit::Done));
}

fn uid_and_gid_are_set_where_permitted(kind: BackendKind) {
    let r = reactor(kind);
    let (protocol, seen) = recorder();
    let options = ProcessOptions { uid: Some(65534), gid: Some(65534), ..ProcessOptions::default() };
    // SAFETY (test): geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    match r.spawn_process(protocol, "sh", &sh("id -u; id -g"), options) {
        Ok(_p) => {
            assert!(root, "only root may change its uid");
            iterate_until(&r, || seen.ended.borrow().is_some());
            assert_eq!(seen.text(1), "65534\n65534\n");
        }
        Err(e) => {
            assert!(!root, "root may change its uid: {e}");
            assert!(e.to_string().contains("not permitted"), "{e}");
        }
    }
}

fn a_dropped_handle_loses_nothing(kind: BackendKind) {
    // Twisted programs often ignore spawnProcess's result: the child must still
    // be read, reaped and reported.
    let r = reactor(kind);
    for reaping in [Reaping::Auto, Reaping::Sigchld] {
        let (protocol, seen) = recorder();
        let options = ProcessOptions { reaping, ..ProcessOptions::default() };
        drop(r.spawn_process(protocol, "sh", &sh("sleep 0.1; echo still here"), options).unwrap());
        iterate_until(&r, || seen.ended.borrow().is_some());
        assert_eq!(seen.text(1), "still here\n");
        assert_eq!(*seen.ended.borrow(), Some(ProcessExit::Done));
    }
}

/// A child started leading its own process group: `signal_group` reaches
/// what it started too (a shell's background job), also after the leader
/// is gone; a child without a group of its own refuses it clearly.
fn signal_group_reaches_the_whole_process_group(kind: BackendKind) {
    let gone = |pid: i32| {
        // SAFETY (test): kill with signal 0 only checks the pid.
        let dead = unsafe { libc::kill(pid, 0) } != 0;
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        });
        dead || zombie
    };
    let r = reactor(kind);
    let (protocol, seen) = recorder();
    let script = "sleep 300 & echo $!; wait";
    let p = r.spawn_process(protocol, "sh", &sh(script), ProcessOptions::default().process_group()).unwrap();
    iterate_until(&r, || seen.text(1).ends_with('\n'));
    let grandchild: i32 = seen.text(1).trim().parse().unwrap();
    assert!(!gone(grandchild));
    p.signal_group(libc::SIGTERM).unwrap();
    iterate_until(&r, || seen.ended.borrow().is_some());
    let start = std::time::Instant::now();
    while !gone(grandchild) {
        assert!(start.elapsed() < Duration::from_secs(30), "the background job outlived the group signal");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Members left after the leader exits are still reached.
    let (protocol, seen) = recorder();
    let script = "sleep 300 & echo $!";
    let p = r.spawn_process(protocol, "sh", &sh(script), ProcessOptions::default().process_group()).unwrap();
    // (It holds the shell's stdout open: the shell exits, its pipes stay.)
    iterate_until(&r, || seen.exited.borrow().is_some() && seen.text(1).ends_with('\n'));
    let orphan: i32 = seen.text(1).trim().parse().unwrap();
    assert!(!gone(orphan), "the background job runs on after its shell");
    p.signal_group(libc::SIGKILL).unwrap();
    let start = std::time::Instant::now();
    while !gone(orphan) {
        assert!(start.elapsed() < Duration::from_secs(30), "the orphaned job survived");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Without a group of its own, the child's group is ours: refused.
    let (protocol, _) = recorder();
    let p = r.spawn_process(protocol, "sleep", &["30"], ProcessOptions::default()).unwrap();
    assert!(matches!(p.signal_group(libc::SIGTERM), Err(ProcessError::NoProcessGroup)));
    p.signal(libc::SIGKILL).unwrap();
}

crate::cases! {
    [Processes] plain {
        echo_through_cat,
        echo_through_cat_reaped_on_sigchld,
        a_hundred_mib_of_output_arrives_whole,
        stdin_applies_backpressure,
        wc_counts_everything,
        a_child_killed_by_a_signal_says_which,
        signal_group_reaches_the_whole_process_group,
        a_non_zero_exit_is_reported,
        a_child_closing_stdout_early_keeps_running,
        extra_child_fds_work_both_ways,
        a_parent_fd_is_passed_through_and_others_are_closed,
        a_pty_child_sees_a_terminal,
        a_pty_takes_input_and_resizes,
        environment_and_directory_are_set,
        start_errors_name_the_program_and_cause,
        a_child_that_exits_before_run_is_still_reported,
        a_dropped_handle_loses_nothing,
        uid_and_gid_are_set_where_permitted,
        output_arriving_during_a_nested_pass_is_kept_in_order,
        half_closing_stdin_closes_the_pipe,
        a_pty_child_can_be_paused,
        the_program_is_found_in_the_childs_path,
        a_child_outliving_a_stop_is_reported_on_the_next_run,
    }
}
