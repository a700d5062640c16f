//! `torque web`: a static file server over HTTP/1.1.
//!
//! - [`request`] parses a request head (httparse) and refuses what cannot be
//!   served, each refusal with its status;
//! - [`files`] turns a target into an open file under the root (no escape:
//!   `..` is refused, symlinks out of the root are refused by the kernel through
//!   `openat2(RESOLVE_BENEATH)`), validators, ranges and the small-file cache;
//! - [`listing`] renders directory pages;
//! - [`response`] writes status lines and heads;
//! - `connection` is the per-connection protocol: pipelining, keep-alive,
//!   timeouts, streaming large files with `sendfile` through a pull producer.
//!
//! ```no_run
//! use torque::Reactor;
//! use torque_app::web::{WebConfig, WebServer};
//!
//! let reactor = Reactor::new()?;
//! let server = WebServer::new(&reactor, WebConfig::new("."))?;
//! let port = torque::net::server_from_string("tcp:8080:interface=127.0.0.1")?
//!     .listen(&reactor, server.factory())?;
//! println!("serving on http://{}", port.address());
//! reactor.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod connection;
pub mod files;
pub mod listing;
pub mod request;
pub mod response;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use torque::defer::{Deferred, Resolver};
use torque::net::{Address, Factory, Protocol};
use torque::{Reactor, WeakReactor};

use crate::service::Drain;
use connection::{Core, HttpConnection, Refuse503};

/// How the file server behaves.
#[derive(Clone, Debug)]
pub struct WebConfig {
    /// The directory served.
    pub root: PathBuf,
    /// Follow symlinks that point outside the root (default: refuse them, 403).
    pub follow_symlinks: bool,
    /// List directories without an `index.html` (default: yes; no gives 403).
    pub listings: bool,
    /// Serve names starting with `.` (`.git/`, `.env`). Off by default, as in
    /// most static servers: they are 404 and left out of listings.
    pub serve_hidden: bool,
    /// Request size limits.
    pub limits: request::Limits,
    /// Time allowed for a request head to arrive, from its first byte (408 after).
    pub header_timeout: Duration,
    /// Time a connection may sit idle between requests, or a client may take no
    /// data from a response being sent: it is closed this long after its last
    /// activity.
    pub idle_timeout: Duration,
    /// Most open connections; more are answered 503 and closed. Counted in
    /// `open_connections`, across every worker reactor.
    pub max_connections: usize,
    /// The open connections of every server built from clones of this config
    /// (one per worker reactor, `--workers`), which `max_connections` limits.
    pub open_connections: ConnectionCount,
    /// How long a small file's content and validators are trusted before being
    /// read again (zero: every request reads the file).
    pub cache_ttl: Duration,
    /// Files up to this size are read whole (and cached); larger ones stream.
    pub small_file: u64,
    /// Log one line per request to the `torque::access` target.
    pub access_log: bool,
    /// Send large files with `sendfile(2)` (default); off, they are read and
    /// written through user space (to measure the difference).
    pub sendfile: bool,
}

impl WebConfig {
    /// Serves `root` with the defaults.
    pub fn new(root: impl Into<PathBuf>) -> WebConfig {
        WebConfig {
            root: root.into(),
            follow_symlinks: false,
            listings: true,
            serve_hidden: false,
            limits: request::Limits::default(),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            open_connections: ConnectionCount::default(),
            cache_ttl: Duration::from_secs(1),
            small_file: 64 * 1024,
            access_log: true,
            sendfile: true,
        }
    }
}

/// A count of open connections shared by the servers of several reactors
/// (clones share it).
#[derive(Clone, Debug, Default)]
pub struct ConnectionCount(Arc<AtomicUsize>);

impl ConnectionCount {
    /// The connections open now.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self, n: usize) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    fn sub(&self, n: usize) {
        // Never below zero, whatever the order of updates.
        let _ = self.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(n)));
    }
}

/// What every connection of one server shares.
pub(crate) struct Site {
    config: WebConfig,
    root: files::Root,
    cache: RefCell<files::FileCache>,
    reactor: WeakReactor,
    connections: RefCell<HashMap<u64, Weak<RefCell<Core>>>>,
    next_id: Cell<u64>,
    active: Cell<usize>,
    draining: Cell<bool>,
    drained: RefCell<Vec<Resolver<()>>>,
}

impl Site {
    fn connection_closed(&self) {
        self.active.set(self.active.get().saturating_sub(1));
        self.config.open_connections.sub(1);
        if self.draining.get() && self.active.get() == 0 {
            let waiting = std::mem::take(&mut *self.drained.borrow_mut());
            for resolver in waiting {
                let _ = resolver.callback(());
            }
        }
    }

    fn live_connections(&self) -> Vec<Rc<RefCell<Core>>> {
        self.connections.borrow().values().filter_map(Weak::upgrade).collect()
    }
}

/// A static file server: its factory for listening ports and its drain for a
/// graceful stop.
pub struct WebServer {
    site: Rc<Site>,
}

impl fmt::Debug for WebServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebServer")
            .field("root", &self.site.root.path())
            .field("connections", &self.site.active.get())
            .finish()
    }
}

impl WebServer {
    /// A server on `reactor` (for its clock and timers); opens the root
    /// directory, and an error names it.
    pub fn new(reactor: &Reactor, config: WebConfig) -> io::Result<WebServer> {
        let root = files::Root::open(&config.root, config.follow_symlinks)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot serve {}: {e}", config.root.display())))?;
        let site = Site {
            cache: RefCell::new(files::FileCache::new(config.cache_ttl)),
            config,
            root,
            reactor: reactor.downgrade(),
            connections: RefCell::new(HashMap::new()),
            next_id: Cell::new(0),
            active: Cell::new(0),
            draining: Cell::new(false),
            drained: RefCell::new(Vec::new()),
        };
        Ok(WebServer { site: Rc::new(site) })
    }

    /// The factory to listen with.
    pub fn factory(&self) -> WebFactory {
        WebFactory { site: Rc::clone(&self.site) }
    }

    /// The graceful-stop hook for a [`StreamService`](crate::service::StreamService).
    pub fn drain(&self) -> Rc<dyn Drain> {
        Rc::new(WebDrain { site: Rc::clone(&self.site) })
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.site.active.get()
    }
}

/// Builds an HTTP connection per accepted socket (503 past the limit).
pub struct WebFactory {
    site: Rc<Site>,
}

impl fmt::Debug for WebFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebFactory").field("root", &self.site.root.path()).finish()
    }
}

impl Factory for WebFactory {
    fn build_protocol(&mut self, _peer: &Address) -> Option<Box<dyn Protocol>> {
        if self.site.config.open_connections.get() >= self.site.config.max_connections {
            tracing::warn!(
                limit = self.site.config.max_connections,
                "connection limit reached; answering 503"
            );
            return Some(Box::new(Refuse503 { reactor: self.site.reactor.clone() }));
        }
        Some(Box::new(HttpConnection::new(Rc::clone(&self.site))))
    }
}

struct WebDrain {
    site: Rc<Site>,
}

impl Drain for WebDrain {
    fn drain(&self, reactor: &Reactor, grace: Duration) -> Deferred<()> {
        let site = &self.site;
        site.draining.set(true);
        for core in site.live_connections() {
            if let Ok(mut core) = core.try_borrow_mut() {
                core.begin_drain();
            }
        }
        if site.active.get() == 0 {
            return Deferred::succeed(());
        }
        tracing::info!(connections = site.active.get(), grace = ?grace, "finishing in-flight requests");
        let (done, resolver) = Deferred::pending();
        site.drained.borrow_mut().push(resolver);
        let weak = Rc::downgrade(site);
        reactor.call_later(grace, move |_| {
            let Some(site) = weak.upgrade() else { return };
            let left = site.live_connections();
            if !left.is_empty() {
                tracing::warn!(connections = left.len(), "grace period over; aborting connections");
            }
            for core in left {
                if let Ok(mut core) = core.try_borrow_mut() {
                    core.abort();
                }
            }
        });
        done
    }
}
