//! `http-echo`: hyper's HTTP/1 server on the mini runtime, through the `mini-hyper` adapter.
//!
//! `GET /` answers `Hello, World!`; `POST /echo` answers with the request's body, streamed back
//! as it arrives (never held whole: a body of any size costs a few buffers); anything else is a
//! 404. `--runtime tokio` (a build with the `tokio` feature) serves the very same hyper service
//! on tokio's current-thread runtime, for comparison.
//!
//! - [`service`]: the routes, and the hyper connection settings both runtimes share.
//! - [`on_mini`]: the accept loop on mini, a task per connection.
//! - `on_tokio` (feature `tokio`): the same loop on tokio, with `hyper-util`'s adapter.
//!
//! This file is the edge of the program: it parses the command line, sets up logging and
//! signals, binds, prints `listening on ADDR` (the one line on stdout, which scripts and tests
//! read) and hands the listener to the chosen runtime. Errors become one `error: ...` line on
//! stderr and exit status 1; `SIGINT` and `SIGTERM` exit with status 0.

mod on_mini;
#[cfg(feature = "tokio")]
mod on_tokio;
mod service;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::time::Duration;
use std::{process, thread};

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// How many finished handshakes the kernel may queue before we accept them (std's 128 drops
/// SYNs when a thousand clients connect at once; the kernel caps it at `net.core.somaxconn`).
const BACKLOG: i32 = 1024;

/// How long the accept loop leaves the listener alone after `accept` failed for want of
/// descriptors or memory, which would only fail again at once; open connections keep being
/// served meanwhile.
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// hyper's HTTP/1 server on the mini runtime: GET / says hello, POST /echo streams the body back.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Which runtime runs hyper.
    #[arg(long, value_enum, default_value_t = Runtime::Mini)]
    runtime: Runtime,

    /// Address to listen on (IP:PORT; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,

    /// Close a connection whose request line and headers take longer than SECS to arrive
    /// (hyper's header_read_timeout; fractions allowed, e.g. 2.5). Also bounds how long a
    /// keep-alive connection may sit idle between requests.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    header_timeout: Duration,
}

/// The runtimes that can run the server.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Runtime {
    /// mini, through the mini-hyper adapter: one thread, one task per connection.
    Mini,
    /// tokio's current-thread runtime, through hyper-util: the peer (in a build with the
    /// `tokio` feature).
    Tokio,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole chain on one line: "cannot listen on ADDR: <os error>".
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Binds, announces the address and serves. Returns only on error.
fn run(cli: &Cli) -> Result<()> {
    if matches!(cli.runtime, Runtime::Tokio) && !cfg!(feature = "tokio") {
        anyhow::bail!(
            "--runtime tokio needs a build with the `tokio` feature \
             (cargo run -p http-echo --features tokio -- --runtime tokio)"
        );
    }
    exit_on_signals()?;
    let listener = bind(cli.addr).with_context(|| format!("cannot listen on {}", cli.addr))?;
    let local = listener.local_addr().context("cannot read the bound address")?;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on {local}")?;
    stdout.flush()?;
    drop(stdout);

    let settings = service::Settings { header_timeout: cli.header_timeout };
    let served = match cli.runtime {
        Runtime::Mini => on_mini::serve(listener, settings),
        #[cfg(feature = "tokio")]
        Runtime::Tokio => on_tokio::serve(listener, settings),
        #[cfg(not(feature = "tokio"))]
        Runtime::Tokio => unreachable!("refused above"),
    };
    let stopped = served.with_context(|| format!("the server on {:?} stopped", cli.runtime));
    match stopped? {}
}

/// A listening socket with a [`BACKLOG`]-deep accept queue (and `SO_REUSEADDR`, as std sets).
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Parses a positive number of seconds, fractions allowed.
fn parse_secs(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs > 0.0 => Duration::try_from_secs_f64(secs).map_err(|e| e.to_string()),
        _ => Err(format!("expected a positive number of seconds, got {text:?}")),
    }
}

/// Whether an `accept` error means the process or system ran out of something (descriptors,
/// buffers, memory) rather than that one connection failed: then pause for [`ACCEPT_PAUSE`].
pub fn out_of_resources(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

/// Exits the process with status 0 on SIGINT or SIGTERM, from a thread of its own (signal-hook
/// does the async-signal-safe part), so neither runtime needs to know about signals. Exiting
/// without unwinding is fine: the kernel closes every socket.
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
