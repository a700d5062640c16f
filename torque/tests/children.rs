//! Child processes at scale and signal dispositions. These watch the whole
//! process (its fd table, its zombies, its signal dispositions), so they live
//! in their own binary and run one at a time.

#[path = "conformance/support.rs"]
mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Mutex;

use torque::BackendKind;
use torque::process::{ProcessExit, ProcessOptions, ProcessProtocol, ProcessTransport};

use support::{iterate_until, reactor};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Records how the child ended.
struct Ended(Rc<Cell<Option<ProcessExit>>>);

impl ProcessProtocol for Ended {
    fn child_data_received(&mut self, _p: &ProcessTransport, _fd: i32, _data: &[u8]) {}
    fn process_ended(&mut self, exit: ProcessExit) {
        self.0.set(Some(exit));
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn zombies_of_this_process() -> usize {
    let me = std::process::id().to_string();
    let mut zombies = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid …; comm may hold spaces, so split after ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 1 && fields[0] == "Z" && fields[1] == me {
            zombies += 1;
        }
    }
    zombies
}

fn a_thousand_children_leave_no_zombie_and_no_fd(kind: BackendKind) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let r = reactor(kind);
    let run = |n: usize| {
        let mut done = 0;
        let mut live = Vec::new();
        for i in 0..n {
            let ended = Rc::new(Cell::new(None));
            let child =
                r.spawn_process(Ended(ended.clone()), "true", &[], ProcessOptions::default()).unwrap();
            live.push((child, ended));
            // At most 20 at a time.
            if live.len() == 20 || i + 1 == n {
                iterate_until(&r, || live.iter().all(|(_, e)| e.get().is_some()));
                assert!(live.iter().all(|(_, e)| e.get() == Some(ProcessExit::Done)));
                done += live.len();
                live.clear();
            }
        }
        done
    };
    run(20); // warm up: the reactor's own buffers and the thread pool
    let fds = open_fds();
    assert_eq!(run(1000), 1000);
    assert_eq!(open_fds(), fds, "no fd leaked");
    assert_eq!(zombies_of_this_process(), 0, "no zombie left");
}

fn ignored_and_blocked_signals_are_reset_in_the_child(kind: BackendKind) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let r = reactor(kind);
    // SAFETY (test): change SIGUSR1's disposition and block SIGUSR2 on this
    // thread; both are restored below.
    unsafe {
        libc::signal(libc::SIGUSR1, libc::SIG_IGN);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR2);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let mut outcomes = Vec::new();
    for signal in ["USR1", "USR2"] {
        let ended = Rc::new(Cell::new(None));
        let script = format!("kill -{signal} $$; echo survived");
        let _child =
            r.spawn_process(Ended(ended.clone()), "sh", &["-c", &script], ProcessOptions::default()).unwrap();
        iterate_until(&r, || ended.get().is_some());
        outcomes.push(ended.get().unwrap());
    }
    // SAFETY (test): undo the changes above.
    unsafe {
        libc::signal(libc::SIGUSR1, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGUSR2);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
    assert_eq!(
        outcomes,
        [
            ProcessExit::Signaled { signal: libc::SIGUSR1, core_dumped: false },
            ProcessExit::Signaled { signal: libc::SIGUSR2, core_dumped: false },
        ]
    );
}

backend_tests!(
    a_thousand_children_leave_no_zombie_and_no_fd,
    ignored_and_blocked_signals_are_reset_in_the_child
);
