//! `echo`: one TCP echo server written in several I/O models, and a line client to try them.
//!
//! Every server does the same thing: accept connections and send each one back what it sends,
//! optionally upper-cased (`--upper`), until it closes its side. What differs is how a server
//! waits for its sockets, and so what a connection costs. Read them in this order:
//!
//! - [`threaded`]: blocking calls, one OS thread per connection; the kernel does the waiting.
//! - [`spin`]: non-blocking calls, one thread asking every socket in a loop; it never waits and
//!   burns a core.
//! - [`select`]: non-blocking calls, one thread that sleeps in `select(2)` until some socket is
//!   ready.
//! - [`epoll`]: non-blocking calls, one thread in a hand-written edge-triggered `epoll` loop that
//!   learns only which sockets became ready; no runtime, so the ceiling for `mini`.
//! - [`sigio`]: non-blocking calls, one thread that takes a real-time signal naming each socket
//!   that became ready (`O_ASYNC`, `F_SETSIG`), and scans them all when the signal queue
//!   overflows; the model epoll replaced.
//! - [`uring`]: one thread in a hand-written io_uring loop: it hands the kernel whole receives
//!   and sends and learns when they are done, never whether a socket is ready; the completion
//!   model, and its ceiling.
//! - [`mini`]: async tasks on the `mini` runtime, written like `threaded` but run like `epoll`.
//! - `tokio_peer` (cargo feature `tokio` only): the same server on tokio, current-thread
//!   (`--runtime tokio-current`) and multi-thread (`--runtime tokio-multi`), for comparison.
//!
//! Shared pieces: [`listen`] makes the listening socket, [`syscall`] turns `errno` into errors, [`transform`] computes the reply,
//! [`conn`] is the non-blocking connection state of `spin` and `select`, [`shed`] handles a
//! failed `accept` (closing clients it has no descriptor for), [`options`] holds the
//! per-connection flags, and [`client`] is `echo client`.
//!
//! This file is the edge of the program: it parses the command line, sets up logging and signals,
//! binds, prints `listening on ADDR` (the one line on stdout, which scripts and tests read) and
//! hands the listener to the chosen server. Errors become one `error: ...` line on stderr.

mod client;
mod conn;
mod epoll;
mod listen;
mod mini;
#[cfg(feature = "uring")]
mod mini_uring;
mod options;
mod select;
mod shed;
mod sigio;
mod spin;
mod syscall;
mod threaded;
#[cfg(feature = "tokio")]
mod tokio_peer;
mod transform;
mod uring;

use std::convert::Infallible;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use std::{process, thread};

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Where servers listen and the client connects unless told otherwise.
const DEFAULT_ADDR: &str = "127.0.0.1:7878";

/// How long a server leaves its listener alone after `accept` fails for want of resources.
///
/// Most accept errors concern one connection, and the server simply accepts the next. But out of
/// descriptors or memory (see [`out_of_resources`]) the listener stays ready while every accept
/// fails again; retrying at once would only spin and flood the log. Connections already open
/// keep being served during the pause.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Bytes a server reads at a time: the size of a read buffer, wherever a server keeps one (per
/// connection, per thread or per loop), and so the most output a connection holds.
pub const BUF_SIZE: usize = 16 * 1024;

pub use shed::out_of_resources;

/// A TCP echo server written in several I/O models, for contrast.
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    /// Which I/O model serves the connections.
    #[arg(long, value_enum, default_value_t = Model::Mini)]
    runtime: Model,

    /// Address to listen on (IP:PORT; port 0 picks a free one).
    #[arg(long, default_value = DEFAULT_ADDR)]
    addr: SocketAddr,

    /// Reply with ASCII letters upper-cased instead of the bytes unchanged.
    #[arg(long)]
    upper: bool,

    /// Poller backend of the mini runtime (uring, epoll, poll or select; only those compiled in,
    /// see --version). Default: $MINI_BACKEND, else the best compiled in (uring falls back to
    /// epoll where the kernel refuses it; named, it is an error there). Only for --runtime mini.
    #[arg(long, value_parser = parse_backend)]
    backend: Option<::mini::Backend>,

    /// Serve at most N connections at once; a client past that is accepted and closed at once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: Option<u32>,

    /// Close a connection that has neither sent nor received a byte for SECS seconds (fractions
    /// allowed, e.g. 2.5).
    #[arg(long, value_name = "SECS", value_parser = echo_bench::parse_secs)]
    idle_timeout: Option<Duration>,

    /// Testing knob: set SO_SNDBUF to BYTES on each accepted connection (the kernel doubles it
    /// and enforces a minimum), so that replies are taken in small pieces and every write path
    /// meets short writes.
    #[arg(long, value_name = "BYTES")]
    send_buffer: Option<usize>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send each line of stdin to a server and print its reply.
    Client {
        /// Address of the server (IP:PORT).
        #[arg(long, default_value = DEFAULT_ADDR)]
        addr: SocketAddr,
    },
    /// Measure the servers side by side: throughput, latency, CPU time and memory.
    Bench(echo_bench::BenchArgs),
}

/// The I/O models; each is one file in this crate.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Model {
    /// Async tasks on the mini runtime: one thread, one task per connection, sleeps in epoll.
    Mini,
    /// Blocking std::net: one OS thread per connection.
    Threaded,
    /// Non-blocking sockets asked in a busy loop: one thread, burns a whole core even when idle.
    Spin,
    /// Non-blocking sockets multiplexed with select(2): one thread, descriptors below FD_SETSIZE.
    Select,
    /// A hand-written edge-triggered epoll loop, no runtime: one thread, the ceiling for mini.
    Epoll,
    /// Signal-driven I/O: a real-time signal names each socket that became ready; one thread.
    Sigio,
    /// A hand-written io_uring loop (completions, not readiness), no runtime: one thread.
    Uring,
    /// Tokio's current-thread runtime, one task per connection: mini's peer.
    #[cfg(feature = "tokio")]
    TokioCurrent,
    /// Tokio's multi-thread runtime (a worker per core), one task per connection.
    #[cfg(feature = "tokio")]
    TokioMulti,
}

fn main() -> ExitCode {
    let cli = parse_cli();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let result = match cli.command {
        Some(Command::Client { addr }) => client::run(addr),
        Some(Command::Bench(args)) => echo_bench::run(args, &runtime_names()),
        None => run_server(&cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole chain on one line: "cannot listen on ADDR: <os error>".
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Every `--runtime` name of this build, in the order of `echo --help`: the servers `echo bench`
/// can measure.
fn runtime_names() -> Vec<String> {
    Model::value_variants()
        .iter()
        .filter_map(ValueEnum::to_possible_value)
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_owned())
        .collect()
}

fn parse_backend(name: &str) -> Result<::mini::Backend, ::mini::UnknownBackend> {
    name.parse()
}

/// Parses the command line; `--version` also lists the runtime's compiled-in backends.
fn parse_cli() -> Cli {
    let backends: Vec<_> = ::mini::Backend::compiled().iter().map(|b| b.name()).collect();
    let version = format!("{} (mini backends: {})", env!("CARGO_PKG_VERSION"), backends.join(", "));
    // clap wants a 'static version string; this one is made once per run.
    let matches = Cli::command().version(version.leak() as &str).get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Binds the address, announces it and serves with the chosen model. Returns only on error.
fn run_server(cli: &Cli) -> Result<()> {
    let (model, addr, upper) = (cli.runtime, cli.addr, cli.upper);
    if cli.backend.is_some() && !matches!(model, Model::Mini) {
        anyhow::bail!("--backend applies only to --runtime mini");
    }
    let opts = options::ConnOptions {
        max_connections: cli.max_connections.map(|n| n as usize),
        idle_timeout: cli.idle_timeout,
        send_buffer: cli.send_buffer,
    };
    #[cfg(feature = "tokio")]
    if matches!(model, Model::TokioCurrent | Model::TokioMulti)
        && (opts.max_connections.is_some()
            || opts.idle_timeout.is_some()
            || opts.send_buffer.is_some())
    {
        anyhow::bail!("--max-connections, --idle-timeout and --send-buffer: not for tokio peers");
    }
    exit_on_signals()?;
    // io_uring may be blocked here, and a runtime told to use it then fails: say so before
    // announcing an address.
    let uring = match model {
        Model::Uring => Some(uring::Setup::new()?),
        _ => None,
    };
    let runtime = match model {
        Model::Mini => Some(mini::runtime(cli.backend)?),
        _ => None,
    };
    let listener = listen::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr().context("cannot read the bound address")?;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on {local}")?;
    stdout.flush()?;
    drop(stdout);

    let served: io::Result<Infallible> = match model {
        Model::Mini => mini::serve(listener, runtime, upper, opts),
        Model::Threaded => threaded::serve(listener, upper, opts),
        Model::Spin => spin::serve(listener, upper, opts),
        Model::Select => select::serve(listener, upper, opts),
        Model::Epoll => epoll::serve(listener, upper, opts),
        Model::Sigio => sigio::serve(listener, upper, opts),
        Model::Uring => uring::serve(listener, uring, upper, opts),
        #[cfg(feature = "tokio")]
        Model::TokioCurrent => tokio_peer::serve(listener, upper, tokio_peer::Flavor::Current),
        #[cfg(feature = "tokio")]
        Model::TokioMulti => tokio_peer::serve(listener, upper, tokio_peer::Flavor::Multi),
    };
    match served.with_context(|| format!("the {model:?} server stopped"))? {}
}

/// Exits the process with status 0 on SIGINT or SIGTERM.
///
/// A plain thread waits for the signals (signal-hook does the async-signal-safe part), so no server
/// needs to know about them. Exiting without unwinding is fine: the kernel closes every socket.
fn exit_on_signals() -> Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("cannot install signal handlers")?;
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                log::debug!("signal {signal}: exiting");
                process::exit(0);
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}
