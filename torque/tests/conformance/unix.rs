//! UNIX stream sockets: paths, abstract names, stale and live socket files.

use std::cell::{Cell, RefCell};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::rc::Rc;
use std::time::Duration;

use torque::BackendKind;
use torque::net::{ConnectOptions, NetError, Producer, UnixListenOptions, factory_fn};

use crate::netkit::{Echo, Queue, Recorder};
use crate::support::{iterate_until, reactor};

/// A fresh socket path: the same case runs at once under several drivers.
fn temp_socket_path(tag: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("torque-test-{}-{tag}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("s.sock")
}

fn options() -> ConnectOptions {
    ConnectOptions { timeout: Some(Duration::from_secs(10)), ..ConnectOptions::default() }
}

fn echo_over_a_unix_path_with_mode_and_cleanup(kind: BackendKind) {
    let r = reactor(kind);
    let path = temp_socket_path(&format!("echo-{kind}"));
    let name = path.to_str().unwrap().to_owned();
    let port = r
        .listen_unix(
            &name,
            factory_fn(|_| Echo),
            UnixListenOptions { mode: Some(0o600), ..Default::default() },
        )
        .unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let (mut client, seen) = Recorder::new();
    client.on_made = Some(Box::new(|t| t.write(b"over unix")));
    let (factory, _) = Queue::one(client);
    r.connect_unix(&name, factory, options());
    iterate_until(&r, || seen.data_len() == 9);
    assert_eq!(&*seen.data.borrow(), b"over unix");
    seen.transport().lose_connection();
    iterate_until(&r, || seen.lost_count.get() == 1);
    let stopped = std::rc::Rc::new(std::cell::Cell::new(false));
    let s = stopped.clone();
    drop(port.stop_listening().map(move |_| s.set(true)));
    iterate_until(&r, || stopped.get());
    assert!(!path.exists(), "the socket file is removed when the port stops");
}

fn a_stale_socket_file_is_replaced_and_a_live_one_is_not_stolen(kind: BackendKind) {
    let r = reactor(kind);
    let path = temp_socket_path(&format!("stale-{kind}"));
    let name = path.to_str().unwrap().to_owned();
    // A socket file nobody listens on: left by a crashed server.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let port = r.listen_unix(&name, factory_fn(|_| Echo), UnixListenOptions::default()).unwrap();
    let err = r.listen_unix(&name, factory_fn(|_| Echo), UnixListenOptions::default()).unwrap_err();
    assert!(matches!(err, NetError::CannotListen { .. }));
    assert!(err.to_string().contains("live server"), "{err}");
    drop(port.stop_listening());
    iterate_until(&r, || !path.exists());
}

fn an_impossible_socket_name_fails_through_the_factory(kind: BackendKind) {
    let r = reactor(kind);
    let (client, _) = Recorder::new();
    let (factory, outcomes) = Queue::one(client);
    let long_name = format!("/tmp/{}", "x".repeat(200)); // longer than sun_path
    r.connect_unix(&long_name, factory, options());
    assert!(outcomes.snapshot().is_empty(), "reported later, not inside connect_unix");
    iterate_until(&r, || outcomes.len() == 2);
    assert_eq!(outcomes.snapshot()[1], "other");
}

fn a_missing_socket_is_refused(kind: BackendKind) {
    let r = reactor(kind);
    let path = temp_socket_path(&format!("missing-{kind}"));
    let (client, _) = Recorder::new();
    let (factory, outcomes) = Queue::one(client);
    r.connect_unix(path.to_str().unwrap(), factory, options());
    iterate_until(&r, || outcomes.len() == 2);
    assert_eq!(outcomes.snapshot()[1], "refused");
}

/// A client and a server connected over a fresh UNIX socket: what each side
/// saw, and the listening port (kept for the case's life).
fn connected_pair(
    r: &torque::Reactor,
    tag: &str,
) -> (std::rc::Rc<crate::netkit::Seen>, std::rc::Rc<crate::netkit::Seen>, torque::net::ListeningPort) {
    let path = temp_socket_path(tag);
    let name = path.to_str().unwrap().to_owned();
    let (server, server_seen) = Recorder::new();
    let (factory, _) = Queue::one(server);
    let port = r.listen_unix(&name, factory, UnixListenOptions::default()).unwrap();
    let (client, client_seen) = Recorder::new();
    let (factory, _) = Queue::one(client);
    r.connect_unix(&name, factory, options());
    iterate_until(r, || client_seen.made.get() && server_seen.made.get());
    (client_seen, server_seen, port)
}

fn file_descriptors_and_credentials_pass_over_unix_sockets(kind: BackendKind) {
    use torque::fd::{AsFd, AsRawFd};
    let r = reactor(kind);
    let path = temp_socket_path(&format!("fds-{kind}"));
    let name = path.to_str().unwrap().to_owned();
    let (server, server_seen) = Recorder::new();
    let (factory, _) = Queue::one(server);
    let _port = r.listen_unix(&name, factory, UnixListenOptions::default()).unwrap();
    let pipe = crate::support::Pipe::new();
    let (client, client_seen) = Recorder::new();
    let (factory, _) = Queue::one(client);
    r.connect_unix(&name, factory, options());
    iterate_until(&r, || client_seen.made.get() && server_seen.made.get());
    let t = client_seen.transport();
    t.send_file_descriptor(pipe.r.as_fd()).unwrap();
    t.write(b"here is a pipe");
    iterate_until(&r, || server_seen.data_len() == 14);
    assert_eq!(server_seen.fds.borrow().len(), 1, "the descriptor arrived with the bytes");
    // The received fd is the same pipe: what we write comes out of it.
    pipe.send(b"through the passed fd");
    let received = server_seen.fds.borrow()[0].as_raw_fd();
    let mut got = Vec::new();
    iterate_until(&r, || {
        got.extend(crate::support::drain(received));
        got == b"through the passed fd"
    });
    let creds = server_seen.transport().peer_credentials().unwrap();
    // SAFETY (test): getuid/getpid cannot fail.
    assert_eq!(creds.uid, unsafe { libc::getuid() });
    #[cfg(target_os = "linux")]
    assert_eq!(creds.pid, Some(std::process::id() as i32));
}

/// Descriptors queue without limit and arrive in order, however many wait
/// (Twisted pauses the producer instead of refusing the 17th); a streaming
/// producer is paused while more than 64 wait and resumed once they are sent.
fn many_queued_descriptors_arrive_in_order_and_pause_a_producer(kind: BackendKind) {
    use torque::fd::{AsFd, AsRawFd};
    struct Counting(Rc<Cell<u32>>, Rc<Cell<u32>>);
    impl Producer for Counting {
        fn pause_producing(&mut self) {
            self.0.set(self.0.get() + 1);
        }
        fn resume_producing(&mut self) {
            self.1.set(self.1.get() + 1);
        }
    }
    const COUNT: usize = 100;
    crate::support::raise_fd_limit(8192);
    let r = reactor(kind);
    let (client_seen, server_seen, _port) = connected_pair(&r, &format!("many-fds-{kind}"));
    let t = client_seen.transport();
    let (pauses, resumes) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    t.register_producer(Rc::new(RefCell::new(Counting(pauses.clone(), resumes.clone()))), true).unwrap();
    let pipes: Vec<crate::support::Pipe> = (0..COUNT).map(|_| crate::support::Pipe::new()).collect();
    let inode = |fd: torque::fd::RawFd| {
        let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY (test): fstat on an open fd fills `stat`.
        assert_eq!(unsafe { libc::fstat(fd, stat.as_mut_ptr()) }, 0);
        // SAFETY (test): fstat succeeded.
        unsafe { stat.assume_init() }.st_ino
    };
    for (i, pipe) in pipes.iter().enumerate() {
        t.send_file_descriptor(pipe.r.as_fd()).unwrap_or_else(|e| panic!("descriptor {i}: {e}"));
    }
    assert_eq!(pauses.get(), 1, "paused once past 64 queued descriptors");
    t.write(&[b'x'; COUNT]);
    iterate_until(&r, || server_seen.data_len() == COUNT && server_seen.fds.borrow().len() == COUNT);
    let expected: Vec<_> = pipes.iter().map(|p| inode(p.r.as_raw_fd())).collect();
    let got: Vec<_> = server_seen.fds.borrow().iter().map(|fd| inode(fd.as_raw_fd())).collect();
    assert_eq!(got, expected, "every descriptor arrived, in order");
    iterate_until(&r, || resumes.get() > 0);
    // Close before the next case: the received descriptors go with it.
    server_seen.fds.borrow_mut().clear();
    t.unregister_producer();
    t.abort_connection();
    iterate_until(&r, || client_seen.lost.borrow().is_some() && server_seen.lost.borrow().is_some());
}

/// A descriptor no byte carried cannot travel: it is closed unsent when the
/// connection closes, and a close that was otherwise clean says so.
fn descriptors_no_byte_carried_are_reported_when_the_connection_closes(kind: BackendKind) {
    use torque::fd::AsFd;
    let r = reactor(kind);
    let (client_seen, server_seen, _port) = connected_pair(&r, &format!("unsent-fds-{kind}"));
    let t = client_seen.transport();
    let pipe = crate::support::Pipe::new();
    t.send_file_descriptor(pipe.r.as_fd()).unwrap();
    t.send_file_descriptor(pipe.w.as_fd()).unwrap();
    t.lose_connection();
    assert!(t.send_file_descriptor(pipe.r.as_fd()).is_err(), "a closing transport takes no more");
    iterate_until(&r, || client_seen.lost.borrow().is_some() && server_seen.lost.borrow().is_some());
    assert_eq!(client_seen.lost.borrow().as_deref(), Some("unsent descriptors: 2"));
    assert!(server_seen.fds.borrow().is_empty());
}

#[cfg(target_os = "linux")]
fn abstract_names_work_without_files(kind: BackendKind) {
    let r = reactor(kind);
    let name = format!("@torque-test-{}-{kind}", std::process::id());
    let port = r.listen_unix(&name, factory_fn(|_| Echo), UnixListenOptions::default()).unwrap();
    assert!(port.address().to_string().starts_with("unix:@torque-test-"), "{}", port.address());
    let (mut client, seen) = Recorder::new();
    client.on_made = Some(Box::new(|t| t.write(b"abstract")));
    let (factory, _) = Queue::one(client);
    r.connect_unix(&name, factory, options());
    iterate_until(&r, || seen.data_len() == 8);
}

#[cfg(not(target_os = "linux"))]
fn abstract_names_work_without_files(_kind: BackendKind) {}

crate::cases! {
    [UnixSockets] driven {
        echo_over_a_unix_path_with_mode_and_cleanup,
        a_stale_socket_file_is_replaced_and_a_live_one_is_not_stolen,
        a_missing_socket_is_refused,
        an_impossible_socket_name_fails_through_the_factory,
        file_descriptors_and_credentials_pass_over_unix_sockets,
        many_queued_descriptors_arrive_in_order_and_pause_a_producer,
        descriptors_no_byte_carried_are_reported_when_the_connection_closes,
        abstract_names_work_without_files,
    }
}
