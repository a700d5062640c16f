//! Child processes on every platform and backend, with this test binary as
//! the child (`TORQUE_TEST_CHILD` picks what it does, see [`child_main`]):
//! pipes both ways, large output, exit codes, stderr, killing, environment
//! and directory, start errors, and on Windows the clear errors for what it
//! lacks (PTYs, extra fds, uid/gid). The `process` module covers the Unix
//! specifics with Unix programs.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::rc::Rc;

use torque::BackendKind;
#[cfg(windows)]
use torque::process::ChildFd;
use torque::process::{
    ProcessError, ProcessExit, ProcessOptions, ProcessProtocol, ProcessTransport, SpawnError,
};

use crate::support::{iterate_until, reactor};

/// The environment variable that makes this binary a child.
const CHILD: &str = "TORQUE_TEST_CHILD";

/// Runs as the child `mode` names, then exits: `cat` copies stdin to
/// stdout; `emit N SIZE` writes N bytes, SIZE at a time; `exit N` writes to stdout and stderr and
/// exits with N; `sleep` waits (60 s at most) to be killed; `env NAME`
/// prints NAME's value and the working directory.
pub fn child_main(mode: &str) -> ! {
    let mut words = mode.split(' ');
    let mut out = std::io::stdout().lock();
    let code = match (words.next(), words.next()) {
        (Some("cat"), _) => {
            let mut buffer = [0u8; 65536];
            let mut stdin = std::io::stdin().lock();
            loop {
                match stdin.read(&mut buffer) {
                    Ok(0) | Err(_) => break 0,
                    Ok(n) => {
                        if out.write_all(&buffer[..n]).and_then(|()| out.flush()).is_err() {
                            break 1;
                        }
                    }
                }
            }
        }
        (Some("emit"), Some(n)) => {
            let mut left: usize = n.parse().expect("a byte count");
            let size: usize = words.next().and_then(|s| s.parse().ok()).expect("a write size");
            let chunk = vec![b'x'; size];
            while left > 0 {
                let n = left.min(chunk.len());
                out.write_all(&chunk[..n]).expect("stdout");
                left -= n;
            }
            0
        }
        (Some("exit"), Some(n)) => {
            out.write_all(b"out").expect("stdout");
            std::io::stderr().write_all(b"err").expect("stderr");
            n.parse().expect("an exit code")
        }
        (Some("sleep"), _) => {
            std::thread::sleep(std::time::Duration::from_secs(60));
            0
        }
        (Some("env"), Some(name)) => {
            let value = std::env::var(name).unwrap_or_default();
            let dir = std::env::current_dir().expect("a working directory");
            write!(out, "{value}|{}", dir.display()).expect("stdout");
            0
        }
        _ => 2,
    };
    out.flush().ok();
    std::process::exit(code)
}

/// What a [`Recorder`] saw.
#[derive(Default)]
pub struct Seen {
    pub out: RefCell<Vec<u8>>,
    pub by_fd: RefCell<Vec<(i32, Vec<u8>)>>,
    pub closed: RefCell<Vec<i32>>,
    pub exited: RefCell<Option<ProcessExit>>,
    pub ended: RefCell<Option<ProcessExit>>,
    pub events: RefCell<Vec<String>>,
    pub made: Cell<bool>,
    pub bytes: Cell<usize>,
}

impl Seen {
    /// What fd `fd` delivered, as text.
    pub fn text(&self, fd: i32) -> String {
        let by_fd = self.by_fd.borrow();
        let bytes: Vec<u8> = by_fd.iter().filter(|(f, _)| *f == fd).flat_map(|(_, d)| d.clone()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// A process protocol that records what it hears in a [`Seen`].
pub struct Recorder {
    seen: Rc<Seen>,
    /// Keep the data (not only count it).
    pub keep: bool,
}

/// A recorder keeping everything, and what it saw.
pub fn recorder() -> (Recorder, Rc<Seen>) {
    let seen = Rc::new(Seen::default());
    (Recorder { seen: seen.clone(), keep: true }, seen)
}

impl ProcessProtocol for Recorder {
    fn connection_made(&mut self, _p: &ProcessTransport) {
        self.seen.made.set(true);
    }
    fn child_data_received(&mut self, _p: &ProcessTransport, fd: i32, data: &[u8]) {
        self.seen.bytes.set(self.seen.bytes.get() + data.len());
        if self.keep {
            self.seen.by_fd.borrow_mut().push((fd, data.to_vec()));
            if fd == 1 {
                self.seen.out.borrow_mut().extend_from_slice(data);
            }
        }
    }
    fn child_connection_lost(&mut self, _p: &ProcessTransport, fd: i32) {
        self.seen.closed.borrow_mut().push(fd);
        self.seen.events.borrow_mut().push(format!("closed {fd}"));
    }
    fn process_exited(&mut self, exit: ProcessExit) {
        assert!(self.seen.exited.borrow().is_none(), "process_exited twice");
        *self.seen.exited.borrow_mut() = Some(exit);
        self.seen.events.borrow_mut().push("exited".into());
    }
    fn process_ended(&mut self, exit: ProcessExit) {
        assert!(self.seen.ended.borrow().is_none(), "process_ended twice");
        assert!(self.seen.exited.borrow().is_some(), "ended before exited");
        *self.seen.ended.borrow_mut() = Some(exit);
        self.seen.events.borrow_mut().push("ended".into());
    }
}

/// This binary, to run as a child.
fn me() -> String {
    std::env::current_exe().expect("the test binary's path").to_string_lossy().into_owned()
}

/// Options that make the child run `mode`.
fn child(mode: &str) -> ProcessOptions {
    ProcessOptions::default().env(CHILD, mode)
}

fn a_child_echoes_its_stdin(kind: BackendKind) {
    let r = reactor(kind);
    let (protocol, seen) = recorder();
    let p = r.spawn_process(protocol, &me(), &[], child("cat")).unwrap();
    assert!(p.pid() > 0);
    p.write(b"hello, ");
    p.write_vectored(&[b"child", b"\n"]);
    p.close_stdin();
    iterate_until(&r, || seen.ended.borrow().is_some());
    assert_eq!(seen.text(1), "hello, child\n");
    assert_eq!(*seen.ended.borrow(), Some(ProcessExit::Done));
    let mut closed = seen.closed.borrow().clone();
    closed.sort();
    assert_eq!(closed, [0, 1, 2]);
    assert!(matches!(p.signal_named("KILL"), Err(ProcessError::Exited)), "no signal once reaped");
}

fn a_megabyte_through_stdin_comes_back_whole(kind: BackendKind) {
    let r = reactor(kind);
    let (mut protocol, seen) = recorder();
    protocol.keep = false;
    let p = r.spawn_process(protocol, &me(), &[], child("cat")).unwrap();
    let block: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    p.write(&block);
    p.close_stdin();
    iterate_until(&r, || seen.ended.borrow().is_some());
    assert_eq!(seen.bytes.get(), 1 << 20);
    assert_eq!(*seen.ended.borrow(), Some(ProcessExit::Done));
}

/// The child writes 32 MiB in 8 KiB writes (a stdio buffer's size).
fn thirty_two_mib_of_output_arrive_whole(kind: BackendKind) {
    output_arrives_whole(kind, 32 << 20, 8 << 10);
}

/// The child writes 8 MiB in 64 KiB writes, each more than a socket buffer
/// holds, so most block until the reactor reads.
fn large_blocking_writes_from_the_child_arrive_whole(kind: BackendKind) {
    output_arrives_whole(kind, 8 << 20, 64 << 10);
}

fn output_arrives_whole(kind: BackendKind, total: usize, write_size: usize) {
    let r = reactor(kind);
    let (mut protocol, seen) = recorder();
    protocol.keep = false;
    let _p = r.spawn_process(protocol, &me(), &[], child(&format!("emit {total} {write_size}"))).unwrap();
    iterate_until(&r, || seen.ended.borrow().is_some());
    assert_eq!(seen.bytes.get(), total);
    assert_eq!(*seen.ended.borrow(), Some(ProcessExit::Done));
}

fn an_exit_code_and_stderr_are_reported(kind: BackendKind) {
    let r = reactor(kind);
    let (protocol, seen) = recorder();
    let _p = r.spawn_process(protocol, &me(), &[], child("exit 3")).unwrap();
    iterate_until(&r, || seen.ended.borrow().is_some());
    assert_eq!(*seen.exited.borrow(), Some(ProcessExit::Exited(3)));
    assert_eq!(*seen.ended.borrow(), Some(ProcessExit::Exited(3)));
    assert_eq!((seen.text(1).as_str(), seen.text(2).as_str()), ("out", "err"));
}

fn a_killed_child_is_reported(kind: BackendKind) {
    let r = reactor(kind);
    let (protocol, seen) = recorder();
    let p = r.spawn_process(protocol, &me(), &[], child("sleep")).unwrap();
    p.signal_named("KILL").unwrap();
    iterate_until(&r, || seen.ended.borrow().is_some());
    // Windows has no signals: KILL is TerminateProcess with exit code 1, as in Twisted.
    let expected = if cfg!(windows) {
        ProcessExit::Exited(1)
    } else {
        ProcessExit::Signaled { signal: 9, core_dumped: false }
    };
    assert_eq!(*seen.ended.borrow(), Some(expected));
    assert!(matches!(p.signal_named("NOPE"), Err(ProcessError::UnknownSignal(_))));
}

fn environment_and_directory_reach_the_child(kind: BackendKind) {
    let r = reactor(kind);
    let (protocol, seen) = recorder();
    let dir = tempfile::tempdir().unwrap();
    let options = child("env TORQUE_TEST_VALUE").env("TORQUE_TEST_VALUE", "forty-two").cwd(dir.path());
    let _p = r.spawn_process(protocol, &me(), &[], options).unwrap();
    iterate_until(&r, || seen.ended.borrow().is_some());
    let text = seen.text(1);
    let (value, cwd) = text.split_once('|').expect("value|dir");
    assert_eq!(value, "forty-two");
    let canonical = |p: &std::path::Path| std::fs::canonicalize(p).unwrap();
    assert_eq!(canonical(std::path::Path::new(cwd)), canonical(dir.path()));
}

fn start_errors_name_the_program(kind: BackendKind) {
    let r = reactor(kind);
    let err =
        r.spawn_process(recorder().0, "torque-no-such-program", &[], ProcessOptions::default()).unwrap_err();
    assert!(matches!(err, SpawnError::Exec { .. }), "{err}");
    assert!(err.to_string().contains("torque-no-such-program"), "{err}");
    let missing = tempfile::tempdir().unwrap().path().join("missing");
    let err = r.spawn_process(recorder().0, &me(), &[], child("exit 0").cwd(&missing)).unwrap_err();
    assert!(matches!(err, SpawnError::BadDirectory { .. }), "{err}");
}

/// Windows: what it cannot give a child is refused up front, saying why.
#[cfg(windows)]
fn windows_refuses_ptys_extra_fds_and_users(kind: BackendKind) {
    let r = reactor(kind);
    let refused = |options: ProcessOptions| r.spawn_process(recorder().0, &me(), &[], options).unwrap_err();
    let err = refused(child("exit 0").pty(torque::process::WindowSize::default()));
    assert!(matches!(err, SpawnError::BadOptions { .. }) && err.to_string().contains("PTY"), "{err}");
    let err = refused(child("exit 0").child_fd(3, ChildFd::Read));
    assert!(err.to_string().contains("child fd 3"), "{err}");
    let err = refused(ProcessOptions { uid: Some(0), ..child("exit 0") });
    assert!(err.to_string().contains("uid"), "{err}");
    // INT, TERM and KILL end the child; Windows has no other signal.
    let (protocol, seen) = recorder();
    let p = r.spawn_process(protocol, &me(), &[], child("sleep")).unwrap();
    let err = p.signal_named("HUP").unwrap_err();
    assert!(matches!(err, ProcessError::UnknownSignal(_)), "{err}");
    assert!(matches!(p.signal_group(2), Err(ProcessError::NoProcessGroup)));
    p.signal_named("TERM").unwrap();
    iterate_until(&r, || seen.ended.borrow().is_some());
    assert_eq!(*seen.ended.borrow(), Some(ProcessExit::Exited(1)));
}

crate::cases! {
    [Processes] plain {
        a_child_echoes_its_stdin,
        a_megabyte_through_stdin_comes_back_whole,
        thirty_two_mib_of_output_arrive_whole,
        large_blocking_writes_from_the_child_arrive_whole,
        an_exit_code_and_stderr_are_reported,
        a_killed_child_is_reported,
        environment_and_directory_reach_the_child,
        start_errors_name_the_program,
        #[cfg(windows)] windows_refuses_ptys_extra_fds_and_users,
    }
}
