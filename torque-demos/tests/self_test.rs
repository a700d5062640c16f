//! Both GUI demos pass their self-test in a real window under Xvfb: each opens
//! its window, joins a local Torque chat room, sends a line, waits until the
//! room's echo of it is in the window, saves a screenshot, and exits 0.
//! `xvfb-run` comes from Debian's `xvfb` and `xauth` packages (`.ci/run` and
//! `scripts/test.sh` install them).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `program args` under `xvfb-run` and returns its exit status and output.
fn under_xvfb(program: &str, args: &[&str]) -> (bool, String) {
    let mut child = Command::new("xvfb-run")
        .arg("-a")
        .arg(program)
        .args(args)
        // GTK's GL renderers need a GPU; Xvfb has none.
        .env("GSK_RENDERER", "cairo")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run xvfb-run ({e}): install Debian's xvfb and xauth packages (scripts/test.sh does)"
            )
        });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for xvfb-run") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} {args:?} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().expect("collect output");
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (status.success(), text)
}

fn assert_self_test(program: &str, args: &[&str], screenshot: &str) {
    let path = torque_demos::screenshot_path(screenshot);
    let _ = std::fs::remove_file(&path);
    let (ok, output) = under_xvfb(program, args);
    assert!(ok, "{program} {args:?} failed its self-test:\n{output}");
    assert!(output.contains("self-test passed"), "{output}");
    let png = std::fs::read(&path).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", path.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
        "{} is not a real PNG",
        path.display()
    );
}

/// One test, run in order: parallel `xvfb-run -a` calls can race for a display.
#[test]
fn the_gui_demos_pass_their_self_tests_under_xvfb() {
    assert_self_test(env!("CARGO_BIN_EXE_gtk-chat"), &["--self-test"], "gtk-chat");
    for backend in ["epoll", "poll", "select"] {
        assert_self_test(
            env!("CARGO_BIN_EXE_winit-chat"),
            &["--self-test", "--backend", backend],
            "winit-chat",
        );
    }
}
