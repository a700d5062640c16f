//! UNIX stream sockets: paths, abstract names, stale and live socket files.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::Duration;

use torque::BackendKind;
use torque::net::{ConnectOptions, NetError, UnixListenOptions, factory_fn};

use crate::netkit::{Echo, Queue, Recorder};
use crate::support::{iterate_until, reactor};

fn temp_socket_path(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("torque-test-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("s.sock")
}

fn options() -> ConnectOptions {
    ConnectOptions { timeout: Some(Duration::from_secs(10)), bind_address: None }
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

fn file_descriptors_and_credentials_pass_over_unix_sockets(kind: BackendKind) {
    use std::os::fd::{AsFd, AsRawFd};
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
        abstract_names_work_without_files,
    }
}
