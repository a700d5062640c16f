//! Tools for testing code that runs on a reactor, public so users test their own
//! protocols the way Twisted users do (`task.Clock`, `StringTransport`,
//! `iosim.connect`): deterministic, with no sockets and no sleeping.
//!
//! ```
//! use torque::net::{Protocol, Transport};
//! use torque::testing::MemoryTransport;
//!
//! struct Greeter;
//! impl Protocol for Greeter {
//!     fn connection_made(&mut self, t: &Transport) {
//!         t.write(b"hello\n");
//!     }
//!     fn data_received(&mut self, t: &Transport, data: &[u8]) {
//!         if data == b"bye\n" {
//!             t.lose_connection();
//!         }
//!     }
//! }
//!
//! let reactor = torque::Reactor::new()?;
//! let conn = MemoryTransport::connect(&reactor, Greeter);
//! assert_eq!(conn.take_written(), b"hello\n");
//! conn.receive(b"bye\n");
//! conn.settle(); // end-of-pass work: connection_lost
//! assert!(conn.is_closed());
//! # Ok::<(), torque::ReactorError>(())
//! ```

mod clock;
mod memory;
mod recording;
mod unsupported;

pub use clock::FakeClock;
pub use memory::{Loopback, MemoryTransport};
pub use recording::{RecordedConnect, RecordedListen, RecordingReactor};
pub use unsupported::check_unsupported;
