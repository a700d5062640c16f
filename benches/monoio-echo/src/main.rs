//! A monoio echo server on its io_uring driver, as monoio's own echo example:
//! one read buffer per connection, `read` then `write_all`. Prints `PORT n`
//! once listening on 127.0.0.1 (an ephemeral port). With
//! `--exit-after-bytes N` it exits once it has echoed N bytes: under
//! valgrind, signals (and other threads) wait while a thread sleeps in
//! io_uring_enter, so the echo bench's instruction counts end it that way.

use std::io::Write;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

#[monoio::main(driver = "io_uring", entries = 32768)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let exit_after = args
        .iter()
        .position(|a| a == "--exit-after-bytes")
        .and_then(|i| args.get(i + 1)?.parse().ok());
    EXIT_AFTER.with(|e| e.set(exit_after.unwrap_or(u64::MAX)));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    println!("PORT {}", listener.local_addr().expect("local address").port());
    let _ = std::io::stdout().flush();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                monoio::spawn(echo(stream));
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}

thread_local! {
    static EXIT_AFTER: std::cell::Cell<u64> = const { std::cell::Cell::new(u64::MAX) };
    static ECHOED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

async fn echo(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buffer: Vec<u8> = Vec::with_capacity(8 * 1024);
    loop {
        let (read, returned) = stream.read(buffer).await;
        buffer = returned;
        if read? == 0 {
            return Ok(());
        }
        let (written, returned) = stream.write_all(buffer).await;
        buffer = returned;
        let n = written?;
        buffer.clear();
        let echoed = ECHOED.with(|e| {
            e.set(e.get() + n as u64);
            e.get()
        });
        if echoed >= EXIT_AFTER.with(std::cell::Cell::get) {
            std::process::exit(0);
        }
    }
}
