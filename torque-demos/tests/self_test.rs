//! Both GUI demos pass their self-test in a real window under Xvfb: each opens
//! its window, joins a local Torque chat room, sends a line, waits until the
//! room's echo of it is in the window, saves a screenshot, and exits 0. The
//! screenshot must also show text. `xvfb-run` comes from Debian's `xvfb` and
//! `xauth` packages (`scripts/install-system-packages.sh`).

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `program args` under `xvfb-run` and returns whether it succeeded, and
/// its output. Output goes to a file (a full pipe could block the demo), and
/// the whole process group (xvfb-run, Xvfb, the demo) is killed on a hang.
fn under_xvfb(program: &str, args: &[&str]) -> (bool, String) {
    let log = tempfile::NamedTempFile::new().expect("a log file");
    let mut child = Command::new("xvfb-run")
        .arg("-a")
        .arg(program)
        .args(args)
        // GTK's GL renderers need a GPU; Xvfb has none.
        .env("GSK_RENDERER", "cairo")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.reopen().expect("log for stdout"))
        .stderr(log.reopen().expect("log for stderr"))
        .process_group(0)
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
            // SAFETY (test): signals the process group we started.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!("{program} {args:?} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.success(), std::fs::read_to_string(log.path()).unwrap_or_default())
}

/// How many pixels of the screenshot pass `is_text`.
fn count_pixels(path: &std::path::Path, is_text: impl Fn([u8; 3]) -> bool) -> usize {
    let file =
        std::fs::File::open(path).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file)).read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("a frame");
    let channels = info.color_type.samples();
    assert!(channels >= 3, "an RGB(A) screenshot");
    pixels[..info.buffer_size()].chunks(channels).filter(|p| is_text([p[0], p[1], p[2]])).count()
}

fn assert_self_test(program: &str, args: &[&str], screenshot: &str, is_text: impl Fn([u8; 3]) -> bool) {
    let path = torque_demos::screenshot_path(screenshot);
    let _ = std::fs::remove_file(&path);
    let (ok, output) = under_xvfb(program, args);
    assert!(ok, "{program} {args:?} failed its self-test:\n{output}");
    assert!(output.contains("self-test passed"), "{output}");
    // Two lines of text are at least a few hundred glyph pixels.
    let text = count_pixels(&path, is_text);
    assert!(text > 300, "{}: only {text} text pixels", path.display());
}

/// One test, run in order: parallel `xvfb-run -a` calls can race for a display.
#[test]
fn the_gui_demos_pass_their_self_tests_under_xvfb() {
    // GTK's default theme: dark text on a light view.
    assert_self_test(env!("CARGO_BIN_EXE_gtk-chat"), &["--self-test"], "gtk-chat", |[r, g, b]| {
        r < 80 && g < 80 && b < 80
    });
    // interleave() works on every backend with the Interleave capability.
    let backends =
        torque::BackendKind::all().iter().filter(|k| k.info().supports(torque::Capability::Interleave));
    for backend in backends {
        // winit-chat draws its chat lines in 0xe6e6e6.
        assert_self_test(
            env!("CARGO_BIN_EXE_winit-chat"),
            &["--self-test", "--backend", backend.name()],
            "winit-chat",
            |pixel| pixel == [0xe6, 0xe6, 0xe6],
        );
    }
}
