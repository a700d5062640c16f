//! A monoio echo server on its io_uring driver, as monoio's own echo example:
//! one read buffer per connection, `read` then `write_all`. Prints `PORT n`
//! once listening on 127.0.0.1 (an ephemeral port).

use std::io::Write;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

#[monoio::main(driver = "io_uring", entries = 32768)]
async fn main() {
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
        written?;
        buffer.clear();
    }
}
