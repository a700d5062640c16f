//! A winit chat client on `Reactor::interleave`: winit owns the thread's wait,
//! the reactor waits on its helper thread, and each batch of network events
//! comes back through winit's `EventLoopProxy` and runs on the UI thread, where
//! the protocol's callbacks update the window's state. The window is drawn with
//! softbuffer and an 8×8 bitmap font (no GPU needed).
//!
//! ```text
//! cargo run -p torque-demos --bin winit-chat                # starts a room here too
//! cargo run -p torque-demos --bin winit-chat -- --connect tcp:127.0.0.1:8001
//! xvfb-run -a cargo run -p torque-demos --bin winit-chat -- --self-test
//! ```
//!
//! `--self-test` sends a line, waits until the room's echo of it is drawn in
//! the window, saves that frame to `target/screenshots/winit-chat.png`, and
//! exits 0 (1 on any failure, or after 60 s).

use std::cell::RefCell;
use std::num::NonZeroU32;
use std::path::Path;
use std::rc::Rc;

use clap::Parser;
use font8x8::UnicodeFonts;
use torque::net::Transport;
use torque::{GuiCall, Phase, Reactor, SystemEvent};
use torque_demos::{ChatEvent, SELF_TEST_LIMIT, SELF_TEST_LINE};
use winit::application::ApplicationHandler;
use winit::dpi::LogicalSize;
use winit::event::{ElementState, WindowEvent};
use winit::event_loop::{ActiveEventLoop, EventLoop};
use winit::keyboard::{Key, NamedKey};
use winit::window::{Window, WindowId};

/// A winit chat client on an interleaved Torque reactor.
#[derive(Parser)]
struct Args {
    /// The chat room to join (a client endpoint, e.g. tcp:127.0.0.1:8001);
    /// without it, a room is started in this process on a free local port.
    #[arg(long)]
    connect: Option<String>,
    /// Send a line, wait for it in the window, save a screenshot, exit 0.
    #[arg(long)]
    self_test: bool,
    /// The reactor backend (`torque reactors` lists them); interleave works on
    /// every one here.
    #[arg(long)]
    backend: Option<torque::BackendKind>,
}

/// What the window shows, changed by protocol callbacks on the UI thread.
#[derive(Default)]
struct Ui {
    lines: Vec<String>,
    input: String,
    status: String,
    transport: Option<Transport>,
    /// Redraw after the current batch.
    dirty: bool,
    /// The self-test line is in `lines`: save the next frame.
    screenshot_due: bool,
    /// The reactor's shutdown has run: leave the event loop.
    quit: bool,
    /// The self-test's result; `None` while it runs.
    outcome: Option<bool>,
}

type SharedUi = Rc<RefCell<Ui>>;

struct Surface {
    window: Rc<Window>,
    surface: softbuffer::Surface<Rc<Window>, Rc<Window>>,
}

struct App {
    reactor: Reactor,
    ui: SharedUi,
    self_test: bool,
    surface: Option<Surface>,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args = Args::parse();
    match run(args) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("winit-chat: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<bool, Box<dyn std::error::Error>> {
    let mut builder = Reactor::builder();
    if let Some(kind) = args.backend {
        builder = builder.backend(kind);
    }
    let reactor = builder.build()?;
    let ui = SharedUi::default();
    ui.borrow_mut().status = "connecting…".into();

    let event_loop = EventLoop::<GuiCall>::with_user_event().build()?;
    let proxy = event_loop.create_proxy();
    // The shutdown contract: quit the GUI loop from an after-shutdown trigger.
    let u = ui.clone();
    reactor.add_system_event_trigger(Phase::After, SystemEvent::Shutdown, move |_| {
        u.borrow_mut().quit = true;
    });
    // Every batch of network events arrives as a winit user event.
    reactor.interleave(move |call| {
        let _ = proxy.send_event(call);
    })?;

    let room = torque_demos::room_or_serve(&reactor, args.connect.as_deref())?;
    let (u, self_test) = (ui.clone(), args.self_test);
    torque_demos::connect(&reactor, &room, move |event| on_chat_event(&u, self_test, event))?;
    if args.self_test {
        let u = ui.clone();
        reactor.call_later(SELF_TEST_LIMIT, move |r| {
            let mut ui = u.borrow_mut();
            if ui.outcome.is_none() {
                eprintln!("winit-chat: the line did not appear within {SELF_TEST_LIMIT:?}");
                ui.outcome = Some(false);
                let _ = r.stop();
            }
        });
    }

    let mut app = App { reactor: reactor.clone(), ui: ui.clone(), self_test: args.self_test, surface: None };
    event_loop.run_app(&mut app)?;
    if reactor.is_interleaved() {
        // The loop ended some other way (the display went away): end the run.
        reactor.crash();
    }
    let outcome = ui.borrow().outcome;
    Ok(outcome != Some(false))
}

fn on_chat_event(ui: &SharedUi, self_test: bool, event: ChatEvent) {
    let mut ui = ui.borrow_mut();
    ui.dirty = true;
    match event {
        ChatEvent::Connected(transport) => {
            ui.status = format!("connected to {}", transport.peer());
            if self_test {
                transport.write(format!("{SELF_TEST_LINE}\n").as_bytes());
            }
            ui.transport = Some(transport);
        }
        ChatEvent::Line(line) => {
            if self_test && ui.outcome.is_none() && line.ends_with(&format!("> {SELF_TEST_LINE}")) {
                ui.screenshot_due = true;
            }
            ui.lines.push(line);
        }
        ChatEvent::Closed(why) => {
            ui.status = why;
            ui.transport = None;
            if self_test && ui.outcome.is_none() {
                eprintln!("winit-chat: {}", ui.status);
                ui.outcome = Some(false);
                ui.quit = true;
            }
        }
    }
}

impl ApplicationHandler<GuiCall> for App {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.surface.is_some() {
            return;
        }
        let attributes = Window::default_attributes()
            .with_title("Torque chat — winit")
            .with_inner_size(LogicalSize::new(520.0, 320.0));
        let made = event_loop.create_window(attributes).map_err(|e| e.to_string()).and_then(|window| {
            let window = Rc::new(window);
            let context = softbuffer::Context::new(window.clone()).map_err(|e| e.to_string())?;
            let surface = softbuffer::Surface::new(&context, window.clone()).map_err(|e| e.to_string())?;
            Ok(Surface { window, surface })
        });
        match made {
            Ok(surface) => self.surface = Some(surface),
            Err(e) => {
                eprintln!("winit-chat: cannot open a window: {e}");
                self.ui.borrow_mut().outcome = Some(false);
                let _ = self.reactor.stop();
            }
        }
    }

    fn user_event(&mut self, event_loop: &ActiveEventLoop, call: GuiCall) {
        // A batch from the reactor: its events, timers and thread calls run here.
        call();
        self.after_reactor_work(event_loop);
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        match event {
            WindowEvent::CloseRequested => {
                let _ = self.reactor.stop();
            }
            WindowEvent::RedrawRequested => self.redraw(),
            WindowEvent::KeyboardInput { event, .. } if event.state == ElementState::Pressed => {
                let mut ui = self.ui.borrow_mut();
                match &event.logical_key {
                    Key::Named(NamedKey::Enter) => {
                        let line = std::mem::take(&mut ui.input);
                        if let Some(transport) = &ui.transport {
                            transport.write(format!("{line}\n").as_bytes());
                        }
                    }
                    Key::Named(NamedKey::Backspace) => {
                        ui.input.pop();
                    }
                    _ => {
                        if let Some(text) = &event.text {
                            ui.input.push_str(text);
                        }
                    }
                }
                ui.dirty = true;
            }
            _ => {}
        }
        self.after_reactor_work(event_loop);
    }
}

impl App {
    fn after_reactor_work(&mut self, event_loop: &ActiveEventLoop) {
        let mut ui = self.ui.borrow_mut();
        if ui.quit {
            event_loop.exit();
            return;
        }
        if std::mem::take(&mut ui.dirty) {
            if let Some(surface) = &self.surface {
                surface.window.request_redraw();
            }
        }
    }

    fn redraw(&mut self) {
        let Some(Surface { window, surface }) = self.surface.as_mut() else { return };
        let size = window.inner_size();
        let (Some(width), Some(height)) = (NonZeroU32::new(size.width), NonZeroU32::new(size.height)) else {
            return;
        };
        if let Err(e) = surface.resize(width, height) {
            eprintln!("winit-chat: cannot size the surface: {e}");
            return;
        }
        let mut buffer = match surface.buffer_mut() {
            Ok(buffer) => buffer,
            Err(e) => {
                eprintln!("winit-chat: no frame buffer: {e}");
                return;
            }
        };
        let (w, h) = (width.get() as usize, height.get() as usize);
        let mut ui = self.ui.borrow_mut();
        draw(&mut buffer, w, h, &ui);
        // The frame as drawn, kept if the self-test's line is in it.
        let frame = (self.self_test && std::mem::take(&mut ui.screenshot_due)).then(|| buffer.to_vec());
        let presented = buffer.present();
        if let Err(e) = &presented {
            eprintln!("winit-chat: cannot present the frame: {e}");
        }
        let Some(frame) = frame else { return };
        // Passed only once the frame holding the line reached the window.
        let path = torque_demos::screenshot_path("winit-chat");
        match presented
            .map_err(|e| e.to_string())
            .and_then(|()| save_png(&frame, w, h, &path).map_err(|e| e.to_string()))
        {
            Ok(()) => {
                println!("winit-chat self-test passed; screenshot: {}", path.display());
                ui.outcome = Some(true);
            }
            Err(e) => {
                eprintln!(
                    "winit-chat self-test: the line was drawn, but the frame was not shown or saved: {e}"
                );
                ui.outcome = Some(false);
            }
        }
        let _ = self.reactor.stop();
    }
}

const BACKGROUND: u32 = 0x00_20_24_2c;
const TEXT: u32 = 0x00_e6_e6_e6;
const INPUT: u32 = 0x00_9c_dc_fe;
const STATUS: u32 = 0x00_8a_8f_98;
/// Glyphs are 8×8 pixels drawn at this scale.
const SCALE: usize = 2;
const LINE_HEIGHT: usize = 8 * SCALE + 4;

/// Draws the chat lines (newest at the bottom), the input line and the status.
fn draw(buffer: &mut [u32], width: usize, height: usize, ui: &Ui) {
    buffer.fill(BACKGROUND);
    let rows = height.saturating_sub(2 * LINE_HEIGHT + 16) / LINE_HEIGHT;
    let first = ui.lines.len().saturating_sub(rows);
    for (row, line) in ui.lines[first..].iter().enumerate() {
        draw_text(buffer, width, height, 8, 8 + row * LINE_HEIGHT, line, TEXT);
    }
    let input_y = height.saturating_sub(2 * LINE_HEIGHT + 4);
    draw_text(buffer, width, height, 8, input_y, &format!("> {}_", ui.input), INPUT);
    draw_text(buffer, width, height, 8, input_y + LINE_HEIGHT, &ui.status, STATUS);
}

fn draw_text(buffer: &mut [u32], width: usize, height: usize, x: usize, y: usize, text: &str, color: u32) {
    for (i, ch) in text.chars().enumerate() {
        let glyph = font8x8::BASIC_FONTS.get(ch).or_else(|| font8x8::BASIC_FONTS.get('?')).unwrap_or([0; 8]);
        let left = x + i * 8 * SCALE;
        for (gy, bits) in glyph.iter().enumerate() {
            for gx in 0..8 {
                if bits & (1 << gx) == 0 {
                    continue;
                }
                for dy in 0..SCALE {
                    for dx in 0..SCALE {
                        let (px, py) = (left + gx * SCALE + dx, y + gy * SCALE + dy);
                        if px < width && py < height {
                            buffer[py * width + px] = color;
                        }
                    }
                }
            }
        }
    }
}

/// Saves a frame (0RGB pixels, as softbuffer holds them) as an RGB PNG.
fn save_png(
    pixels: &[u32],
    width: usize,
    height: usize,
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, width as u32, height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let rgb: Vec<u8> = pixels.iter().flat_map(|p| [(p >> 16) as u8, (p >> 8) as u8, *p as u8]).collect();
    encoder.write_header()?.write_image_data(&rgb)?;
    Ok(())
}
