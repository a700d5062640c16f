//! Child processes at scale and signal dispositions. These watch the whole
//! process (its fd table, its zombies, its signal dispositions), so they live
//! in their own binary and run one at a time.

#[path = "conformance/support.rs"]
mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Mutex;

use torque::BackendKind;
use torque::process::{ProcessExit, ProcessOptions, ProcessProtocol, ProcessTransport, Reaping};

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

static SIGCHLD_SEEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" fn count_sigchld(_sig: libc::c_int) {
    SIGCHLD_SEEN.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

fn sigchld_reaping_chains_to_the_previous_handler_and_restores_it(kind: BackendKind) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let r = reactor(kind);
    // SAFETY (test): install a plain counting handler as "the program's own".
    let mine = count_sigchld as *const () as libc::sighandler_t;
    unsafe { libc::signal(libc::SIGCHLD, mine) };
    SIGCHLD_SEEN.store(0, std::sync::atomic::Ordering::SeqCst);
    let fds = open_fds();
    let mut children = Vec::new();
    for _ in 0..50 {
        let ended = Rc::new(Cell::new(None));
        let options = ProcessOptions { reaping: Reaping::Sigchld, ..ProcessOptions::default() };
        let child = r.spawn_process(Ended(ended.clone()), "true", &[], options).unwrap();
        children.push((child, ended));
    }
    iterate_until(&r, || children.iter().all(|(_, e)| e.get() == Some(ProcessExit::Done)));
    drop(children);
    // One more pass: with no child left, SIGCHLD goes back to its owner.
    r.iterate(std::time::Duration::ZERO).unwrap();
    assert!(SIGCHLD_SEEN.load(std::sync::atomic::Ordering::SeqCst) > 0, "the previous handler still ran");
    // SAFETY (test): read the current disposition, then restore the default.
    let now = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut old);
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        old.sa_sigaction
    };
    assert_eq!(now, mine, "the program's handler is back");
    assert_eq!(open_fds(), fds, "no fd leaked");
    assert_eq!(zombies_of_this_process(), 0);
}

fn a_thousand_sigchld_reaped_children_leave_no_zombie(kind: BackendKind) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let r = reactor(kind);
    let mut live = Vec::new();
    for i in 0..1000 {
        let ended = Rc::new(Cell::new(None));
        let options = ProcessOptions { reaping: Reaping::Sigchld, ..ProcessOptions::default() };
        live.push((r.spawn_process(Ended(ended.clone()), "true", &[], options).unwrap(), ended));
        if live.len() == 20 || i == 999 {
            iterate_until(&r, || live.iter().all(|(_, e)| e.get().is_some()));
            live.clear();
        }
    }
    assert_eq!(zombies_of_this_process(), 0, "no zombie left");
}

cases! {
    [Processes] plain {
        a_thousand_children_leave_no_zombie_and_no_fd,
        ignored_and_blocked_signals_are_reset_in_the_child,
        sigchld_reaping_chains_to_the_previous_handler_and_restores_it,
        a_thousand_sigchld_reaped_children_leave_no_zombie,
    }
}

fn main() {
    support::main(cases(), &[support::PLAIN]);
}
