//! Command-line parsing (clap) and running the chosen service.

use std::cell::RefCell;
use std::error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use torque::net::{ServerEndpoint, factory_fn, server_from_string};
use torque::{BackendKind, Reactor};

use crate::logging::{self, LogFormat};
use crate::pidfile::PidFile;
use crate::service::{MultiService, Service, StreamService, run_services};
use crate::services::portforward::{PortForward, Target};
use crate::services::procmon::{Monitored, ProcessMonitor, Timing};
use crate::services::{Chargen, Daytime, Discard, Echo};
use crate::web::{WebConfig, WebServer};
use crate::workers::BuildService;

/// Run network services on a Torque reactor (Twisted's twistd).
#[derive(Debug, Parser)]
#[command(
    name = "torque",
    version,
    about = "Run network services on a Torque reactor (Twisted's twistd).",
    after_help = "Examples:\n  torque web --path ./public --listen tcp:8080:interface=127.0.0.1\n  torque -r poll echo --listen tcp:8007\n  torque reactors"
)]
pub struct Cli {
    /// Reactor backend to run on (see `torque reactors`), or `glib` for GLib's main loop
    /// (builds with `--features glib`) [default: the platform's best]
    #[arg(short, long, value_name = "NAME", env = "TORQUE_REACTOR", global = true)]
    pub reactor: Option<String>,
    /// Write logs here instead of stderr (`-` is stderr)
    #[arg(long, value_name = "PATH|-", global = true)]
    pub log_file: Option<PathBuf>,
    /// Log line format
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Write the process id here while running
    #[arg(long, value_name = "PATH", global = true)]
    pub pid_file: Option<PathBuf>,
    /// On SIGINT/SIGTERM, how long in-flight work may take before it is cut off
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub shutdown_timeout: Duration,
    /// The service to run
    #[command(subcommand)]
    pub service: Command,
}

/// The services (and `reactors`).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a directory over HTTP/1.1 (GET/HEAD, keep-alive, ranges, 304s, listings)
    Web(WebArgs),
    /// Echo back what each client sends (RFC 862)
    Echo(ListenArgs<8007>),
    /// Read and discard what each client sends (RFC 863)
    Discard(ListenArgs<8009>),
    /// Send each client the date and time, then close (RFC 867)
    Daytime(ListenArgs<8013>),
    /// Send each client an endless character pattern (RFC 864)
    Chargen(ListenArgs<8019>),
    /// Relay each connection to another host and port, both ways
    Portforward(PortforwardArgs),
    /// Keep commands running: restart them when they exit, log their output (Twisted's procmon)
    Procmon(ProcmonArgs),
    /// Print the reactor backends in this build and what each supports
    Reactors,
}

/// Where a service listens.
#[derive(Debug, Args)]
pub struct ListenArgs<const PORT: u16> {
    /// Endpoint to listen on, e.g. tcp:8007:interface=127.0.0.1 or unix:/tmp/s.sock (repeatable)
    /// [default: 127.0.0.1, port 8007 echo, 8009 discard, 8013 daytime, 8019 chargen]
    #[arg(long = "listen", value_name = "ENDPOINT")]
    pub listen: Vec<String>,
    /// Reactor threads serving the ports, one per core by default (1: a single reactor)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,
}

impl<const PORT: u16> ListenArgs<PORT> {
    fn endpoints(&self) -> Result<Vec<(String, ServerEndpoint)>, Box<dyn Error>> {
        parse_endpoints(&self.listen, PORT)
    }
}

/// `torque web` options.
#[derive(Debug, Args)]
pub struct WebArgs {
    /// Directory to serve
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub path: PathBuf,
    /// Endpoint to listen on (repeatable) [default: tcp:8080:interface=127.0.0.1]
    #[arg(long = "listen", value_name = "ENDPOINT")]
    pub listen: Vec<String>,
    /// Reactor threads serving the ports, one per core by default (1: a single reactor)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,
    /// Most open connections; more are answered 503 (default 1024, or fewer
    /// when the fd limit or the reactor allows fewer: about 480 on select)
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Time a client has to send a request head, from its first byte
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
    /// Time a connection may be idle between requests, or not read a response
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// How long a small file's content is reused before being read again (0s: always read)
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub cache_ttl: Duration,
    /// Follow symlinks that point outside the directory (refused with 403 by default)
    #[arg(long)]
    pub follow_symlinks: bool,
    /// Answer 403 for directories without index.html instead of listing them
    #[arg(long)]
    pub no_listings: bool,
    /// Serve names starting with "." (.git/, .env); by default they are 404 and not listed
    #[arg(long)]
    pub serve_hidden: bool,
    /// Do not log a line per request
    #[arg(long)]
    pub no_access_log: bool,
    /// Copy large files through user space instead of sendfile (for comparison)
    #[arg(long)]
    pub no_sendfile: bool,
}

/// `torque portforward` options.
#[derive(Debug, Args)]
pub struct PortforwardArgs {
    /// Endpoint to listen on (repeatable)
    #[arg(long = "listen", value_name = "ENDPOINT", required = true)]
    pub listen: Vec<String>,
    /// Where to relay each connection: HOST:PORT
    #[arg(long, value_name = "HOST:PORT")]
    pub to: Target,
    /// Give up connecting to the target after this long
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
}

/// `torque procmon` options.
#[derive(Debug, Args)]
pub struct ProcmonArgs {
    /// A command to keep running, as NAME=COMMAND (run by /bin/sh -c; cmd /C on Windows) (repeatable)
    #[arg(long = "process", value_name = "NAME=COMMAND")]
    pub process: Vec<String>,
    /// Delay before the first restart; it doubles while the command keeps dying quickly
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub min_restart_delay: Duration,
    /// Longest delay between restarts
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub max_restart_delay: Duration,
    /// A run at least this long resets the delay
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub threshold: Duration,
    /// On stop, time between SIGTERM and SIGKILL
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub kill_time: Duration,
    /// A command to keep running, as program and arguments (after `--`)
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

fn procmon_service(args: ProcmonArgs) -> Result<ProcessMonitor, Box<dyn Error>> {
    let mut commands = Vec::new();
    if let Some(program) = args.command.first() {
        let name = std::path::Path::new(program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.clone());
        commands.push(Monitored { name, argv: args.command.clone() });
    }
    for text in &args.process {
        let Some((name, command)) = text.split_once('=').filter(|(n, c)| !n.is_empty() && !c.is_empty())
        else {
            return Err(format!("bad --process {text:?}: expected NAME=COMMAND").into());
        };
        let shell: [&str; 2] = if cfg!(windows) { ["cmd.exe", "/C"] } else { ["/bin/sh", "-c"] };
        let argv = vec![shell[0].to_owned(), shell[1].to_owned(), command.to_owned()];
        commands.push(Monitored { name: name.to_owned(), argv });
    }
    if commands.is_empty() {
        return Err(
            "procmon needs a command: torque procmon -- PROGRAM ARGS…, or --process NAME=COMMAND".into()
        );
    }
    let timing = Timing {
        min_delay: args.min_restart_delay,
        max_delay: args.max_restart_delay.max(args.min_restart_delay),
        threshold: args.threshold,
        kill_time: args.kill_time,
    };
    Ok(ProcessMonitor::new(commands, timing))
}

fn parse_endpoints(
    given: &[String],
    default_port: u16,
) -> Result<Vec<(String, ServerEndpoint)>, Box<dyn Error>> {
    let defaults = [format!("tcp:{default_port}:interface=127.0.0.1")];
    let texts = if given.is_empty() { &defaults[..] } else { given };
    texts
        .iter()
        .map(|text| match server_from_string(text) {
            Ok(endpoint) => Ok((text.clone(), endpoint)),
            Err(e) => Err(format!("bad --listen {text:?}: {e}").into()),
        })
        .collect()
}

/// Parses the command line and runs; the process's exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.kind() == clap::error::ErrorKind::InvalidSubcommand => {
            let given = e.get(clap::error::ContextKind::InvalidSubcommand).map(ToString::to_string);
            eprintln!(
                "torque: unknown service {:?}; services: web, echo, discard, daytime, chargen, portforward, procmon, reactors",
                given.unwrap_or_default()
            );
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("torque: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The `-r` name of the GLib-driven reactor.
const GLIB: &str = "glib";

/// What `-r` takes in this build: the backends here, and `glib` if built in.
fn reactor_names() -> String {
    let mut names: Vec<&str> = BackendKind::all().iter().map(|k| k.name()).collect();
    if cfg!(feature = "glib") {
        names.push(GLIB);
    }
    names.join(", ")
}

#[cfg(feature = "glib")]
fn run_on_glib(reactor: &Reactor) -> Result<(), Box<dyn Error>> {
    Ok(torque_glib::run(reactor)?)
}

#[cfg(not(feature = "glib"))]
fn run_on_glib(_reactor: &Reactor) -> Result<(), Box<dyn Error>> {
    unreachable!("refused before the reactor was built")
}

/// Runs the parsed command until the reactor stops.
pub fn run(cli: Cli) -> Result<(), Box<dyn Error>> {
    // `glib` is not a backend but a driver (Twisted's `gi` reactor): GLib's
    // main loop waits on the best backend that has a watch fd.
    let glib = cli.reactor.as_deref() == Some(GLIB);
    if glib && !cfg!(feature = "glib") {
        return Err(format!(
            "the glib reactor is not in this build; build torque with `--features glib` (it needs GLib's development files); available: {}",
            reactor_names()
        )
        .into());
    }
    let backend = match cli.reactor.as_deref() {
        // GLib watches one fd: the best backend that has one (set here, so
        // that TORQUE_REACTOR=glib is not read again as a backend's name).
        Some(_) if glib => {
            let watchable =
                BackendKind::all().iter().find(|k| k.info().supports(torque::Capability::WatchFd));
            Some(*watchable.ok_or("no backend here has a watch fd for GLib to watch")?)
        }
        Some(name) => Some(name.parse::<BackendKind>().map_err(|e| match e {
            torque::ReactorError::UnknownBackend { name, .. } => {
                format!("unknown reactor backend {name:?}; available: {}", reactor_names())
            }
            other => other.to_string(),
        })?),
        None => None,
    };
    if matches!(cli.service, Command::Reactors) {
        print!("{}", crate::reactors::table());
        return Ok(());
    }
    let log_target = logging::init(cli.log_file.as_deref(), cli.log_format)?;
    let mut builder = Reactor::builder();
    if let Some(kind) = backend {
        builder = builder.backend(kind);
    }
    let reactor = builder.build()?;
    logging::reopen_on_signals(&reactor, log_target)?;
    let mut services = MultiService::new();
    // The services one reactor per core can serve: how to build each on a
    // worker's reactor, and how many workers.
    let mut replicated: Option<(BuildService, usize)> = None;
    match cli.service {
        Command::Web(args) => {
            let workers = worker_count(args.workers);
            let config = web_config(&reactor, &args);
            let max_connections = config.max_connections;
            let endpoints = parse_endpoints(&args.listen, 8080)?;
            let build: BuildService =
                Arc::new(move |r: &Reactor| web_service(r, config.clone(), endpoints.clone()));
            tracing::info!(root = %args.path.display(), max_connections, workers, "serving files");
            replicated = Some((build, workers));
        }
        Command::Echo(args) => replicated = Some(simple_service("echo", &args, || Echo)?),
        Command::Discard(args) => replicated = Some(simple_service("discard", &args, || Discard)?),
        Command::Daytime(args) => replicated = Some(simple_service("daytime", &args, || Daytime)?),
        Command::Chargen(args) => replicated = Some(simple_service("chargen", &args, || Chargen)?),
        Command::Portforward(args) => {
            let endpoints = parse_endpoints(&args.listen, 0)?;
            tracing::info!(target = %args.to, "forwarding connections");
            let factory = PortForward::new(&reactor, args.to, args.connect_timeout);
            services.add(StreamService::new("portforward", endpoints, factory));
        }
        Command::Procmon(args) => services.add(procmon_service(args)?),
        Command::Reactors => unreachable!("handled above"),
    }
    let mut workers = None;
    if let Some((build, count)) = replicated {
        let service = build(&reactor)?;
        let ports = service.ports();
        services.add(service);
        workers = (count > 1).then_some((build, count, ports));
    }
    let pid_file = cli.pid_file.as_deref().map(PidFile::create).transpose()?;
    let pid_path = cli.pid_file.clone();
    reactor.on_repeated_stop_signal(move |_, signal| {
        eprintln!("torque: signal {signal} again while stopping; exiting now");
        if let Some(path) = &pid_path {
            let _ = std::fs::remove_file(path);
        }
        std::process::exit(128 + signal);
    });
    let services: Rc<RefCell<dyn Service>> = Rc::new(RefCell::new(services));
    let failed = run_services(&reactor, services, cli.shutdown_timeout);
    // After run_services, so the workers start once the ports are open.
    let worker_error = workers.map(|(build, count, ports)| {
        crate::workers::start(&reactor, count - 1, ports, build, cli.shutdown_timeout)
    });
    let driver = if glib { "glib" } else { "torque" };
    tracing::info!(reactor = reactor.backend().name, driver, pid = std::process::id(), "starting");
    if glib {
        run_on_glib(&reactor)?;
    } else {
        reactor.run()?;
    }
    drop(pid_file);
    if let Some(error) = failed.borrow_mut().take() {
        return Err(error.into());
    }
    let worker_failure = worker_error.and_then(|slot| slot.lock().unwrap_or_else(|e| e.into_inner()).take());
    if let Some(message) = worker_failure {
        return Err(message.into());
    }
    tracing::info!("stopped");
    Ok(())
}

/// How many connections a server can hold and still answer the ones past
/// its limit with a 503: half the fds the process may open and the reactor
/// can watch (select: below FD_SETSIZE), less a few for everything else.
fn connection_room(reactor: &Reactor) -> usize {
    let open_files = crate::platform::raise_open_file_limit().unwrap_or(u64::MAX);
    let watchable = reactor.backend().fd_limit.map_or(u64::MAX, |limit| limit as u64);
    let room = open_files.min(watchable).saturating_sub(64) / 2;
    usize::try_from(room).unwrap_or(usize::MAX).max(1)
}

/// `--workers`, or one per core.
fn worker_count(asked: Option<u16>) -> usize {
    asked.map_or_else(crate::workers::default_count, usize::from)
}

/// A service whose protocol needs no configuration, and how many workers serve it.
fn simple_service<const PORT: u16, P: torque::net::Protocol + 'static>(
    name: &'static str,
    args: &ListenArgs<PORT>,
    protocol: fn() -> P,
) -> Result<(BuildService, usize), Box<dyn Error>> {
    let endpoints = args.endpoints()?;
    let build: BuildService = Arc::new(move |_: &Reactor| {
        Ok(StreamService::new(name, endpoints.clone(), factory_fn(move |_| protocol())))
    });
    Ok((build, worker_count(args.workers)))
}

fn web_config(reactor: &Reactor, args: &WebArgs) -> WebConfig {
    let mut config = WebConfig::new(&args.path);
    let room = connection_room(reactor);
    config.max_connections = match args.max_connections {
        Some(asked) => {
            if asked > room * 2 {
                tracing::warn!(
                    asked,
                    room,
                    reactor = reactor.backend().name,
                    "--max-connections is beyond what this process can watch; connections past the fd limit are closed without a 503"
                );
            }
            asked.max(1)
        }
        None => room.min(1024),
    };
    config.header_timeout = args.header_timeout;
    config.idle_timeout = args.idle_timeout;
    config.cache_ttl = args.cache_ttl;
    config.follow_symlinks = args.follow_symlinks;
    config.listings = !args.no_listings;
    config.serve_hidden = args.serve_hidden;
    config.access_log = !args.no_access_log;
    config.sendfile = !args.no_sendfile;
    config
}

/// `torque web`'s service on `reactor` (the first reactor's, or a worker's).
fn web_service(
    reactor: &Reactor,
    config: WebConfig,
    endpoints: Vec<(String, ServerEndpoint)>,
) -> Result<StreamService, Box<dyn Error>> {
    let server = WebServer::new(reactor, config)?;
    let drain = server.drain();
    Ok(StreamService::new("web", endpoints, server.factory()).with_drain(drain).with_url_scheme("http"))
}
