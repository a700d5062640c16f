//! A TLS echo server on 127.0.0.1:8443.
//!
//! ```text
//! cargo run --example tls_echo_server                       # makes a certificate for localhost
//! cargo run --example tls_echo_server -- cert.pem key.pem   # or uses yours
//! cargo run --example tls_echo_client -- localhost 8443 target/tls-echo-cert.pem hello
//! openssl s_client -connect 127.0.0.1:8443 -CAfile target/tls-echo-cert.pem   # any TLS client works
//! ```
//!
//! Without arguments it generates a self-signed certificate for `localhost`
//! with rcgen and writes it to `target/tls-echo-cert.pem`, for clients to trust.

use std::net::Ipv4Addr;

use torque::Reactor;
use torque::net::{DisconnectReason, ListenOptions, Protocol, Transport, factory_fn};
use torque::tls::{Identity, TlsServerOptions};

struct Echo;

impl Protocol for Echo {
    fn handshake_completed(&mut self, transport: &Transport) {
        if let Some(info) = transport.tls_info() {
            let version = info.version.map(|v| v.to_string()).unwrap_or_default();
            println!("{}: {version}, {}", transport.peer(), info.cipher_suite.unwrap_or_default());
        }
    }

    fn data_received(&mut self, transport: &Transport, data: &[u8]) {
        transport.write(data); // encrypted on the way out
    }

    fn connection_lost(&mut self, reason: DisconnectReason) {
        if let DisconnectReason::Tls(why) = reason {
            println!("TLS failed: {why}"); // e.g. the client does not trust us
        }
    }
}

fn identity() -> Result<Identity, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [cert, key] = args.as_slice() {
        return Ok(Identity::from_pem_files(cert, key)?);
    }
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?
        .self_signed(&key)?;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tls-echo-cert.pem");
    std::fs::create_dir_all(path.parent().expect("a directory"))?;
    std::fs::write(&path, cert.pem())?;
    println!("certificate for localhost written to {}", path.display());
    Ok(Identity::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes())?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = TlsServerOptions::new(identity()?).alpn(&["echo"]).build()?;
    let reactor = Reactor::new()?;
    let options = ListenOptions::interface(Ipv4Addr::LOCALHOST.into());
    let port = reactor.listen_tls(8443, factory_fn(|_| Echo), options, &config)?;
    println!("TLS echo on {} (Ctrl-C stops)", port.address());
    reactor.run()?;
    Ok(())
}
