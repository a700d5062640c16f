//! A plain Win32 chat window on the wfmo reactor (WaitForMultipleObjects):
//! the window and Torque's protocols live on one thread, and the reactor's
//! one wait covers the sockets and the thread's window messages, which it
//! dispatches to the window procedure. No helper thread, no second loop: the
//! reactor's `run()` is the program's message loop, and closing the window
//! (`WM_QUIT`) stops it.
//!
//! ```text
//! cargo build -Zbuild-std --target x86_64-pc-windows-gnu -p torque-demos \
//!     --no-default-features --features win32 --bin win32-chat     # scripts/windows.sh does
//! wine64 win32-chat.exe                                            # starts a room here too
//! wine64 win32-chat.exe --connect tcp:127.0.0.1:8001
//! xvfb-run -a wine64 win32-chat.exe --self-test
//! ```
//!
//! `--self-test` sends a line, waits until the room's echo of it is painted
//! in the window, copies the window's client area to
//! `target/screenshots/win32-chat.png` (or `--screenshot PATH`), and exits 0
//! (1 on any failure, or after 60 s).

#[cfg(not(windows))]
fn main() -> std::process::ExitCode {
    eprintln!("win32-chat is a Windows program: build it for x86_64-pc-windows-gnu (scripts/windows.sh)");
    std::process::ExitCode::FAILURE
}

#[cfg(windows)]
fn main() -> std::process::ExitCode {
    win32::main()
}

#[cfg(windows)]
mod win32 {
    use std::cell::RefCell;
    use std::path::{Path, PathBuf};

    use clap::Parser;
    use torque::Reactor;
    use torque_demos::{ChatEvent, SELF_TEST_LIMIT, SELF_TEST_LINE};
    use windows_sys::Win32::Foundation::{HWND, LPARAM, LRESULT, RECT, WPARAM};
    use windows_sys::Win32::Graphics::Gdi::{
        BI_RGB, BITMAPINFO, BITMAPINFOHEADER, BeginPaint, BitBlt, COLOR_WINDOW, CreateCompatibleBitmap,
        CreateCompatibleDC, DIB_RGB_COLORS, DeleteDC, DeleteObject, EndPaint, FillRect, GetDC, GetDIBits,
        GetSysColorBrush, HDC, InvalidateRect, PAINTSTRUCT, ReleaseDC, SRCCOPY, SelectObject, SetBkMode,
        TRANSPARENT, TextOutW, UpdateWindow,
    };
    use windows_sys::Win32::System::LibraryLoader::GetModuleHandleW;
    use windows_sys::Win32::UI::WindowsAndMessaging::{
        CW_USEDEFAULT, CreateWindowExW, DefWindowProcW, DestroyWindow, GetClientRect, IDC_ARROW, LoadCursorW,
        PostQuitMessage, RegisterClassW, SW_SHOW, ShowWindow, WM_CLOSE, WM_DESTROY, WM_PAINT, WNDCLASSW,
        WS_OVERLAPPEDWINDOW,
    };

    /// A Win32 chat client on the wfmo reactor.
    #[derive(Parser)]
    struct Args {
        /// The chat room to join (a client endpoint, e.g. tcp:127.0.0.1:8001);
        /// without it, a room is started in this process on a free local port.
        #[arg(long)]
        connect: Option<String>,
        /// Send a line, wait for it in the window, save a screenshot, exit 0.
        #[arg(long)]
        self_test: bool,
        /// Where the self-test saves its screenshot.
        #[arg(long)]
        screenshot: Option<PathBuf>,
    }

    /// What the window shows: changed by the chat's callbacks, read by
    /// `WM_PAINT`. Borrowed only for short moments, never across a Win32
    /// call that may send the window a message.
    #[derive(Default)]
    struct Ui {
        status: String,
        lines: Vec<String>,
    }

    thread_local! {
        static UI: RefCell<Ui> = RefCell::new(Ui::default());
    }

    fn wide(text: &str) -> Vec<u16> {
        text.encode_utf16().chain(Some(0)).collect()
    }

    pub fn main() -> std::process::ExitCode {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
        match run(Args::parse()) {
            Ok(true) => std::process::ExitCode::SUCCESS,
            Ok(false) => std::process::ExitCode::FAILURE,
            Err(e) => {
                eprintln!("win32-chat: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    }

    fn run(args: Args) -> Result<bool, Box<dyn std::error::Error>> {
        // wfmo's wait includes this thread's window messages.
        let reactor = Reactor::builder().backend(torque::BackendKind::Wfmo).build()?;
        let window = open_window()?;
        UI.with(|ui| ui.borrow_mut().status = "connecting…".into());

        let room = torque_demos::room_or_serve(&reactor, args.connect.as_deref())?;
        let outcome = std::rc::Rc::new(std::cell::Cell::new(None::<bool>));
        let screenshot =
            args.screenshot.clone().unwrap_or_else(|| torque_demos::screenshot_path("win32-chat"));
        let (o, r, self_test) = (outcome.clone(), reactor.clone(), args.self_test);
        torque_demos::connect(&reactor, &room, move |event| {
            let seen = on_chat_event(self_test, event);
            // SAFETY: `window` is this thread's live window; a repaint request
            // only queues WM_PAINT.
            unsafe { InvalidateRect(window.0, std::ptr::null(), 1) };
            match seen {
                Seen::Nothing => {}
                Seen::TestLine if o.get().is_none() => {
                    // Paint now (WM_PAINT sent straight to the window
                    // procedure), then copy what the window shows.
                    // SAFETY: as above.
                    unsafe { UpdateWindow(window.0) };
                    let saved = save_client_area(window.0, &screenshot);
                    if let Err(e) = &saved {
                        eprintln!("win32-chat: cannot save the screenshot: {e}");
                    } else {
                        println!("self-test passed: screenshot at {}", screenshot.display());
                    }
                    o.set(Some(saved.is_ok()));
                    let _ = r.stop();
                }
                Seen::TestLine => {}
                Seen::Failed(why) if self_test && o.get().is_none() => {
                    eprintln!("win32-chat: {why}");
                    o.set(Some(false));
                    let _ = r.stop();
                }
                Seen::Failed(_) => {}
            }
        })?;
        if args.self_test {
            let o = outcome.clone();
            reactor.call_later(SELF_TEST_LIMIT, move |r| {
                if o.get().is_none() {
                    eprintln!("win32-chat: the line did not appear within {SELF_TEST_LIMIT:?}");
                    o.set(Some(false));
                    let _ = r.stop();
                }
            });
        }
        // The program's message loop: closing the window posts WM_QUIT, which
        // stops the reactor.
        reactor.run()?;
        // SAFETY: the window is ours; it may be gone already (closed), which
        // DestroyWindow reports as an error we ignore.
        unsafe { DestroyWindow(window.0) };
        Ok(outcome.get() != Some(false))
    }

    /// What a chat event meant for the self-test.
    enum Seen {
        Nothing,
        TestLine,
        Failed(String),
    }

    fn on_chat_event(self_test: bool, event: ChatEvent) -> Seen {
        UI.with(|ui| {
            let mut ui = ui.borrow_mut();
            match event {
                ChatEvent::Connected(transport) => {
                    ui.status = format!("connected to {}", transport.peer());
                    if self_test {
                        transport.write(format!("{SELF_TEST_LINE}\n").as_bytes());
                    }
                    Seen::Nothing
                }
                ChatEvent::Line(line) => {
                    let test_line = line.ends_with(&format!("> {SELF_TEST_LINE}"));
                    ui.lines.push(line);
                    if test_line { Seen::TestLine } else { Seen::Nothing }
                }
                ChatEvent::Closed(why) => {
                    ui.status = why.clone();
                    Seen::Failed(why)
                }
            }
        })
    }

    /// This thread's chat window.
    #[derive(Clone, Copy)]
    struct Window(HWND);

    fn open_window() -> Result<Window, Box<dyn std::error::Error>> {
        let class = wide("TorqueChat");
        let title = wide("Torque chat — Win32 on wfmo");
        // SAFETY: the class and window are made from valid, NUL-terminated
        // UTF-16 strings that outlive the calls; `window_procedure` has the
        // WNDPROC signature; a null module means this executable.
        unsafe {
            let instance = GetModuleHandleW(std::ptr::null());
            let registered = WNDCLASSW {
                style: 0,
                lpfnWndProc: Some(window_procedure),
                cbClsExtra: 0,
                cbWndExtra: 0,
                hInstance: instance,
                hIcon: std::ptr::null_mut(),
                hCursor: LoadCursorW(std::ptr::null_mut(), IDC_ARROW),
                hbrBackground: GetSysColorBrush(COLOR_WINDOW),
                lpszMenuName: std::ptr::null(),
                lpszClassName: class.as_ptr(),
            };
            if RegisterClassW(&registered) == 0 {
                return Err(std::io::Error::last_os_error().into());
            }
            let window = CreateWindowExW(
                0,
                class.as_ptr(),
                title.as_ptr(),
                WS_OVERLAPPEDWINDOW,
                CW_USEDEFAULT,
                CW_USEDEFAULT,
                520,
                320,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                instance,
                std::ptr::null(),
            );
            if window.is_null() {
                return Err(std::io::Error::last_os_error().into());
            }
            ShowWindow(window, SW_SHOW);
            UpdateWindow(window);
            Ok(Window(window))
        }
    }

    /// The window procedure: runs inside the reactor's dispatch, outside
    /// every reactor borrow, when wfmo pumps this thread's messages.
    unsafe extern "system" fn window_procedure(window: HWND, message: u32, w: WPARAM, l: LPARAM) -> LRESULT {
        match message {
            WM_PAINT => {
                paint(window);
                0
            }
            WM_CLOSE => {
                // SAFETY: `window` is the window this message is for.
                unsafe { DestroyWindow(window) };
                0
            }
            WM_DESTROY => {
                // SAFETY: plain call; WM_QUIT then stops the reactor.
                unsafe { PostQuitMessage(0) };
                0
            }
            // SAFETY: the default handling of a message for our window.
            _ => unsafe { DefWindowProcW(window, message, w, l) },
        }
    }

    /// Draws the status line and the chat's lines, dark on the window's colour.
    fn paint(window: HWND) {
        let (status, lines) = UI.with(|ui| {
            let ui = ui.borrow();
            (ui.status.clone(), ui.lines.clone())
        });
        // SAFETY: BeginPaint/EndPaint bracket the painting of `window`, whose
        // DC is valid between them; every string passed lives for its call.
        unsafe {
            let mut paint: PAINTSTRUCT = std::mem::zeroed();
            let dc = BeginPaint(window, &mut paint);
            let mut area: RECT = std::mem::zeroed();
            GetClientRect(window, &mut area);
            FillRect(dc, &area, GetSysColorBrush(COLOR_WINDOW));
            SetBkMode(dc, TRANSPARENT as i32);
            let mut y = 8;
            for text in std::iter::once(&status).chain(lines.iter()) {
                let text: Vec<u16> = text.encode_utf16().collect();
                TextOutW(dc, 8, y, text.as_ptr(), text.len() as i32);
                y += 20;
            }
            EndPaint(window, &paint);
        }
    }

    /// Copies the window's client area, as the display shows it, to a PNG.
    fn save_client_area(window: HWND, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        let mut pixels;
        let (width, height);
        // SAFETY: the DCs and bitmap are made, selected, read and released in
        // order here; GetDIBits writes at most width × height 32-bit pixels
        // into `pixels`, which holds exactly that.
        unsafe {
            let mut area: RECT = std::mem::zeroed();
            GetClientRect(window, &mut area);
            width = area.right - area.left;
            height = area.bottom - area.top;
            let screen: HDC = GetDC(window);
            let memory = CreateCompatibleDC(screen);
            let bitmap = CreateCompatibleBitmap(screen, width, height);
            let old = SelectObject(memory, bitmap);
            BitBlt(memory, 0, 0, width, height, screen, 0, 0, SRCCOPY);
            SelectObject(memory, old);
            let mut info: BITMAPINFO = std::mem::zeroed();
            info.bmiHeader = BITMAPINFOHEADER {
                biSize: std::mem::size_of::<BITMAPINFOHEADER>() as u32,
                biWidth: width,
                biHeight: -height, // top-down rows
                biPlanes: 1,
                biBitCount: 32,
                biCompression: BI_RGB,
                ..std::mem::zeroed()
            };
            pixels = vec![0u8; width as usize * height as usize * 4];
            let rows = GetDIBits(
                memory,
                bitmap,
                0,
                height as u32,
                pixels.as_mut_ptr().cast(),
                &mut info,
                DIB_RGB_COLORS,
            );
            DeleteObject(bitmap);
            DeleteDC(memory);
            ReleaseDC(window, screen);
            if rows != height {
                return Err(format!("copied {rows} of {height} rows").into());
            }
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::io::BufWriter::new(std::fs::File::create(path)?);
        let mut encoder = png::Encoder::new(file, width as u32, height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        // Unfiltered rows, so a plain zlib inflate reads the pixels back
        // (scripts/windows.sh counts the text pixels with Python's zlib).
        encoder.set_filter(png::FilterType::NoFilter);
        encoder.set_adaptive_filter(png::AdaptiveFilterType::NonAdaptive);
        // BGRA to RGB.
        let rgb: Vec<u8> = pixels.chunks(4).flat_map(|p| [p[2], p[1], p[0]]).collect();
        encoder.write_header()?.write_image_data(&rgb)?;
        Ok(())
    }
}
