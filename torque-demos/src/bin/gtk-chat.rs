//! A GTK 4 chat client on the GLib-driven reactor (`torque-glib`): GTK's
//! widgets and Torque's protocols live on one thread, with GLib's main loop
//! doing the waiting and no helper thread. Lines from the room are appended to
//! the window by the protocol's callbacks.
//!
//! ```text
//! cargo run -p torque-demos --bin gtk-chat                  # starts a room here too
//! cargo run -p torque-demos --bin gtk-chat -- --connect tcp:127.0.0.1:8001
//! xvfb-run -a cargo run -p torque-demos --bin gtk-chat -- --self-test
//! ```
//!
//! `--self-test` sends a line, waits until the room's echo of it shows in the
//! window's text, saves a screenshot to `target/screenshots/gtk-chat.png`, and
//! exits 0 (1 on any failure, or after 60 s).

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use gtk::prelude::*;
use gtk4 as gtk;
use torque::Reactor;
use torque::net::Transport;
use torque_demos::{ChatEvent, SELF_TEST_LIMIT, SELF_TEST_LINE};

/// A GTK 4 chat client on the GLib-driven Torque reactor.
#[derive(Parser, Clone)]
struct Args {
    /// The chat room to join (a client endpoint, e.g. tcp:127.0.0.1:8001);
    /// without it, a room is started in this process on a free local port.
    #[arg(long)]
    connect: Option<String>,
    /// Send a line, wait for it in the window, save a screenshot, exit 0.
    #[arg(long)]
    self_test: bool,
}

/// The self-test's result: `None` while it runs.
type Outcome = Rc<Cell<Option<bool>>>;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args = Args::parse();
    let reactor = match torque_glib::reactor() {
        Ok(reactor) => reactor,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let app = gtk::Application::builder()
        .application_id("org.torque.GtkChat")
        .flags(gtk::gio::ApplicationFlags::NON_UNIQUE)
        .build();
    if let Err(e) = torque_glib::register_application(&reactor, &app) {
        eprintln!("error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let outcome: Outcome = Rc::default();
    let self_test = args.self_test;
    let (r, o) = (reactor.clone(), outcome.clone());
    app.connect_activate(move |app| build_window(app, &r, &args, &o));
    // Our flags are ours, not GTK's.
    app.run_with_args(&[] as &[&str]);
    match (self_test, outcome.get()) {
        (true, Some(true)) | (false, None | Some(true)) => std::process::ExitCode::SUCCESS,
        _ => std::process::ExitCode::FAILURE,
    }
}

fn build_window(app: &gtk::Application, reactor: &Reactor, args: &Args, outcome: &Outcome) {
    let window = gtk::ApplicationWindow::builder()
        .application(app)
        .title("Torque chat — GTK 4")
        .default_width(520)
        .default_height(320)
        .build();
    let view = gtk::TextView::builder().editable(false).cursor_visible(false).monospace(true).build();
    let scrolled = gtk::ScrolledWindow::builder().child(&view).vexpand(true).build();
    let entry = gtk::Entry::builder().placeholder_text("say something, Enter to send").build();
    let status = gtk::Label::builder().label("connecting…").xalign(0.0).build();
    let column = gtk::Box::new(gtk::Orientation::Vertical, 6);
    column.set_margin_top(8);
    column.set_margin_bottom(8);
    column.set_margin_start(8);
    column.set_margin_end(8);
    column.append(&scrolled);
    column.append(&entry);
    column.append(&status);
    window.set_child(Some(&column));
    // The shutdown contract: the window asks the reactor to stop, and the
    // reactor's shutdown quits the application (torque_glib::register_application).
    let r = reactor.clone();
    window.connect_close_request(move |_| {
        let _ = r.stop();
        gtk::glib::Propagation::Proceed
    });
    window.present();

    let room = match &args.connect {
        Some(description) => description.clone(),
        None => match torque_demos::serve(reactor, "tcp:0:interface=127.0.0.1") {
            Ok(port) => format!("tcp:127.0.0.1:{}", port.address().port().unwrap_or(0)),
            Err(e) => return fail(reactor, outcome, &status, &format!("cannot start a room: {e}")),
        },
    };

    let transport: Rc<RefCell<Option<Transport>>> = Rc::default();
    let buffer = view.buffer();
    let (t, r, o, s, w, self_test) =
        (transport.clone(), reactor.clone(), outcome.clone(), status.clone(), window.clone(), args.self_test);
    let connected = torque_demos::connect(reactor, &room, move |event| match event {
        ChatEvent::Connected(transport) => {
            s.set_text(&format!("connected to {}", transport.peer()));
            if self_test {
                transport.write(format!("{SELF_TEST_LINE}\n").as_bytes());
            }
            *t.borrow_mut() = Some(transport);
        }
        ChatEvent::Line(line) => {
            buffer.insert(&mut buffer.end_iter(), &format!("{line}\n"));
            // The check reads the widget's own text: what the window shows.
            let shown = buffer.text(&buffer.start_iter(), &buffer.end_iter(), false);
            if self_test && o.get().is_none() && shown.contains(&format!("> {SELF_TEST_LINE}")) {
                finish_self_test(&r, &o, &w);
            }
        }
        ChatEvent::Closed(why) => {
            s.set_text(&why);
            *t.borrow_mut() = None;
            if self_test && o.get().is_none() {
                fail(&r, &o, &s, &why);
            }
        }
    });
    if let Err(e) = connected {
        return fail(reactor, outcome, &status, &format!("cannot connect: {e}"));
    }
    entry.connect_activate(move |entry| {
        if let Some(transport) = transport.borrow().as_ref() {
            transport.write(format!("{}\n", entry.text()).as_bytes());
        }
        entry.set_text("");
    });
    if args.self_test {
        let (o, s) = (outcome.clone(), status.clone());
        reactor.call_later(SELF_TEST_LIMIT, move |r| {
            if o.get().is_none() {
                fail(r, &o, &s, &format!("the line did not appear within {SELF_TEST_LIMIT:?}"));
            }
        });
    }
}

/// The line is in the window's text: once the window is mapped and has
/// drawn a frame since, save the screenshot, and stop (which quits the
/// application). Checked every 100 ms, for up to 20 s.
fn finish_self_test(reactor: &Reactor, outcome: &Outcome, window: &gtk::ApplicationWindow) {
    outcome.set(Some(true));
    let painted = Rc::new(Cell::new(false));
    if let Some(clock) = window.frame_clock() {
        let p = painted.clone();
        clock.connect_after_paint(move |_| p.set(true));
    }
    window.queue_draw();
    try_screenshot(reactor, outcome, window, painted, 200);
}

fn try_screenshot(
    reactor: &Reactor,
    outcome: &Outcome,
    window: &gtk::ApplicationWindow,
    painted: Rc<Cell<bool>>,
    tries_left: u32,
) {
    let (o, w) = (outcome.clone(), window.clone());
    reactor.call_later(Duration::from_millis(100), move |r| {
        if !(w.is_mapped() && painted.get()) && tries_left > 0 {
            return try_screenshot(r, &o, &w, painted, tries_left - 1);
        }
        let path = torque_demos::screenshot_path("gtk-chat");
        match screenshot(&w, &path) {
            Ok(()) => println!("gtk-chat self-test passed; screenshot: {}", path.display()),
            Err(e) => {
                eprintln!("gtk-chat self-test: the line arrived, but the screenshot failed: {e}");
                o.set(Some(false));
            }
        }
        let _ = r.stop();
    });
}

fn fail(reactor: &Reactor, outcome: &Outcome, status: &gtk::Label, why: &str) {
    eprintln!("gtk-chat: {why}");
    status.set_text(why);
    if outcome.get().is_none() {
        outcome.set(Some(false));
    }
    let _ = reactor.stop();
}

/// Renders the window with its own renderer and saves it as a PNG.
fn screenshot(window: &gtk::ApplicationWindow, path: &Path) -> Result<(), String> {
    let (width, height) = (window.width(), window.height());
    if width == 0 || height == 0 {
        return Err("the window has no size yet".into());
    }
    let paintable = gtk::WidgetPaintable::new(Some(window));
    let snapshot = gtk::Snapshot::new();
    paintable.snapshot(&snapshot, f64::from(width), f64::from(height));
    let node = snapshot.to_node().ok_or("the window drew nothing")?;
    let renderer = window.renderer().ok_or("the window has no renderer")?;
    let texture = renderer.render_texture(&node, None);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    texture.save_to_png(path).map_err(|e| format!("{}: {e}", path.display()))
}
